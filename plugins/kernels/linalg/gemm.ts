/**
 * `C += alpha A B` on float64 matrix views, B given transposed (the product reads rows of A against stored rows of
 * B, "NT"): the one product under the blocked Cholesky, the triangular inverse and `K_test M`. WebAssembly SIMD
 * micro-kernel (./_simd.ts) with a scalar JavaScript 4 x 4 kernel for the edges and as the fallback; large products
 * on shared memory are cut into chunks of 240 output rows for the thread runner (plugins/kernels/threads.ts).
 * Every entry is one float64 accumulator summed in ascending order whatever the kernel, tiles or threads.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gemm } from "./gemm.ts";
 * import { matrix, transpose } from "./matrix.ts";
 * const c = new Float64Array(4);
 * const a = matrix(new Float64Array([1, 2, 3, 4]), 2); // [[1, 2], [3, 4]]
 * gemm(matrix(c, 2), a, transpose(a)); // C += A A^T
 * assert.deepEqual([...c], [5, 11, 11, 25]);
 * ```
 *
 * @module
 */
import { defaultThreads, runChunks } from "../threads.ts";
import { A_OFF, B_OFF, C_OFF, ensureMemory, kernels, KR, PTILE, SIMD, TI, TILE } from "./_simd.ts";
import { block, isShared, type Matrix, transpose } from "./matrix.ts";

/** Options of {@linkcode gemm}. */
export interface GemmOptions {
  /** Scale of the product (default 1). */
  alpha?: number;
  /** Only entries `(i, j)` of C with `j <= i + lower` are updated (a lower triangle; default: all). */
  lower?: number | null;
  /**
   * A is upper triangular from this diagonal: row `i` of A is zero before column `i + upperA`, and those terms are
   * skipped (by 4-row blocks, so only exact zeros may be skipped; default: none).
   */
  upperA?: number | null;
  /** Threads for a large product on shared memory (default: the thread policy, plugins/kernels/threads.ts). */
  threads?: number;
}

/** Work (multiply-adds) below which no worker thread is asked to help. */
export const PARALLEL_MIN_WORK = 2e7;

/** The worker module of the linear-algebra jobs. */
export const LINALG_WORKER: URL = new URL("./_linalg_worker.ts", import.meta.url);

/** A product as posted to workers (typed arrays are views of shared memory). B holds stored rows (`n x k`). */
interface GemmJob {
  c: Matrix;
  a: Matrix;
  b: Matrix;
  alpha: number;
  lower: number | null;
  upper: number | null;
  chunks: Int32Array;
  useWasm: boolean;
}

/** Row chunk boundaries: `rows` cut into pieces of `size` (the last one shorter). */
export function chunkRows(rows: number, size: number): Int32Array {
  const n = Math.max(1, Math.ceil(rows / size));
  return Int32Array.from({ length: n + 1 }, (_, i) => Math.min(rows, i * size));
}

/**
 * `C += alpha A B` for a C and A that are not transposed and a B that is (`transpose(stored)`): entry `(i, j)` gains
 * `alpha * sum_t A[i][t] B[t][j]`, B's column j being a stored row. Row chunks of 240: where each entry's sum is cut
 * into parameter tiles depends on the sizes only, never on the thread count.
 */
export function gemm(c: Matrix, a: Matrix, b: Matrix, opts: GemmOptions = {}): void {
  if (c.transposed || a.transposed || !b.transposed) {
    throw new Error(
      `Cannot multiply as only C += A B^T on stored rows is implemented: current value is C${
        c.transposed ? "^T" : ""
      } += A${a.transposed ? "^T" : ""} B${b.transposed ? "" : " (B not transposed)"}`,
    );
  }
  if (a.rows !== c.rows || b.cols !== c.cols || a.cols !== b.rows) {
    throw new Error(
      `Cannot multiply as the shapes do not match: current value is C ${c.rows} x ${c.cols}, A ${a.rows} x ${a.cols}, B ${b.rows} x ${b.cols}`,
    );
  }
  const m = c.rows, n = c.cols, k = a.cols;
  if (m <= 0 || n <= 0) return;
  const lower = opts.lower ?? null, upper = opts.upperA ?? null;
  const job: GemmJob = {
    c,
    a,
    b: transpose(b),
    alpha: opts.alpha ?? 1,
    lower,
    upper,
    chunks: chunkRows(m, 2 * TI),
    useWasm: kernels.useWasm,
  };
  const work = (lower === null ? m * n : m * Math.min(n, m + lower) / 2) * Math.max(0, k - (upper ?? 0));
  const shared = isShared(c.data) && isShared(a.data) && isShared(b.data);
  const threads = shared && work >= PARALLEL_MIN_WORK ? opts.threads ?? defaultThreads() : 1;
  runChunks(
    { worker: LINALG_WORKER, kind: "gemm", message: job, chunks: job.chunks.length - 1, run: gemmChunks(job) },
    threads,
  );
}

