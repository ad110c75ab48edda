/**
 * Tests of the `mi` options of issue 17 against independent truths: ties by brute force, the paper's aggregation
 * against a direct N x N computation with the brute-force KSG, the pair sample against the full run, the jittered
 * float64 path against the brute-force KSG of the same values. scikit-learn itself: plugins/mi/sklearn_test.ts.
 */
import assert from "node:assert/strict";
import { miPlugin, paperRowMeans, samplePairIndices } from "./mi.ts";
import { tiedFractions } from "./ties.ts";
import { jitterColumn, jitterSeed } from "./jitter.ts";
import { ksgPairs } from "./ksg_pairs.ts";
import { rowKey } from "./reservoir.ts";
import { bruteKsg, bruteTied } from "./_ksg_reference.ts";
import { activationBatch, Rng, runPlugin } from "../../tests/_util.ts";
import { analyze } from "../../pipeline/analyze/run.ts";
import { makeRecordBatch, writeBatches } from "../../pipeline/producers/produce.ts";
import type { Batch } from "../../schemas/batch.ts";

/** Two layers (fc1: 3 continuous neurons; fc2: 2 ReLU neurons rounded to 0.5, heavy ties), `rows` rows. */
function batchOf(seed: number, rows: number): Batch {
  const rng = new Rng(seed);
  const a = new Float32Array(rows * 3), c = new Float32Array(rows * 2);
  for (let i = 0; i < rows; i++) {
    const z = rng.normal();
    for (let j = 0; j < 3; j++) a[i * 3 + j] = z * (j + 1) * 0.5 + rng.normal();
    c[i * 2] = Math.round(2 * Math.max(0, z + rng.normal())) / 2;
    c[i * 2 + 1] = Math.round(2 * Math.max(0, rng.normal())) / 2;
  }
  return activationBatch(rows, { fc1: { width: 3, values: a }, fc2: { width: 2, values: c } });
}

/** Neuron-major columns of all neurons of a batch (fc1 then fc2). */
function columnsOf(b: Batch): number[][] {
  const out: number[][] = [];
  for (const c of b.columns) {
    for (let j = 0; j < c.width; j++) out.push(Array.from({ length: b.numRows }, (_, r) => c.values[r * c.width + j]));
  }
  return out;
}

function rows(t: { numRows: number; getChild(name: string): { get(i: number): unknown } | null }, names: string[]) {
  return Array.from({ length: t.numRows }, (_, i) => Object.fromEntries(names.map((n) => [n, t.getChild(n)!.get(i)])));
}

Deno.test("ties: the fraction of samples whose k-th neighbour distance is 0 equals brute force (k = 1, 3; NaN rows)", () => {
  const b = batchOf(1, 150);
  const cols = columnsOf(b);
  cols[4][7] = NaN; // a pair with a non-finite row uses the rows finite in both
  const n = 150, flat = new Float32Array(cols.flat());
  const pairs = new Int32Array([0, 1, 3, 4, 3, 3, 0, 3, 4, 4]);
  for (const k of [1, 3]) {
    const got = tiedFractions(flat, n, pairs, k);
    for (let p = 0; p < pairs.length / 2; p++) {
      const x = cols[pairs[2 * p]], y = cols[pairs[2 * p + 1]];
      const keep = x.map((_, r) => r).filter((r) => Number.isFinite(x[r]) && Number.isFinite(y[r]));
      const want = bruteTied(keep.map((r) => x[r]), keep.map((r) => y[r]), k) / keep.length;
      assert.equal(got[p], want, `k=${k} pair ${p}`);
    }
    assert.equal(got[0], 0); // continuous
    assert.ok(got[1] > 0.2); // both ReLU: the (0, 0) point alone holds about a quarter of the samples
  }
});

