import assert from "node:assert/strict";
import { gpuContext, probeAdapter, releaseGpu } from "../kernels/gpu/context.ts";
import { allPairs, Rng } from "../../tests/_util.ts";
import type { LayerRange } from "../_shared/binning.ts";
import { addPairCounts, codeRows } from "../_shared/pair_counts.ts";
import { thresholds } from "../_shared/gpu_thresholds.ts";
import { GpuPairCounts, pairIndex } from "./gpu_pair_counts.ts";

const adapter = await probeAdapter();
if (!adapter) console.warn("pair_counts_test: SKIPPED, no WebGPU adapter at all on this machine");

/** The CPU path of `mi --mi-estimator binned`: codes, then per-pair scatter-add. */
function cpuPairCounts(batches: Float32Array[], rows: number, n: number, range: LayerRange, bins: number) {
  const pairs = allPairs(n);
  const P = pairs.length / 2;
  const counts = new Uint32Array(P * bins * bins);
  for (const values of batches) {
    const codes = new Uint8Array(n * rows), bad = new Float64Array(n);
    codeRows(values, n, 0, rows, range, bins, codes, 0, bad);
    const dirty = Uint8Array.from(bad, (x) => (x > 0 ? 1 : 0));
    addPairCounts(codes, rows, pairs, 0, P, bins, dirty, counts);
  }
  return counts;
}

Deno.test({
  name: "GPU all-pairs joint histograms equal the CPU's codeRows + addPairCounts (NaN/Inf pairwise, per-neuron ranges)",
  ignore: adapter === null,
  async fn() {
    const rng = new Rng(21);
    const n = 21, rows = 100, bins = 5; // 105 mask rows: two 64-row tiles; 100 rows: a partial word
    const batches = [0, 1].map(() => {
      const v = new Float32Array(rows * n);
      for (let i = 0; i < v.length; i++) v[i] = rng.normal() * (1 + (i % n) / 5);
      for (let r = 0; r < rows; r++) v[r * n + 4] = 0.25; // a constant neuron
      v[3 * n + 2] = NaN;
      v[7 * n + 9] = Infinity;
      v[8 * n + 9] = -2.5; // an exact edge of the global range below
      return v;
    });
    assert.equal(pairIndex(0, 1, n), 0);
    assert.equal(pairIndex(n - 2, n - 1, n), (n * (n - 1)) / 2 - 1);
    // Global range [-2.5, 2.5] (values outside clip) and per-neuron ranges.
    const global: LayerRange = { lo: new Float64Array(n).fill(-2.5), hi: new Float64Array(n).fill(2.5) };
    const per: LayerRange = {
      lo: Float64Array.from({ length: n }, (_, j) => (j === 4 ? 0.25 : -1 - j / 10)),
      hi: Float64Array.from({ length: n }, (_, j) => (j === 4 ? 0.25 : 1 + j / 7)),
    };
    for (const [label, range] of [["global", global], ["per-neuron", per]] as const) {
      const words = label === "global" ? thresholds(-2.5, 2.5, bins) : (() => {
        const w = new Uint32Array(n * (bins + 1));
        for (let j = 0; j < n; j++) thresholds(range.lo[j], range.hi[j], bins, w, j * (bins + 1));
        return w;
      })();
      const want = cpuPairCounts(batches, rows, n, range, bins);
      // 128 x 128 tiles (8 outputs per invocation and side) and 3 words per stage (a partial last stage).
      const big = GpuPairCounts.open(await gpuContext(), n, bins, words, { perInvocation: 8, words: 3 });
      for (const v of batches) await big.update(v, rows);
      assert.deepEqual(await big.read(), want, `${label}, 128 x 128 tiles`);
      big.destroy();
      const pc = GpuPairCounts.open(await gpuContext(), n, bins, words);
      for (const v of batches) await pc.update(v, rows);
      const { counts: got, nonfinite } = await pc.readAll();
      assert.deepEqual([...nonfinite].map((x, j) => [j, x]).filter(([, x]) => x > 0), [[2, 2], [9, 2]]);
      assert.equal(got.length, want.length);
      assert.deepEqual(got, want, label);
      // Read-back zeroes the counts.
      await pc.update(batches[0], rows);
      assert.deepEqual(await pc.read(), cpuPairCounts([batches[0]], rows, n, range, bins));
      pc.destroy();
    }
  },
});

// Last in this module: free the GPU device, so that no device is left for process teardown.
Deno.test("release the WebGPU device", async () => {
  await releaseGpu();
});
