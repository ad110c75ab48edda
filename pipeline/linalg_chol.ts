/**
 * Dense float64 linear algebra for kernel methods: Gram products of float32 rows accumulated in float64, a
 * blocked Cholesky factorisation, blocked triangular solves and the inverse of a symmetric positive-definite
 * matrix. Every heavy step is the same "rows dot rows" product (`C += alpha * A B^T`) run through a 4 x 4
 * register-blocked micro-kernel, so the O(n^3) work is matrix products.
 *
 * Matrices are row-major `Float64Array`s of `n * n` (leading dimension `n`). Only the lower triangle of a
 * symmetric input is read.
 *
 * Determinism: each Gram entry is one float64 accumulator summed over the parameter index in ascending order,
 * whatever the blocking, so the same two rows always give the same bits (batch-size and merge invariance of the
 * estimators that use it rely on this). JavaScript has no fused multiply-add, so this holds on every engine.
 *
 * @example
 * ```ts
 * import { choleskyInPlace, invertSpd } from "./linalg_chol.ts";
 * const a = new Float64Array([4, 2, 2, 3]);
 * const inv = invertSpd(a, 2); // [[3, -2], [-2, 4]] / 8
 * console.assert(Math.abs(inv[1] + 0.25) < 1e-15);
 * choleskyInPlace(a, 2);
 * console.assert(a[0] === 2 && a[2] === 1);
 * ```
 *
 * @module
 */

/** Block size of the blocked Cholesky and triangular solve. */
const NB = 64;
/** Tile over the row dimension of products, for cache reuse. */
const TILE = 128;
/** Tile over the inner (parameter) dimension of Gram products of float32 rows. */
const PTILE = 1024;

/**
 * Gram products of float32 rows in float64: `out[(r0 + i) * ldo + c0 + j] += dot(a[i], b[j])` for every row `i`
 * of `a` and `j` of `b`; with `lower`, only where `c0 + j <= r0 + i`. Every row has the same length.
 */
export function gramF32(
  out: Float64Array,
  ldo: number,
  r0: number,
  c0: number,
  a: readonly Float32Array[],
  b: readonly Float32Array[],
  lower = false,
): void {
  const m = a.length, n = b.length;
  if (m === 0 || n === 0) return;
  const p = a[0].length;
  for (const r of [...a, ...b]) {
    if (r.length !== p) throw new Error(`Cannot multiply rows of different lengths: current value is ${r.length}`);
  }
  for (let p0 = 0; p0 < p; p0 += PTILE) {
    const p1 = Math.min(p, p0 + PTILE);
    for (let j0 = 0; j0 < n; j0 += TILE) {
      const j1 = Math.min(n, j0 + TILE);
      for (let i = 0; i < m; i += 4) {
        const ib = Math.min(4, m - i);
        const ri = r0 + i;
        for (let j = j0; j < j1; j += 4) {
          const jb = Math.min(4, j1 - j);
          if (lower && c0 + j > ri + ib - 1) break;
          if (ib === 4 && jb === 4 && (!lower || c0 + j + 3 <= ri)) {
            kernelF32(
              out,
              ldo,
              ri,
              c0 + j,
              a[i],
              a[i + 1],
              a[i + 2],
              a[i + 3],
              b[j],
              b[j + 1],
              b[j + 2],
              b[j + 3],
              p0,
              p1,
            );
          } else {
            for (let ii = 0; ii < ib; ii++) {
              for (let jj = 0; jj < jb; jj++) {
                if (lower && c0 + j + jj > ri + ii) continue;
                const x = a[i + ii], y = b[j + jj];
                const o = (ri + ii) * ldo + c0 + j + jj;
                let s = out[o];
                for (let t = p0; t < p1; t++) s += x[t] * y[t];
                out[o] = s;
              }
            }
          }
        }
      }
    }
  }
}

