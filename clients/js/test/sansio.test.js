// The core does no I/O and reads no clock (STYLE.md, practice 1): the modules under connection.js never touch a
// socket, a timer or the time; only link.js, client.js, service.js and transport.js do.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const CORE = ["bytes.js", "crypto.js", "errors.js", "frames.js", "wire.js", "keyschedule.js", "records.js", "connection.js"];
const IO = /\b(WebSocket|setTimeout|setInterval|queueMicrotask|Date\.now|new Date|performance\.now|fetch\(|require\(|process\.)/;

test("the sans-IO core's modules use no socket, timer or clock, and import only each other and the vendored package", () => {
  for (const name of CORE) {
    const source = readFileSync(new URL(`../src/${name}`, import.meta.url), "utf8");
    const code = source.replace(/\/\/.*$/gm, "").replace(/\/\*[\s\S]*?\*\//g, "");
    assert.doesNotMatch(code, IO, name);
    for (const [, target] of code.matchAll(/from "([^"]+)"/g)) {
      const file = target.replace(/^\.\//, "");
      assert.ok(CORE.includes(file) || file === "vendor/sm-crypto-v2.js", `${name} imports ${target}`);
    }
  }
});
