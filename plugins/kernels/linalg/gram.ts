/**
 * Gram products of float32 rows accumulated in float64: `out[i][j] += dot(a[i], b[j])` into a float64 matrix view,
 * the kernel matrices of unique information. The WebAssembly SIMD micro-kernel (./_simd.ts) on rows promoted to
 * float64 while packed (exact), a scalar JavaScript 4 x 4 kernel for the edges and as the fallback; large products
 * on shared memory are cut into row chunks for the thread runner (plugins/kernels/threads.ts). Each entry is one
 * float64 accumulator summed over the parameter index in ascending order, so the same two rows always give the
 * same bits (batch-size and merge invariance of the estimators rely on this).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gram } from "./gram.ts";
 * import { matrix } from "./matrix.ts";
 * const rows = [new Float32Array([1, 2]), new Float32Array([3, 4])];
 * const out = new Float64Array(4);
 * gram(matrix(out, 2), rows, rows, { lower: 0 }); // lower triangle only
 * assert.deepEqual([...out], [5, 0, 11, 25]);
 * ```
 *
 * @module
 */
import { defaultThreads, runChunks } from "../threads.ts";
import { A_OFF, B_OFF, C_OFF, ensureMemory, kernels, KR, PTILE, SIMD, TI, TILE } from "./_simd.ts";
import { chunkRows, LINALG_WORKER, PARALLEL_MIN_WORK } from "./gemm.ts";
import { block, isShared, type Matrix } from "./matrix.ts";

/** Options of {@linkcode gram}. */
export interface GramOptions {
  /** Only entries `(i, j)` with `j <= i + lower` are updated (a lower triangle; default: all). */
  lower?: number | null;
  /** Threads for a large product on shared memory (default: the thread policy, plugins/kernels/threads.ts). */
  threads?: number;
}

/** A Gram product as posted to workers: rows as their few buffers plus offsets (posting thousands of views is slow). */
interface GramJob {
  out: Matrix;
  a: Float32Array[];
  b: Float32Array[];
  lower: number | null;
  chunks: Int32Array;
  useWasm: boolean;
}

/** Rows as their distinct buffers and `[buffer index, byte offset, length]` per row (cheap to post). */
interface PackedRows {
  buffers: ArrayBufferLike[];
  at: Float64Array;
}

/**
 * `out[i][j] += dot(a[i], b[j])` in float64 for every row `i` of `a` and `j` of `b` (`out` is `a.length x b.length`,
 * not transposed); every row has the same length.
 */
export function gram(
  out: Matrix,
  a: readonly Float32Array[],
  b: readonly Float32Array[],
  opts: GramOptions = {},
): void {
  const m = a.length, n = b.length;
  if (out.transposed || out.rows !== m || out.cols !== n) {
    throw new Error(
      `Cannot add the Gram product of ${m} x ${n} rows as the output is ${out.rows} x ${out.cols}${
        out.transposed ? " (transposed)" : ""
      }: current value is ${out.rows} x ${out.cols}`,
    );
  }
  if (m === 0 || n === 0) return;
  const p = a[0].length;
  for (const r of [...a, ...b]) {
    if (r.length !== p) throw new Error(`Cannot multiply rows of different lengths: current value is ${r.length}`);
  }
  const lower = opts.lower ?? null;
  const size = TI * Math.max(1, Math.floor(m / (8 * TI)));
  const work = (lower !== null ? m * Math.min(n, lower + m) / 2 : m * n) * p;
  const shared = isShared(out.data) && a.every(isShared) && b.every(isShared);
  const job: GramJob = { out, a: [...a], b: [...b], lower, chunks: chunkRows(m, size), useWasm: kernels.useWasm };
  const threads = shared && work >= PARALLEL_MIN_WORK ? opts.threads ?? defaultThreads() : 1;
  runChunks({
    worker: LINALG_WORKER,
    kind: "gram",
    message: { ...job, a: packRows(job.a), b: packRows(job.b) },
    chunks: job.chunks.length - 1,
    run: gramChunks(job),
  }, threads);
}

