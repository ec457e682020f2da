// The key schedule (spec/PROTOCOL.md section 6.2): TLS 1.3's with the label prefix "kefu1 ", over the suite's hash.
import { concat, uint, utf8 } from "./bytes.js";

export const HASH_LEN = 32;
const LABEL_PREFIX = "kefu1 ";
const ZEROS = new Uint8Array(HASH_LEN);

/** HKDF-Extract (RFC 5869): HMAC(salt, ikm); an empty salt means 0^32. */
export function hkdfExtract(suite, salt, ikm) {
  return suite.hmac(salt.length ? salt : ZEROS, ikm);
}

/** HKDF-Expand (RFC 5869). */
export async function hkdfExpand(suite, prk, info, length) {
  const blocks = [];
  let previous = new Uint8Array(0);
  for (let i = 1, have = 0; have < length; i++) {
    previous = await suite.hmac(prk, concat(previous, info, new Uint8Array([i])));
    blocks.push(previous);
    have += previous.length;
  }
  return concat(...blocks).slice(0, length);
}

/** The HkdfLabel structure of section 6.2. */
export function hkdfLabel(label, context, length) {
  const full = utf8(LABEL_PREFIX + label);
  return concat(uint(length, 2), new Uint8Array([full.length]), full, new Uint8Array([context.length]), context);
}

export function expandLabel(suite, secret, label, context, length) {
  return hkdfExpand(suite, secret, hkdfLabel(label, context, length), length);
}

/** The secrets of one handshake, derived step by step as the transcript grows. */
export class KeySchedule {
  constructor(suite) {
    this.suite = suite;
    this.early = null;
    this.handshake = null;
    this.master = null;
  }

  /** Start from the PSK (resumption) or 0^32. */
  async init(psk) {
    this.early = await hkdfExtract(this.suite, ZEROS, psk ?? ZEROS);
    this.emptyHash = await this.suite.hash(new Uint8Array(0));
    return this;
  }

  async binderKey() {
    const base = await expandLabel(this.suite, this.early, "res binder", this.emptyHash, HASH_LEN);
    return this.finishedKey(base);
  }

  finishedKey(secret) {
    return expandLabel(this.suite, secret, "finished", new Uint8Array(0), HASH_LEN);
  }

  /** Mix in the ECDHE secret (or 0^32) and derive [c_hs, s_hs] from Hash(CH..SH). */
  async handshakeTraffic(shared, transcriptHash) {
    const salt = await expandLabel(this.suite, this.early, "derived", this.emptyHash, HASH_LEN);
    this.handshake = await hkdfExtract(this.suite, salt, shared ?? ZEROS);
    const c = await expandLabel(this.suite, this.handshake, "c hs traffic", transcriptHash, HASH_LEN);
    const s = await expandLabel(this.suite, this.handshake, "s hs traffic", transcriptHash, HASH_LEN);
    return [c, s];
  }

  /** [c_ap, s_ap] from Hash(CH..SF). */
  async applicationTraffic(transcriptHash) {
    const salt = await expandLabel(this.suite, this.handshake, "derived", this.emptyHash, HASH_LEN);
    this.master = await hkdfExtract(this.suite, salt, ZEROS);
    const c = await expandLabel(this.suite, this.master, "c ap traffic", transcriptHash, HASH_LEN);
    const s = await expandLabel(this.suite, this.master, "s ap traffic", transcriptHash, HASH_LEN);
    return [c, s];
  }

  /** The resumption secret from Hash(CH..CF). */
  resumptionSecret(transcriptHash) {
    return expandLabel(this.suite, this.master, "res master", transcriptHash, HASH_LEN);
  }

  ticketPsk(resumptionSecret, nonce) {
    return expandLabel(this.suite, resumptionSecret, "resumption", nonce, HASH_LEN);
  }
}

/** ClientKey of the APP_SECRET proof (section 5.5). */
export async function appClientKey(suite, appId, appSecret) {
  const prk = await hkdfExtract(suite, utf8(appId), appSecret);
  return expandLabel(suite, prk, "client key", new Uint8Array(0), HASH_LEN);
}
