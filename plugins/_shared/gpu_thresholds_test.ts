import assert from "node:assert/strict";
import { binRows } from "./binning.ts";
import { Rng } from "../../tests/_util.ts";
import { binValue, fromKey, keyOf, NEVER, orderedKey, thresholds } from "./gpu_thresholds.ts";

/** The CPU's bins of `xs` under one range, by `binRows` itself (one row, one neuron per value). */
function cpuBins(xs: Float32Array, lo: number, hi: number, bins: number, uniform: boolean) {
  const n = xs.length + (uniform ? 0 : 1);
  const values = new Float32Array(n);
  values.set(xs);
  const los = new Float64Array(n).fill(lo), his = new Float64Array(n).fill(hi);
  if (!uniform) [los[n - 1], his[n - 1]] = [0, 1]; // a different range forces the per-neuron path
  const counts = new Uint32Array(n * bins), nonfinite = new Float64Array(n), clipped = new Float64Array(n);
  binRows(values, n, 0, 1, { lo: los, hi: his }, bins, counts, nonfinite, clipped);
  return xs.map((_, j) => {
    let k = -1;
    for (let b = 0; b < bins; b++) if (counts[j * bins + b]) k = b;
    return nonfinite[j] ? -1 : k + (clipped[j] ? bins : 0);
  });
}

/** What the GPU kernel computes from the thresholds (integer comparisons only). */
function gpuBin(x: number, w: Uint32Array, bins: number): number {
  const key = keyOf(x);
  let k = 0;
  for (let m = 1; m < bins; m++) if (w[1 + m] <= key) k = m;
  const clipped = key < w[0] || key >= w[1];
  return k + (clipped ? bins : 0);
}

/** Values around every edge of the range: exact edges, their float32 neighbours, and random ones. */
function probe(lo: number, hi: number, bins: number, rng: Rng): Float32Array {
  const out: number[] = [];
  for (let k = 0; k <= bins; k++) {
    const e = Math.fround(lo + ((hi - lo) * k) / bins);
    const key = keyOf(e);
    for (let d = -3; d <= 3; d++) out.push(fromKey(key + d));
  }
  for (let i = 0; i < 300; i++) out.push(lo + (hi - lo) * (rng.next() * 1.4 - 0.2));
  out.push(0, -0, 1e-30, -1e-30, 3e38, -3e38, Math.fround(lo), Math.fround(hi));
  return Float32Array.from(out);
}

const CASES: [number, number, number][] = [
  [-1, 1, 100], // global-style range
  [-3.3, 2.7, 7], // a user range (not float32 edges)
  [0.1, 0.30000001, 16], // a narrow per-neuron range
  [-2.5, 1e-3, 3],
  [0, 1, 1],
  [1e-7, 2e-7, 10],
  [-1024, 4096, 256],
];

Deno.test("binValue equals binRows value by value (uniform and per-neuron paths)", () => {
  const rng = new Rng(7);
  for (const [lo, hi, bins] of CASES) {
    const xs = probe(lo, hi, bins, rng);
    for (const uniform of [true, false]) {
      const cpu = cpuBins(xs, lo, hi, bins, uniform);
      xs.forEach((x, i) => assert.equal(binValue(x, lo, hi, bins), cpu[i], `x=${x} range [${lo}, ${hi}] B=${bins}`));
    }
  }
});

Deno.test("thresholds reproduce the CPU bin and clip flag of every probed value", () => {
  const rng = new Rng(8);
  for (const [lo, hi, bins] of CASES) {
    const w = thresholds(lo, hi, bins);
    const xs = probe(lo, hi, bins, rng);
    const cpu = cpuBins(xs, lo, hi, bins, true);
    xs.forEach((x, i) => assert.equal(gpuBin(x, w, bins), cpu[i], `x=${x} range [${lo}, ${hi}] B=${bins}`));
    // Each threshold is tight: its float32 predecessor is in a lower bin.
    for (let k = 1; k < bins; k++) {
      if (w[1 + k] === NEVER) continue;
      assert.ok(binValue(fromKey(w[1 + k]), lo, hi, bins) % bins >= k);
      assert.ok(binValue(fromKey(w[1 + k] - 1), lo, hi, bins) % bins < k);
    }
  }
});

Deno.test("a constant neuron (lo == hi) puts every finite value in bin 0, unclipped, as the CPU does", () => {
  const w = thresholds(2.5, 2.5, 4);
  const xs = Float32Array.from([2.5, -7, 1e30, 0, 3]);
  const cpu = cpuBins(xs, 2.5, 2.5, 4, false);
  assert.deepEqual([...cpu], [0, 0, 0, 0, 0]);
  xs.forEach((x) => assert.equal(gpuBin(x, w, 4), 0));
  assert.equal(w[2], NEVER);
});

Deno.test("orderedKey orders float32 values and merges -0 with +0", () => {
  const xs = [-3e38, -1, -1e-40, -0, 0, 1e-45, 1, 3e38];
  const keys = xs.map(keyOf);
  for (let i = 1; i < keys.length; i++) assert.ok(keys[i - 1] <= keys[i]);
  assert.equal(keyOf(-0), keyOf(0));
  assert.equal(orderedKey(0x80000000), orderedKey(0));
  assert.equal(fromKey(keyOf(1.5)), 1.5);
});
