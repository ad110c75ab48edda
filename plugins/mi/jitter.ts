/**
 * `--ksg-jitter`: scikit-learn's public `mutual_info_regression` recipe against ties (docs/science.md section 1),
 * applied to each neuron once before the KSG estimate: scale to unit variance without centring (divide by the
 * population standard deviation; a constant neuron is left unscaled, as `sklearn.preprocessing.scale` does), then
 * add Gaussian noise of standard deviation `1e-10 * max(1, mean |x|)` (mean of the scaled values), in float64
 * (the noise is far below float32 resolution). The noise is seeded by `--seed`, the neuron and the row's position
 * in the (key-sorted) sample reservoir, so a run is reproducible and independent of batching and threads; it is
 * not scikit-learn's random stream, so single values differ from `mutual_info_regression`'s by its own spread
 * across seeds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jitterColumn } from "./jitter.ts";
 * const x = jitterColumn(new Float32Array([0, 0, 2, 2]), 7);
 * assert.ok(Math.abs(x[2] - 2 / 1) < 1e-9 && x[0] !== x[1]); // std 1: scaled by 1; the tied zeros are split
 * ```
 *
 * @module
 */
import { mix } from "../../schemas/sketch.ts";

/** Standard normal draws from a counter-based hash of `(seed, i)` (Box-Muller on two 32-bit uniforms). */
function normal(seed: number, i: number): number {
  const h1 = mix((seed ^ mix(2 * i + 0x632be5ab)) >>> 0), h2 = mix((seed + 0x9e3779b9 ^ mix(2 * i + 1)) >>> 0);
  const u1 = (h1 + 0.5) / 4294967296, u2 = (h2 + 0.5) / 4294967296;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/** The seed word of one neuron: `--seed`, the layer's index and the neuron's index in it. */
export function jitterSeed(seed: number, layer: number, neuron: number): number {
  return mix((mix((seed ^ 0x85ebca6b) >>> 0) ^ mix(layer + 0x27d4eb2f) ^ Math.imul(neuron + 1, 0x165667b1)) >>> 0);
}

/** One neuron's values scaled and jittered as `mutual_info_regression` does (float64; non-finite values kept). */
export function jitterColumn(x: ArrayLike<number>, seedWord: number): Float64Array {
  const n = x.length;
  let count = 0, mean = 0;
  for (let i = 0; i < n; i++) if (Number.isFinite(x[i])) (count++, mean += x[i]);
  mean /= Math.max(1, count);
  let ss = 0;
  for (let i = 0; i < n; i++) if (Number.isFinite(x[i])) ss += (x[i] - mean) ** 2;
  const std = Math.sqrt(ss / Math.max(1, count));
  const scale = std > 0 ? std : 1;
  const out = new Float64Array(n);
  let abs = 0;
  for (let i = 0; i < n; i++) {
    out[i] = x[i] / scale;
    if (Number.isFinite(out[i])) abs += Math.abs(out[i]);
  }
  const sd = 1e-10 * Math.max(1, abs / Math.max(1, count));
  for (let i = 0; i < n; i++) out[i] += sd * normal(seedWord, i);
  return out;
}