Deno.test("mi (ksg): ties column, one warning line and run.json summary above 1%; --ksg-clip turns negatives to 0", async () => {
  const b = batchOf(2, 200);
  const plain = (await runPlugin(miPlugin, {}, [b])).results.neuron_mi;
  const r = rows(plain, ["layer_a", "mi", "ties"]);
  assert.equal(r.length, 3 + 1);
  assert.deepEqual(r.slice(0, 3).map((x) => x.ties), [0, 0, 0]);
  assert.ok((r[3].ties as number) > 0.2 && (r[3].mi as number) < 0, `tied pair: ${JSON.stringify(r[3])}`);
  const clipped = rows((await runPlugin(miPlugin, { "ksg-clip": true }, [b])).results.neuron_mi, ["mi"]);
  for (let i = 0; i < r.length; i++) assert.equal(clipped[i].mi, Math.max(0, r[i].mi as number));

  const path = await Deno.makeTempFile({ suffix: ".arrows" });
  try {
    const c = b.columns;
    await writeBatches(path, [makeRecordBatch({
      kind: "activations/v1",
      sampleId: b.sampleId,
      tensors: c.map((x) => ({ name: x.name, width: x.width, values: x.values })),
    })]);
    const run = await analyze({ inputs: [path], estimators: ["mi"] });
    const summary = (run.run.estimators as { summary: Record<string, any> }[])[0].summary;
    assert.equal(summary.ties.pairs_above_1pct, 1);
    assert.equal(summary.ties.pairs, 4);
    assert.equal(summary.ties.max_fraction, r[3].ties);
    assert.equal(summary.warnings, undefined); // warnings go to the user, the facts to run.json
    assert.equal(run.warnings.length, 1);
    assert.match(
      run.warnings[0],
      /\[mi\] 1 of 4 pair\(s\) have more than 1% of samples whose k-th neighbour distance is 0 \(k = 3/,
    );
    const cont = await analyze({ inputs: [path], estimators: ["mi"], layers: ["fc1"] });
    assert.equal((cont.run.estimators as { summary: unknown }[])[0].summary, null);
    await assert.rejects(
      () => analyze({ inputs: [path], estimators: ["mi"], options: { "mi-estimator": "binned", "ksg-clip": true } }),
      /Cannot use --ksg-clip as it needs --mi-estimator ksg: current value is binned/,
    );
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("mi --mi-pairs paper: neuron_mi, neuron_mi_mean and layer_summary equal a direct N x N brute-force matrix (none, row, global)", async () => {
  const b = batchOf(3, 60);
  const cols = columnsOf(b), N = cols.length;
  const M = cols.map((x) => cols.map((y) => bruteKsg(x, y, 3)));
  const layerOf = [0, 0, 0, 1, 1], neuronOf = [0, 1, 2, 0, 1], names = ["fc1", "fc2"];
  for (const normalise of ["none", "row", "global"] as const) {
    const { results } = await runPlugin(miPlugin, { "mi-pairs": "paper", "mi-normalise": normalise }, [b]);
    const pairs = rows(results.neuron_mi, ["layer_a", "neuron_a", "layer_b", "neuron_b", "mi"]);
    assert.equal(pairs.length, (N * (N + 1)) / 2); // every unordered pair, self-pairs and cross-layer pairs too
    let at = 0;
    for (let a = 0; a < N; a++) {
      for (let c = a; c < N; c++, at++) {
        assert.equal(pairs[at].layer_a, names[layerOf[a]]);
        assert.equal(pairs[at].neuron_b, neuronOf[c]);
        assert.ok(Math.abs((pairs[at].mi as number) - M[a][c]) < 1e-9, `${a},${c}`);
      }
    }
    const top = Math.max(...M.flat());
    const norm = M.map((row) => {
      const m = Math.max(...row);
      return row.map((v) => (normalise === "row" ? v / (m + 1e-4) : normalise === "global" ? v / top : v));
    });
    const rowMean = norm.map((row) => row.reduce((s, v) => s + v, 0) / N); // numpy mis.mean(1): diagonal included
    const means = rows(results.neuron_mi_mean, ["layer", "neuron", "mi_mean"]);
    assert.equal(means.length, N);
    means.forEach((m, a) => {
      assert.deepEqual([m.layer, m.neuron], [names[layerOf[a]], neuronOf[a]]);
      assert.ok(Math.abs((m.mi_mean as number) - rowMean[a]) < 1e-9, `${normalise} row ${a}`);
    });
    const s = rows(results.layer_summary, ["layer", "mi_mean"]);
    assert.ok(Math.abs((s[0].mi_mean as number) - (rowMean[0] + rowMean[1] + rowMean[2]) / 3) < 1e-9);
    assert.ok(Math.abs((s[1].mi_mean as number) - (rowMean[3] + rowMean[4]) / 2) < 1e-9);
    assert.equal(results.neuron_mi.schema.metadata.get("infotap.mi-normalise"), normalise);
  }
  // binned: the diagonal is the neuron's own plug-in entropy on its bins, the row means as above
  const mean = paperRowMeans(2, new Int32Array([0, 0, 0, 1, 1, 1]), new Float64Array([2, 1, 4]), "none");
  assert.deepEqual([...mean], [1.5, 2.5]);
  await assert.rejects(
    async () => await runPlugin(miPlugin, { "mi-normalise": "row" }, [b]),
    /Cannot use --mi-normalise as it needs --mi-pairs paper: current value is within/,
  );
});

Deno.test("mi --mi-pair-sample: a seeded uniform sample of each layer's pairs, values as in the full run, stated in run.json", async () => {
  // the sampler: distinct sorted indices, count as asked, seed-dependent, uniform (each index about equally often)
  const hits = new Float64Array(20);
  for (let seed = 0; seed < 2000; seed++) {
    const s = samplePairIndices(20, 5, seed, 0);
    assert.equal(new Set(s).size, 5);
    assert.deepEqual([...s], [...s].sort((a, b) => a - b));
    for (const t of s) hits[t]++;
  }
  for (const h of hits) assert.ok(Math.abs(h - 500) < 100, `uniform: ${[...hits]}`);
  assert.notDeepEqual([...samplePairIndices(1000, 10, 1, 0)], [...samplePairIndices(1000, 10, 2, 0)]);
  assert.equal(samplePairIndices(6, 0, 1, 0).length, 6);

  const rng = new Rng(4), W = 12, n = 80;
  const values = Float32Array.from({ length: n * W }, () => rng.normal());
  const b = activationBatch(n, { h: { width: W, values } });
  const key = (r: Record<string, unknown>) => `${r.neuron_a},${r.neuron_b}`;
  const full = new Map(
    rows((await runPlugin(miPlugin, {}, [b])).results.neuron_mi, ["neuron_a", "neuron_b", "mi"]).map((
      r,
    ) => [key(r), r.mi]),
  );
  const { results, estimator } = await runPlugin(miPlugin, { "mi-pair-sample": 10 }, [b], { seed: 5 });
  const got = rows(results.neuron_mi, ["neuron_a", "neuron_b", "mi"]);
  assert.equal(got.length, 10);
  for (const r of got) assert.equal(r.mi, full.get(key(r)));
  const again = rows((await runPlugin(miPlugin, { "mi-pair-sample": 10 }, [b], { seed: 5 })).results.neuron_mi, [
    "neuron_a",
    "neuron_b",
  ]);
  assert.deepEqual(again.map(key), got.map(key));
  const summary = (estimator as unknown as { summary(): Record<string, any> }).summary();
  assert.deepEqual(summary.pair_sample, { requested: 10, seed: 5, groups: [{ group: "h", pairs: 10, of: 66 }] });
  await assert.rejects(
    async () => await runPlugin(miPlugin, { "mi-pairs": "paper", "mi-pair-sample": 3 }, [b]),
    /Cannot use --mi-pair-sample with --mi-pairs paper/,
  );
});

Deno.test("mi --ksg-jitter: float64 jittered values through the kernels equal the brute-force KSG of the same values; ties gone", async () => {
  const b = batchOf(6, 300);
  const cols = columnsOf(b), n = 300;
  // the recipe: unit variance without centring, noise 1e-10 * max(1, mean |x|), seeded per neuron
  const x = jitterColumn(cols[3], jitterSeed(9, 1, 0));
  let m = 0, ss = 0;
  for (const v of cols[3]) m += v / n;
  for (const v of cols[3]) ss += (v - m) ** 2 / n;
  const scaled = cols[3].map((v) => v / Math.sqrt(ss));
  const meanAbs = scaled.reduce((s, v) => s + Math.abs(v), 0) / n;
  const noise = x.map((v, i) => v - scaled[i]);
  assert.ok(noise.every((d) => Math.abs(d) < 6e-10 * Math.max(1, meanAbs)) && new Set(x).size === n);
  const sd = Math.sqrt(noise.reduce((s, d) => s + d * d, 0) / n) / (1e-10 * Math.max(1, meanAbs));
  assert.ok(Math.abs(sd - 1) < 0.15, `noise sd ${sd}`);

  const { results } = await runPlugin(miPlugin, { "ksg-jitter": true }, [b], { seed: 9 });
  const got = rows(results.neuron_mi, ["layer_a", "neuron_a", "neuron_b", "mi", "ties"]);
  // the noise follows the rows in reservoir order (sorted by their seeded key)
  const order = Array.from({ length: n }, (_, r) => r).sort((p, q) => rowKey(9, p, 0, 0, 0) - rowKey(9, q, 0, 0, 0));
  const inOrder = (c: number[]) => order.map((r) => c[r]);
  const layerBase = { fc1: 0, fc2: 3 } as Record<string, number>;
  const layerIndex = { fc1: 0, fc2: 1 } as Record<string, number>;
  for (const r of got) {
    const la = r.layer_a as string, a = r.neuron_a as number, c = r.neuron_b as number;
    const xa = jitterColumn(inOrder(cols[layerBase[la] + a]), jitterSeed(9, layerIndex[la], a));
    const xb = jitterColumn(inOrder(cols[layerBase[la] + c]), jitterSeed(9, layerIndex[la], c));
    assert.ok(Math.abs((r.mi as number) - bruteKsg(xa, xb, 3)) < 1e-9, JSON.stringify(r));
    assert.equal(r.ties, 0);
  }
  // the float64 kernel path itself, threads included, against brute force
  const f64 = new Float64Array([...jitterColumn(cols[3], 1), ...jitterColumn(cols[4], 2)]);
  const k = ksgPairs(f64, n, new Int32Array([0, 1]), 3, 1);
  assert.ok(Math.abs(k.mi[0] - bruteKsg(f64.subarray(0, n), f64.subarray(n), 3)) < 1e-9);
  // jitter is seeded: another seed, other values; the same seed, the same bits
  const other = rows((await runPlugin(miPlugin, { "ksg-jitter": true }, [b], { seed: 10 })).results.neuron_mi, ["mi"]);
  const same = rows((await runPlugin(miPlugin, { "ksg-jitter": true }, [b], { seed: 9 })).results.neuron_mi, ["mi"]);
  assert.notEqual(other[3].mi, got[3].mi);
  assert.deepEqual(same.map((r) => r.mi), got.map((r) => r.mi));
});
