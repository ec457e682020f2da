// The record layer (spec/PROTOCOL.md section 6.3, 6.4): one direction's traffic secret, key, IV and counters.
import { concat } from "./bytes.js";
import { ErrorCode, ProtocolError } from "./errors.js";
import { FrameType, TAG_LEN } from "./frames.js";
import { expandLabel } from "./keyschedule.js";
import { encodeHeader } from "./wire.js";

/** One AEAD key protects at most this many records and plaintext bytes per direction (section 6.4). */
export const RECORD_LIMIT = 2 ** 20;
export const BYTE_LIMIT = 2 ** 30;
/** Bytes kept in reserve under BYTE_LIMIT for the KEY_UPDATE record itself. */
export const KEY_UPDATE_RESERVE = 64;

export class RecordLayer {
  /** Use `await RecordLayer.create(suite, secret)`. */
  constructor(suite) {
    this.suite = suite;
  }

  static async create(suite, secret) {
    const layer = new RecordLayer(suite);
    await layer.setSecret(secret);
    return layer;
  }

  async setSecret(secret) {
    this.secret = secret;
    this.rawKey = await expandLabel(this.suite, secret, "key", new Uint8Array(0), 16);
    this.iv = await expandLabel(this.suite, secret, "iv", new Uint8Array(0), 12);
    this.key = await this.suite.aeadKey(this.rawKey);
    this.seq = 0;
    this.bytes = 0;
  }

  /** Move to the next secret (KEY_UPDATE). */
  async update() {
    await this.setSecret(await expandLabel(this.suite, this.secret, "traffic upd", new Uint8Array(0), 32));
  }

  nonce() {
    const out = this.iv.slice();
    let s = this.seq;
    for (let i = 11; i >= 4 && s > 0; i--) {
      out[i] ^= s & 0xff;
      s = Math.floor(s / 256);
    }
    return out;
  }

  /** Whether the next record of `length` bytes must first move to a new key (sender side). */
  needsUpdate(length) {
    return this.seq >= RECORD_LIMIT - 1 || this.bytes + length > BYTE_LIMIT - KEY_UPDATE_RESERVE;
  }

  /** The RECORD frame carrying `plaintext` (one or more whole frames). */
  async seal(plaintext) {
    const header = encodeHeader(FrameType.RECORD, plaintext.length + TAG_LEN);
    const body = await this.suite.seal(this.key, this.nonce(), header, plaintext);
    this.seq += 1;
    this.bytes += plaintext.length;
    return concat(header, body);
  }

  /** The plaintext of a RECORD frame (`header` as received); BAD_RECORD_MAC or KEY_LIMIT_EXCEEDED otherwise. */
  async open(header, body) {
    if (this.seq >= RECORD_LIMIT) throw new ProtocolError("too many records under one key", ErrorCode.KEY_LIMIT_EXCEEDED);
    const plaintext = await this.suite.open(this.key, this.nonce(), header, body);
    if (plaintext === null) throw new ProtocolError("record authentication failed", ErrorCode.BAD_RECORD_MAC);
    this.seq += 1;
    this.bytes += plaintext.length;
    if (this.bytes > BYTE_LIMIT) throw new ProtocolError("too many bytes under one key", ErrorCode.KEY_LIMIT_EXCEEDED);
    return plaintext;
  }
}