function kernelF32(
  out: Float64Array,
  ldo: number,
  r: number,
  c: number,
  a0: Float32Array,
  a1: Float32Array,
  a2: Float32Array,
  a3: Float32Array,
  b0: Float32Array,
  b1: Float32Array,
  b2: Float32Array,
  b3: Float32Array,
  p0: number,
  p1: number,
): void {
  const o0 = r * ldo + c, o1 = o0 + ldo, o2 = o1 + ldo, o3 = o2 + ldo;
  let s00 = out[o0], s01 = out[o0 + 1], s02 = out[o0 + 2], s03 = out[o0 + 3];
  let s10 = out[o1], s11 = out[o1 + 1], s12 = out[o1 + 2], s13 = out[o1 + 3];
  let s20 = out[o2], s21 = out[o2 + 1], s22 = out[o2 + 2], s23 = out[o2 + 3];
  let s30 = out[o3], s31 = out[o3 + 1], s32 = out[o3 + 2], s33 = out[o3 + 3];
  for (let t = p0; t < p1; t++) {
    const x0 = a0[t], x1 = a1[t], x2 = a2[t], x3 = a3[t];
    const y0 = b0[t], y1 = b1[t], y2 = b2[t], y3 = b3[t];
    s00 += x0 * y0, s01 += x0 * y1, s02 += x0 * y2, s03 += x0 * y3;
    s10 += x1 * y0, s11 += x1 * y1, s12 += x1 * y2, s13 += x1 * y3;
    s20 += x2 * y0, s21 += x2 * y1, s22 += x2 * y2, s23 += x2 * y3;
    s30 += x3 * y0, s31 += x3 * y1, s32 += x3 * y2, s33 += x3 * y3;
  }
  out[o0] = s00, out[o0 + 1] = s01, out[o0 + 2] = s02, out[o0 + 3] = s03;
  out[o1] = s10, out[o1 + 1] = s11, out[o1 + 2] = s12, out[o1 + 3] = s13;
  out[o2] = s20, out[o2 + 1] = s21, out[o2 + 2] = s22, out[o2 + 3] = s23;
  out[o3] = s30, out[o3 + 1] = s31, out[o3 + 2] = s32, out[o3 + 3] = s33;
}

/**
 * `C[i][j] += alpha * sum_{t in [k0(i), k1)} A[ai + i][t] B[bj + j][t]` on flat row-major float64 matrices, for
 * rows `i < m`, `j < n` (and `j <= i + diag` when `lower` is a number `diag`). `k0` is either a number or a function
 * of the first row of a 4-row block (to skip known zeros of triangular factors; it must only skip exact zeros).
 */
export function gemmNT(
  c: Float64Array,
  ldc: number,
  ci: number,
  cj: number,
  a: Float64Array,
  lda: number,
  ai: number,
  b: Float64Array,
  ldb: number,
  bj: number,
  m: number,
  n: number,
  k0: number | ((i: number) => number),
  k1: number,
  alpha: number,
  lower: number | null = null,
): void {
  for (let j0 = 0; j0 < n; j0 += TILE) {
    const j1 = Math.min(n, j0 + TILE);
    for (let i = 0; i < m; i += 4) {
      const ib = Math.min(4, m - i);
      const ks = typeof k0 === "number" ? k0 : k0(i);
      if (ks >= k1) continue;
      for (let j = j0; j < j1; j += 4) {
        const jb = Math.min(4, j1 - j);
        if (lower !== null && j > i + ib - 1 + lower) break;
        if (ib === 4 && jb === 4 && (lower === null || j + 3 <= i + lower)) {
          kernelF64(c, ldc, ci + i, cj + j, a, lda, ai + i, b, ldb, bj + j, ks, k1, alpha);
        } else {
          for (let ii = 0; ii < ib; ii++) {
            for (let jj = 0; jj < jb; jj++) {
              if (lower !== null && j + jj > i + ii + lower) continue;
              const x = (ai + i + ii) * lda, y = (bj + j + jj) * ldb;
              let s = 0;
              for (let t = ks; t < k1; t++) s += a[x + t] * b[y + t];
              c[(ci + i + ii) * ldc + cj + j + jj] += alpha * s;
            }
          }
        }
      }
    }
  }
}

