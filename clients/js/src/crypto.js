// The two cipher suites (spec/PROTOCOL.md section 6.1) as small objects with the same async methods.
//
// International (0x1301): everything on WebCrypto (`globalThis.crypto.subtle`): SHA-256, HMAC, AES-128-GCM, X25519,
// Ed25519. National (0x00C6): SM3, HMAC-SM3, SM4-GCM, ECDHE on curveSM2 and SM2 signatures from the vendored npm
// package sm-crypto-v2 (src/vendor/, see README.md for why it was chosen and what it is checked against).
// HKDF (RFC 5869) is composed from the suite's HMAC in keyschedule.js, for both suites.
import { concat, fromBase64Url, fromHex, randomBytes, toHex, utf8 } from "./bytes.js";
import { ErrorCode, ProtocolError } from "./errors.js";
import { sm2, sm3, sm4 } from "./vendor/sm-crypto-v2.js";

const subtle = () => {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new Error("WebCrypto (crypto.subtle) is not available: a secure context (https or localhost) is needed");
  return s;
};

export const NATIONAL = 0x00c6;
export const INTERNATIONAL = 0x1301;
export const KEY_TYPE_SM2 = 1;
export const KEY_TYPE_ED25519 = 2;

/** The RFC 8998 signer ID used in SM2 signatures (section 6.1). */
export const SM2_SIGNER_ID = "TLSv1.3+GM+Cipher+Suite";
/** curveSM2's order n. */
const SM2_N = 0xfffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54123n;

const X25519_PKCS8_PREFIX = fromHex("302e020100300506032b656e04220420");
const ED25519_PKCS8_PREFIX = fromHex("302e020100300506032b657004220420");

function badShare(why) {
  return new ProtocolError(`bad key share: ${why}`, ErrorCode.BAD_KEY_SHARE);
}

// --- SM2 helpers ------------------------------------------------------------------------------------------

/** Strict DER SEQUENCE { INTEGER r, INTEGER s } (section 6.1) -> [r, s] as bigints, or null when not strict. */
export function parseSm2Der(sig) {
  if (sig.length < 8 || sig.length > 72 || sig[0] !== 0x30 || sig[1] !== sig.length - 2) return null;
  let o = 2;
  const ints = [];
  for (let i = 0; i < 2; i++) {
    if (o + 2 > sig.length || sig[o] !== 0x02) return null;
    const len = sig[o + 1];
    o += 2;
    if (len < 1 || len > 33 || o + len > sig.length) return null;
    const v = sig.subarray(o, o + len);
    if (v[0] & 0x80) return null; // negative
    if (len > 1 && v[0] === 0 && !(v[1] & 0x80)) return null; // not minimal
    const n = BigInt("0x" + toHex(v));
    if (n < 1n || n >= SM2_N) return null;
    ints.push(n);
    o += len;
  }
  return o === sig.length ? ints : null;
}

function derInt(n) {
  let hex = n.toString(16);
  if (hex.length % 2) hex = "0" + hex;
  let b = fromHex(hex);
  if (b[0] & 0x80) b = concat(new Uint8Array([0]), b);
  return concat(new Uint8Array([0x02, b.length]), b);
}

export function encodeSm2Der(r, s) {
  const body = concat(derInt(r), derInt(s));
  return concat(new Uint8Array([0x30, body.length]), body);
}

/** Whether `key` is a 65-byte uncompressed point on curveSM2 (not infinity). */
export function isSm2Point(key) {
  if (key.length !== 65 || key[0] !== 0x04) return false;
  try {
    return sm2.verifyPublicKey(toHex(key));
  } catch {
    return false;
  }
}

/** The SM2 public key 04||x||y of a private scalar. */
export function sm2PublicKey(priv) {
  return fromHex(sm2.getPublicKeyFromPrivateKey(toHex(priv)));
}

/** SM2-with-SM3 signature, DER; `k` (bytes) only for known-answer tests: it must otherwise be fresh and random. */
export function sm2Sign(priv, message, { userId = SM2_SIGNER_ID, k = null } = {}) {
  const publicKey = sm2.getPublicKeyFromPrivateKey(toHex(priv));
  const options = { der: false, hash: true, publicKey, userId };
  if (k) {
    const kPoint = sm2.getPublicKeyFromPrivateKey(toHex(k));
    options.pointPool = [{ k: BigInt("0x" + toHex(k)), x1: BigInt("0x" + kPoint.slice(2, 66)) }];
  }
  const rs = sm2.doSignature(message, toHex(priv), options);
  return encodeSm2Der(BigInt("0x" + rs.slice(0, 64)), BigInt("0x" + rs.slice(64)));
}

export function sm2Verify(publicKey, message, signature, { userId = SM2_SIGNER_ID } = {}) {
  const rs = parseSm2Der(signature);
  if (!rs || !isSm2Point(publicKey)) return false;
  const raw = rs[0].toString(16).padStart(64, "0") + rs[1].toString(16).padStart(64, "0");
  try {
    return sm2.doVerifySignature(message, raw, toHex(publicKey), { der: false, hash: true, userId });
  } catch {
    return false;
  }
}

// --- the suites -------------------------------------------------------------------------------------------

