/**
 * The estimators' WebGPU paths against their CPU paths (run on whatever adapter exists; on a machine without a
 * GPU that is llvmpipe, so sizes stay small). Entropy counts must be bit-equal; Fisher sums within the
 * documented float-float bound (gpu/square_sums.ts).
 */
import assert from "node:assert/strict";
import type { Batch } from "../schemas/batch.ts";
import type { OptionValues } from "../pipeline/core/plugin.ts";
import { gpuContext, probeAdapter, releaseGpu } from "../plugins/kernels/gpu/context.ts";
import { assertTablesClose, gradientBatch, Rng, rowsOf, runPlugin } from "./_util.ts";
import { mixedActivations, mixedGradients } from "./_contract_fixtures.ts";
import { entropyPlugin } from "../plugins/entropy/entropy.ts";
import { fisherPlugin } from "../plugins/fisher/fisher.ts";
import { binnedGpuLimits, miPlugin } from "../plugins/mi/mi.ts";
import { serve } from "../pipeline/serve/serve.ts";
import { OPTIONS, readParquetFile, share, stepBatch } from "./_live.ts";

const adapter = await probeAdapter();
if (!adapter) console.warn("backend_test: SKIPPED, no WebGPU adapter at all on this machine");
const ignore = adapter === null;
/** The context part that puts an estimator on the GPU (the shared device, reopened after a release). */
const GPU = async () => ({ gpu: await gpuContext() });

Deno.test({
  name: "entropy on WebGPU equals the CPU bit for bit (global and per-neuron binning, by step, NaN/Inf, clipping)",
  ignore,
  async fn() {
    const batches = mixedActivations(5, 4, 40);
    const cases: { options: OptionValues; byStep: boolean }[] = [
      { options: { bins: 10, binning: "global" }, byStep: false },
      { options: { bins: 13, binning: "neuron" }, byStep: true },
      { options: { bins: 5, binning: "global", range: [-1, 1.5] }, byStep: true }, // clipping
    ];
    for (const c of cases) {
      const cpu = await runPlugin(entropyPlugin, c.options, batches, { byStep: c.byStep });
      const gpu = await runPlugin(entropyPlugin, c.options, batches, { byStep: c.byStep, ...(await GPU()) });
      for (const name of ["neuron_entropy", "layer_summary"]) {
        assert.deepEqual(rowsOf(gpu.results[name]), rowsOf(cpu.results[name]), `${name} ${JSON.stringify(c)}`);
      }
      const s = (gpu.estimator as unknown as { summary(): { nonfinite: number; clipped: number } }).summary();
      assert.ok(s.nonfinite === 3, "the three non-finite values are counted");
      if (c.options.range) assert.ok(s.clipped > 0);
    }
  },
});

Deno.test({
  name: "entropy on WebGPU: state() refuses pending GPU counts, then round-trips after flush()",
  ignore,
  async fn() {
    const batches = mixedActivations(6, 2, 20);
    const options: OptionValues = { bins: 8, binning: "global", range: [-3, 3] };
    const est = entropyPlugin.create(options, { byStep: false, seed: 0, ...(await GPU()) });
    for (const b of batches) await est.update(b);
    assert.throws(() => est.state(), /GPU counts are not read back/);
    await est.flush!();
    const restored = entropyPlugin.restore(est.state(), options, { byStep: false, seed: 0, ...(await GPU()) });
    const cpu = await runPlugin(entropyPlugin, options, batches);
    assert.deepEqual(rowsOf((await restored.result()).neuron_entropy), rowsOf(cpu.results.neuron_entropy));
  },
});

/** Runs `mi` on the CPU and on WebGPU; asserts non-empty, bit-equal `neuron_mi` and `layer_summary` tables. */
async function sameMiTables(c: { options: OptionValues; byStep: boolean }, batches: Batch[]) {
  const cpu = await runPlugin(miPlugin, c.options, batches, { byStep: c.byStep });
  const gpu = await runPlugin(miPlugin, c.options, batches, { byStep: c.byStep, ...(await GPU()) });
  assert.ok(cpu.results.neuron_mi.numRows > 0);
  for (const name of ["neuron_mi", "layer_summary"]) {
    assert.deepEqual(rowsOf(gpu.results[name]), rowsOf(cpu.results[name]), `${name} ${JSON.stringify(c)}`);
  }
  return { cpu, gpu };
}

