// Compile contracts/src/*.sol with solc-js (offline: OpenZeppelin comes from node_modules) and
// write ABI + bytecode to prsm/chain/artifacts/<Contract>.json, which ships in the Python package.
// `node compile.js --check` compiles and exits 1 if the committed artifacts differ.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const here = __dirname;
const out = path.join(here, "..", "prsm", "chain", "artifacts");
const sources = {};
for (const name of fs.readdirSync(path.join(here, "src")).sort()) {
  if (name.endsWith(".sol")) {
    sources[`src/${name}`] = { content: fs.readFileSync(path.join(here, "src", name), "utf8") };
  }
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
function findImports(p) {
  const file = path.join(here, "node_modules", p);
  return fs.existsSync(file) ? { contents: fs.readFileSync(file, "utf8") } : { error: `not found: ${p}` };
}
const result = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (result.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const check = process.argv.includes("--check");
let differ = 0;
fs.mkdirSync(out, { recursive: true });
for (const [file, contracts] of Object.entries(result.contracts)) {
  if (!file.startsWith("src/")) continue;
  for (const [name, c] of Object.entries(contracts)) {
    const artifact = {
      contractName: name,
      source: file,
      compiler: `solc-js ${solc.version()}`,
      settings: input.settings,
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
    };
    const text = JSON.stringify(artifact, null, 2) + "\n";
    const target = path.join(out, `${name}.json`);
    if (check) {
      const committed = fs.existsSync(target) ? fs.readFileSync(target, "utf8") : "";
      if (committed !== text) {
        console.error(`${name}: the committed artifact differs from the sources (run: npm run compile)`);
        differ = 1;
      }
    } else {
      fs.writeFileSync(target, text);
      console.log(`wrote ${path.relative(process.cwd(), target)}`);
    }
  }
}
process.exit(differ);
