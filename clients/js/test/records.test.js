// spec/vectors/records.json: keys and IVs from the traffic secret, each record sealed and opened byte for byte, the
// key update, and a tampered record refused.
import assert from "node:assert/strict";
import { test } from "node:test";
import { fromHex, toHex } from "../src/bytes.js";
import { SUITES } from "../src/crypto.js";
import { ErrorCode } from "../src/errors.js";
import { RecordLayer } from "../src/records.js";
import { loadJson } from "./vectors.js";

const VECTORS = loadJson("spec/vectors/records.json");

for (const v of VECTORS.suites) {
  test(`records of the ${v.suite_name} suite, byte for byte`, async () => {
    const suite = SUITES[v.suite];
    const sender = await RecordLayer.create(suite, fromHex(v.secret));
    const receiver = await RecordLayer.create(suite, fromHex(v.secret));
    assert.equal(toHex(sender.rawKey), v.key);
    assert.equal(toHex(sender.iv), v.iv);
    for (const r of v.records) {
      assert.equal(sender.seq, Number(r.seq));
      const sealed = await sender.seal(fromHex(r.plaintext));
      assert.equal(toHex(sealed), r.hex);
      const opened = await receiver.open(sealed.subarray(0, 12), sealed.subarray(12));
      assert.equal(toHex(opened), r.plaintext);
    }
    await sender.update();
    const after = v.after_key_update;
    assert.equal(toHex(sender.secret), after.secret);
    assert.equal(toHex(await sender.seal(fromHex(after.plaintext))), after.hex);
  });

  test(`a modified ${v.suite_name} record is BAD_RECORD_MAC`, async () => {
    const suite = SUITES[v.suite];
    const receiver = await RecordLayer.create(suite, fromHex(v.secret));
    const sealed = fromHex(v.records[0].hex);
    sealed[sealed.length - 1] ^= 1;
    await assert.rejects(receiver.open(sealed.subarray(0, 12), sealed.subarray(12)), (e) => e.code === ErrorCode.BAD_RECORD_MAC);
    const other = await RecordLayer.create(suite, fromHex(v.secret));
    const second = fromHex(v.records[1].hex); // out of order: seq 0 expected
    await assert.rejects(other.open(second.subarray(0, 12), second.subarray(12)), (e) => e.code === ErrorCode.BAD_RECORD_MAC);
  });
}
