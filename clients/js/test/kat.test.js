// The primitives the client uses, against the published known answers of spec/vectors/crypto-known-answers.json
// (the same file as /work/shared/vectors/crypto-known-answers.json): this is the check that chose sm-crypto-v2.
import assert from "node:assert/strict";
import { test } from "node:test";
import { fromHex, toHex } from "../src/bytes.js";
import { SUITE_BY_NAME, encodeSm2Der, isSm2Point, parseSm2Der, sm2Sign, sm2Verify } from "../src/crypto.js";
import { hkdfExpand, hkdfExtract } from "../src/keyschedule.js";
import { sm3, sm4 } from "../src/vendor/sm-crypto-v2.js";
import { loadJson } from "./vectors.js";

const ALL = loadJson("spec/vectors/crypto-known-answers.json").vectors;
const of = (alg) => ALL.filter((v) => v.alg === alg);
const { national, international } = SUITE_BY_NAME;
const X25519_PKCS8 = fromHex("302e020100300506032b656e04220420");

test("SM3 (GB/T 32905)", async () => {
  assert.ok(of("SM3").length >= 6);
  for (const v of of("SM3")) assert.equal(toHex(await national.hash(fromHex(v.msg_hex))), v.digest, v.id);
});

test("HMAC-SM3 (GM/T 0042)", async () => {
  for (const v of of("HMAC-SM3")) assert.equal(toHex(await national.hmac(fromHex(v.key), fromHex(v.msg_hex))), v.mac, v.id);
});

test("SM4 block cipher (GB/T 32907), one block and a million iterations", () => {
  for (const v of of("SM4-ECB")) {
    const ct = sm4.encrypt(fromHex(v.pt), fromHex(v.key), { padding: "none", output: "array" });
    assert.equal(toHex(ct), v.ct, v.id);
  }
  for (const v of of("SM4-ECB-ITER")) {
    let block = fromHex(v.pt);
    const key = fromHex(v.key);
    for (let i = 0; i < v.iterations; i++) block = sm4.encrypt(block, key, { padding: "none", output: "array" });
    assert.equal(toHex(block), v.ct, v.id);
  }
});

test("SM4-GCM (RFC 8998 A.1) seals and opens; a wrong tag is refused", async () => {
  const [v] = of("SM4-GCM");
  const sealed = await national.seal(fromHex(v.key), fromHex(v.iv), fromHex(v.aad), fromHex(v.pt));
  assert.equal(toHex(sealed), v.ct + v.tag);
  assert.equal(toHex(await national.open(fromHex(v.key), fromHex(v.iv), fromHex(v.aad), sealed)), v.pt);
  sealed[sealed.length - 1] ^= 1;
  assert.equal(await national.open(fromHex(v.key), fromHex(v.iv), fromHex(v.aad), sealed), null);
  assert.equal(await national.open(fromHex(v.key), fromHex(v.iv), fromHex(v.aad), sealed.subarray(0, 15)), null);
});

test("SM2 signatures on curveSM2 (GB/T 32918.5 Annex A): Z, the signature with the given k, verification", () => {
  const vs = of("SM2-SIGN").filter((v) => v.curve === "sm2p256v1");
  assert.equal(vs.length, 1);
  for (const v of vs) {
    const uid = new TextDecoder().decode(fromHex(v.uid));
    const d = fromHex(v.d);
    const pub = fromHex("04" + v.pub);
    const msg = fromHex(v.msg_hex);
    const sig = sm2Sign(d, msg, { userId: uid, k: fromHex(v.k) });
    assert.deepEqual(parseSm2Der(sig), [BigInt("0x" + v.r), BigInt("0x" + v.s)]);
    assert.ok(sm2Verify(pub, msg, sig, { userId: uid }));
    assert.ok(!sm2Verify(pub, fromHex(v.msg_hex + "00"), sig, { userId: uid }));
    assert.ok(!sm2Verify(pub, msg, sig, { userId: "TLSv1.3+GM+Cipher+Suite" }), "the signer ID is bound");
    assert.equal(sm3(fromHex(v.Z.length ? v.Z + v.msg_hex : v.msg_hex)), v.e, "e = SM3(Z || M)");
  }
  // The example curve of GB/T 32918.2 Annex A is not curveSM2: sm-crypto-v2 has curveSM2 only, as the protocol.
});

