// Compiles the test contracts with solc-js; writes <Name>.bin (creation bytecode, hex) and <Name>.abi.json.
const fs = require("fs");
const path = require("path");
const solc = require("solc");
const dir = process.argv[2];
const names = process.argv.slice(3);
const sources = {};
for (const n of names) sources[n + ".sol"] = { content: fs.readFileSync(path.join(dir, n + ".sol"), "utf8") };
const input = { language: "Solidity", sources, settings: { optimizer: { enabled: true, runs: 200 }, evmVersion: "paris", outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } } } };
const out = JSON.parse(solc.compile(JSON.stringify(input)));
if (out.errors) for (const e of out.errors) { console.error(e.formattedMessage); if (e.severity === "error") process.exit(1); }
for (const n of names) {
  const c = out.contracts[n + ".sol"][n];
  fs.writeFileSync(path.join(dir, n + ".bin"), c.evm.bytecode.object + "\n");
  fs.writeFileSync(path.join(dir, n + ".abi.json"), JSON.stringify(c.abi, null, 1) + "\n");
}
console.log("solc", solc.version());
