/**
 * Kendall's rank correlation, tau-b (ties handled): `tau_b = (C - D) / sqrt((n0 - n1) (n0 - n2))`, with `C`/`D`
 * the concordant/discordant pairs, `n0 = n(n-1)/2`, `n1`/`n2` the pairs tied in x/y. Equals
 * `scipy.stats.kendalltau` (variant "b"). NaN when fewer than 2 points or when x or y is constant.
 *
 * O(n^2) pair loop: the experiments and `deno task compare` rank a handful of runs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kendallTau } from "./kendall.ts";
 * assert.ok(kendallTau([1, 2, 3], [10, 20, 30]) === 1);
 * assert.ok(kendallTau([1, 2, 3], [3, 2, 1]) === -1);
 * ```
 *
 * @module
 */

/** Kendall's tau-b of paired values `x`, `y` (same length; NaN pairs are an error). */
export function kendallTau(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) {
    throw new Error(`Cannot rank-correlate as x and y differ in length (${x.length}): current value is ${y.length}`);
  }
  const n = x.length;
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(x[i]) || Number.isNaN(y[i])) {
      throw new Error(`Cannot rank-correlate as pair ${i} holds NaN: current value is (${x[i]}, ${y[i]})`);
    }
  }
  let s = 0, tx = 0, ty = 0;
  const n0 = (n * (n - 1)) / 2;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const a = Math.sign(x[i] - x[j]), b = Math.sign(y[i] - y[j]);
      if (a === 0) tx++;
      if (b === 0) ty++;
      s += a * b;
    }
  }
  const den = Math.sqrt((n0 - tx) * (n0 - ty));
  return den === 0 ? NaN : s / den;
}
