// spec/vectors/frames.json: every frame serialises to the vector's bytes and parses back to its fields; the
// parse-only cases; every frame fed one byte at a time.
import assert from "node:assert/strict";
import { test } from "node:test";
import { fromHex, toHex } from "../src/bytes.js";
import { ErrorCode, ProtocolError } from "../src/errors.js";
import { FrameDecoder, decode, encode } from "../src/wire.js";
import { frameOf, loadJson } from "./vectors.js";

const VECTORS = loadJson("spec/vectors/frames.json");

test("every frame vector serialises byte for byte and parses back", () => {
  assert.equal(VECTORS.frames.length, 34);
  for (const v of VECTORS.frames) {
    const frame = frameOf(v);
    assert.equal(toHex(encode(frame)), v.hex, v.name);
    assert.deepEqual(decode(fromHex(v.hex)), frame, v.name);
  }
});

test("every frame vector parses when fed one byte at a time", () => {
  for (const v of VECTORS.frames) {
    const decoder = new FrameDecoder();
    const bytes = fromHex(v.hex);
    const got = [];
    for (let i = 0; i < bytes.length; i++) got.push(...decoder.feed(bytes.subarray(i, i + 1)));
    assert.equal(got.length, 1, v.name);
    assert.equal(toHex(got[0].bytes), v.hex, v.name);
  }
});

test("parse-only vectors: trailing fields ignored, ignorable types skipped, errors by code", () => {
  assert.equal(VECTORS.parse_only.length, 5);
  for (const v of VECTORS.parse_only) {
    const bytes = fromHex(v.hex);
    if (v.expect === "parses as") {
      assert.equal(toHex(encode(decode(bytes))), v.parses_as, v.name);
    } else if (v.expect === "skipped") {
      assert.equal(decode(bytes), null, v.name);
    } else {
      assert.throws(() => new FrameDecoder().feed(bytes), (e) => e instanceof ProtocolError && e.code === v.error, v.name);
    }
  }
});

test("a truncated body is MALFORMED_FRAME, invalid UTF-8 too", () => {
  const send = VECTORS.frames.find((v) => v.name === "error");
  const bytes = fromHex(send.hex);
  const cut = bytes.slice(0, bytes.length - 3);
  new DataView(cut.buffer).setUint32(0, cut.length - 12);
  assert.throws(() => decode(cut), (e) => e.code === ErrorCode.MALFORMED_FRAME);
  const bad = bytes.slice();
  bad[bad.length - 1] = 0xff;
  assert.throws(() => decode(bad), (e) => e.code === ErrorCode.MALFORMED_FRAME);
});

test("encoding refuses out-of-range integers as a local error", () => {
  assert.throws(() => encode({ type: 0x20, opaque: -1n }), /u64/);
  assert.throws(() => encode({ type: 0x13, acks: [{ conversationId: 1n, seq: 1n << 64n }] }), /u64/);
});
