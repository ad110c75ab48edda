import assert from "node:assert/strict";
import { bootstrapMean, bootstrapPairMean } from "./bootstrap.ts";
import { Rng } from "../../tests/_util.ts";

Deno.test("bootstrapMean: seeded, and close to the normal interval mean +- 1.96 sd / sqrt(n) for a large sample", () => {
  const rng = new Rng(2);
  const v = Array.from({ length: 400 }, () => 3 + 2 * rng.normal());
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1));
  const half = 1.96 * sd / Math.sqrt(v.length);
  const [lo, hi] = bootstrapMean(v, 2000, 7);
  assert.ok(Math.abs(lo - (mean - half)) < 0.1 * half && Math.abs(hi - (mean + half)) < 0.1 * half, `${lo} ${hi}`);
  assert.deepEqual(bootstrapMean(v, 2000, 7), [lo, hi]);
  assert.notDeepEqual(bootstrapMean(v, 2000, 8), [lo, hi]);
});

Deno.test("bootstrapPairMean: for pair values u_i + u_j, about the interval of 2 mean(u) under neuron resampling", () => {
  const rng = new Rng(4), n = 80;
  const u = Array.from({ length: n }, () => rng.normal());
  const [lo, hi] = bootstrapPairMean(n, (i, j) => u[i] + u[j], 1000, 1);
  const [lo2, hi2] = bootstrapMean(u.map((x) => 2 * x), 1000, 1);
  const mid = (lo + hi) / 2, mid2 = (lo2 + hi2) / 2;
  assert.ok(Math.abs((hi - lo) / (hi2 - lo2) - 1) < 0.15, `widths ${hi - lo} vs ${hi2 - lo2}`);
  assert.ok(Math.abs(mid - mid2) < 0.15 * (hi2 - lo2), `${mid} vs ${mid2}`);
  // Naive resampling of the n(n-1)/2 pairs as if independent gives a much narrower interval.
  const pairs: number[] = [];
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) pairs.push(u[i] + u[j]);
  const [plo, phi] = bootstrapMean(pairs, 1000, 1);
  assert.ok(phi - plo < 0.3 * (hi - lo));
  assert.deepEqual(bootstrapPairMean(3, () => NaN, 10, 0).map(Number.isNaN), [true, true]);
});