const national = {
  code: NATIONAL,
  name: "national",
  keyType: KEY_TYPE_SM2,
  async hash(data) {
    return fromHex(sm3(data));
  },
  async hmac(key, data) {
    return fromHex(sm3(data, { key, mode: "hmac" }));
  },
  async aeadKey(raw) {
    return raw;
  },
  async seal(key, nonce, aad, plaintext) {
    const { output, tag } = sm4.encrypt(plaintext, key, {
      mode: "gcm",
      iv: nonce,
      associatedData: aad,
      output: "array",
      outputTag: true,
    });
    return concat(output, tag);
  },
  /** The plaintext, or null when authentication fails. */
  async open(key, nonce, aad, sealed) {
    if (sealed.length < 16) return null;
    try {
      return sm4.decrypt(sealed.subarray(0, sealed.length - 16), key, {
        mode: "gcm",
        iv: nonce,
        associatedData: aad,
        tag: sealed.subarray(sealed.length - 16),
        output: "array",
      });
    } catch {
      return null;
    }
  },
  /** An ephemeral key of curveSM2 (or the given scalar, for the vectors): {publicKey, agree(peerShare)}. */
  async keyShare(fixedPrivate = null) {
    const privHex = fixedPrivate ? toHex(fixedPrivate) : sm2.generateKeyPairHex().privateKey;
    const publicKey = fromHex(sm2.getPublicKeyFromPrivateKey(privHex));
    return {
      publicKey,
      async agree(peer) {
        if (!isSm2Point(peer)) throw badShare("not a point of curveSM2");
        const shared = sm2.ecdh(privHex, toHex(peer), true);
        return Uint8Array.from(shared.subarray(1, 33));
      },
    };
  },
  async verify(publicKey, message, signature) {
    return sm2Verify(publicKey, message, signature);
  },
  async sign(priv, message) {
    return sm2Sign(priv, message);
  },
  async publicKeyOf(priv) {
    return sm2PublicKey(priv);
  },
  async fingerprint(publicKey) {
    return "sm2:" + sm3(publicKey);
  },
};


const international = {
  code: INTERNATIONAL,
  name: "international",
  keyType: KEY_TYPE_ED25519,
  async hash(data) {
    return new Uint8Array(await subtle().digest("SHA-256", data));
  },
  async hmac(key, data) {
    const k = await subtle().importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    return new Uint8Array(await subtle().sign("HMAC", k, data));
  },
  async aeadKey(raw) {
    return subtle().importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
  },
  async seal(key, nonce, aad, plaintext) {
    const params = { name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 };
    return new Uint8Array(await subtle().encrypt(params, key, plaintext));
  },
  async open(key, nonce, aad, sealed) {
    if (sealed.length < 16) return null;
    try {
      const params = { name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 };
      return new Uint8Array(await subtle().decrypt(params, key, sealed));
    } catch {
      return null;
    }
  },
  async keyShare(fixedPrivate = null) {
    let privateKey;
    let publicKey;
    if (fixedPrivate) {
      privateKey = await subtle().importKey("pkcs8", concat(X25519_PKCS8_PREFIX, fixedPrivate), { name: "X25519" },
        true, ["deriveBits"]); // prettier-ignore
      const jwk = await subtle().exportKey("jwk", privateKey);
      publicKey = fromBase64Url(jwk.x);
    } else {
      const pair = await subtle().generateKey({ name: "X25519" }, false, ["deriveBits"]);
      privateKey = pair.privateKey;
      publicKey = new Uint8Array(await subtle().exportKey("raw", pair.publicKey));
    }
    return {
      publicKey,
      async agree(peer) {
        if (peer.length !== 32) throw badShare("not 32 bytes");
        let shared;
        try {
          const peerKey = await subtle().importKey("raw", peer, { name: "X25519" }, false, []);
          shared = new Uint8Array(await subtle().deriveBits({ name: "X25519", public: peerKey }, privateKey, 256));
        } catch {
          throw badShare("X25519 refused it");
        }
        if (shared.every((b) => b === 0)) throw badShare("low-order point");
        return shared;
      },
    };
  },
  async verify(publicKey, message, signature) {
    if (publicKey.length !== 32 || signature.length !== 64) return false;
    try {
      const key = await subtle().importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
      return await subtle().verify({ name: "Ed25519" }, key, signature, message);
    } catch {
      return false;
    }
  },
  async sign(seed, message) {
    const key = await subtle().importKey("pkcs8", concat(ED25519_PKCS8_PREFIX, seed), { name: "Ed25519" }, false,
      ["sign"]); // prettier-ignore
    return new Uint8Array(await subtle().sign({ name: "Ed25519" }, key, message));
  },
  async publicKeyOf(seed) {
    const key = await subtle().importKey("pkcs8", concat(ED25519_PKCS8_PREFIX, seed), { name: "Ed25519" }, true,
      ["sign"]); // prettier-ignore
    return fromBase64Url((await subtle().exportKey("jwk", key)).x);
  },
  async fingerprint(publicKey) {
    return "ed25519:" + toHex(new Uint8Array(await subtle().digest("SHA-256", publicKey)));
  },
};

export const SUITES = Object.freeze({ [NATIONAL]: national, [INTERNATIONAL]: international });
export const SUITE_BY_NAME = Object.freeze({ national, international });

export function suiteOf(code) {
  return SUITES[code] ?? null;
}

/** A random scalar / seed of 32 bytes for tests and fresh keys. */
export function randomSecret() {
  return randomBytes(32);
}

/** The signed message of a server (or client) signature (section 5.4, 5.5). */
export function signatureMessage(context, coveredHash) {
  return concat(new Uint8Array(64).fill(0x20), utf8(context), new Uint8Array([0]), coveredHash);
}

