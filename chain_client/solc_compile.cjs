// Compiles one standard-JSON input with the npm `solc` (the official WebAssembly build).
// Usage: node solc_compile.cjs <path of the solc package>   (input on stdin, output on stdout)
// Every source is already inside the input, so no import callback is needed.
"use strict";
const solc = require(process.argv[2]);
const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
  const output = solc.compile(Buffer.concat(chunks).toString("utf8"));
  process.stdout.write(JSON.stringify({ version: solc.version(), output: JSON.parse(output) }));
});
