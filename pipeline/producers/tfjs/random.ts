/**
 * Seeded random numbers of the tfjs producers (and the experiments): mulberry32 uniforms (label sampling, data
 * order) and Box-Muller Gaussians in float64 (weight noise).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gaussian, mulberry32 } from "./random.ts";
 * const u = mulberry32(1)(), z = gaussian(1)();
 * assert.ok(u >= 0 && u < 1 && Number.isFinite(z));
 * ```
 *
 * @module
 */

/** mulberry32: seeded uniform numbers in [0, 1). */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    let t = (s = (s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal numbers (Box-Muller, both values used) from a mulberry32 stream of `seed`. */
export function gaussian(seed: number): () => number {
  const u = mulberry32(seed);
  let spare = NaN;
  return () => {
    if (!Number.isNaN(spare)) {
      const s = spare;
      spare = NaN;
      return s;
    }
    let a = 0;
    while (a === 0) a = u();
    const r = Math.sqrt(-2 * Math.log(a)), t = 2 * Math.PI * u();
    spare = r * Math.sin(t);
    return r * Math.cos(t);
  };
}

/** A 32-bit seed from a base seed and a step (the label-sampling mix of `gradients.ts`). */
export function mixSeed(seed: number, step: number | bigint): number {
  return (seed * 0x9e3779b1) ^ Number(BigInt.asUintN(32, BigInt(step)));
}
