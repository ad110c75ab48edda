/**
 * Dense float64 linear algebra for kernel methods: Gram products of float32 rows accumulated in float64, a
 * blocked Cholesky factorisation, blocked triangular solves and the inverse of a symmetric positive-definite
 * matrix. Every heavy step is the same "rows dot rows" product (`C += alpha * A B^T`), so the O(n^3) and
 * O(n^2 P) work is matrix products, run by a WebAssembly SIMD micro-kernel (5 x 4 register block, float64 lanes)
 * that this module assembles byte by byte at load time (no toolchain, no dependency), with a scalar JavaScript
 * 4 x 4 kernel as the fallback where WebAssembly SIMD is missing (`kernels.useWasm = false` forces it).
 * Large products on `SharedArrayBuffer`-backed arrays ({@linkcode sharedF64}) are shared, by chunks of output rows,
 * between the calling thread and `kernels.threads - 1` worker threads (`node:worker_threads`, unref'd); the API
 * stays synchronous (the caller waits with `Atomics.wait`) and the results do not depend on the thread count.
 *
 * Why not a library: no npm package does float64 BLAS-3 in Deno faster than this (the `@stdlib/blas` routines
 * are scalar JavaScript), and tfjs (`@tensorflow/tfjs-backend-wasm` matMul) works in float32 only: measured in
 * `scripts/bench/si.ts` it was 4-13x SLOWER than this module's Gram here (its transposed matMul does not reach
 * XNNPACK's fast path) and its float32 accumulation errs by ~1e-6 relative over P = 20,000, which breaks the
 * 1e-8 agreement with leave-one-out retraining. The Cholesky is float64 throughout.
 *
 * Matrices are row-major `Float64Array`s of `n * n` (leading dimension `n`). Only the lower triangle of a
 * symmetric input is read.
 *
 * Determinism: each Gram entry is one float64 accumulator summed over the parameter index in ascending order,
 * whatever the blocking and whichever kernel (the SIMD lanes run along columns, never along the sum), so the same
 * two rows always give the same bits (batch-size and merge invariance of the estimators rely on this).
 * JavaScript and WebAssembly have no implicit fused multiply-add, so this holds on every engine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { choleskyInPlace, invertSpd } from "./linalg.ts";
 * const a = new Float64Array([4, 2, 2, 3]);
 * const inv = invertSpd(a, 2); // [[3, -2], [-2, 4]] / 8
 * assert.ok(Math.abs(inv[1] + 0.25) < 1e-15);
 * choleskyInPlace(a, 2);
 * assert.ok(a[0] === 2 && a[2] === 1);
 * ```
 *
 * @module
 */
import { moduleBytes, sleb, uleb } from "../wasm.ts";

import { Worker } from "node:worker_threads";

/** Block size of the blocked Cholesky and triangular solve. */
const NB = 64;
/** Tile over the row dimension of products, for cache reuse. */
const TILE = 128;
/**
 * Rows of the SIMD micro-kernel's register block (times 4 columns). 5 x 4 keeps its 10 accumulators, 2 B vectors,
 * the A splat and the product in 14 of the 16 vector registers (V8 keeps one as scratch); 6 x 4 needs 16 and spills:
 * measured 14 GFLOP/s (CPU time) against 10.5 for 6 x 4.
 */
const KR = 5;
/** Row tile of the SIMD path (a multiple of KR). */
const TI = 120;
/** Tile over the inner (parameter) dimension of Gram products of float32 rows. */
const PTILE = 1024;

/* ---------------------------------------------------------------------------------------------------------------
 * WebAssembly SIMD micro-kernel (built here byte by byte; no toolchain). For KR x 4 blocks of C (float64, row-major,
 * stride nj) it computes C[i][j] += sum_t A[t][i] B[t][j] over t = 0..pt-1, with A and B packed in micro-panels (BLIS style:
 * KR rows of A, or 4 columns of B, interleaved along t; panel lengths la and lb). Only the float64 kernel is built: float32
 * rows are promoted (exactly) while packed, which measured faster than promoting in the inner loop (`kernelBody(4)`).
 * The vector lanes run along j, so every entry is still ONE accumulator summed over t in ascending order, with the
 * same IEEE operations as the scalar loop: results are bit-identical to the JS path.
 * ------------------------------------------------------------------------------------------------------------- */

