/**
 * Seeded uniform random numbers (mulberry32: 32-bit state, period 2^32), for every seeded choice outside the
 * estimators' own streams: bootstrap draws and tie-breaking in the report, shuffles in the examples and experiments.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mulberry32 } from "./random.ts";
 * const a = mulberry32(7), b = mulberry32(7);
 * const x = a();
 * assert.ok(x >= 0 && x < 1 && x === b());
 * ```
 *
 * @module
 */

/** A generator of uniform numbers in [0, 1) from `seed` (mulberry32). */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    let t = (s = (s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
