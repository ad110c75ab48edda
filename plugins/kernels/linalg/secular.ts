/**
 * Roots of the secular equation `f(x) = rhoInv + sum_j z2[j] / (d[j] - x) = 0` (poles `d` strictly increasing,
 * weights `z2 > 0`, `rhoInv >= 0`), the heart of two eigenvalue updates (docs/unique_info.md):
 * - rank-one update `D + rho z z^T` (`rhoInv = 1 / rho > 0`): n roots, one in each `(d[m], d[m+1])` and the last
 *   in `(d[n-1], d[n-1] + sum z2 / rhoInv]` (the merge step of divide and conquer, `eigh.ts`);
 * - deletion of one row and column of `V diag(d) V^T` with `z` the deleted row of `V` (`rhoInv = 0`, Cauchy's
 *   interlacing): n - 1 roots, one in each `(d[m], d[m+1])` (leave-one-out in `plugins/unique_info/finite_time.ts`).
 *
 * Each root is stored as `d[origin] + tau` with `origin` the nearer pole (Gu & Eisenstat 1994, LAPACK `dlaed4`),
 * so that every difference `x - d[j] = (d[origin] - d[j]) + tau` has a small relative error; the iteration is
 * Li's "middle way" (each side of the root modelled by one pole and a constant, matched in value and derivative),
 * safeguarded by bisection, stopped at `|f| <= eps * (running error bound of f)` as in `dlaed4`.
 * {@linkcode lownerWeights} then gives the weights `zhat` for which the computed roots are exact (Löwner's formula):
 * eigenvectors `zhat / (d - x)` built from them are orthogonal to working accuracy however close the roots are.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { secularRoots } from "./secular.ts";
 * // delete row (0.6, 0.8) of V from diag(1, 2): the 1 x 1 remainder is 1 * 0.8^2 + 2 * 0.6^2 = 1.36
 * const d = new Float64Array([1, 2]);
 * const r = secularRoots(d, new Float64Array([0.36, 0.64]), 2, 0);
 * assert.ok(Math.abs(d[r.origin[0]] + r.tau[0] - 1.36) < 1e-15);
 * ```
 *
 * @module
 */

const EPS = 2 ** -53;
const MAX_ITER = 80;

/** Roots `x_m = d[origin[m]] + tau[m]`. */
export interface SecularRoots {
  origin: Int32Array;
  tau: Float64Array;
  /** Iterations of all roots together (for statistics). */
  iterations: number;
}

/** Scratch results of one evaluation of f. */
const ev = { w: 0, dpsi: 0, dphi: 0, err: 0 };

/** Evaluates f at `d[o] + tau`, with the terms `j <= split` (left of the root) and `j > split` summed apart. */
function evaluate(d: Float64Array, z2: Float64Array, n: number, rhoInv: number, o: number, tau: number, split: number) {
  const d0 = d[o];
  let psi = 0, dpsi = 0, err = 0;
  for (let j = 0; j <= split; j++) {
    const r = 1 / ((d[j] - d0) - tau);
    const t = z2[j] * r;
    psi += t;
    dpsi += t * r;
    err -= psi; // psi <= 0
  }
  let phi = 0, dphi = 0;
  for (let j = n - 1; j > split; j--) {
    const r = 1 / ((d[j] - d0) - tau);
    const t = z2[j] * r;
    phi += t;
    dphi += t * r;
    err += phi;
  }
  ev.w = rhoInv + psi + phi;
  ev.dpsi = dpsi;
  ev.dphi = dphi;
  ev.err = 8 * (phi - psi) + err + 2 * rhoInv + 3 * Math.abs(tau) * (dpsi + dphi);
}

/**
 * Root `m` of f: in `(d[m], d[m+1])` for `m < n - 1`, beyond `d[n-1]` for `m = n - 1` (needs `rhoInv > 0`).
 * Writes `origin[m]` and `tau[m]` of `out`; returns the iterations taken.
 */