test("SM2 signatures are strict DER: non-minimal, trailing or out-of-range encodings are refused", () => {
  const [v] = of("SM2-SIGN").filter((x) => x.curve === "sm2p256v1");
  const uid = new TextDecoder().decode(fromHex(v.uid));
  const pub = fromHex("04" + v.pub);
  const msg = fromHex(v.msg_hex);
  const good = encodeSm2Der(BigInt("0x" + v.r), BigInt("0x" + v.s));
  assert.ok(sm2Verify(pub, msg, good, { userId: uid }));
  const trailing = Uint8Array.from([...good, 0]);
  assert.ok(!sm2Verify(pub, msg, trailing, { userId: uid }));
  const padded = fromHex("3047" + "022100" + v.r.slice(0) + toHex(good).slice(4 + 2 * 35)); // r with a needless 00
  assert.ok(!sm2Verify(pub, msg, padded, { userId: uid }));
  const n = 0xfffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54123n;
  assert.equal(parseSm2Der(encodeSm2Der(BigInt("0x" + v.r), BigInt("0x" + v.s) + n)), null);
});

test("ECDHE on curveSM2: both sides of the GB/T 32918.5 Annex B keys agree; invalid points are BAD_KEY_SHARE", async () => {
  const [v] = of("SM2-KEX");
  const a = await national.keyShare(fromHex(v.rA));
  assert.equal(toHex(a.publicKey), "04" + v.RA);
  const b = await national.keyShare(fromHex(v.rB));
  assert.equal(toHex(b.publicKey), "04" + v.RB);
  const ab = await a.agree(b.publicKey);
  assert.equal(toHex(ab), toHex(await b.agree(a.publicKey)));
  assert.equal(ab.length, 32);
  const offCurve = a.publicKey.slice();
  offCurve[64] ^= 1;
  assert.ok(!isSm2Point(offCurve));
  await assert.rejects(b.agree(offCurve), (e) => e.code === 202);
  await assert.rejects(b.agree(a.publicKey.subarray(0, 33)), (e) => e.code === 202);
});

test("AES-128-GCM (NIST CAVP, WebCrypto): every vector", async () => {
  const vs = of("AES-GCM");
  assert.ok(vs.length >= 700);
  for (const v of vs) {
    if (v.iv.length !== 24 || v.tag.length !== 32 || v.key.length !== 32) continue; // the suite's sizes only
    const key = await international.aeadKey(fromHex(v.key));
    const sealed = await international.seal(key, fromHex(v.iv), fromHex(v.aad), fromHex(v.pt));
    assert.equal(toHex(sealed), v.ct + v.tag, v.id);
  }
});

test("X25519 (RFC 7748, WebCrypto): the scalar-multiplication vectors, the iterated one and Diffie-Hellman", async () => {
  const subtle = globalThis.crypto.subtle;
  async function x25519(scalar, u) {
    const k = await subtle.importKey("pkcs8", Uint8Array.from([...X25519_PKCS8, ...scalar]), { name: "X25519" }, false, ["deriveBits"]);
    const p = await subtle.importKey("raw", u, { name: "X25519" }, false, []);
    return new Uint8Array(await subtle.deriveBits({ name: "X25519", public: p }, k, 256));
  }
  for (const v of of("X25519")) assert.equal(toHex(await x25519(fromHex(v.scalar), fromHex(v.u))), v.out, v.id);
  for (const v of of("X25519-ITER").filter((x) => !x.slow && x.iterations <= 1000)) {
    let k = fromHex("09" + "00".repeat(31));
    let u = k;
    for (let i = 0; i < v.iterations; i++) [k, u] = [await x25519(k, u), k];
    assert.equal(toHex(k), v.out, v.id);
  }
  for (const v of of("X25519-DH")) {
    const a = await international.keyShare(fromHex(v.a_priv));
    const b = await international.keyShare(fromHex(v.b_priv));
    assert.equal(toHex(a.publicKey), v.a_pub);
    assert.equal(toHex(b.publicKey), v.b_pub);
    assert.equal(toHex(await a.agree(b.publicKey)), v.shared);
    assert.equal(toHex(await b.agree(a.publicKey)), v.shared);
  }
  const a = await international.keyShare();
  await assert.rejects(a.agree(new Uint8Array(32)), (e) => e.code === 202); // low order: all-zero secret
});

test("HKDF-SHA256 (RFC 5869) composed from WebCrypto HMAC; agrees with WebCrypto's own HKDF", async () => {
  for (const v of of("HKDF-SHA256")) {
    const prk = await hkdfExtract(international, fromHex(v.salt), fromHex(v.ikm));
    assert.equal(toHex(prk), v.prk, v.id);
    assert.equal(toHex(await hkdfExpand(international, prk, fromHex(v.info), v.L)), v.okm, v.id);
    const base = await crypto.subtle.importKey("raw", fromHex(v.ikm), "HKDF", false, ["deriveBits"]);
    const params = { name: "HKDF", hash: "SHA-256", salt: fromHex(v.salt), info: fromHex(v.info) };
    assert.equal(toHex(new Uint8Array(await crypto.subtle.deriveBits(params, base, v.L * 8))), v.okm, v.id);
  }
});
