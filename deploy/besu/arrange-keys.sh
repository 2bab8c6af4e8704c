#!/usr/bin/env bash
# Copy what `besu operator generate-blockchain-config` wrote into one data directory per node.
set -euo pipefail
out=${1:-networkFiles}
n=1
for keydir in "$out"/keys/*/; do
  mkdir -p "data/node-$n"
  cp "$out/genesis.json" "data/node-$n/genesis.json"
  cp "$keydir/key" "data/node-$n/key"
  n=$((n + 1))
done
echo "prepared $((n - 1)) nodes under ./data"