export function secularRoot(
  d: Float64Array,
  z2: Float64Array,
  n: number,
  rhoInv: number,
  m: number,
  out: SecularRoots,
): number {
  let o: number, lo: number, hi: number, tau: number, split: number;
  if (m === n - 1) {
    if (!(rhoInv > 0)) throw new Error(`Cannot find root ${m} beyond the last pole as rhoInv is ${rhoInv}`);
    let sum = 0;
    for (let j = 0; j < n; j++) sum += z2[j];
    o = n - 1;
    if (n === 1) {
      out.origin[m] = 0;
      out.tau[m] = z2[0] / rhoInv;
      return 0;
    }
    split = n - 2;
    lo = 0;
    hi = sum / rhoInv; // f(d[n-1] + hi) >= rhoInv - sum / hi = 0
    tau = hi / 2;
    evaluate(d, z2, n, rhoInv, o, tau, split);
  } else {
    split = m;
    const gap = d[m + 1] - d[m], mid = gap / 2;
    evaluate(d, z2, n, rhoInv, m, mid, split);
    if (ev.w >= 0) {
      o = m, lo = 0, hi = mid, tau = mid;
    } else {
      o = m + 1, lo = mid - gap, hi = 0, tau = mid - gap;
    }
  }
  const dl = d[split] - d[o], dr = d[split + 1] - d[o];
  let it = 0;
  for (; it < MAX_ITER; it++) {
    const w = ev.w;
    if (Math.abs(w) <= EPS * ev.err) break;
    if (w > 0) hi = Math.min(hi, tau);
    else lo = Math.max(lo, tau);
    // model: c + s / (da - eta) + S / (db - eta), matched in value and slope at eta = 0
    const da = dl - tau, db = dr - tau;
    const s = ev.dpsi * da * da, S = ev.dphi * db * db;
    const c = w - s / da - S / db;
    const A = c, B = -(c * (da + db) + s + S), C = da * db * w;
    let eta = NaN;
    if (A === 0) eta = -C / B;
    else {
      const disc = Math.max(0, B * B - 4 * A * C);
      const q = -0.5 * (B + (B >= 0 ? 1 : -1) * Math.sqrt(disc));
      const r1 = q / A, r2 = q !== 0 ? C / q : NaN;
      const ok = (e: number) => Number.isFinite(e) && e > da && (m === n - 1 || e < db) && (m !== n - 1 || e > db);
      if (ok(r1) && ok(r2)) eta = Math.abs(r1) < Math.abs(r2) ? r1 : r2;
      else eta = ok(r1) ? r1 : r2;
    }
    let next = tau + eta;
    const model = next > lo && next < hi;
    if (!model) next = (lo + hi) / 2;
    // a model step this small leaves an error ~ (eta / tau)^2 |tau| (quadratic convergence): accept it unchecked
    if (next === tau || (model && Math.abs(eta) <= 1e-9 * Math.abs(tau))) {
      tau = next;
      break;
    }
    tau = next;
    evaluate(d, z2, n, rhoInv, o, tau, split);
  }
  out.origin[m] = o;
  out.tau[m] = tau;
  return it;
}

/** Every root of f: n - 1 when `rhoInv = 0` (deletion), n when `rhoInv > 0` (rank-one update). */
export function secularRoots(d: Float64Array, z2: Float64Array, n: number, rhoInv: number): SecularRoots {
  const count = rhoInv > 0 ? n : Math.max(0, n - 1);
  const out: SecularRoots = { origin: new Int32Array(count), tau: new Float64Array(count), iterations: 0 };
  for (let m = 0; m < count; m++) out.iterations += secularRoot(d, z2, n, rhoInv, m, out);
  return out;
}

/** `x_m - d[j]` to high relative accuracy. */
export function rootMinusPole(d: Float64Array, roots: SecularRoots, m: number, j: number): number {
  return (d[roots.origin[m]] - d[j]) + roots.tau[m];
}

/**
 * Löwner's weights: `zhat` (signs of `z`) for which the computed roots are the exact roots of
 * `rhoInv + sum zhat^2 / (d - x)` (update), or of `sum zhat^2 / (d - x)` with `sum zhat^2 = sumZ2` (deletion):
 * `zhat_j^2 = c prod_m (x_m - d_j) / prod_{l != j} (d_l - d_j)` with `c = rhoInv` (update) or `sumZ2` (deletion),
 * each root paired with a neighbouring pole so that every factor lies in (0, 1] or near it.
 */
export function lownerWeights(
  d: Float64Array,
  z: Float64Array,
  n: number,
  rhoInv: number,
  roots: SecularRoots,
  sumZ2: number,
  out: Float64Array,
): void {
  const update = rhoInv > 0;
  const { origin, tau } = roots;
  for (let j = 0; j < n; j++) {
    const dj = d[j];
    let p: number;
    if (update) {
      p = rhoInv * ((d[origin[j]] - dj) + tau[j]);
      for (let m = 0; m < j; m++) p *= ((d[origin[m]] - dj) + tau[m]) / (d[m] - dj);
      for (let m = j + 1; m < n; m++) p *= ((d[origin[m]] - dj) + tau[m]) / (d[m] - dj);
    } else {
      p = sumZ2;
      for (let m = 0; m < j; m++) p *= ((d[origin[m]] - dj) + tau[m]) / (d[m] - dj);
      for (let m = j; m < n - 1; m++) p *= ((d[origin[m]] - dj) + tau[m]) / (d[m + 1] - dj);
    }
    const v = Math.sqrt(Math.abs(p));
    out[j] = z[j] < 0 ? -v : v;
  }
}
