// The frame codec (spec/PROTOCOL.md section 3): reads the generated declarations of frames.js.
//
// A frame is a plain object {type, requestId, flags, ...fields} with the fields named in camelCase. Integers of up to
// 32 bits are numbers, u64 fields are bigints; opaque fields are Uint8Arrays, text fields strings, lists arrays.
// Parsing ignores bytes after the last known field (section 3.5); a body too short, or invalid UTF-8, is
// MALFORMED_FRAME. `FrameDecoder` cuts a byte stream into frames and checks each header (version, type, the body
// limit of the type) before any of the body is buffered.
import { concat, fromUtf8, utf8 } from "./bytes.js";
import { ProtocolError, LocalProtocolError, ErrorCode } from "./errors.js";
import {
  FRAME_BODIES,
  FrameType,
  HEADER_LEN,
  IGNORABLE_TYPE_MIN,
  MAX_BODY,
  MAX_HANDSHAKE_BODY,
  MAX_RECORD_BODY,
  PROTOCOL_VERSION,
  STRUCTS,
} from "./frames.js";

export const FRAME_NAMES = Object.freeze(Object.fromEntries(Object.entries(FrameType).map(([k, v]) => [v, k])));

class Truncated extends Error {}

/** Largest body of a frame type (section 8), checked against the header before the body is read. */
export function bodyLimit(type) {
  if (type === FrameType.CLIENT_HELLO || type === FrameType.SERVER_HELLO) return MAX_HANDSHAKE_BODY;
  if (type === FrameType.RECORD) return MAX_RECORD_BODY;
  return MAX_BODY;
}

// --- encoding ---------------------------------------------------------------------------------------------

class Writer {
  constructor() {
    this.parts = [];
    this.size = 0;
  }
  push(bytes) {
    this.parts.push(bytes);
    this.size += bytes.length;
  }
  uint(value, size, what) {
    const out = new Uint8Array(size);
    if (size === 8) {
      const v = BigInt(value);
      if (v < 0n || v >= 1n << 64n) throw new LocalProtocolError(`${what}: ${value} is not a u64`);
      new DataView(out.buffer).setBigUint64(0, v);
    } else {
      const v = Number(value);
      if (!Number.isInteger(v) || v < 0 || v >= 2 ** (8 * size)) {
        throw new LocalProtocolError(`${what}: ${value} is not a u${size * 8}`);
      }
      for (let i = size - 1, x = v; i >= 0; i--, x = Math.floor(x / 256)) out[i] = x % 256;
    }
    this.push(out);
  }
  field(kind, value, what) {
    switch (kind[0]) {
      case "u":
        return this.uint(value, kind[1], what);
      case "fixed":
        if (!(value instanceof Uint8Array) || value.length !== kind[1]) {
          throw new LocalProtocolError(`${what}: needs exactly ${kind[1]} bytes`);
        }
        return this.push(value);
      case "var":
      case "text": {
        const bytes = kind[0] === "text" ? utf8(value ?? "") : (value ?? new Uint8Array(0));
        this.uint(bytes.length, kind[1], `${what} length`);
        return this.push(bytes);
      }
      case "seq": {
        const items = value ?? [];
        this.uint(items.length, kind[1], `${what} count`);
        for (const item of items) {
          if (typeof kind[2] === "string") this.struct(STRUCTS[kind[2]], item, what);
          else this.field(kind[2], item, what);
        }
        return undefined;
      }
    }
    throw new TypeError(`unknown wire kind ${kind}`);
  }
  struct(fields, object, what) {
    for (const [name, kind] of fields) this.field(kind, object[name], `${what}.${name}`);
  }
}

/** The body bytes of `frame`. */
export function encodeBody(frame) {
  const decl = FRAME_BODIES[frame.type];
  if (!decl) throw new LocalProtocolError(`no body structure for frame type ${frame.type}`);
  const w = new Writer();
  w.struct(decl.fields, frame, decl.name);
  return concat(...w.parts);
}

/** The 12-byte header (section 3.1). */
export function encodeHeader(type, length, flags = 0, requestId = 0) {
  const out = new Uint8Array(HEADER_LEN);
  const view = new DataView(out.buffer);
  view.setUint32(0, length);
  out[4] = PROTOCOL_VERSION;
  out[5] = type;
  view.setUint16(6, flags);
  view.setUint32(8, requestId);
  return out;
}

/** Header and body of `frame`. */
export function encode(frame) {
  const body = encodeBody(frame);
  if (body.length > bodyLimit(frame.type)) throw new LocalProtocolError(`${FRAME_NAMES[frame.type]} body too large`);
  return concat(encodeHeader(frame.type, body.length, frame.flags ?? 0, frame.requestId ?? 0), body);
}

// --- decoding ---------------------------------------------------------------------------------------------

