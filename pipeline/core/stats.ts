/**
 * Small order statistics for summaries.
 *
 * @module
 */

/** Percentile with linear interpolation (numpy's default), ignoring NaN; NaN for no values. */
export function percentile(values: ArrayLike<number>, q: number): number {
  const v = Array.from(values).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const pos = (q / 100) * (v.length - 1);
  const i = Math.floor(pos), f = pos - i;
  return i + 1 < v.length ? v[i] + f * (v[i + 1] - v[i]) : v[i];
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
