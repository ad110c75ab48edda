/**
 * Eigen-decomposition of a small dense symmetric matrix in float64 by the cyclic Jacobi method (Golub & Van
 * Loan, Matrix Computations, 4th ed., section 8.5), with the classic threshold strategy. Used by the Frequent
 * Directions sketch (plugins/fisher) on its (2 ell x 2 ell) Gram matrix and by `eigh` for its small leaves; accurate to a few ulps of the largest eigenvalue.
 *
 * No npm dependency: the matrices are at most a few hundred wide, this is ~80 lines, and it works on flat
 * `Float64Array`s without copies (ml-matrix, the obvious library, stores arrays of arrays).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { symEig } from "./symeig.ts";
 * const { values } = symEig(new Float64Array([2, 1, 1, 2]), 2);
 * assert.ok(Math.abs(values[0] - 3) < 1e-12 && Math.abs(values[1] - 1) < 1e-12);
 * ```
 *
 * @module
 */

/** Eigenvalues (descending) and eigenvectors (column `i` of the row-major `n x n` `vectors` pairs `values[i]`). */
export interface SymEig {
  values: Float64Array;
  vectors: Float64Array;
}

/**
 * Eigen-decomposition of the symmetric row-major `n x n` matrix `a` (only read; the upper triangle is used).
 * Eigenvalues are sorted in descending order.
 */
export function symEig(a: Float64Array, n: number, maxSweeps = 60): SymEig {
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) m[i * n + j] = m[j * n + i] = a[i * n + j];
  }
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0, diag = 0;
    for (let i = 0; i < n; i++) {
      diag += m[i * n + i] * m[i * n + i];
      for (let j = i + 1; j < n; j++) off += m[i * n + j] * m[i * n + j];
    }
    if (off === 0 || off <= 1e-32 * diag) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q];
        if (apq === 0) continue;
        const app = m[p * n + p], aqq = m[q * n + q];
        // Skip rotations that cannot change the diagonal in float64.
        if (Math.abs(apq) < 1e-300 || Math.abs(apq) <= 1e-18 * Math.sqrt(Math.abs(app * aqq))) {
          m[p * n + q] = m[q * n + p] = 0;
          continue;
        }
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        // Rotate rows/columns p and q of m.
        for (let k = 0; k < n; k++) {
          const mkp = m[k * n + p], mkq = m[k * n + q];
          m[k * n + p] = c * mkp - s * mkq;
          m[k * n + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < n; k++) {
          const mpk = m[p * n + k], mqk = m[q * n + k];
          m[p * n + k] = c * mpk - s * mqk;
          m[q * n + k] = s * mpk + c * mqk;
        }
        m[p * n + q] = m[q * n + p] = 0;
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p], vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => m[y * n + y] - m[x * n + x]);
  const values = new Float64Array(n), vectors = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    const src = order[c];
    values[c] = m[src * n + src];
    for (let k = 0; k < n; k++) vectors[k * n + c] = v[k * n + src];
  }
  return { values, vectors };
}