class Reader {
  constructor(bytes) {
    this.b = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.o = 0;
  }
  take(n) {
    if (this.o + n > this.b.length) throw new Truncated();
    const out = this.b.subarray(this.o, this.o + n);
    this.o += n;
    return out;
  }
  uint(size) {
    if (this.o + size > this.b.length) throw new Truncated();
    const o = this.o;
    this.o += size;
    switch (size) {
      case 1:
        return this.b[o];
      case 2:
        return this.view.getUint16(o);
      case 4:
        return this.view.getUint32(o);
      default:
        return this.view.getBigUint64(o);
    }
  }
  field(kind) {
    switch (kind[0]) {
      case "u":
        return this.uint(kind[1]);
      case "fixed":
        return this.take(kind[1]).slice();
      case "var":
        return this.take(this.uint(kind[1])).slice();
      case "text":
        return fromUtf8(this.take(this.uint(kind[1])));
      case "seq": {
        const n = this.uint(kind[1]);
        const out = [];
        for (let i = 0; i < n; i++) {
          out.push(typeof kind[2] === "string" ? this.struct(STRUCTS[kind[2]], {}) : this.field(kind[2]));
        }
        return out;
      }
    }
    throw new TypeError(`unknown wire kind ${kind}`);
  }
  struct(fields, into) {
    for (const [name, kind] of fields) into[name] = this.field(kind);
    return into;
  }
}

/** Parse the body of a known frame type; MALFORMED_FRAME if it does not fit. Trailing bytes are ignored. */
export function decodeBody(type, body, flags = 0, requestId = 0) {
  const decl = FRAME_BODIES[type];
  if (!decl) throw new ProtocolError(`unknown frame type 0x${type.toString(16)}`, ErrorCode.UNKNOWN_FRAME_TYPE);
  try {
    return new Reader(body).struct(decl.fields, { type, requestId, flags });
  } catch (e) {
    if (e instanceof Truncated || e instanceof TypeError) {
      throw new ProtocolError(`${decl.name} does not parse`, ErrorCode.MALFORMED_FRAME);
    }
    throw e;
  }
}

/** Whether frame type `type` has a structure this client knows (RECORD is known too: its body is ciphertext). */
export function isKnownType(type) {
  return type === FrameType.RECORD || FRAME_BODIES[type] !== undefined;
}

/**
 * A raw frame cut from a stream: {type, flags, requestId, body, bytes} (`bytes` = header and body as received).
 * Unknown ignorable types come through as raw frames; the caller decides (skip inside records, refuse outside).
 */
export class FrameDecoder {
  constructor() {
    this.buffer = new Uint8Array(0);
  }

  /** Every complete frame in the stream so far; ProtocolError on a bad header (before its body is buffered). */
  feed(data) {
    this.buffer = this.buffer.length ? concat(this.buffer, data) : data;
    const out = [];
    let o = 0;
    const buf = this.buffer;
    while (buf.length - o >= HEADER_LEN) {
      const view = new DataView(buf.buffer, buf.byteOffset + o, HEADER_LEN);
      const length = view.getUint32(0);
      const version = buf[o + 4];
      const type = buf[o + 5];
      if (version !== PROTOCOL_VERSION) {
        throw new ProtocolError(`protocol version ${version}`, ErrorCode.UNSUPPORTED_VERSION);
      }
      if (type < IGNORABLE_TYPE_MIN && !isKnownType(type)) {
        throw new ProtocolError(`unknown frame type 0x${type.toString(16)}`, ErrorCode.UNKNOWN_FRAME_TYPE);
      }
      if (length > bodyLimit(type)) {
        throw new ProtocolError(`${FRAME_NAMES[type] ?? type} of ${length} bytes`, ErrorCode.FRAME_TOO_LARGE);
      }
      if (buf.length - o < HEADER_LEN + length) break;
      const bytes = buf.subarray(o, o + HEADER_LEN + length);
      out.push({ type, flags: view.getUint16(6), requestId: view.getUint32(8), body: bytes.subarray(HEADER_LEN), bytes });
      o += HEADER_LEN + length;
    }
    this.buffer = o === buf.length ? new Uint8Array(0) : buf.slice(o);
    return out;
  }

  /** Bytes of an incomplete frame held. */
  get pending() {
    return this.buffer.length;
  }
}

/** Parse one whole encoded frame (header and body); unknown ignorable types give null. */
export function decode(bytes) {
  const frames = new FrameDecoder().feed(bytes);
  if (frames.length !== 1 || frames[0].bytes.length !== bytes.length) {
    throw new ProtocolError("not exactly one frame", ErrorCode.MALFORMED_FRAME);
  }
  const raw = frames[0];
  if (raw.type >= IGNORABLE_TYPE_MIN && !isKnownType(raw.type)) return null;
  return decodeBody(raw.type, raw.body, raw.flags, raw.requestId);
}