/** The function that runs chunk `c` of a posted product (this thread and the workers). */
export function gemmChunks(job: GemmJob): (chunk: number) => void {
  return (chunk) => {
    const s = job.chunks[chunk], e = job.chunks[chunk + 1];
    const { lower, upper } = job;
    const n = lower === null ? job.c.cols : Math.min(job.c.cols, e + lower);
    if (e <= s || n <= 0) return;
    gemmSerial(
      block(job.c, s, 0, e - s, n),
      block(job.a, s, 0, e - s, job.a.cols),
      block(job.b, 0, 0, n, job.b.cols),
      job.alpha,
      lower === null ? null : lower + s,
      upper === null ? null : upper + s,
      job.useWasm,
    );
  };
}

/** The product on this thread; `b` as stored rows (`n x k`). */
function gemmSerial(
  c: Matrix,
  a: Matrix,
  b: Matrix,
  alpha: number,
  lower: number | null,
  upper: number | null,
  useWasm: boolean,
): void {
  if (SIMD && useWasm) gemmWasm(c, a, b, alpha, lower, upper);
  else gemmJs(c, a, b, alpha, lower, upper);
}

function gemmWasm(c: Matrix, a: Matrix, b: Matrix, alpha: number, lower: number | null, upper: number | null): void {
  const w = SIMD!;
  const m = c.rows, n = c.cols, k = a.cols;
  const A = a.data, B = b.data, C = c.data;
  // the SIMD rows end at a multiple of KR and of 4, so the scalar tail starts a 4-row block (upperA's contract)
  const m4 = m - (m % (4 * KR)), n4 = n - (n % 4);
  const starts: number[] = [];
  for (let i0 = 0; i0 < m4; i0 += TI) starts.push(upper === null ? 0 : i0 + upper);
  const kMin = Math.min(k, ...starts);
  ensureMemory(B_OFF + n4 * PTILE * 8);
  const f64 = new Float64Array(w.mem.buffer);
  const ao = A_OFF / 8, bo = B_OFF / 8, co = C_OFF / 8;
  for (let p0 = kMin; p0 < k && m4 > 0 && n4 > 0; p0 += PTILE) {
    const p1 = Math.min(k, p0 + PTILE), pt = p1 - p0;
    for (let j0 = 0; j0 < n4; j0 += TILE) {
      const nj = Math.min(TILE, n4 - j0), base = bo + j0 * pt;
      for (let jj = 0; jj < nj; jj++) {
        const r = b.offset + (j0 + jj) * b.stride + p0, o = base + (jj - (jj % 4)) * pt + (jj % 4);
        for (let t = 0; t < pt; t++) f64[o + 4 * t] = B[r + t];
      }
    }
    for (let i0 = 0, it = 0; i0 < m4; i0 += TI, it++) {
      const mi = Math.min(TI, m4 - i0);
      const start = Math.max(p0, starts[it]);
      if (start >= p1) continue;
      const len = p1 - start;
      for (let ii = 0; ii < mi; ii++) {
        const r = a.offset + (i0 + ii) * a.stride + start, o = ao + (ii - (ii % KR)) * len + (ii % KR);
        for (let t = 0; t < len; t++) f64[o + KR * t] = A[r + t];
      }
      for (let j0 = 0; j0 < n4; j0 += TILE) {
        const nj = Math.min(TILE, n4 - j0);
        if (lower !== null && j0 > i0 + mi - 1 + lower) break;
        f64.fill(0, co, co + mi * nj);
        w.f64(A_OFF, B_OFF + (j0 * pt + (start - p0) * 4) * 8, C_OFF, mi, nj, len, len, pt);
        for (let ii = 0; ii < mi; ii++) {
          const o = c.offset + (i0 + ii) * c.stride + j0;
          const jEnd = lower !== null ? Math.min(nj, i0 + ii + lower - j0 + 1) : nj;
          for (let jj = 0; jj < jEnd; jj++) C[o + jj] += alpha * f64[co + ii * nj + jj];
        }
      }
    }
  }
  if (m4 < m) {
    const shift = (d: number | null) => (d === null ? null : d + m4);
    gemmJs(block(c, m4, 0, m - m4, n), block(a, m4, 0, m - m4, k), b, alpha, shift(lower), shift(upper));
  }
  if (n4 < n && m4 > 0) {
    gemmJs(
      block(c, 0, n4, m4, n - n4),
      block(a, 0, 0, m4, k),
      block(b, n4, 0, n - n4, k),
      alpha,
      lower === null ? null : lower - n4,
      upper,
    );
  }
}

