/**
 * The binned-MI joint counts: the four-rows-a-word loop of `addPairCounts` against a plain count of the code pairs
 * written here (every bin count 1..20, row counts not a multiple of 4, padded strides, non-finite codes), and the
 * `mi --mi-estimator binned` estimator over more rows than one block (8,192), by step, against direct counts.
 */
import assert from "node:assert/strict";
import { addPairCounts, codeRows, mutualInformation, NONFINITE } from "./pair_counts.ts";
import { pairCountKernel } from "./pair_counts_wasm.ts";
import { binnedBlock, miPlugin } from "../mi/mi.ts";
import { activationBatch, Rng, runPlugin } from "../../tests/_util.ts";

Deno.test("addPairCounts: the packed loops (WebAssembly sixteen rows a step, JavaScript four) count what a plain loop counts (bins 1..20, odd rows, strides, non-finite, counts from a pair on)", () => {
  assert.ok(pairCountKernel.available, "WebAssembly kernel unavailable");
  const rng = new Rng(1);
  const cases: [number, number, number, boolean][] = [];
  for (const bins of [1, 2, 3, 7, 15, 16, 17, 20]) {
    for (const rows of [1, 3, 4, 13, 16, 17, 64, 101, 203]) {
      for (const useWasm of [true, false]) {
        cases.push([bins, rows, Math.ceil(rows / 4) * 4 + (rows % 2 ? 4 : 0), useWasm]); // multiples of 4
        cases.push([bins, rows, Math.ceil(rows / 8) * 8 + (rows % 2 ? 8 : 0), useWasm]); // multiples of 8
        cases.push([bins, rows, rows + 1, useWasm]); // any stride
      }
    }
  }
  for (const [bins, rows, stride, useWasm] of cases) {
    pairCountKernel.useWasm = useWasm;
    try {
      const N = 5;
      const codes = new Uint8Array(N * stride);
      for (let i = 0; i < codes.length; i++) codes[i] = rng.int(bins);
      const dirty = new Uint8Array(N);
      if (rows > 3) (codes[3 * stride + 2] = NONFINITE, dirty[3] = 1);
      const pairs = new Int32Array([0, 1, 1, 2, 0, 4, 2, 3, 3, 4, 4, 4]);
      const P = pairs.length / 2, B2 = bins * bins;
      const got = new Uint32Array(P * B2).fill(7); // added to, not overwritten
      // two calls over disjoint pair ranges (the second starts mid-list), and the second range again into counts
      // that start at its first pair, with the codes already in the kernel's memory
      addPairCounts(codes, rows, pairs, 0, 2, bins, dirty, got, stride);
      addPairCounts(codes, rows, pairs, 2, P, bins, dirty, got, stride);
      const tail = new Uint32Array((P - 2) * B2).fill(7);
      addPairCounts(codes, rows, pairs, 2, P, bins, dirty, tail, stride, 2, true);
      assert.deepEqual(tail, got.subarray(2 * B2), `from: bins ${bins} rows ${rows} stride ${stride}`);
      const want = new Uint32Array(P * B2).fill(7);
      for (let p = 0; p < P; p++) {
        for (let r = 0; r < rows; r++) {
          const x = codes[pairs[2 * p] * stride + r], y = codes[pairs[2 * p + 1] * stride + r];
          if (x !== NONFINITE && y !== NONFINITE) want[p * B2 + x * bins + y]++;
        }
      }
      assert.deepEqual(got, want, `bins ${bins} rows ${rows} stride ${stride} ${useWasm ? "wasm" : "js"}`);
    } finally {
      pairCountKernel.useWasm = pairCountKernel.available;
    }
  }
});

/** The plug-in MI as written before the non-zero-cell pass: every cell in row-major order, every log direct. */
function directMI(t: ArrayLike<number>, na: number, nb: number): number {
  const rs = new Float64Array(na), cs = new Float64Array(nb);
  let n = 0;
  for (let a = 0; a < na; a++) {
    for (let b = 0; b < nb; b++) (rs[a] += t[a * nb + b]), (cs[b] += t[a * nb + b]), (n += t[a * nb + b]);
  }
  if (n === 0) return NaN;
  let mi = 0;
  for (let a = 0; a < na; a++) {
    for (let b = 0; b < nb; b++) {
      const c = t[a * nb + b];
      if (c > 0) mi += (c / n) * (Math.log(c) + Math.log(n) - Math.log(rs[a]) - Math.log(cs[b]));
    }
  }
  return mi;
}

Deno.test("mutualInformation: the same bits as the direct row-major sum with every log evaluated (sparse, dense, empty rows, counts past 2^16)", () => {
  const rng = new Rng(9);
  let cases = 0;
  for (const [na, nb] of [[16, 16], [3, 7], [20, 2], [1, 1], [16, 5]]) {
    for (const fill of [0.05, 0.3, 1]) {
      for (const scale of [1, 1000, 70000]) {
        const t = new Uint32Array(na * nb);
        for (let i = 0; i < t.length; i++) if (rng.next() < fill) t[i] = 1 + rng.int(scale);
        if (na > 2) t.fill(0, nb, 2 * nb); // an empty row
        const rs = new Float64Array(na), cs = new Float64Array(nb);
        const got = mutualInformation(t, 0, na, nb, rs, cs), want = directMI(t, na, nb);
        assert.ok(Object.is(got, want), `${na}x${nb} fill ${fill} scale ${scale}: ${got} vs ${want}`);
        cases++;
      }
    }
  }
  assert.equal(cases, 45);
  assert.ok(Number.isNaN(mutualInformation(new Uint32Array(4), 0, 2, 2, new Float64Array(2), new Float64Array(2))));
});

for (const byStep of [true, false]) {
  const what = byStep ? "steps interleaved row by row" : "two full 8,192-row blocks and a part";
  Deno.test(`mi (binned) over ${what} equals direct joint counts of every pair`, async () => {
    const rng = new Rng(2), rows = 6001, W = 4, bins = 16;
    const batches = [0, 1, 2].map((b) => {
      const values = Float32Array.from({ length: rows * W }, () => rng.normal());
      if (b === 1) values[5 * W + 2] = NaN;
      const step = BigInt64Array.from({ length: rows }, (_, i) => BigInt(byStep && i % 3 !== 0 ? 2 : 1));
      return activationBatch(rows, { h: { width: W, values } }, { step }, b * rows);
    });
    binnedBlock.bytes = W * 8192; // blocks of 8,192 rows (the least)
    let results;
    try {
      ({ results } = await runPlugin(miPlugin, { "mi-estimator": "binned", "mi-bins": bins }, batches, { byStep }));
    } finally {
      binnedBlock.bytes = 2 ** 25;
    }
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
        const step = byStep ? b.step![r] : null;
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
    assert.equal(t.numRows, (byStep ? 2 : 1) * 6);
    const rs = new Float64Array(bins), cs = new Float64Array(bins);
    for (let i = 0; i < t.numRows; i++) {
      const key = `${t.getChild("step")!.get(i)},${i % 6}`;
      const tab = tables.get(key)!;
      assert.equal(t.getChild("mi")!.get(i), mutualInformation(tab, 0, bins, bins, rs, cs), key);
      assert.equal(Number(t.getChild("samples")!.get(i)), tab.reduce((s, c) => s + c, 0), key);
    }
  });
}