/** The body of `kernel(a, b, c, mi, nj, pt)` for elements of `e` bytes (4 = float32, 8 = float64). */
function kernelBody(e: 4 | 8): number[] {
  const [A, B, C, MI, NJ, PT, LA, LB] = [0, 1, 2, 3, 4, 5, 6, 7];
  const [I, J, PA, PB, T, PC, SA, SB, SC] = [8, 9, 10, 11, 12, 13, 14, 15, 16];
  const ACC = 17, VB0 = ACC + 2 * KR, VB1 = VB0 + 1, VA = VB0 + 2;
  const get = (l: number) => [0x20, ...uleb(l)], set = (l: number) => [0x21, ...uleb(l)];
  const i32 = (v: number) => [0x41, ...sleb(v)];
  const ADD = 0x6a, MUL = 0x6c, SUB = 0x6b, GE_U = 0x4f, EQZ = 0x45;
  const simd = (op: number) => [0xfd, ...uleb(op)];
  const mem = (align: number, offset: number) => [...uleb(align), ...uleb(offset)];
  const loadPair = (off: number) =>
    e === 4
      ? [...get(PB), ...simd(0x5d), ...mem(2, off), ...simd(0x5f)] // v128.load64_zero, f64x2.promote_low_f32x4
      : [...get(PB), ...simd(0x00), ...mem(3, off)]; // v128.load
  const loadSplat = (off: number) =>
    e === 4
      ? [...get(PA), 0x2a, ...mem(2, off), 0xbb, ...simd(0x14)] // f32.load, f64.promote_f32, f64x2.splat
      : [...get(PA), ...simd(0x0a), ...mem(3, off)]; // v128.load64_splat
  const rowAddr = (r: number) => [...get(PC), ...get(SC), ...i32(r), MUL, ADD];
  const code: number[] = [
    ...i32(KR * e),
    ...set(SA),
    ...i32(4 * e),
    ...set(SB),
    ...get(NJ),
    ...i32(8),
    MUL,
    ...set(SC),
    ...i32(0),
    ...set(I),
    0x02,
    0x40,
    0x03,
    0x40, // block, loop (i)
    ...get(I),
    ...get(MI),
    GE_U,
    0x0d,
    1,
    ...i32(0),
    ...set(J),
    0x02,
    0x40,
    0x03,
    0x40, // block, loop (j)
    ...get(J),
    ...get(NJ),
    GE_U,
    0x0d,
    1,
    ...get(C),
    ...get(I),
    ...get(SC),
    MUL,
    ADD,
    ...get(J),
    ...i32(8),
    MUL,
    ADD,
    ...set(PC),
  ];
  for (let r = 0; r < KR; r++) {
    for (let h = 0; h < 2; h++) code.push(...rowAddr(r), ...simd(0x00), ...mem(3, 16 * h), ...set(ACC + 2 * r + h));
  }
  code.push(
    ...get(A),
    ...get(I),
    ...get(LA),
    MUL,
    ...i32(e),
    MUL,
    ADD,
    ...set(PA),
    ...get(B),
    ...get(J),
    ...get(LB),
    MUL,
    ...i32(e),
    MUL,
    ADD,
    ...set(PB),
    ...get(PT),
    ...set(T),
    0x02,
    0x40, // block (t)
    ...get(T),
    EQZ,
    0x0d,
    0,
    0x03,
    0x40, // loop (t)
    ...loadPair(0),
    ...set(VB0),
    ...loadPair(2 * e),
    ...set(VB1),
  );
  for (let r = 0; r < KR; r++) {
    code.push(...loadSplat(r * e), ...set(VA));
    for (let h = 0; h < 2; h++) {
      const acc = ACC + 2 * r + h;
      code.push(...get(acc), ...get(VA), ...get(h ? VB1 : VB0), ...simd(0xf2), ...simd(0xf0), ...set(acc));
    }
  }
  code.push(
    ...get(PA),
    ...get(SA),
    ADD,
    ...set(PA),
    ...get(PB),
    ...get(SB),
    ADD,
    ...set(PB),
    ...get(T),
    ...i32(1),
    SUB,
    0x22,
    ...uleb(T), // local.tee t
    0x0d,
    0, // br_if loop (t)
    0x0b,
    0x0b, // end loop, end block (t)
  );
  for (let r = 0; r < KR; r++) {
    for (let h = 0; h < 2; h++) code.push(...rowAddr(r), ...get(ACC + 2 * r + h), ...simd(0x0b), ...mem(3, 16 * h));
  }
  code.push(
    ...get(J),
    ...i32(4),
    ADD,
    ...set(J),
    0x0c,
    0,
    0x0b,
    0x0b, // j += 4, br loop (j), end, end
    ...get(I),
    ...i32(KR),
    ADD,
    ...set(I),
    0x0c,
    0,
    0x0b,
    0x0b, // i += KR, br loop (i), end, end
    0x0b, // end function
  );
  const locals = [2, ...uleb(9), 0x7f, ...uleb(2 * KR + 3), 0x7b]; // 9 i32 locals, 2 KR + 3 v128 locals
  return [...uleb(locals.length + code.length), ...locals, ...code];
}

