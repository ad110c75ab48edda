/**
 * Binary serialization of estimator states ({@linkcode StateValue}): JSON for the structure, raw little-endian
 * bytes for typed arrays. Layout: magic `ITST`, u32 format version, u32 JSON length, JSON, zero padding to 8,
 * then the arrays' bytes, each 8-aligned. Round trips are exact (bit-equal floats, including NaN payloads).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeState, encodeState } from "./state.ts";
 * const bytes = encodeState({ counts: new Uint32Array([1, 2]), bins: 2 });
 * const back = decodeState(bytes) as { counts: Uint32Array; bins: number };
 * assert.ok(back.counts[1] === 2 && back.bins === 2);
 * ```
 *
 * @module
 */
import type { StateArray, StateValue } from "./plugin.ts";

const MAGIC = 0x54535449; // "ITST" little-endian
const VERSION = 1;

const CTORS = {
  Float64Array,
  Float32Array,
  Int32Array,
  Uint32Array,
  Int8Array,
  Uint8Array,
  BigInt64Array,
} as const;
type CtorName = keyof typeof CTORS;

function isTyped(v: unknown): v is StateArray {
  return ArrayBuffer.isView(v) && !(v instanceof DataView);
}

/** Encodes a state to bytes. */
export function encodeState(state: StateValue): Uint8Array {
  const arrays: StateArray[] = [];
  let offset = 0;
  const walk = (v: StateValue): unknown => {
    if (isTyped(v)) {
      const name = v.constructor.name as CtorName;
      if (!(name in CTORS)) {
        throw new Error(`Cannot encode state as a typed array kind is unsupported: current value is ${name}`);
      }
      const entry = { $typed: name, offset, length: v.length };
      arrays.push(v);
      offset += Math.ceil(v.byteLength / 8) * 8;
      return entry;
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === "object") {
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) o[k] = walk(x as StateValue);
      return o;
    }
    if (typeof v === "number" && !Number.isFinite(v)) return { $number: String(v) };
    return v;
  };
  const json = new TextEncoder().encode(JSON.stringify(walk(state)));
  const head = 12 + Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(head + offset + 4);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC, true);
  dv.setUint32(4, VERSION, true);
  dv.setUint32(8, json.length, true);
  out.set(json, 12);
  let at = head;
  for (const a of arrays) {
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), at);
    at += Math.ceil(a.byteLength / 8) * 8;
  }
  return out;
}

/** Decodes bytes made by {@linkcode encodeState}; arrays are fresh copies. */
export function decodeState(bytes: Uint8Array): StateValue {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 12 || dv.getUint32(0, true) !== MAGIC) {
    throw new Error("Cannot decode estimator state as it lacks the ITST header: current value is not a state");
  }
  const version = dv.getUint32(4, true);
  if (version !== VERSION) {
    throw new Error(`Cannot decode estimator state as its format version is unknown: current value is ${version}`);
  }
  const jsonLen = dv.getUint32(8, true);
  const head = 12 + Math.ceil(jsonLen / 8) * 8;
  const tree = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + jsonLen)));
  const walk = (v: unknown): StateValue => {
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === "object") {
      const o = v as Record<string, unknown>;
      if (typeof o.$typed === "string") {
        const C = CTORS[o.$typed as CtorName];
        const n = o.length as number;
        const start = head + (o.offset as number);
        const copy = bytes.slice(start, start + n * C.BYTES_PER_ELEMENT);
        return new C(copy.buffer, 0, n) as StateValue;
      }
      if (typeof o.$number === "string") return Number(o.$number);
      const r: Record<string, StateValue> = {};
      for (const [k, x] of Object.entries(o)) r[k] = walk(x);
      return r;
    }
    return v as StateValue;
  };
  return walk(tree);
}