function kernelF64(
  c: Float64Array,
  ldc: number,
  ci: number,
  cj: number,
  a: Float64Array,
  lda: number,
  ai: number,
  b: Float64Array,
  ldb: number,
  bj: number,
  k0: number,
  k1: number,
  alpha: number,
): void {
  const x0 = ai * lda, x1 = x0 + lda, x2 = x1 + lda, x3 = x2 + lda;
  const y0 = bj * ldb, y1 = y0 + ldb, y2 = y1 + ldb, y3 = y2 + ldb;
  let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
  let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
  for (let t = k0; t < k1; t++) {
    const p0 = a[x0 + t], p1 = a[x1 + t], p2 = a[x2 + t], p3 = a[x3 + t];
    const q0 = b[y0 + t], q1 = b[y1 + t], q2 = b[y2 + t], q3 = b[y3 + t];
    s00 += p0 * q0, s01 += p0 * q1, s02 += p0 * q2, s03 += p0 * q3;
    s10 += p1 * q0, s11 += p1 * q1, s12 += p1 * q2, s13 += p1 * q3;
    s20 += p2 * q0, s21 += p2 * q1, s22 += p2 * q2, s23 += p2 * q3;
    s30 += p3 * q0, s31 += p3 * q1, s32 += p3 * q2, s33 += p3 * q3;
  }
  const o0 = ci * ldc + cj, o1 = o0 + ldc, o2 = o1 + ldc, o3 = o2 + ldc;
  c[o0] += alpha * s00, c[o0 + 1] += alpha * s01, c[o0 + 2] += alpha * s02, c[o0 + 3] += alpha * s03;
  c[o1] += alpha * s10, c[o1 + 1] += alpha * s11, c[o1 + 2] += alpha * s12, c[o1 + 3] += alpha * s13;
  c[o2] += alpha * s20, c[o2 + 1] += alpha * s21, c[o2 + 2] += alpha * s22, c[o2 + 3] += alpha * s23;
  c[o3] += alpha * s30, c[o3 + 1] += alpha * s31, c[o3 + 2] += alpha * s32, c[o3 + 3] += alpha * s33;
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
export function choleskyInPlace(a: Float64Array, n: number): void {
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
    if (m > 0) gemmNT(a, n, k1, k1, a, n, k1, a, n, k1, m, m, k0, k1, -1, 0);
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
 * one column block at a time, the update from earlier blocks being one `gemmNT` product.
 */
export function invLowerTransposed(l: Float64Array, n: number): Float64Array {
  const y = new Float64Array(n * n);
  for (let j0 = 0; j0 < n; j0 += NB) {
    const j1 = Math.min(n, j0 + NB);
    // rows r < j1 only (Y[r, J] = 0 for r >= j1). C = -Y[r, r:j0] L[J, r:j0]^T, over t >= first row of the block.
    for (let r = 0; r < j1; r++) for (let j = j0; j < j1; j++) y[r * n + j] = r === j ? 1 : 0;
    if (j0 > 0) gemmNT(y, n, 0, j0, y, n, 0, l, n, j0, j0, j1 - j0, (i) => i, j0, -1);
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
export function invertSpd(a: Float64Array, n: number): Float64Array {
  const l = Float64Array.from(a);
  choleskyInPlace(l, n);
  return inverseFromCholesky(l, n);
}

/** `A^-1 = L^-T L^-1` (full symmetric) from the lower Cholesky factor `L` of `A`. */
export function inverseFromCholesky(l: Float64Array, n: number): Float64Array {
  const y = invLowerTransposed(l, n);
  const m = new Float64Array(n * n);
  // M[i][j] = sum_{t >= max(i, j)} Y[i][t] Y[j][t]; lower triangle, then mirrored
  gemmNT(m, n, 0, 0, y, n, 0, y, n, 0, n, n, (i) => i, n, 1, 0);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) m[i * n + j] = m[j * n + i];
  return m;
}