function wasmModule(): Uint8Array<ArrayBuffer> {
  return moduleBytes(Array(8).fill(0x7f), [], [{ name: "f64", body: kernelBody(8) }]);
}

type KernelFn = (a: number, b: number, c: number, mi: number, nj: number, pt: number, la: number, lb: number) => void;

/** The SIMD kernels and their scratch memory, or null where WebAssembly SIMD is unavailable. */
const WASM: { f64: KernelFn; mem: WebAssembly.Memory } | null = (() => {
  try {
    const bytes = wasmModule();
    if (!WebAssembly.validate(bytes)) return null;
    const mem = new WebAssembly.Memory({ initial: 20 }); // grown on demand (ensureMemory)
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem } });
    const f64 = inst.exports.f64 as KernelFn;
    // V8 starts WebAssembly in its baseline compiler (Liftoff, ~2x slower here) and tiers a function up to the
    // optimising compiler after enough calls; our kernels run few, long calls, so a few thousand tiny calls
    // (~5 ms) trigger the tier-up now.
    for (let r = 0; r < 3000; r++) {
      f64(0, 4096, 8192, KR, 4, 8, 8, 8);
      f64(0, 4096, 8192, KR, 4, 8, 8, 8);
    }
    return { f64, mem };
  } catch {
    return null;
  }
})();

/** Whether the WebAssembly SIMD kernels are in use (else the scalar JavaScript kernels). */
export const wasmSimd: boolean = WASM !== null;
/**
 * Kernel settings. `useWasm`: set to false to force the scalar JavaScript kernels (tests, benchmarks). `threads`:
 * threads for large products, the calling thread plus `threads - 1` worker threads (1 = no workers). Results do
 * not depend on the thread count: products are cut into the same row chunks whatever the number of threads, and
 * each chunk is computed the same way by whichever thread takes it.
 *
 * The default is 2 (1 on a one-core machine), or the environment variable `INFOTAP_THREADS` (read when permitted;
 * `0` = the machine's cores, at most 8). On an idle 2-core machine two threads build the Gram 1.8x faster than one
 * (BENCHMARKS.md); on a heavily shared one they were slower (docs/bench/si.md): set `INFOTAP_THREADS=1` there.
 */
export const kernels: { useWasm: boolean; threads: number } = {
  useWasm: WASM !== null,
  threads: defaultThreads(),
};

