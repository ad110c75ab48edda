/**
 * Worker-thread estimation (pipeline/analyze/parallel.ts) gives exactly the single-threaded results, for both passes,
 * and keeps the complete batches' results when the input is truncated.
 */
import assert from "node:assert/strict";
import { analyze } from "../pipeline/analyze/run.ts";
import { makeRecordBatch, writeBatches } from "../pipeline/producers/produce.ts";
import { assertTablesClose, Rng } from "./_util.ts";

async function dump(path: string, batches: number, seed = 1) {
  const labels = new Rng(seed + 100);
  const rng = new Rng(seed);
  const rows = 50;
  await writeBatches(
    path,
    Array.from({ length: batches }, (_, b) =>
      makeRecordBatch({
        kind: "activations/v1",
        sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(b * rows + i)),
        step: new BigInt64Array(rows).fill(BigInt(b % 3)),
        label: Int32Array.from({ length: rows }, () => labels.int(3)),
        tensors: [
          { name: "a", width: 7, values: Float32Array.from({ length: rows * 7 }, () => rng.normal()) },
          {
            name: "b",
            width: 3,
            values: Float32Array.from({ length: rows * 3 }, () => (rng.next() < 0.01 ? NaN : rng.next())),
          },
        ],
      })),
  );
}

Deno.test("threads: 3 workers equal one thread (global range pass, neuron binning, by step)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await dump(`${dir}/a.arrows`, 9);
    for (
      const options of [{ bins: 20 }, { bins: 9, binning: "neuron" }, { bins: 5, range: [-1, 1] as [number, number] }]
    ) {
      const one = await analyze({ inputs: [`${dir}/a.arrows`], options, byStep: true, threads: 1, progress: false });
      const three = await analyze({ inputs: [`${dir}/a.arrows`], options, byStep: true, threads: 3, progress: false });
      assert.equal(one.run.threads, 1);
      assert.equal(three.run.threads, 3);
      for (const t of ["neuron_entropy", "layer_summary"]) assertTablesClose(one.tables[t], three.tables[t], 0, 0, t);
    }
    // binned and KSG MI, and label MI, on 2 workers (KSG's reservoir smaller than the input)
    for (const mi of [{ "mi-estimator": "binned", "mi-bins": 6 }, { "mi-samples": 200 }]) {
      const estimators = ["mi", "label-mi"];
      const one = await analyze({ inputs: [`${dir}/a.arrows`], estimators, options: mi, threads: 1, progress: false });
      const two = await analyze({ inputs: [`${dir}/a.arrows`], estimators, options: mi, threads: 2, progress: false });
      assert.equal(two.run.threads, 2);
      for (const t of ["neuron_mi", "label_mi", "layer_summary"]) {
        assertTablesClose(one.tables[t], two.tables[t], 0, 0, t);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("threads: a truncated input keeps every complete batch's results, as with one thread", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await dump(`${dir}/a.arrows`, 8, 2);
    const full = await Deno.readFile(`${dir}/a.arrows`);
    await Deno.writeFile(`${dir}/cut.arrows`, full.subarray(0, full.length - 300));
    const one = await analyze({ inputs: [`${dir}/cut.arrows`], options: { bins: 10 }, threads: 1, progress: false });
    const two = await analyze({ inputs: [`${dir}/cut.arrows`], options: { bins: 10 }, threads: 2, progress: false });
    assert.equal(one.complete, false);
    assert.equal(two.complete, false);
    assert.equal(two.error, one.error);
    assert.match(two.error!, /batch 7/);
    assertTablesClose(one.tables.neuron_entropy, two.tables.neuron_entropy, 0, 0, "truncated");
    // an estimator error inside a worker is reported like on the main thread
    const bad = await analyze({
      inputs: [`${dir}/cut.arrows`],
      options: { bins: 10, range: [0, 1] },
      byStep: true,
      layers: ["zz"],
      threads: 2,
      progress: false,
    });
    assert.equal(bad.complete, false);
    assert.match(bad.error!, /Cannot select layer/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("threads: diagonal Fisher on 2 workers equals one thread to 1e-12 (order-free up to rounding)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const rng = new Rng(3);
    const rows = 40;
    await writeBatches(
      `${dir}/g.arrows`,
      Array.from({ length: 6 }, (_, b) =>
        makeRecordBatch({
          kind: "gradients/v1",
          fisher: "true",
          sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(b * rows + i)),
          tensors: [
            { name: "fc1.weight", width: 12, values: Float32Array.from({ length: rows * 12 }, () => rng.normal()) },
            { name: "fc1.bias", width: 3, values: Float32Array.from({ length: rows * 3 }, () => rng.normal() * 0.1) },
          ],
        })),
    );
    const options = { "fisher-rank": 0, "prior-var": 0.5, beta: 2 };
    const one = await analyze({
      inputs: [`${dir}/g.arrows`],
      estimators: ["fisher"],
      options,
      threads: 1,
      progress: false,
    });
    const two = await analyze({
      inputs: [`${dir}/g.arrows`],
      estimators: ["fisher"],
      options,
      threads: 2,
      progress: false,
    });
    assert.equal(two.run.threads, 2);
    assertTablesClose(one.tables.fisher, two.tables.fisher, 1e-12, 1e-15, "fisher");
    // with a sketch the run stays on one thread
    const sk = await analyze({
      inputs: [`${dir}/g.arrows`],
      estimators: ["fisher"],
      options: { "fisher-rank": 4 },
      threads: 2,
      progress: false,
    });
    assert.equal(sk.run.threads, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("threads: weighted gradients with a weights row (fisher) and noise draws (effective-info) equal one thread", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const rng = new Rng(7);
    const t = (rows: number, w: number) => Float32Array.from({ length: rows * w }, () => rng.normal());
    await writeBatches(
      `${dir}/g.arrows`,
      Array.from({ length: 9 }, (_, b) => {
        const rows = 30;
        return makeRecordBatch({
          kind: "gradients/v1",
          fisher: "true",
          sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(i === 0 && b === 4 ? -1 : b * 10 + (i % 10))),
          weight: Float64Array.from({ length: rows }, () => rng.next()),
          rowType: Array.from({ length: rows }, (_, i) => (i === 0 && b === 4 ? "weights" : "gradient")),
          tensors: [{ name: "fc.weight", width: 6, values: t(rows, 6) }, {
            name: "fc.bias",
            width: 2,
            values: t(rows, 2),
          }],
        });
      }),
    );
    const options = { "fisher-rank": 0, "prior-var": 0.5, beta: 0.1 };
    const inputs = [`${dir}/g.arrows`], estimators = ["fisher"];
    const one = await analyze({ inputs, estimators, options, threads: 1, progress: false });
    const three = await analyze({ inputs, estimators, options, threads: 3, progress: false });
    assert.equal(three.run.threads, 3);
    assert.ok(one.tables.fisher.getChild("weights_term")!.get(0) > 0);
    assertTablesClose(one.tables.fisher, three.tables.fisher, 1e-12, 1e-15, "fisher");
    // Every batch one draw of all 12 inputs: each input's moments are merged across the workers (Chan's formula).
    await writeBatches(
      `${dir}/a.arrows`,
      Array.from({ length: 40 }, (_, d) =>
        makeRecordBatch({
          kind: "activations/v1",
          sampleId: BigInt64Array.from({ length: 12 }, (_, i) => BigInt(i)),
          draw: new Int32Array(12).fill(d),
          tensors: [{
            name: "fc",
            width: 3,
            values: Float32Array.from({ length: 36 }, (_, k) => (k % 7) + rng.normal()),
          }],
        })),
    );
    const e1 = await analyze({
      inputs: [`${dir}/a.arrows`],
      estimators: ["effective-info"],
      threads: 1,
      progress: false,
    });
    const e3 = await analyze({
      inputs: [`${dir}/a.arrows`],
      estimators: ["effective-info"],
      threads: 3,
      progress: false,
    });
    assert.equal(e3.run.threads, 3);
    assertTablesClose(e1.tables.effective_info, e3.tables.effective_info, 1e-9, 1e-12, "effective_info");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
