// Builds src/vendor/sm-crypto-v2.js: the npm package sm-crypto-v2 (with the @noble packages it imports) as one ES
// module a browser can load without a build step. Run `npm run vendor` after changing the pinned version in
// package.json; test/vendor.test.js builds it again from node_modules (installed from package-lock.json) and fails
// when the committed file differs.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const TARGET = join(ROOT, "src", "vendor", "sm-crypto-v2.js");
export const PACKAGES = ["sm-crypto-v2", "@noble/curves", "@noble/hashes", "@noble/ciphers"];

function version(name) {
  return JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")).version;
}

/** The vendored module's text, built from node_modules. */
export async function build() {
  const banner = [
    "// VENDORED by clients/js/scripts/vendor.mjs (esbuild " + esbuild.version + "): do not edit.",
    "// " + PACKAGES.map((p) => `${p}@${version(p)}`).join(", ") + "; MIT licences in LICENSE.sm-crypto-v2.txt.",
  ].join("\n");
  const result = await esbuild.build({
    stdin: {
      contents: 'export { sm2, sm3, sm4 } from "sm-crypto-v2";\n',
      resolveDir: ROOT,
      sourcefile: "vendor-entry.js",
    },
    bundle: true,
    format: "esm",
    platform: "neutral",
    mainFields: ["module", "main"],
    target: "es2020",
    write: false,
    legalComments: "inline",
    charset: "utf8",
    banner: { js: banner },
    logLevel: "silent",
  });
  return result.outputFiles[0].text;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(TARGET, await build());
  console.log(`wrote ${TARGET}`);
}
