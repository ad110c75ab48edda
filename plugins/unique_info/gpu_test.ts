/**
 * `unique-info` on WebGPU (float32 Gram products and sweep inversion, plugins/unique_info/gpu_kernel.ts) against the float64
 * CPU path and against leave-one-out retraining of a linear ridge model (docs/science.md section 3), at small sizes
 * (llvmpipe). Tolerances: docs/bench/webgpu_si.md.
 */
import assert from "node:assert/strict";
import { gpuContext, probeAdapter, releaseGpu } from "../kernels/gpu/context.ts";
import type { Estimator } from "../../pipeline/core/plugin.ts";
import { invertSpd } from "../kernels/linalg/mod.ts";
import { Rng, rowsOf, runPlugin } from "../../tests/_util.ts";
import { batchesOf, looReference, maxRel, problem } from "../../tests/_si_problem.ts";
import { uniqueInfoPlugin } from "./unique_info.ts";
import { GpuSiKernel } from "./gpu_kernel.ts";

const adapter = await probeAdapter();
if (!adapter) console.warn("gpu/unique_info_test: SKIPPED, no WebGPU adapter at all on this machine");
/** The context part that puts an estimator on the GPU (the shared device, reopened after a release). */
const GPU = async () => ({ gpu: await gpuContext() });

function column(results: Awaited<ReturnType<typeof runPlugin>>["results"], name: string): number[] {
  return rowsOf(results.unique_information).map((r) => r[name] as number);
}

Deno.test({
  name: "GPU sweep inversion equals the float64 inverse within float32 rounding (several pivot blocks, partial last)",
  ignore: adapter === null,
  async fn() {
    const rng = new Rng(3);
    const P = 50, N = 45; // pivot blocks of one tile: 16, 16 and 13 rows on llvmpipe
    const rows = Float32Array.from({ length: N * P }, () => rng.normal() / Math.sqrt(P));
    const g = GpuSiKernel.open(await gpuContext(), P, { blockTiles: 1 });
    try {
      await g.append(rows.subarray(0, 20 * P).slice(), new Float32Array(0));
      await g.append(rows.subarray(20 * P).slice(), rows.subarray(0, 3 * P).slice());
      const order = Int32Array.from({ length: N }, (_, i) => (i * 7) % N); // a permutation
      const pairs = new Int32Array(2 * N * N);
      for (let x = 0; x < N; x++) {
        for (let y = 0; y < N; y++) [pairs[2 * (x * N + y)], pairs[2 * (x * N + y) + 1]] = [x, y];
      }
      const lambda = 0.5;
      const out = await g.solve({
        lambda,
        trainOrder: order,
        testOrder: Int32Array.of(2, 0, 1),
        residual: Float64Array.from({ length: N }, (_, i) => i % 3 - 1),
        pairs,
      });
      // float64 reference in position order
      const A = new Float64Array(N * N);
      for (let x = 0; x < N; x++) {
        for (let y = 0; y < N; y++) {
          let s = 0;
          for (let t = 0; t < P; t++) s += rows[order[x] * P + t] * rows[order[y] * P + t];
          A[x * N + y] = s + (x === y ? lambda : 0);
        }
      }
      const M = invertSpd(A, N);
      let errM = 0, errM2 = 0, errA = 0, errQ = 0;
      const norm = Math.max(...M.map(Math.abs));
      for (let x = 0; x < N; x++) {
        let a = 0;
        for (let y = 0; y < N; y++) {
          errM = Math.max(errM, Math.abs(out.m[x * N + y] - M[x * N + y]) / norm);
          let m2 = 0;
          for (let t = 0; t < N; t++) m2 += M[x * N + t] * M[y * N + t];
          errM2 = Math.max(errM2, Math.abs(out.m2[x * N + y] - m2) / (norm * norm));
          a += M[x * N + y] * (y % 3 - 1);
        }
        errA = Math.max(errA, Math.abs(out.a[x] - a) / norm);
      }
      const testOrder = [2, 0, 1];
      for (let t = 0; t < 3; t++) {
        for (let y = 0; y < N; y++) {
          let q = 0;
          for (let x = 0; x < N; x++) {
            let kk = 0;
            for (let s = 0; s < P; s++) kk += rows[testOrder[t] * P + s] * rows[order[x] * P + s];
            q += kk * M[x * N + y];
          }
          errQ = Math.max(errQ, Math.abs(out.q[t * N + y] - q) / norm);
        }
      }
      console.log("sweep errors (M, M^2, a, Q)", [errM, errM2, errA, errQ]);
      assert.ok(errM < 1e-5 && errM2 < 1e-5 && errA < 1e-5 && errQ < 1e-5, `errors ${[errM, errM2, errA, errQ]}`);
      // a float32 rounding is visible (the path really is float32), far below the tolerance
      assert.ok(errM > 0);
    } finally {
      g.destroy();
    }
  },
});

