// src/index.d.ts compiles under tsc --strict, with test/types/usage.ts using the public API as the pages do.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const JS = fileURLToPath(new URL("..", import.meta.url));

test("index.d.ts compiles with a usage of the whole public API (tsc --strict --noEmit)", () => {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const args = [tsc, "--noEmit", "--strict", "--target", "es2020", "--module", "es2020", "--moduleResolution", "bundler",
    "--allowJs", "false", "test/types/usage.ts"]; // prettier-ignore
  const result = spawnSync(process.execPath, args, { cwd: JS, encoding: "utf8" });
  assert.equal(result.status, 0, result.stdout + result.stderr);
});