function defaultThreads(): number {
  let v: string | undefined;
  try {
    const d = globalThis.Deno;
    if (d?.permissions.querySync({ name: "env", variable: "INFOTAP_THREADS" }).state === "granted") {
      v = d.env.get("INFOTAP_THREADS"); // never prompts
    }
  } catch { /* not Deno */ }
  const cores = Math.max(1, globalThis.navigator?.hardwareConcurrency ?? 1);
  const n = Number(v ?? Math.min(2, cores));
  if (!Number.isInteger(n) || n < 0) return 1;
  return n === 0 ? Math.max(1, Math.min(8, globalThis.navigator?.hardwareConcurrency ?? 1)) : Math.min(n, 64);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Threads. A large product is cut into chunks of output rows (disjoint writes); the calling thread and the workers
 * take chunks from a shared counter until none is left, then the caller waits (Atomics.wait: the API stays
 * synchronous) for the workers that joined. Inputs and outputs must live in SharedArrayBuffers for workers to see
 * them (else the caller does every chunk alone). A worker that never starts (no permission, no threads) simply
 * never joins: the caller closes the job once it has taken every chunk, and only waits for workers that joined.
 * ------------------------------------------------------------------------------------------------------------- */

/** Work (multiply-adds) below which no worker is asked to help. */
const PARALLEL_MIN_WORK = 2e7;
/** `ctl` fields: next chunk, joined workers (| CLOSED), finished workers, failed workers, chunks done by workers. */
const NEXT = 0, JOINED = 1, DONE = 2, FAILED = 3, BY_WORKERS = 4, CLOSED = 1 << 30;

/** Counters of this thread's parallel products (tests, benchmarks): chunks done by worker threads so far. */
export const threadStats = { workerChunks: 0 };

/** A product job as posted to workers (structured-cloned; typed arrays are views of shared memory). */
export type LinalgJob =
  | {
    kind: "gram";
    out: Float64Array;
    ldo: number;
    r0: number;
    c0: number;
    a: Float32Array[];
    b: Float32Array[];
    lower: boolean;
    chunks: Int32Array;
    useWasm: boolean;
  }
  | {
    kind: "gemm";
    c: Float64Array;
    ldc: number;
    ci: number;
    cj: number;
    a: Float64Array;
    lda: number;
    ai: number;
    b: Float64Array;
    ldb: number;
    bj: number;
    n: number;
    k0: number | { rowPlus: number };
    k1: number;
    alpha: number;
    lower: number | null;
    chunks: Int32Array;
    useWasm: boolean;
  };

const workerPool: { postMessage(v: unknown): void }[] = [];
let workersFailed = false;

/** `count` workers, started on first use (kept, unref'd, for later jobs). */
function workers(count: number): { postMessage(v: unknown): void }[] {
  while (workerPool.length < count && !workersFailed) {
    try {
      const w = new Worker(new URL("./_worker.ts", import.meta.url));
      w.unref(); // idle workers do not keep the process alive
      w.on("error", () => {}); // a worker that fails to start never joins a job
      workerPool.push(w);
    } catch {
      workersFailed = true;
    }
  }
  return workerPool.slice(0, count);
}

const isShared = (x: { buffer: ArrayBufferLike }) => x.buffer instanceof SharedArrayBuffer;

/** A Float64Array of `n` zeros in shared memory (workers can read and write it). */
export function sharedF64(n: number): Float64Array {
  return new Float64Array(new SharedArrayBuffer(Math.max(8, n * 8)), 0, n);
}

/** Runs chunk `c` of `job` (chunk c = rows `chunks[c]..chunks[c + 1]`). Used by the calling thread and the workers. */
export function runLinalgChunk(job: LinalgJob, c: number): void {
  const s = job.chunks[c], e = job.chunks[c + 1];
  const saved = kernels.useWasm;
  kernels.useWasm = job.useWasm;
  try {
    if (job.kind === "gram") {
      const { out, ldo, r0, c0, a, b, lower } = job;
      const nb = lower ? Math.min(b.length, r0 + e - c0) : b.length;
      if (nb > 0) gramF32Serial(out, ldo, r0 + s, c0, a.slice(s, e), nb < b.length ? b.slice(0, nb) : b, lower);
    } else {
      const { k0, lower } = job;
      const n = lower === null ? job.n : Math.min(job.n, e + lower);
      const ks = typeof k0 === "number" ? k0 : (i: number) => i + s + k0.rowPlus;
      gemmNTSerial(
        job.c,
        job.ldc,
        job.ci + s,
        job.cj,
        job.a,
        job.lda,
        job.ai + s,
        job.b,
        job.ldb,
        job.bj,
        e - s,
        n,
        ks,
        job.k1,
        job.alpha,
        lower === null ? null : lower + s,
      );
    }
  } finally {
    kernels.useWasm = saved;
  }
}

/** Rows as their distinct buffers and `[buffer index, byte offset, length]` per row (cheap to post). */
interface PackedRows {
  buffers: ArrayBufferLike[];
  at: Float64Array;
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

/** Worker side of a posted job (rows packed): join unless closed, take chunks, report. */
export function workOnLinalgJob(posted: LinalgJob, ctl: Int32Array): void {
  const job: LinalgJob = posted.kind === "gram"
    ? { ...posted, a: unpackRows(posted.a as unknown as PackedRows), b: unpackRows(posted.b as unknown as PackedRows) }
    : posted;
  for (;;) {
    const v = Atomics.load(ctl, JOINED);
    if (v & CLOSED) return;
    if (Atomics.compareExchange(ctl, JOINED, v, v + 1) === v) break;
  }
  try {
    const nChunks = job.chunks.length - 1;
    for (let c = Atomics.add(ctl, NEXT, 1); c < nChunks; c = Atomics.add(ctl, NEXT, 1)) {
      runLinalgChunk(job, c);
      Atomics.add(ctl, BY_WORKERS, 1);
    }
  } catch {
    Atomics.add(ctl, FAILED, 1);
  } finally {
    Atomics.add(ctl, DONE, 1);
    Atomics.notify(ctl, DONE);
  }
}

/** Row chunk boundaries: `rows` cut into pieces of `size` (the last one shorter). */
function chunkRows(rows: number, size: number): Int32Array {
  const n = Math.max(1, Math.ceil(rows / size));
  return Int32Array.from({ length: n + 1 }, (_, i) => Math.min(rows, i * size));
}

/** Runs every chunk of `job`, on the calling thread and (when `shared` and the work is large) on workers too. */
function runLinalgJob(job: LinalgJob, work: number, shared: boolean): void {
  const nChunks = job.chunks.length - 1;
  const helpers = shared && work >= PARALLEL_MIN_WORK ? workers(Math.min(kernels.threads - 1, nChunks - 1)) : [];
  if (helpers.length === 0) {
    for (let c = 0; c < nChunks; c++) runLinalgChunk(job, c);
    return;
  }
  const ctl = new Int32Array(new SharedArrayBuffer(20));
  // rows go as their few buffers plus offsets: posting thousands of views costs ~0.15 ms each to receive
  const msg = { job: job.kind === "gram" ? { ...job, a: packRows(job.a), b: packRows(job.b) } : job, ctl };
  for (const w of helpers) {
    try {
      w.postMessage(msg);
    } catch { /* a dead worker does not join */ }
  }
  try {
    for (let c = Atomics.add(ctl, NEXT, 1); c < nChunks; c = Atomics.add(ctl, NEXT, 1)) runLinalgChunk(job, c);
  } finally {
    const joined = Atomics.or(ctl, JOINED, CLOSED) & ~CLOSED;
    for (let d = Atomics.load(ctl, DONE); d < joined; d = Atomics.load(ctl, DONE)) {
      try {
        Atomics.wait(ctl, DONE, d, 1000);
      } catch { /* engines that forbid waiting on the main thread: spin */ }
    }
  }
  threadStats.workerChunks += Atomics.load(ctl, BY_WORKERS);
  if (Atomics.load(ctl, FAILED) > 0) {
    throw new Error(`Cannot finish the product as a worker thread failed: current value is ${ctl[FAILED]} failed`);
  }
}

/** Scratch layout: a C tile (TILE x TILE float64), an A tile (TILE x PTILE), then a B panel (all columns x PTILE). */
const C_OFF = 0, A_OFF = TI * TILE * 8, B_OFF = A_OFF + TI * PTILE * 8;

function ensureMemory(w: NonNullable<typeof WASM>, bytes: number): void {
  const have = w.mem.buffer.byteLength;
  if (bytes > have) w.mem.grow(Math.ceil((bytes - have) / 65536));
}

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
  const size = TI * Math.max(1, Math.floor(m / (8 * TI)));
  const work = (lower ? m * Math.min(n, r0 + m - c0) / 2 : m * n) * p;
  const shared = isShared(out) && a.every(isShared) && b.every(isShared);
  const job: LinalgJob = {
    kind: "gram",
    out,
    ldo,
    r0,
    c0,
    a: [...a],
    b: [...b],
    lower,
    chunks: chunkRows(m, size),
    useWasm: kernels.useWasm,
  };
  runLinalgJob(job, work, shared);
}

function gramF32Serial(
  out: Float64Array,
  ldo: number,
  r0: number,
  c0: number,
  a: readonly Float32Array[],
  b: readonly Float32Array[],
  lower: boolean,
): void {
  if (WASM && kernels.useWasm) gramF32Wasm(WASM, out, ldo, r0, c0, a, b, lower);
  else gramF32Js(out, ldo, r0, c0, a, b, lower);
}

function gramF32Wasm(
  w: NonNullable<typeof WASM>,
  out: Float64Array,
  ldo: number,
  r0: number,
  c0: number,
  a: readonly Float32Array[],
  b: readonly Float32Array[],
  lower: boolean,
): void {
  const m = a.length, n = b.length, p = a[0].length;
  const m4 = m - (m % KR), n4 = n - (n % 4);
  ensureMemory(w, B_OFF + n4 * PTILE * 8);
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
        if (lower && c0 + j0 > r0 + i0 + mi - 1) break;
        for (let ii = 0; ii < mi; ii++) {
          const o = (r0 + i0 + ii) * ldo + c0 + j0;
          for (let jj = 0; jj < nj; jj++) f64[co + ii * nj + jj] = out[o + jj];
        }
        w.f64(A_OFF, B_OFF + j0 * pt * 8, C_OFF, mi, nj, pt, pt, pt);
        for (let ii = 0; ii < mi; ii++) {
          const o = (r0 + i0 + ii) * ldo + c0 + j0;
          const jEnd = lower ? Math.min(nj, r0 + i0 + ii - c0 - j0 + 1) : nj;
          for (let jj = 0; jj < jEnd; jj++) out[o + jj] = f64[co + ii * nj + jj];
        }
      }
    }
  }
  if (m4 < m) gramF32Js(out, ldo, r0 + m4, c0, a.slice(m4), b, lower);
  if (n4 < n && m4 > 0) gramF32Js(out, ldo, r0, c0 + n4, a.slice(0, m4), b.slice(n4), lower);
}

