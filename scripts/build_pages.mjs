// Copies the pages' JavaScript and CSS dependencies from node_modules (pinned by package-lock.json)
// into api/static/vendor/, so the pages, Swagger UI (/docs) and ReDoc (/redoc) load nothing from
// the internet. Run by `make pages` (a prerequisite of `make install`); the output is gitignored.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const modules = join(root, "node_modules");
const out = join(root, "api", "static", "vendor");

// [package, path in the package, path under vendor/]
const FILES = [
  ["ethers", "dist/ethers.min.js", "ethers.min.js"],
  ["qrcode-generator", "dist/qrcode.mjs", "qrcode.mjs"],
  ["@hpke/core", "esm", "hpke/core"],
  ["@hpke/common", "esm", "hpke/common"],
  ["swagger-ui-dist", "swagger-ui-bundle.js", "swagger-ui/swagger-ui-bundle.js"],
  ["swagger-ui-dist", "swagger-ui.css", "swagger-ui/swagger-ui.css"],
  ["swagger-ui-dist", "favicon-32x32.png", "swagger-ui/favicon-32x32.png"],
  ["redoc", "bundles/redoc.standalone.js", "redoc/redoc.standalone.js"],
  ["axe-core", "axe.min.js", "axe.min.js"],
];

rmSync(out, { recursive: true, force: true });
const versions = {};
for (const [pkg, from, to] of FILES) {
  const source = join(modules, pkg, from);
  if (!existsSync(source)) {
    console.error(`build_pages: ${source} is missing; run \`npm ci\` first`);
    process.exit(2);
  }
  mkdirSync(dirname(join(out, to)), { recursive: true });
  cpSync(source, join(out, to), {
    recursive: true,
    filter: (path) => !path.endsWith(".d.ts") && !path.endsWith(".d.ts.map"),
  });
  versions[pkg] = JSON.parse(readFileSync(join(modules, pkg, "package.json"), "utf8")).version;
}
// The browser has no package resolution: point @hpke/core's bare imports of @hpke/common at the copy.
const hpkeCommon = join(out, "hpke", "common", "mod.js");
for (const entry of readdirSync(join(out, "hpke"), { recursive: true })) {
  const file = join(out, "hpke", entry);
  if (!file.endsWith(".js")) continue;
  let target = relative(dirname(file), hpkeCommon);
  if (!target.startsWith(".")) target = "./" + target;
  const text = readFileSync(file, "utf8");
  const rewritten = text.replaceAll('from "@hpke/common"', `from "${target}"`);
  if (rewritten !== text) writeFileSync(file, rewritten);
}
// ReDoc's sidebar shows a logo hard-coded to its CDN: point it at nothing (the image then hides).
const redoc = join(out, "redoc", "redoc.standalone.js");
writeFileSync(redoc, readFileSync(redoc, "utf8").replaceAll("https://cdn.redoc.ly/redoc/logo-mini.svg", "data:,"));
writeFileSync(join(out, "versions.json"), JSON.stringify(versions, null, 2) + "\n");
console.log(`build_pages: ${FILES.length} vendor files copied into ${out}`);
