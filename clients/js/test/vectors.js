// Loading spec/vectors/*.json with u64 values intact, and turning vector fields into frames of wire.js.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { fromHex } from "../src/bytes.js";
import { FRAME_BODIES, STRUCTS } from "../src/frames.js";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

/** JSON with every integer of 16 or more digits as a BigInt (JSON.parse would round it). */
export function loadJson(path) {
  const text = readFileSync(join(ROOT, path), "utf8").replace(/([:\[,]\s*)(\d{16,})(?=\s*[,\]}])/g, '$1"$2#big"');
  return JSON.parse(text, (_k, v) => (typeof v === "string" && /^\d+#big$/.test(v) ? BigInt(v.slice(0, -4)) : v));
}

function snake(name) {
  return name.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
}

function value(kind, v) {
  switch (kind[0]) {
    case "u":
      return kind[1] === 8 ? BigInt(v) : Number(v);
    case "fixed":
    case "var":
      return fromHex(v);
    case "text":
      return v;
    case "seq":
      return v.map((item) => (typeof kind[2] === "string" ? struct(STRUCTS[kind[2]], item) : value(kind[2], item)));
  }
  throw new TypeError(String(kind));
}

function struct(fields, obj) {
  const out = {};
  for (const [name, kind] of fields) out[name] = value(kind, obj[snake(name)]);
  return out;
}

/** A vector's {type, request_id, flags, fields} as a wire.js frame. */
export function frameOf(vector) {
  return {
    type: vector.type,
    requestId: vector.request_id ?? 0,
    flags: vector.flags ?? 0,
    ...struct(FRAME_BODIES[vector.type].fields, vector.fields),
  };
}