function gemmJs(c: Matrix, a: Matrix, b: Matrix, alpha: number, lower: number | null, upper: number | null): void {
  const m = c.rows, n = c.cols, k = a.cols;
  const A = a.data, B = b.data, C = c.data;
  for (let j0 = 0; j0 < n; j0 += TILE) {
    const j1 = Math.min(n, j0 + TILE);
    for (let i = 0; i < m; i += 4) {
      const ib = Math.min(4, m - i);
      const ks = upper === null ? 0 : i + upper;
      if (ks >= k) continue;
      for (let j = j0; j < j1; j += 4) {
        const jb = Math.min(4, j1 - j);
        if (lower !== null && j > i + ib - 1 + lower) break;
        if (ib === 4 && jb === 4 && (lower === null || j + 3 <= i + lower)) {
          kernelF64(c, a, b, i, j, ks, k, alpha);
        } else {
          for (let ii = 0; ii < ib; ii++) {
            for (let jj = 0; jj < jb; jj++) {
              if (lower !== null && j + jj > i + ii + lower) continue;
              const x = a.offset + (i + ii) * a.stride, y = b.offset + (j + jj) * b.stride;
              let s = 0;
              for (let t = ks; t < k; t++) s += A[x + t] * B[y + t];
              C[c.offset + (i + ii) * c.stride + j + jj] += alpha * s;
            }
          }
        }
      }
    }
  }
}

/** The scalar 4 x 4 block at `(i, j)`: `C[i + r][j + s] += alpha * sum_{t in [k0, k1)} A[i + r][t] B[j + s][t]`. */
function kernelF64(c: Matrix, a: Matrix, b: Matrix, i: number, j: number, k0: number, k1: number, alpha: number): void {
  const A = a.data, B = b.data, C = c.data, lda = a.stride, ldb = b.stride, ldc = c.stride;
  const x0 = a.offset + i * lda, x1 = x0 + lda, x2 = x1 + lda, x3 = x2 + lda;
  const y0 = b.offset + j * ldb, y1 = y0 + ldb, y2 = y1 + ldb, y3 = y2 + ldb;
  let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
  let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
  for (let t = k0; t < k1; t++) {
    const p0 = A[x0 + t], p1 = A[x1 + t], p2 = A[x2 + t], p3 = A[x3 + t];
    const q0 = B[y0 + t], q1 = B[y1 + t], q2 = B[y2 + t], q3 = B[y3 + t];
    s00 += p0 * q0, s01 += p0 * q1, s02 += p0 * q2, s03 += p0 * q3;
    s10 += p1 * q0, s11 += p1 * q1, s12 += p1 * q2, s13 += p1 * q3;
    s20 += p2 * q0, s21 += p2 * q1, s22 += p2 * q2, s23 += p2 * q3;
    s30 += p3 * q0, s31 += p3 * q1, s32 += p3 * q2, s33 += p3 * q3;
  }
  const o0 = c.offset + i * ldc + j, o1 = o0 + ldc, o2 = o1 + ldc, o3 = o2 + ldc;
  C[o0] += alpha * s00, C[o0 + 1] += alpha * s01, C[o0 + 2] += alpha * s02, C[o0 + 3] += alpha * s03;
  C[o1] += alpha * s10, C[o1 + 1] += alpha * s11, C[o1 + 2] += alpha * s12, C[o1 + 3] += alpha * s13;
  C[o2] += alpha * s20, C[o2 + 1] += alpha * s21, C[o2 + 2] += alpha * s22, C[o2 + 3] += alpha * s23;
  C[o3] += alpha * s30, C[o3 + 1] += alpha * s31, C[o3 + 2] += alpha * s32, C[o3 + 3] += alpha * s33;
}