Deno.test({
  name: "binned mi on WebGPU equals the CPU bit for bit (within / all pairs, global / per-neuron bins, by step)",
  ignore,
  async fn() {
    const batches = mixedActivations(12, 3, 40);
    const base = { "mi-estimator": "binned", "ksg-k": 3, "mi-samples": 100 };
    const cases: { options: OptionValues; byStep: boolean }[] = [
      { options: { ...base, "mi-bins": 6, "mi-binning": "global", "mi-pairs": "within" }, byStep: true },
      { options: { ...base, "mi-bins": 4, "mi-binning": "neuron", "mi-pairs": "all" }, byStep: false },
    ];
    for (const c of cases) {
      const { cpu, gpu } = await sameMiTables(c, batches);
      // The states (joint counts and per-neuron non-finite counts) are equal too.
      assert.deepEqual(gpu.estimator.state(), cpu.estimator.state());
    }
  },
});

/** The plain float32 running sum of squares of a column (what a naive kernel computes). */
function naiveF32(values: Float32Array, width: number, j: number): number {
  let s = 0;
  for (let r = 0; r < values.length / width; r++) s = Math.fround(s + Math.fround(values[r * width + j] ** 2));
  return s;
}

Deno.test({
  name: "fisher diagonal on WebGPU is within 1e-9 relative of the CPU (float64) where plain float32 is not",
  ignore,
  async fn() {
    const rng = new Rng(11);
    const rows = 600, width = 40;
    const values = new Float32Array(rows * width);
    // Magnitudes spread over six decades: float32 running sums lose ~1e-7 relative.
    for (let i = 0; i < values.length; i++) values[i] = rng.normal() * 10 ** (rng.int(6) - 3);
    values[5] = NaN;
    values[width + 7] = -Infinity;
    const batches = [0, 1, 2].map((b) =>
      gradientBatch(200, { "fc.weight": { width, values: values.slice(b * 200 * width, (b + 1) * 200 * width) } })
    );
    const options = { "fisher-rank": 0, "fisher-diag": true };
    const cpu = await runPlugin(fisherPlugin, options, batches);
    const gpu = await runPlugin(fisherPlugin, options, batches, await GPU());
    assertTablesClose(gpu.results.fisher_diag, cpu.results.fisher_diag, 1e-9, 0, "fisher_diag");
    assertTablesClose(gpu.results.fisher, cpu.results.fisher, 1e-9, 0, "fisher");
    const diag = rowsOf(cpu.results.fisher_diag).map((r) => r.value as number);
    let worst = 0;
    for (let j = 8; j < width; j++) {
      worst = Math.max(worst, Math.abs(naiveF32(values, width, j) / rows - diag[j]) / diag[j]);
    }
    assert.ok(worst > 1e-9, `a plain float32 sum would fail this tolerance (worst ${worst})`);
    const nf = rowsOf(gpu.results.fisher).find((r) => r.level === "total")!.nonfinite;
    assert.equal(nf, "2");
  },
});

Deno.test({
  name: "fisher on WebGPU by step with a sketch: same tables as the CPU (sketch stays on the CPU)",
  ignore,
  async fn() {
    const batches = mixedGradients(3, 4, 25);
    const options = { "fisher-rank": 4, "fisher-diag": true, "prior-var": 0.5, beta: 2 };
    const cpu = await runPlugin(fisherPlugin, options, batches, { byStep: true });
    const gpu = await runPlugin(fisherPlugin, options, batches, { byStep: true, ...(await GPU()) });
    for (const name of ["fisher", "fisher_diag", "fisher_spectrum"]) {
      assertTablesClose(gpu.results[name], cpu.results[name], 1e-9, 1e-300, name);
    }
    const est = fisherPlugin.create(options, { byStep: true, seed: 0, ...(await GPU()) });
    await est.update(batches[0]);
    assert.throws(() => est.state(), /GPU sums are not read back/);
    await est.flush!();
    est.state();
  },
});