function packRows(rows: readonly Float32Array[]): PackedRows {
  const buffers: ArrayBufferLike[] = [], index = new Map<ArrayBufferLike, number>();
  const at = new Float64Array(3 * rows.length);
  rows.forEach((r, i) => {
    let b = index.get(r.buffer);
    if (b === undefined) index.set(r.buffer, b = buffers.push(r.buffer) - 1);
    at[3 * i] = b, at[3 * i + 1] = r.byteOffset, at[3 * i + 2] = r.length;
  });
  return { buffers, at };
}

function unpackRows(p: PackedRows): Float32Array[] {
  return Array.from(
    { length: p.at.length / 3 },
    (_, i) => new Float32Array(p.buffers[p.at[3 * i]], p.at[3 * i + 1], p.at[3 * i + 2]),
  );
}

/** The function that runs chunk `c` of a Gram job posted to a worker (rows packed). */
export function postedGramChunks(posted: Omit<GramJob, "a" | "b"> & { a: PackedRows; b: PackedRows }) {
  return gramChunks({ ...posted, a: unpackRows(posted.a), b: unpackRows(posted.b) });
}

function gramChunks(job: GramJob): (chunk: number) => void {
  return (chunk) => {
    const s = job.chunks[chunk], e = job.chunks[chunk + 1];
    const { a, b, lower } = job;
    const nb = lower !== null ? Math.min(b.length, e + lower) : b.length;
    if (nb <= 0) return;
    const out = block(job.out, s, 0, e - s, nb);
    const rows = a.slice(s, e), cols = nb < b.length ? b.slice(0, nb) : b;
    const diag = lower === null ? null : lower + s;
    if (SIMD && job.useWasm) gramWasm(out, rows, cols, diag);
    else gramJs(out, rows, cols, diag);
  };
}

function gramWasm(out: Matrix, a: readonly Float32Array[], b: readonly Float32Array[], lower: number | null): void {
  const w = SIMD!, O = out.data;
  const m = a.length, n = b.length, p = a[0].length;
  const m4 = m - (m % KR), n4 = n - (n % 4);
  ensureMemory(B_OFF + n4 * PTILE * 8);
  // packed as float64 (promotion is exact): the kernel's loads then need no conversion (faster than float32 panels)
  const f64 = new Float64Array(w.mem.buffer);
  const ao = A_OFF / 8, bo = B_OFF / 8, co = C_OFF / 8;
  for (let p0 = 0; p0 < p; p0 += PTILE) {
    const pt = Math.min(p, p0 + PTILE) - p0;
    // the B panel of this parameter tile, once: column tile j0 at bo + j0 * pt, laid out [t][jj]
    for (let j0 = 0; j0 < n4; j0 += TILE) {
      const nj = Math.min(TILE, n4 - j0), base = bo + j0 * pt;
      for (let jj = 0; jj < nj; jj++) {
        const row = b[j0 + jj], o = base + (jj - (jj % 4)) * pt + (jj % 4);
        for (let t = 0; t < pt; t++) f64[o + 4 * t] = row[p0 + t];
      }
    }
    for (let i0 = 0; i0 < m4; i0 += TI) {
      const mi = Math.min(TI, m4 - i0);
      for (let ii = 0; ii < mi; ii++) {
        const row = a[i0 + ii], o = ao + (ii - (ii % KR)) * pt + (ii % KR);
        for (let t = 0; t < pt; t++) f64[o + KR * t] = row[p0 + t];
      }
      for (let j0 = 0; j0 < n4; j0 += TILE) {
        const nj = Math.min(TILE, n4 - j0);
        if (lower !== null && j0 > i0 + mi - 1 + lower) break;
        for (let ii = 0; ii < mi; ii++) {
          const o = out.offset + (i0 + ii) * out.stride + j0;
          for (let jj = 0; jj < nj; jj++) f64[co + ii * nj + jj] = O[o + jj];
        }
        w.f64(A_OFF, B_OFF + j0 * pt * 8, C_OFF, mi, nj, pt, pt, pt);
        for (let ii = 0; ii < mi; ii++) {
          const o = out.offset + (i0 + ii) * out.stride + j0;
          const jEnd = lower !== null ? Math.min(nj, i0 + ii + lower - j0 + 1) : nj;
          for (let jj = 0; jj < jEnd; jj++) O[o + jj] = f64[co + ii * nj + jj];
        }
      }
    }
  }
  if (m4 < m) gramJs(block(out, m4, 0, m - m4, n), a.slice(m4), b, lower === null ? null : lower + m4);
  if (n4 < n && m4 > 0) {
    gramJs(block(out, 0, n4, m4, n - n4), a.slice(0, m4), b.slice(n4), lower === null ? null : lower - n4);
  }
}

