/**
 * Small order statistics for summaries.
 *
 * @module
 */

/** Percentile with linear interpolation (numpy's default), ignoring NaN; NaN for no values. */
export function percentile(values: ArrayLike<number>, q: number): number {
  // a typed array's sort is numeric and puts NaN last: the finite values are the first `m`
  const v = Float64Array.from(values).sort();
  let m = v.length;
  while (m > 0 && Number.isNaN(v[m - 1])) m--;
  if (m === 0) return NaN;
  const pos = (q / 100) * (m - 1);
  const i = Math.floor(pos), f = pos - i;
  return i + 1 < m ? v[i] + f * (v[i + 1] - v[i]) : v[i];
}

/** Mean ignoring NaN; NaN for no values. */
export function mean(values: ArrayLike<number>): number {
  let s = 0, n = 0;
  for (let i = 0; i < values.length; i++) {
    if (!Number.isNaN(values[i])) {
      s += values[i];
      n++;
    }
  }
  return n ? s / n : NaN;
}

/** NaN to null, for table columns. */
export function nullIfNaN(x: number): number | null {
  return Number.isNaN(x) ? null : x;
}
