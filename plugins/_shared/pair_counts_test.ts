/**
 * The binned-MI joint counts: the four-rows-a-word loop of `addPairCounts` against a plain count of the code pairs
 * written here (every bin count 1..20, row counts not a multiple of 4, padded strides, non-finite codes), and the
 * `mi --mi-estimator binned` estimator over more rows than one block (8,192), by step, against direct counts.
 */
import assert from "node:assert/strict";
import { addPairCounts, codeRows, mutualInformation, NONFINITE } from "./pair_counts.ts";
import { miPlugin } from "../mi/mi.ts";
import { activationBatch, Rng, runPlugin } from "../../tests/_util.ts";

Deno.test("addPairCounts: the packed loop counts what a plain loop counts (bins 1..20, odd rows, strides, non-finite)", () => {
  const rng = new Rng(1);
  for (const bins of [1, 2, 3, 7, 15, 16, 17, 20]) {
    for (const rows of [1, 3, 4, 13, 64, 101]) {
      const N = 5, stride = Math.ceil(rows / 4) * 4 + (rows % 2 ? 4 : 0);
      const codes = new Uint8Array(N * stride);
      for (let i = 0; i < codes.length; i++) codes[i] = rng.int(bins);
      const dirty = new Uint8Array(N);
      if (rows > 3) (codes[3 * stride + 2] = NONFINITE, dirty[3] = 1);
      const pairs = new Int32Array([0, 1, 1, 2, 0, 4, 2, 3, 3, 4, 4, 4]);
      const P = pairs.length / 2, B2 = bins * bins;
      const got = new Uint32Array(P * B2).fill(7); // added to, not overwritten
      addPairCounts(codes, rows, pairs, 0, P, bins, dirty, got, stride);
      const want = new Uint32Array(P * B2).fill(7);
      for (let p = 0; p < P; p++) {
        for (let r = 0; r < rows; r++) {
          const x = codes[pairs[2 * p] * stride + r], y = codes[pairs[2 * p + 1] * stride + r];
          if (x !== NONFINITE && y !== NONFINITE) want[p * B2 + x * bins + y]++;
        }
      }
      assert.deepEqual(got, want, `bins ${bins} rows ${rows}`);
    }
  }
});

Deno.test("mi (binned) over several 8,192-row blocks and steps equals direct joint counts of every pair", async () => {
  const rng = new Rng(2), rows = 6000, W = 4, bins = 16;
  const batches = [0, 1, 2].map((b) => {
    const values = Float32Array.from({ length: rows * W }, () => rng.normal());
    if (b === 1) values[5 * W + 2] = NaN;
    const step = BigInt64Array.from({ length: rows }, (_, i) => BigInt(i % 3 === 0 ? 1 : 2));
    return activationBatch(rows, { h: { width: W, values } }, { step }, b * rows);
  });
  const { results } = await runPlugin(miPlugin, { "mi-estimator": "binned", "mi-bins": bins }, batches, {
    byStep: true,
  });
  const t = results.neuron_mi;
  // direct: codes of every row with the run's range, one contingency table per pair and step
  let min = Infinity, max = -Infinity;
  for (const b of batches) {
    for (const v of b.columns[0].values) if (Number.isFinite(v)) (min = Math.min(min, v), max = Math.max(max, v));
  }
  const range = { lo: new Float64Array(W).fill(min), hi: new Float64Array(W).fill(max) };
  const tables = new Map<string, Uint32Array>();
  for (const b of batches) {
    const codes = new Uint8Array(W * rows), bad = new Float64Array(W);
    codeRows(b.columns[0].values, W, 0, rows, range, bins, codes, 0, bad);
    for (let r = 0; r < rows; r++) {
      const step = b.step![r];
      for (let a = 0, p = 0; a < W; a++) {
        for (let c = a + 1; c < W; c++, p++) {
          const key = `${step},${p}`;
          const tab = tables.get(key) ?? new Uint32Array(bins * bins);
          tables.set(key, tab);
          const x = codes[a * rows + r], y = codes[c * rows + r];
          if (x !== NONFINITE && y !== NONFINITE) tab[x * bins + y]++;
        }
      }
    }
  }
  assert.equal(t.numRows, 2 * 6);
  const rs = new Float64Array(bins), cs = new Float64Array(bins);
  for (let i = 0; i < t.numRows; i++) {
    const key = `${t.getChild("step")!.get(i)},${i % 6}`;
    const tab = tables.get(key)!;
    assert.equal(t.getChild("mi")!.get(i), mutualInformation(tab, 0, bins, bins, rs, cs), key);
    assert.equal(Number(t.getChild("samples")!.get(i)), tab.reduce((s, c) => s + c, 0), key);
  }
});
