/**
 * Percentile bootstrap intervals (95%) for the layer means of the report (`report --bootstrap N`), seeded: the mean
 * over a layer's neurons resamples the neurons; the mean over pairs of neurons (MI) resamples the neurons too and
 * averages the pairs of distinct draws, since pairs that share a neuron are not independent. See docs/report.md,
 * "Uncertainty".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bootstrapMean } from "./bootstrap.ts";
 * const [lo, hi] = bootstrapMean([1, 2, 3, 4, 5, 6, 7, 8], 500, 0);
 * assert.ok(lo < 4.5 && 4.5 < hi && lo >= 1 && hi <= 8);
 * assert.deepEqual(bootstrapMean([2, 2, 2], 100, 0), [2, 2]);
 * ```
 *
 * @module
 */
import { mulberry32 } from "./random.ts";

/** The 2.5th and 97.5th percentiles (linear interpolation) of the replicates. */
function interval(reps: Float64Array): [number, number] {
  reps.sort();
  const q = (p: number) => {
    const x = p * (reps.length - 1), i = Math.floor(x), f = x - i;
    return i + 1 < reps.length ? reps[i] * (1 - f) + reps[i + 1] * f : reps[i];
  };
  return [q(0.025), q(0.975)];
}

/** 95% percentile interval of the mean of `values` over `resamples` resamples drawn with `seed`. */
export function bootstrapMean(values: number[], resamples: number, seed: number): [number, number] {
  const n = values.length, next = mulberry32(seed);
  const reps = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += values[Math.floor(next() * n)];
    reps[r] = s / n;
  }
  return interval(reps);
}

/**
 * 95% percentile interval of the mean over pairs of distinct neurons, resampling the `n` neurons: `value(i, j)` is
 * the pair's value (NaN when it has none; such pairs are left out of that replicate's mean).
 */
export function bootstrapPairMean(
  n: number,
  value: (i: number, j: number) => number,
  resamples: number,
  seed: number,
): [number, number] {
  const next = mulberry32(seed);
  const reps = new Float64Array(resamples);
  const draw = new Int32Array(n);
  let kept = 0;
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < n; i++) draw[i] = Math.floor(next() * n);
    let s = 0, c = 0;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        if (draw[p] === draw[q]) continue;
        const v = value(draw[p], draw[q]);
        if (Number.isNaN(v)) continue;
        s += v;
        c++;
      }
    }
    if (c > 0) reps[kept++] = s / c;
  }
  return kept ? interval(reps.subarray(0, kept)) : [NaN, NaN];
}