function gramF32Js(
  out: Float64Array,
  ldo: number,
  r0: number,
  c0: number,
  a: readonly Float32Array[],
  b: readonly Float32Array[],
  lower: boolean,
): void {
  const m = a.length, n = b.length, p = a[0].length;
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
  if (m <= 0 || n <= 0) return;
  gemmNTRows(c, ldc, ci, cj, a, lda, ai, b, ldb, bj, m, n, k0, k1, alpha, lower);
}

/**
 * {@linkcode gemmNT} with `k0` also as `{rowPlus: d}` (row i starts at `i + d`, for triangular factors; unlike a
 * function it can be posted to workers). Row chunks of 240 rows: the chunking (which sets where each
 * entry's sum is split into parameter tiles) depends on the sizes only, never on the thread count.
 */
function gemmNTRows(
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
  k0: number | ((i: number) => number) | { rowPlus: number },
  k1: number,
  alpha: number,
  lower: number | null,
): void {
  if (m <= 0 || n <= 0) return;
  if (typeof k0 === "function") {
    gemmNTSerial(c, ldc, ci, cj, a, lda, ai, b, ldb, bj, m, n, k0, k1, alpha, lower);
    return;
  }
  const kMin = typeof k0 === "number" ? k0 : k0.rowPlus;
  const work = (lower === null ? m * n : m * Math.min(n, m + lower) / 2) * Math.max(0, k1 - kMin);
  const job: LinalgJob = {
    kind: "gemm",
    c,
    ldc,
    ci,
    cj,
    a,
    lda,
    ai,
    b,
    ldb,
    bj,
    n,
    k0,
    k1,
    alpha,
    lower,
    chunks: chunkRows(m, 2 * TI),
    useWasm: kernels.useWasm,
  };
  runLinalgJob(job, work, isShared(c) && isShared(a) && isShared(b));
}

