/**
 * Test reference for the KSG kernels: the estimator by brute force, O(n^2) per pair, straight from the definition
 * of docs/science.md section 1 (scikit-learn's `_compute_mi_cc`: k-th neighbour radius r among the other samples,
 * marginal counts of other samples within `nextafter(r, 0)`, digamma by its asymptotic series), independent of the
 * kernels' tables and grids. Used by the tests (and the benchmark's digamma).
 *
 * @module
 */

/** Digamma by recurrence to x >= 6 and the asymptotic series (independent of the table the kernel uses). */
export function digamma(x: number): number {
  let r = 0;
  while (x < 6) {
    r -= 1 / x;
    x += 1;
  }
  const f = 1 / (x * x);
  return r + Math.log(x) - 0.5 / x - f * (1 / 12 - f * (1 / 120 - f * (1 / 252 - f * (1 / 240 - f / 132))));
}

/** The largest double below r > 0 (0 for 0), computed independently of the kernel's bit trick. */
export function below(r: number): number {
  if (r === 0) return 0;
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, r);
  dv.setBigUint64(0, dv.getBigUint64(0) - 1n);
  return dv.getFloat64(0);
}

/** Brute-force KSG (nats). */
export function bruteKsg(x: ArrayLike<number>, y: ArrayLike<number>, k: number): number {
  const n = x.length;
  let total = 0;
  const d = new Float64Array(n - 1);
  for (let i = 0; i < n; i++) {
    let m = 0;
    for (let j = 0; j < n; j++) if (j !== i) d[m++] = Math.max(Math.abs(x[i] - x[j]), Math.abs(y[i] - y[j]));
    const r = d.slice().sort()[k - 1];
    const rr = below(r);
    let nx = 0, ny = 0;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      if (Math.abs(x[i] - x[j]) <= rr) nx++;
      if (Math.abs(y[i] - y[j]) <= rr) ny++;
    }
    total += digamma(nx + 1) + digamma(ny + 1);
  }
  return digamma(n) + digamma(k) - total / n;
}

/** Samples whose k-th nearest other sample is at Chebyshev distance 0, by brute force. */
export function bruteTied(x: ArrayLike<number>, y: ArrayLike<number>, k: number): number {
  let tied = 0;
  for (let i = 0; i < x.length; i++) {
    let zero = 0;
    for (let j = 0; j < x.length; j++) {
      if (j !== i && Math.max(Math.abs(x[i] - x[j]), Math.abs(y[i] - y[j])) === 0) zero++;
    }
    if (zero >= k) tied++;
  }
  return tied;
}
