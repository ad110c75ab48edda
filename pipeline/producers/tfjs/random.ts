/**
 * Seeded random numbers of the tfjs producers: Box-Muller Gaussians in float64 (weight noise) from the pipeline's
 * mulberry32 uniforms (`pipeline/core/random.ts`, also used for label sampling), and the per-step seed mix.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gaussian, mixSeed } from "./random.ts";
 * const z = gaussian(mixSeed(1, 2n))();
 * assert.ok(Number.isFinite(z));
 * ```
 *
 * @module
 */
import { mulberry32 } from "../../core/random.ts";

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