Deno.test({
  name: "unique-info on WebGPU equals the float64 CPU path within 1e-4 (n = 60, k = 2, P = 300, 12 test samples)",
  ignore: adapter === null,
  async fn() {
    const pr = problem(11, 60, 12, 2, 300);
    const batches = batchesOf(pr, 25); // many strips and K_test blocks
    const opts = { "si-lambda": 0.2 };
    const cpu = (await runPlugin(uniqueInfoPlugin, opts, batches)).results;
    const { estimator, results: gpu } = await runPlugin(uniqueInfoPlugin, opts, batches, await GPU());
    assert.deepEqual(column(gpu, "sample_id"), column(cpu, "sample_id"));
    const ew = maxRel(column(gpu, "si_weights"), column(cpu, "si_weights"));
    const ef = maxRel(column(gpu, "si_function"), column(cpu, "si_function"));
    console.log(`max relative error vs CPU: si_weights ${ew.toExponential(2)}, si_function ${ef.toExponential(2)}`);
    assert.ok(ew < 1e-4 && ef < 1e-4, `${ew} ${ef}`);
    assert.ok(ew > 0, "the GPU path ran (float32 differs from float64)");
    assert.deepEqual(
      Object.keys((estimator as unknown as { gpuTimes: Record<string, number> }).gpuTimes).includes("inverse"),
      true,
    );
    // same table shape and metadata
    assert.deepEqual(
      gpu.unique_information.schema.fields.map((f) => `${f.name}:${f.type}`),
      cpu.unique_information.schema.fields.map((f) => `${f.name}:${f.type}`),
    );
    assert.deepEqual(gpu.unique_information.schema.metadata, cpu.unique_information.schema.metadata);
  },
});

Deno.test({
  name: "unique-info on WebGPU equals leave-one-out retraining of a linear ridge model within 1e-4 (k = 3)",
  ignore: adapter === null,
  async fn() {
    const pr = problem(7, 9, 4, 3, 40);
    const lambda = 0.3;
    // truth: retrain without each sample in parameter space (float64 normal equations)
    const { w, f } = looReference(pr, lambda);
    const { results } = await runPlugin(uniqueInfoPlugin, { "si-lambda": lambda }, batchesOf(pr, 7), await GPU());
    const ew = maxRel(column(results, "si_weights"), w), ef = maxRel(column(results, "si_function"), f);
    assert.ok(ew < 1e-4 && ef < 1e-4, `${ew} ${ef}`);
  },
});

Deno.test({
  name: "unique-info on WebGPU: no test rows gives null si_function; merge and state match one pass",
  ignore: adapter === null,
  async fn() {
    const pr = problem(2, 20, 0, 1, 30);
    const batches = batchesOf(pr, 6);
    const opts = { "si-lambda": 1 };
    const { results: one } = await runPlugin(uniqueInfoPlugin, opts, batches, await GPU());
    assert.ok(column(one, "si_function").every((v) => v === null));
    assert.ok(column(one, "rank_function").every((v) => v === null));
    // merge of two GPU estimators, then state: the CPU path's exact state
    const ctx = { byStep: false, seed: 0, ...(await GPU()) };
    const a = uniqueInfoPlugin.create(opts, ctx), b = uniqueInfoPlugin.create(opts, ctx);
    for (const x of batches.slice(0, 2)) await a.update(x);
    for (const x of batches.slice(2)) await b.update(x);
    a.merge(b);
    const merged = await a.result();
    assert.ok(maxRel(column(merged, "si_weights"), column(one, "si_weights")) < 1e-4);
    const cpu = uniqueInfoPlugin.create(opts, { byStep: false, seed: 0 });
    for (const x of batches) await cpu.update(x);
    assert.deepEqual(a.state(), cpu.state());
    // restored on the GPU: rows go up again
    const r: Estimator = uniqueInfoPlugin.restore(a.state(), opts, ctx);
    assert.ok(maxRel(column(await r.result(), "si_weights"), column(one, "si_weights")) < 1e-4);
  },
});

Deno.test({
  name: "unique-info on WebGPU: a pivot that is not positive definite in float32 gives the CPU path's error",
  ignore: adapter === null,
  async fn() {
    // sample 103's Jacobian is zero and lambda underflows float32: its pivot is 0 on the GPU
    const pr = problem(4, 6, 2, 1, 12);
    pr.j.fill(0, 3 * pr.p, 4 * pr.p);
    await assert.rejects(
      runPlugin(uniqueInfoPlugin, { "si-lambda": 1e-300 }, batchesOf(pr, 5), await GPU()),
      /^Error: Cannot factorise Theta \+ lambda I \(lambda 1e-300\): Cannot factorise the matrix as it is not positive definite at pivot 3: current value is 0$/,
    );
  },
});

// Last in this module: free the GPU device, so that no device is left for process teardown.
Deno.test("release the WebGPU device", async () => {
  await releaseGpu();
});