function gemmNTSerial(
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
  lower: number | null,
): void {
  if (m <= 0 || n <= 0) return;
  if (WASM && kernels.useWasm) gemmNTWasm(WASM, c, ldc, ci, cj, a, lda, ai, b, ldb, bj, m, n, k0, k1, alpha, lower);
  else gemmNTJs(c, ldc, ci, cj, a, lda, ai, b, ldb, bj, m, n, k0, k1, alpha, lower);
}

function gemmNTWasm(
  w: NonNullable<typeof WASM>,
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
  lower: number | null,
): void {
  // the SIMD rows end at a multiple of KR and of 4, so the scalar tail starts a 4-row block (k0's contract)
  const m4 = m - (m % (4 * KR)), n4 = n - (n % 4);
  const starts: number[] = [];
  for (let i0 = 0; i0 < m4; i0 += TI) starts.push(typeof k0 === "number" ? k0 : k0(i0));
  const kMin = Math.min(k1, ...starts);
  ensureMemory(w, B_OFF + n4 * PTILE * 8);
  const f64 = new Float64Array(w.mem.buffer);
  const ao = A_OFF / 8, bo = B_OFF / 8, co = C_OFF / 8;
  for (let p0 = kMin; p0 < k1 && m4 > 0 && n4 > 0; p0 += PTILE) {
    const p1 = Math.min(k1, p0 + PTILE), pt = p1 - p0;
    for (let j0 = 0; j0 < n4; j0 += TILE) {
      const nj = Math.min(TILE, n4 - j0), base = bo + j0 * pt;
      for (let jj = 0; jj < nj; jj++) {
        const r = (bj + j0 + jj) * ldb + p0, o = base + (jj - (jj % 4)) * pt + (jj % 4);
        for (let t = 0; t < pt; t++) f64[o + 4 * t] = b[r + t];
      }
    }
    for (let i0 = 0, it = 0; i0 < m4; i0 += TI, it++) {
      const mi = Math.min(TI, m4 - i0);
      const start = Math.max(p0, starts[it]);
      if (start >= p1) continue;
      const len = p1 - start;
      for (let ii = 0; ii < mi; ii++) {
        const r = (ai + i0 + ii) * lda + start, o = ao + (ii - (ii % KR)) * len + (ii % KR);
        for (let t = 0; t < len; t++) f64[o + KR * t] = a[r + t];
      }
      for (let j0 = 0; j0 < n4; j0 += TILE) {
        const nj = Math.min(TILE, n4 - j0);
        if (lower !== null && j0 > i0 + mi - 1 + lower) break;
        f64.fill(0, co, co + mi * nj);
        w.f64(A_OFF, B_OFF + (j0 * pt + (start - p0) * 4) * 8, C_OFF, mi, nj, len, len, pt);
        for (let ii = 0; ii < mi; ii++) {
          const o = (ci + i0 + ii) * ldc + cj + j0;
          const jEnd = lower !== null ? Math.min(nj, i0 + ii + lower - j0 + 1) : nj;
          for (let jj = 0; jj < jEnd; jj++) c[o + jj] += alpha * f64[co + ii * nj + jj];
        }
      }
    }
  }
  const kShift = (d: number) => (typeof k0 === "number" ? k0 : (i: number) => k0(i + d));
  if (m4 < m) {
    gemmNTJs(
      c,
      ldc,
      ci + m4,
      cj,
      a,
      lda,
      ai + m4,
      b,
      ldb,
      bj,
      m - m4,
      n,
      kShift(m4),
      k1,
      alpha,
      lower === null ? null : lower + m4,
    );
  }
  if (n4 < n && m4 > 0) {
    gemmNTJs(
      c,
      ldc,
      ci,
      cj + n4,
      a,
      lda,
      ai,
      b,
      ldb,
      bj + n4,
      m4,
      n - n4,
      k0,
      k1,
      alpha,
      lower === null ? null : lower - n4,
    );
  }
}

