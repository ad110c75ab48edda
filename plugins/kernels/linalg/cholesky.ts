/**
 * Cholesky factorisation, solves and the inverse of a symmetric positive-definite matrix, float64 throughout:
 * blocked right-looking (blocks of 64), the O(n^3) work in {@linkcode gemm} products. Matrices are row-major
 * `Float64Array`s of `n * n`; only the lower triangle of a symmetric input is read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { choleskyInPlace, invertSpd } from "./cholesky.ts";
 * const a = new Float64Array([4, 2, 2, 3]);
 * const inv = invertSpd(a, 2); // [[3, -2], [-2, 4]] / 8
 * assert.ok(Math.abs(inv[1] + 0.25) < 1e-15);
 * choleskyInPlace(a, 2);
 * assert.ok(a[0] === 2 && a[2] === 1);
 * ```
 *
 * @module
 */
import { NB } from "./_simd.ts";
import { gemm } from "./gemm.ts";
import { block, matrix, sharedF64, transpose } from "./matrix.ts";

/** Options of the factorisations. */
export interface CholeskyOptions {
  /** Threads for the large products on shared memory (default: the thread policy, plugins/kernels/threads.ts). */
  threads?: number;
  /** Told the share of the work done so far, in percent (after each block column). */
  progress?: (percent: number) => void;
}

/** Thrown when a matrix given as positive definite is not (numerically). */
export class NotPositiveDefiniteError extends Error {
  /** Index of the failing pivot. */
  readonly pivot: number;
  constructor(pivot: number, value: number) {
    super(`Cannot factorise the matrix as it is not positive definite at pivot ${pivot}: current value is ${value}`);
    this.name = "NotPositiveDefiniteError";
    this.pivot = pivot;
  }
}

/**
 * Blocked right-looking Cholesky `A = L L^T` in place: on return the lower triangle of `a` holds `L` and the
 * strict upper triangle is zeroed. Throws {@linkcode NotPositiveDefiniteError} on a non-positive pivot.
 */
export function choleskyInPlace(a: Float64Array, n: number, opts: CholeskyOptions = {}): void {
  const A = matrix(a, n);
  for (let k0 = 0; k0 < n; k0 += NB) {
    const k1 = Math.min(n, k0 + NB);
    // diagonal block, unblocked (it was updated by all earlier blocks already)
    for (let j = k0; j < k1; j++) {
      let d = a[j * n + j];
      for (let t = k0; t < j; t++) d -= a[j * n + t] * a[j * n + t];
      if (!(d > 0) || !Number.isFinite(d)) throw new NotPositiveDefiniteError(j, d);
      const l = Math.sqrt(d);
      a[j * n + j] = l;
      for (let i = j + 1; i < k1; i++) {
        let s = a[i * n + j];
        for (let t = k0; t < j; t++) s -= a[i * n + t] * a[j * n + t];
        a[i * n + j] = s / l;
      }
    }
    // panel below: rows i >= k1 solve x L11^T = a[i, k0:k1]
    for (let i = k1; i < n; i++) {
      const ri = i * n;
      for (let j = k0; j < k1; j++) {
        let s = a[ri + j];
        const rj = j * n;
        for (let t = k0; t < j; t++) s -= a[ri + t] * a[rj + t];
        a[ri + j] = s / a[rj + j];
      }
    }
    // trailing update of the lower triangle: A22 -= L21 L21^T
    const m = n - k1;
    if (m > 0) {
      const l21 = block(A, k1, k0, m, k1 - k0);
      gemm(block(A, k1, k1, m, m), l21, transpose(l21), { alpha: -1, lower: 0, threads: opts.threads });
    }
    // The work left is about the cube of the trailing size.
    opts.progress?.(100 * (1 - (m / n) ** 3));
  }
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) a[i * n + j] = 0;
}

/** Solves `L x = b` then `L^T y = x` (i.e. `A y = b` from the Cholesky factor); returns `y` (new array). */
export function choleskySolve(l: Float64Array, n: number, b: ArrayLike<number>): Float64Array {
  const y = Float64Array.from(b);
  for (let i = 0; i < n; i++) {
    let s = y[i];
    for (let t = 0; t < i; t++) s -= l[i * n + t] * y[t];
    y[i] = s / l[i * n + i];
  }
  for (let i = n - 1; i >= 0; i--) {
    let s = y[i];
    for (let t = i + 1; t < n; t++) s -= l[t * n + i] * y[t];
    y[i] = s / l[i * n + i];
  }
  return y;
}

/**
 * `Y = L^-T` (upper triangular, row-major `n * n`) from a lower Cholesky factor, blocked: `Y L^T = I` is solved
 * one column block at a time, the update from earlier blocks being one {@linkcode gemm} product.
 */
export function invLowerTransposed(l: Float64Array, n: number, opts: CholeskyOptions = {}): Float64Array {
  const y = sharedF64(n * n);
  const Y = matrix(y, n), L = matrix(l, n);
  for (let j0 = 0; j0 < n; j0 += NB) {
    const j1 = Math.min(n, j0 + NB);
    // rows r < j1 only (Y[r, J] = 0 for r >= j1). C = -Y[r, r:j0] L[J, r:j0]^T, over t >= first row of the block.
    for (let r = 0; r < j1; r++) for (let j = j0; j < j1; j++) y[r * n + j] = r === j ? 1 : 0;
    if (j0 > 0) {
      gemm(block(Y, 0, j0, j0, j1 - j0), block(Y, 0, 0, j0, j0), transpose(block(L, j0, 0, j1 - j0, j0)), {
        alpha: -1,
        upperA: 0,
        threads: opts.threads,
      });
    }
    for (let r = 0; r < j1; r++) {
      const rr = r * n;
      for (let j = Math.max(j0, r); j < j1; j++) {
        let s = y[rr + j];
        const lj = j * n;
        for (let t = Math.max(j0, r); t < j; t++) s -= y[rr + t] * l[lj + t];
        y[rr + j] = s / l[lj + j];
      }
    }
  }
  return y;
}

/**
 * The inverse of a symmetric positive-definite matrix (lower triangle read), as a full symmetric row-major
 * `n * n` array: Cholesky, `Y = L^-T`, then `A^-1 = Y Y^T`. `a` is left unchanged.
 */
export function invertSpd(a: Float64Array, n: number, opts: CholeskyOptions = {}): Float64Array {
  const l = sharedF64(n * n);
  l.set(a.subarray(0, n * n));
  choleskyInPlace(l, n, opts);
  return inverseFromCholesky(l, n, opts);
}

/** `A^-1 = L^-T L^-1` (full symmetric) from the lower Cholesky factor `L` of `A`. */
export function inverseFromCholesky(l: Float64Array, n: number, opts: CholeskyOptions = {}): Float64Array {
  opts.progress?.(0);
  const y = invLowerTransposed(l, n, opts);
  opts.progress?.(50);
  const m = sharedF64(n * n);
  // M[i][j] = sum_{t >= max(i, j)} Y[i][t] Y[j][t]; lower triangle, then mirrored
  const Y = matrix(y, n);
  gemm(matrix(m, n), Y, transpose(Y), { lower: 0, upperA: 0, threads: opts.threads });
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) m[i * n + j] = m[j * n + i];
  opts.progress?.(100);
  return m;
}
