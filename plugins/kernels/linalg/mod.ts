/**
 * Dense float64 linear algebra for kernel methods, on {@linkcode Matrix} views: Gram products of float32 rows
 * accumulated in float64 ({@linkcode gram}), `C += alpha A B^T` ({@linkcode gemm}), a blocked Cholesky
 * factorisation, solves and the inverse of a symmetric positive-definite matrix (./cholesky.ts). The heavy steps are
 * matrix products run by a WebAssembly SIMD micro-kernel (5 x 4 register block, float64 lanes) assembled at load
 * time, with a scalar JavaScript 4 x 4 kernel as the fallback (`kernels.useWasm = false` forces it); large products
 * on SharedArrayBuffers ({@linkcode sharedF64}) are shared with worker threads (plugins/kernels/threads.ts: the
 * `threads` option, default the thread policy) and give the same bits whatever the thread count.
 *
 * Why not a library: no npm package does float64 BLAS-3 in Deno faster (the `@stdlib/blas` routines are scalar
 * JavaScript), and tfjs (`@tensorflow/tfjs-backend-wasm` matMul) works in float32 only: measured in
 * `scripts/bench/si.ts` it was 4-13x slower than this Gram and its float32 accumulation errs by ~1e-6 relative over
 * P = 20,000, which breaks the 1e-8 agreement with leave-one-out retraining.
 *
 * Determinism: each entry is one float64 accumulator summed in ascending order whatever the blocking and the
 * kernel (the SIMD lanes run along columns, never along the sum); JavaScript and WebAssembly have no implicit fused
 * multiply-add, so this holds on every engine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gram, invertSpd, matrix } from "./mod.ts";
 * const rows = [new Float32Array([2, 0]), new Float32Array([1, 1])];
 * const g = new Float64Array(4);
 * gram(matrix(g, 2), rows, rows); // [[4, 2], [2, 2]]
 * const inv = invertSpd(g, 2); // [[2, -2], [-2, 4]] / 4
 * assert.deepEqual([...inv], [0.5, -0.5, -0.5, 1]);
 * ```
 *
 * @module
 */
export { at, block, isShared, type Matrix, matrix, sharedF64, transpose } from "./matrix.ts";
export { gemm, type GemmOptions } from "./gemm.ts";
export { gram, type GramOptions } from "./gram.ts";
export {
  choleskyInPlace,
  type CholeskyOptions,
  choleskySolve,
  inverseFromCholesky,
  invertSpd,
  invLowerTransposed,
  NotPositiveDefiniteError,
} from "./cholesky.ts";
export { kernels, wasmSimd } from "./_simd.ts";
