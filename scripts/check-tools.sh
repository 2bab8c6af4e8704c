#!/usr/bin/env bash
# Checks the tools `make` needs before anything is installed; one clear message per missing tool.
set -u
PYTHON=${PYTHON:-python3}
status=0
fail() { echo "error: $1" >&2; status=1; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  fail "$PYTHON not found: install Python 3.11 or newer (or set PYTHON=/path/to/python3.11)."
elif ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  fail "$("$PYTHON" --version 2>&1) is too old: Python 3.11 or newer is needed (set PYTHON=...)."
elif ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  fail "$PYTHON has no venv/ensurepip module: install your distribution's python3-venv package."
fi
if ! command -v node >/dev/null 2>&1; then
  fail "node not found: install Node.js 20 or newer."
elif ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  fail "node $(node --version) is too old: Node.js 20 or newer is needed."
fi
if ! command -v npm >/dev/null 2>&1; then
  fail "npm not found: install npm (it comes with Node.js)."
fi
exit $status
