/**
 * Shared numeric machinery of the estimators: the WebAssembly emitter table (./wasm.ts), the thread policy and
 * runner (./threads.ts), the GPU context (./gpu/context.ts) and dense float64 linear algebra (./linalg/mod.ts).
 * Nothing here knows an estimator.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gram, matrix, resolveThreads } from "./mod.ts";
 * const out = new Float64Array(1);
 * gram(matrix(out, 1), [new Float32Array([3, 4])], [new Float32Array([3, 4])], { threads: resolveThreads(1) });
 * assert.equal(out[0], 25);
 * ```
 *
 * @module
 */
export * from "./linalg/mod.ts";
export {
  DEFAULT_THREAD_CAP,
  defaultThreads,
  MAX_THREADS,
  resolveThreads,
  runChunks,
  serveThreadJobs,
  type ThreadJob,
  threadStats,
} from "./threads.ts";
export {
  type AdapterFacts,
  adapterFacts,
  describeAdapter,
  type GpuContext,
  gpuContext,
  isSoftwareAdapter,
  probeAdapter,
  releaseGpu,
} from "./gpu/context.ts";
