import assert from "node:assert/strict";
import type { Batch } from "../../schemas/batch.ts";
import { gpuContext, probeAdapter, releaseGpu } from "../kernels/gpu/context.ts";
import { Rng } from "../../tests/_util.ts";
import { binRows, type LayerRange } from "../_shared/binning.ts";
import { GpuHistograms, histogramShader } from "./gpu_histogram.ts";

const adapter = await probeAdapter();
if (!adapter) console.warn("histogram_test: SKIPPED, no WebGPU adapter at all on this machine");
const ignore = adapter === null;

/** A column with NaN, +-Inf, -0, exact range edges and values outside a user range. */
function columnValues(rows: number, width: number, rng: Rng, lo: number, hi: number): Float32Array {
  const v = new Float32Array(rows * width);
  for (let i = 0; i < v.length; i++) v[i] = lo + (hi - lo) * (rng.next() * 1.3 - 0.15);
  const specials = [NaN, Infinity, -Infinity, -0, lo, hi, Math.fround(lo + (hi - lo) / 2)];
  for (let i = 0; i < specials.length * 3; i++) v[rng.int(v.length)] = specials[i % specials.length];
  return v;
}

function cpuCounts(values: Float32Array, width: number, r0: number, r1: number, range: LayerRange, bins: number) {
  const counts = new Uint32Array(width * bins), nonfinite = new Float64Array(width), clipped = new Float64Array(width);
  binRows(values, width, r0, r1, range, bins, counts, nonfinite, clipped);
  return { counts, nonfinite: Uint32Array.from(nonfinite), clipped: Uint32Array.from(clipped) };
}

async function gpuRun(
  bins: number,
  columns: { name: string; width: number; values: Float32Array; range: LayerRange }[],
  rows: number,
  runs: { key: string; r0: number; r1: number }[],
  batches = 1,
) {
  const got = new Map<string, { counts: Uint32Array; nonfinite: Uint32Array; clipped: Uint32Array }>();
  const h = GpuHistograms.open(await gpuContext(), bins, (key, layer, counts, nonfinite, clipped) => {
    const id = `${key}/${layer}`;
    const prev = got.get(id);
    if (!prev) got.set(id, { counts: counts.slice(), nonfinite: nonfinite.slice(), clipped: clipped.slice() });
    else {
      counts.forEach((c, i) => (prev.counts[i] += c));
      nonfinite.forEach((c, i) => (prev.nonfinite[i] += c));
      clipped.forEach((c, i) => (prev.clipped[i] += c));
    }
  });
  const batch = { numRows: rows, columns } as unknown as Batch;
  for (let b = 0; b < batches; b++) {
    await h.update(batch, runs, (name) => columns.find((c) => c.name === name)!.range);
    if (b === 0 && batches > 2) await h.flush(); // a read-back between batches must not lose or double counts
  }
  assert.ok(h.pending);
  await h.flush();
  assert.ok(!h.pending);
  h.destroy();
  return { got, tile: h.tile };
}

Deno.test({
  name: "GPU histogram counts equal binRows bit for bit (global range, per-neuron ranges, steps, specials)",
  ignore,
  async fn() {
    const rng = new Rng(3);
    const rows = 300;
    const a = columnValues(rows, 5, rng, -2, 3);
    const wide = columnValues(rows, 70, rng, -1, 1); // more neurons than one tile
    const perLo = Float64Array.from({ length: 4 }, (_, j) => (j === 3 ? 0.5 : -j - 0.3));
    const perHi = Float64Array.from({ length: 4 }, (_, j) => (j === 3 ? 0.5 : j + 0.7));
    const c = columnValues(rows, 4, rng, -1, 1);
    for (let i = 0; i < rows; i++) c[i * 4 + 3] = 0.5; // a constant neuron
    const global: LayerRange = { lo: new Float64Array(5).fill(-1.75), hi: new Float64Array(5).fill(2.25) };
    const columns = [
      { name: "a", width: 5, values: a, range: global },
      {
        name: "wide",
        width: 70,
        values: wide,
        range: { lo: new Float64Array(70).fill(-1), hi: new Float64Array(70).fill(1) },
      },
      { name: "c", width: 4, values: c, range: { lo: perLo, hi: perHi } },
    ];
    const runs = [{ key: "0", r0: 0, r1: 37 }, { key: "1", r0: 37, r1: 300 }];
    for (const bins of [1, 7, 30, 100]) { // tiles of 64, 28, 8, 2 neurons on llvmpipe
      const { got } = await gpuRun(bins, columns, rows, runs, 3);
      for (const col of columns) {
        for (const run of runs) {
          const want = cpuCounts(col.values, col.width, run.r0, run.r1, col.range, bins);
          const g = got.get(`${run.key}/${col.name}`)!;
          const times = (u: Uint32Array) => u.map((x) => 3 * x);
          assert.deepEqual(g.counts, times(want.counts), `counts ${col.name} step ${run.key} B=${bins}`);
          assert.deepEqual(g.nonfinite, times(want.nonfinite), `nonfinite ${col.name} B=${bins}`);
          assert.deepEqual(g.clipped, times(want.clipped), `clipped ${col.name} B=${bins}`);
        }
      }
    }
    await releaseGpu();
  },
});

Deno.test({
  name: "GPU histogram with more bins than workgroup memory holds (global-atomics variant) equals binRows",
  ignore,
  async fn() {
    const rng = new Rng(4);
    // More bins (plus the two clip counters) than the adapter's workgroup memory holds in words.
    const rows = 64, width = 3, bins = (await gpuContext()).limits.maxComputeWorkgroupStorageSize / 4;
    const values = columnValues(rows, width, rng, 0, 1);
    const range: LayerRange = { lo: new Float64Array(width), hi: new Float64Array(width).fill(1) };
    const { got, tile } = await gpuRun(bins, [{ name: "x", width, values, range }], rows, [{
      key: "all",
      r0: 0,
      r1: rows,
    }]);
    assert.equal(tile, 0);
    const want = cpuCounts(values, width, 0, rows, range, bins);
    assert.deepEqual(got.get("all/x")!.counts, want.counts);
    assert.deepEqual(got.get("all/x")!.nonfinite, want.nonfinite);
    await releaseGpu();
  },
});

Deno.test("the histogram shader is generated for both variants", () => {
  assert.match(histogramShader(16, 8), /var<workgroup> loc: array<atomic<u32>, 144>/);
  assert.doesNotMatch(histogramShader(16, 0), /var<workgroup>/);
});

// Last in this module: free the GPU device, so that no device is left for process teardown.
Deno.test("release the WebGPU device", async () => {
  await releaseGpu();
});
