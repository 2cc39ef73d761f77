// Validates glTF/GLB files with the Khronos glTF validator (npm: gltf-validator).
// Usage: node scripts/validate_gltf.js FILE... ; prints one JSON report per file, exits 1 if any has errors.
const path = require("path");
const fs = require("fs");
const validator = require(path.join(__dirname, "..", ".tools", "node_modules", "gltf-validator"));

async function main() {
  let failed = false;
  for (const file of process.argv.slice(2)) {
    const report = await validator.validateBytes(new Uint8Array(fs.readFileSync(file)), {
      uri: path.basename(file),
      externalResourceFunction: (uri) =>
        Promise.resolve(new Uint8Array(fs.readFileSync(path.join(path.dirname(file), decodeURIComponent(uri))))),
    });
    const { numErrors, numWarnings, numInfos, numHints } = report.issues;
    console.log(JSON.stringify({ file, numErrors, numWarnings, numInfos, numHints, messages: report.issues.messages.slice(0, 10) }));
    failed = failed || numErrors > 0;
  }
  process.exit(failed ? 1 : 0);
}
main().catch((error) => { console.error(String(error)); process.exit(2); });