function gemmNTJs(
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
  lower: number | null,
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
    if (m > 0) gemmNTRows(a, n, k1, k1, a, n, k1, a, n, k1, m, m, k0, k1, -1, 0);
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
  const y = sharedF64(n * n);
  for (let j0 = 0; j0 < n; j0 += NB) {
    const j1 = Math.min(n, j0 + NB);
    // rows r < j1 only (Y[r, J] = 0 for r >= j1). C = -Y[r, r:j0] L[J, r:j0]^T, over t >= first row of the block.
    for (let r = 0; r < j1; r++) for (let j = j0; j < j1; j++) y[r * n + j] = r === j ? 1 : 0;
    if (j0 > 0) gemmNTRows(y, n, 0, j0, y, n, 0, l, n, j0, j0, j1 - j0, { rowPlus: 0 }, j0, -1, null);
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
  const l = sharedF64(n * n);
  l.set(a.subarray(0, n * n));
  choleskyInPlace(l, n);
  return inverseFromCholesky(l, n);
}

/** `A^-1 = L^-T L^-1` (full symmetric) from the lower Cholesky factor `L` of `A`. */
export function inverseFromCholesky(l: Float64Array, n: number): Float64Array {
  const y = invLowerTransposed(l, n);
  const m = sharedF64(n * n);
  // M[i][j] = sum_{t >= max(i, j)} Y[i][t] Y[j][t]; lower triangle, then mirrored
  gemmNTRows(m, n, 0, 0, y, n, 0, y, n, 0, n, n, { rowPlus: 0 }, n, 1, 0);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) m[i * n + j] = m[j * n + i];
  return m;
}
