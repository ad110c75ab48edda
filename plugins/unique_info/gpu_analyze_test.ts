/**
 * `analyze --backend webgpu` with `unique-info` (kept out of scripts/gpu/tests.ts: analyze() pulls in parquet-wasm,
 * which does not bundle).
 */
import assert from "node:assert/strict";
import { probeAdapter, releaseGpu } from "../kernels/gpu/context.ts";
import { writeBatches } from "../../pipeline/producers/produce.ts";
import { analyze } from "../../pipeline/analyze/run.ts";
import { rowsOf } from "../../tests/_util.ts";
import { batchesOf, maxRel, problem, recordBatchOf } from "../../tests/_si_problem.ts";

const adapter = await probeAdapter();

Deno.test({
  name:
    "analyze --backend webgpu runs unique-info on the GPU (run.json) within 1e-4 of --backend cpu; auto stays on CPU",
  ignore: adapter === null,
  async fn() {
    const pr = problem(8, 12, 3, 2, 20);
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/jac.arrows`;
      await writeBatches(
        path,
        batchesOf(pr, 9).map(recordBatchOf),
      );
      const common = { inputs: [path], options: { "si-lambda": 0.2 }, estimators: ["unique-info"] };
      const cpu = await analyze({ ...common, backend: "cpu", out: `${dir}/cpu` });
      const gpu = await analyze({ ...common, backend: "webgpu", allowSoftwareGpu: true, out: `${dir}/gpu` });
      const run = JSON.parse(await Deno.readTextFile(`${dir}/gpu/run.json`));
      assert.deepEqual(run.estimators.map((e: { backend: string }) => e.backend), ["webgpu"]);
      const w = (r: typeof cpu) => rowsOf(r.tables.unique_information).map((x) => x.si_weights as number);
      assert.ok(maxRel(w(gpu), w(cpu)) < 1e-4);
      assert.ok(maxRel(w(gpu), w(cpu)) > 0);
      // an approximate path is never taken under auto
      const auto = await analyze({ ...common, backend: "auto", allowSoftwareGpu: true, out: `${dir}/auto` });
      assert.deepEqual(w(auto), w(cpu));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// Last in this module: free the GPU device, so that no device is left for process teardown.
Deno.test("release the WebGPU device", async () => {
  await releaseGpu();
});
