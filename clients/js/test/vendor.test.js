// src/vendor/sm-crypto-v2.js is what scripts/vendor.mjs builds from the npm packages installed from
// package-lock.json (npm ci), byte for byte, and names their versions; the licences ship beside it.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { PACKAGES, TARGET, build } from "../scripts/vendor.mjs";
import { ROOT } from "./vectors.js";

const JS = join(ROOT, "clients", "js");

test("the vendored module is the esbuild bundle of the locked npm packages", async () => {
  const lock = JSON.parse(readFileSync(join(JS, "package-lock.json"), "utf8"));
  const committed = readFileSync(TARGET, "utf8");
  for (const name of PACKAGES) {
    const locked = lock.packages[`node_modules/${name}`];
    assert.ok(locked?.integrity, `${name} is locked with an integrity hash`);
    const installed = JSON.parse(readFileSync(join(JS, "node_modules", name, "package.json"), "utf8")).version;
    assert.equal(installed, locked.version, `${name} installed as locked`);
    assert.ok(committed.includes(`${name}@${locked.version}`), `${name}@${locked.version} named in the banner`);
  }
  assert.equal(await build(), committed, "run `npm run vendor` in clients/js");
});

test("the licences of the vendored packages are committed beside it", () => {
  const text = readFileSync(join(JS, "src", "vendor", "LICENSE.sm-crypto-v2.txt"), "utf8");
  for (const name of PACKAGES) assert.ok(text.includes(`=== ${name} `), name);
  assert.ok(text.includes("Permission is hereby granted"));
});
