// Hardhat 3 configuration: Solidity tests (unit + fuzz) and the `hardhat node` local chain.
// The compiler version and settings come from contracts/compiler.json, the same file the Python
// compiler (chain_client) reads; the compiler itself is the npm `solc` build, so nothing is
// downloaded.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const compiler = JSON.parse(readFileSync(new URL("./contracts/compiler.json", import.meta.url), "utf8"));

export default {
  solidity: {
    version: compiler.version,
    path: require.resolve("solc/soljson.js"),
    settings: compiler.settings,
  },
  paths: {
    sources: "./contracts",
    tests: { solidity: "./contracts/test" },
    cache: "./build/hardhat/cache",
    artifacts: "./build/hardhat/artifacts",
  },
  test: {
    solidity: {
      fuzz: { runs: 512 },
    },
  },
};