function gramJs(out: Matrix, a: readonly Float32Array[], b: readonly Float32Array[], lower: number | null): void {
  const O = out.data;
  const m = a.length, n = b.length, p = a[0].length;
  for (let p0 = 0; p0 < p; p0 += PTILE) {
    const p1 = Math.min(p, p0 + PTILE);
    for (let j0 = 0; j0 < n; j0 += TILE) {
      const j1 = Math.min(n, j0 + TILE);
      for (let i = 0; i < m; i += 4) {
        const ib = Math.min(4, m - i);
        for (let j = j0; j < j1; j += 4) {
          const jb = Math.min(4, j1 - j);
          if (lower !== null && j > i + ib - 1 + lower) break;
          if (ib === 4 && jb === 4 && (lower === null || j + 3 <= i + lower)) {
            kernelF32(out, i, j, a, b, p0, p1);
          } else {
            for (let ii = 0; ii < ib; ii++) {
              for (let jj = 0; jj < jb; jj++) {
                if (lower !== null && j + jj > i + ii + lower) continue;
                const x = a[i + ii], y = b[j + jj];
                const o = out.offset + (i + ii) * out.stride + j + jj;
                let s = O[o];
                for (let t = p0; t < p1; t++) s += x[t] * y[t];
                O[o] = s;
              }
            }
          }
        }
      }
    }
  }
}

/** The scalar 4 x 4 block at `(i, j)`: `out[i + r][j + s] += sum_{t in [p0, p1)} a[i + r][t] b[j + s][t]`. */
function kernelF32(
  out: Matrix,
  i: number,
  j: number,
  a: readonly Float32Array[],
  b: readonly Float32Array[],
  p0: number,
  p1: number,
): void {
  const O = out.data, a0 = a[i], a1 = a[i + 1], a2 = a[i + 2], a3 = a[i + 3];
  const b0 = b[j], b1 = b[j + 1], b2 = b[j + 2], b3 = b[j + 3];
  const o0 = out.offset + i * out.stride + j, o1 = o0 + out.stride, o2 = o1 + out.stride, o3 = o2 + out.stride;
  let s00 = O[o0], s01 = O[o0 + 1], s02 = O[o0 + 2], s03 = O[o0 + 3];
  let s10 = O[o1], s11 = O[o1 + 1], s12 = O[o1 + 2], s13 = O[o1 + 3];
  let s20 = O[o2], s21 = O[o2 + 1], s22 = O[o2 + 2], s23 = O[o2 + 3];
  let s30 = O[o3], s31 = O[o3 + 1], s32 = O[o3 + 2], s33 = O[o3 + 3];
  for (let t = p0; t < p1; t++) {
    const x0 = a0[t], x1 = a1[t], x2 = a2[t], x3 = a3[t];
    const y0 = b0[t], y1 = b1[t], y2 = b2[t], y3 = b3[t];
    s00 += x0 * y0, s01 += x0 * y1, s02 += x0 * y2, s03 += x0 * y3;
    s10 += x1 * y0, s11 += x1 * y1, s12 += x1 * y2, s13 += x1 * y3;
    s20 += x2 * y0, s21 += x2 * y1, s22 += x2 * y2, s23 += x2 * y3;
    s30 += x3 * y0, s31 += x3 * y1, s32 += x3 * y2, s33 += x3 * y3;
  }
  O[o0] = s00, O[o0 + 1] = s01, O[o0 + 2] = s02, O[o0 + 3] = s03;
  O[o1] = s10, O[o1 + 1] = s11, O[o1 + 2] = s12, O[o1 + 3] = s13;
  O[o2] = s20, O[o2 + 1] = s21, O[o2 + 2] = s22, O[o2 + 3] = s23;
  O[o3] = s30, O[o3 + 1] = s31, O[o3 + 2] = s32, O[o3 + 3] = s33;
}
