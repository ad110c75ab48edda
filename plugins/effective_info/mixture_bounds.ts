/**
 * Pairwise-distance bounds on the mutual information `I(x; z)` between a uniform index x over N inputs and
 * `z ~ p_x = N(mu_x, C_x)` (Kolchinsky and Tracey, "Estimating mixture entropy with pairwise distances", 2017;
 * docs/science.md section 2), in nats, `0 <= lower <= I <= upper <= log N`:
 *
 * - `upper = -(1/N) sum_i log[(1/N) sum_j exp(-KL(p_i || p_j))]`,
 * - `lower = -(1/N) sum_i log[(1/N) sum_j exp(-BD(p_i, p_j))]` (BD: Bhattacharyya distance).
 *
 * Since the `j = i` term is `exp(0) = 1`, each is computed as `log N - (1/N) sum_i log1p(sum_{j != i} exp(-D_ij))`,
 * which needs no shift and loses no digits when the components are far apart. Pairs are visited in index order,
 * so equal inputs give bit-equal results. Cost: `N (N - 1) / 2` pairs, each `O(d)` with diagonal covariances, and
 * `O(d^3)` with full ones (a Cholesky factorisation of `(C_i + C_j) / 2` per pair for the Bhattacharyya distance).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { diagonalBounds } from "./mixture_bounds.ts";
 * // Two 1-d components far apart: both bounds reach log 2.
 * const b = diagonalBounds(new Float64Array([0, 100]), new Float64Array([1, 1]), 2, 1);
 * assert.ok(Math.abs(b.lower - Math.LN2) < 1e-12 && Math.abs(b.upper - Math.LN2) < 1e-12);
 * ```
 *
 * @module
 */
import { choleskyInPlace, inverseFromCholesky } from "../kernels/mod.ts";

/** Small matrices, one per pair: no threads. */
const ONE = { threads: 1 };

/** Lower (Bhattacharyya) and upper (KL) bound on the mixture's `I(x; z)`, nats. */
export interface MixtureBounds {
  lower: number;
  upper: number;
}

/** `log N - (1/N) sum_i log1p(s_i)` for the off-diagonal sums `s_i = sum_{j != i} exp(-D_ij)`. */
function fromSums(s: Float64Array): number {
  const n = s.length;
  let acc = 0;
  for (let i = 0; i < n; i++) acc += Math.log1p(s[i]);
  return Math.log(n) - acc / n;
}

/**
 * Bounds for Gaussians with diagonal covariances, over coordinates `[k0, k1)` of `d` (one neuron: `k1 = k0 + 1`).
 * `means` and `vars` are `n x d` row-major; every variance must be > 0.
 */
export function diagonalBounds(
  means: Float64Array,
  vars: Float64Array,
  n: number,
  d: number,
  k0 = 0,
  k1 = d,
): MixtureBounds {
  const m = k1 - k0;
  const inv = new Float64Array(n * m), logv = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < m; k++) {
      const v = vars[i * d + k0 + k];
      inv[i * m + k] = 1 / v;
      logv[i * m + k] = Math.log(v);
    }
  }
  const kl = new Float64Array(n), bd = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const oi = i * d + k0, pi = i * m;
    for (let j = i + 1; j < n; j++) {
      const oj = j * d + k0, pj = j * m;
      let klij = 0, klji = 0, b = 0;
      for (let k = 0; k < m; k++) {
        const dm = means[oj + k] - means[oi + k], d2 = dm * dm;
        const vi = vars[oi + k], vj = vars[oj + k], li = logv[pi + k], lj = logv[pj + k];
        const ld = lj - li;
        // KL(p_i || p_j) = 1/2 [v_i / v_j + dm^2 / v_j - 1 + log v_j - log v_i]
        klij += vi * inv[pj + k] + d2 * inv[pj + k] - 1 + ld;
        klji += vj * inv[pi + k] + d2 * inv[pi + k] - 1 - ld;
        // BD = dm^2 / (4 (v_i + v_j)) + 1/2 log((v_i + v_j) / 2) - 1/4 (log v_i + log v_j)
        const sv = vi + vj;
        b += d2 / (4 * sv) + 0.5 * Math.log(0.5 * sv) - 0.25 * (li + lj);
      }
      const eij = Math.exp(-0.5 * klij), eji = Math.exp(-0.5 * klji), eb = Math.exp(-b);
      kl[i] += eij;
      kl[j] += eji;
      bd[i] += eb;
      bd[j] += eb;
    }
  }
  return { lower: fromSums(bd), upper: fromSums(kl) };
}

/**
 * Bounds for Gaussians with full covariances: `means` is `n x d`, `covs` is `n x d x d` (symmetric, positive
 * definite; row-major). Throws `NotPositiveDefiniteError` (plugins/kernels) when a covariance is not.
 */
export function fullBounds(means: Float64Array, covs: Float64Array, n: number, d: number): MixtureBounds {
  const dd = d * d;
  const inv = new Float64Array(n * dd), logdet = new Float64Array(n);
  const l = new Float64Array(dd);
  for (let i = 0; i < n; i++) {
    l.set(covs.subarray(i * dd, (i + 1) * dd));
    choleskyInPlace(l, d, ONE);
    let ld = 0;
    for (let k = 0; k < d; k++) ld += 2 * Math.log(l[k * d + k]);
    logdet[i] = ld;
    inv.set(inverseFromCholesky(l, d, ONE), i * dd);
  }
  const kl = new Float64Array(n), bd = new Float64Array(n);
  const dm = new Float64Array(d), y = new Float64Array(d), avg = new Float64Array(dd);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      for (let k = 0; k < d; k++) dm[k] = means[j * d + k] - means[i * d + k];
      // KL(p_i || p_j) = 1/2 [tr(C_j^-1 C_i) + dm^T C_j^-1 dm - d + log det C_j - log det C_i], and (j, i).
      let trij = 0, trji = 0, mj = 0, mi = 0;
      for (let a = 0; a < d; a++) {
        const ra = a * d;
        let sj = 0, si = 0;
        for (let b = 0; b < d; b++) {
          const ci = covs[i * dd + ra + b], cj = covs[j * dd + ra + b];
          const ij = inv[j * dd + ra + b], ii = inv[i * dd + ra + b];
          trij += ij * ci;
          trji += ii * cj;
          sj += ij * dm[b];
          si += ii * dm[b];
        }
        mj += dm[a] * sj;
        mi += dm[a] * si;
      }
      kl[i] += Math.exp(-0.5 * (trij + mj - d + logdet[j] - logdet[i]));
      kl[j] += Math.exp(-0.5 * (trji + mi - d + logdet[i] - logdet[j]));
      // BD = 1/8 dm^T Cbar^-1 dm + 1/2 [log det Cbar - (log det C_i + log det C_j) / 2], Cbar = (C_i + C_j) / 2.
      for (let t = 0; t < dd; t++) avg[t] = 0.5 * (covs[i * dd + t] + covs[j * dd + t]);
      choleskyInPlace(avg, d, ONE);
      let ldAvg = 0, q = 0;
      for (let a = 0; a < d; a++) {
        let s = dm[a];
        for (let t = 0; t < a; t++) s -= avg[a * d + t] * y[t];
        y[a] = s / avg[a * d + a];
        q += y[a] * y[a];
        ldAvg += 2 * Math.log(avg[a * d + a]);
      }
      const e = Math.exp(-(q / 8 + 0.5 * (ldAvg - 0.5 * (logdet[i] + logdet[j]))));
      bd[i] += e;
      bd[j] += e;
    }
  }
  return { lower: fromSums(bd), upper: fromSums(kl) };
}