Deno.test({
  name: "serve on WebGPU (entropy, KSG MI, windows) writes the same part files and tables as serve on the CPU",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const live = async (backend: "cpu" | "webgpu") => {
        const out = `${dir}/${backend}`;
        const server = await serve({
          listen: null,
          out,
          options: { ...OPTIONS, "mi-estimator": "ksg", "mi-samples": 30 },
          estimators: ["entropy", "mi"],
          snapshotEvery: 2,
          backend,
          allowSoftwareGpu: true,
          log: () => {},
        });
        const [a, b] = [server.local(), server.local()];
        for (let s = 0; s < 5; s++) {
          await a.write(stepBatch(s, share(0, 2)));
          await b.write(stepBatch(s, share(1, 2)));
        }
        await a.close();
        await b.close();
        return { run: await server.stop(), out };
      };
      const cpu = await live("cpu");
      const gpu = await live("webgpu");
      assert.equal(gpu.run.backend, "webgpu");
      assert.deepEqual((gpu.run.estimators as { backend: string }[]).map((e) => e.backend), ["webgpu", "webgpu"]);
      assert.equal(cpu.run.backend, "cpu");
      assert.equal(gpu.run.snapshots, 3);
      for (const name of ["neuron_entropy", "neuron_mi", "layer_summary"]) {
        const files = [`${name}.parquet`, ...[0, 1, 2].map((k) => `${name}/part-0000000${k}.parquet`)];
        for (const f of files) {
          const want = rowsOf(await readParquetFile(`${cpu.out}/${f}`));
          assert.ok(want.length > 0, f);
          assert.deepEqual(rowsOf(await readParquetFile(`${gpu.out}/${f}`)), want, f);
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "ksg mi on WebGPU: the CPU's tables bit for bit (NaN/Inf pairs, samples, by step, all pairs)",
  ignore,
  async fn() {
    const batches = mixedActivations(13, 4, 30);
    const base = { "mi-estimator": "ksg", "mi-bins": 4, "mi-binning": "global" };
    const cases: { options: OptionValues; byStep: boolean }[] = [
      { options: { ...base, "ksg-k": 3, "mi-samples": 100, "mi-pairs": "within" }, byStep: true },
      { options: { ...base, "ksg-k": 2, "mi-samples": 200, "mi-pairs": "all" }, byStep: false },
    ];
    for (const c of cases) {
      const { cpu, gpu } = await sameMiTables(c, batches);
      const samples = rowsOf(gpu.results.neuron_mi).map((r) => Number(r.samples));
      assert.ok(Math.min(...samples) < Math.max(...samples), "pairs with non-finite rows use fewer samples");
      assert.deepEqual(gpu.estimator.state(), cpu.estimator.state(), "the state is the reservoir either way");
    }
    assert.equal(miPlugin.gpu!({ "mi-estimator": "ksg", "ksg-k": 3 }), "exact");
    assert.equal(miPlugin.gpu!({ "mi-estimator": "ksg", "ksg-k": 8 }), "exact");
    assert.equal(miPlugin.gpu!({ "mi-estimator": "ksg", "ksg-k": 9 }), null);
  },
});

Deno.test({
  name:
    "binned mi on WebGPU by step under a small GPU budget (older steps read back) or too big for a binding (CPU): same tables",
  ignore,
  async fn() {
    const batches = mixedActivations(12, 3, 40);
    const options = {
      "mi-estimator": "binned",
      "ksg-k": 3,
      "mi-samples": 100,
      "mi-bins": 6,
      "mi-binning": "global",
      "mi-pairs": "within",
    };
    const cpu = await runPlugin(miPlugin, options, batches, { byStep: true });
    assert.ok(new Set(rowsOf(cpu.results.neuron_mi).map((r) => r.step)).size >= 3, "several steps");
    const saved = { ...binnedGpuLimits };
    try {
      binnedGpuLimits.budget = 1; // one step's counters on the GPU at a time: every new step evicts the last
      const evicting = await runPlugin(miPlugin, options, batches, { byStep: true, ...(await GPU()) });
      binnedGpuLimits.budget = saved.budget;
      binnedGpuLimits.bindingLimit = 1024; // every layer's counts are larger: counted on the CPU
      const fallback = await runPlugin(miPlugin, options, batches, { byStep: true, ...(await GPU()) });
      for (const name of ["neuron_mi", "layer_summary"]) {
        assert.deepEqual(rowsOf(evicting.results[name]), rowsOf(cpu.results[name]), `${name}, evicting`);
        assert.deepEqual(rowsOf(fallback.results[name]), rowsOf(cpu.results[name]), `${name}, fallback`);
      }
      const summary = (e: unknown) => (e as { summary(): { gpu_fallback?: string } | null }).summary();
      assert.equal(summary(evicting.estimator), null);
      assert.match(summary(fallback.estimator)!.gpu_fallback!, /exceed the GPU's storage binding size/);
    } finally {
      Object.assign(binnedGpuLimits, saved);
    }
  },
});

// Last in this module: free the GPU device, so that no device is left for process teardown.
Deno.test("release the WebGPU device", async () => {
  await releaseGpu();
});
