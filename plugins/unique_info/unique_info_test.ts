/**
 * `unique-info` against explicit leave-one-out retraining of a ridge-regularised linear model (where the
 * linearisation of docs/science.md section 3 is exact): the reference re-solves the ridge problem without each sample
 * in parameter space (normal equations, Gaussian elimination), independently of the kernel-space closed form.
 */
import assert from "node:assert/strict";
import { uniqueInfoPlugin } from "./unique_info.ts";
import { jacobianBatch, prepare, rowsOf, runPlugin } from "../../tests/_util.ts";
import { batchesOf, looReference, problem, recordBatchOf } from "../../tests/_si_problem.ts";
import type { Batch } from "../../schemas/batch.ts";
import { writeBatches } from "../../pipeline/producers/produce.ts";
import { analyze } from "../../pipeline/analyze/run.ts";
import { threadStats } from "../kernels/threads.ts";

function assertRel(actual: number, expected: number, rtol: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= rtol * Math.abs(expected),
    `${what}: ${actual} vs ${expected} (rel ${Math.abs(actual - expected) / Math.abs(expected)})`,
  );
}

for (const [k, p, n] of [[1, 14, 9], [3, 10, 7], [3, 40, 8]] as const) {
  Deno.test(`unique-info equals leave-one-out retraining of a linear ridge model (k = ${k}, P = ${p}, n = ${n})`, async () => {
    const lambda = 0.3;
    const pr = problem(k * 100 + p, n, 5, k, p);
    const ref = looReference(pr, lambda);
    const { results } = await runPlugin(uniqueInfoPlugin, { "si-lambda": lambda }, batchesOf(pr, 4));
    const rows = rowsOf(results.unique_information);
    assert.equal(rows.length, n);
    for (let i = 0; i < n; i++) {
      assert.equal(rows[i].sample_id, String(100 + i));
      assertRel(rows[i].si_weights as number, ref.w[i], 1e-8, `si_weights of sample ${i}`);
      assertRel(rows[i].si_function as number, ref.f[i], 1e-8, `si_function of sample ${i}`);
      assert.equal(rows[i].samples, String(n));
      assert.equal(rows[i].lambda, lambda);
    }
    // ranks: 1 = largest
    const byW = [...ref.w.keys()].sort((a, b) => ref.w[b] - ref.w[a]);
    byW.forEach((i, r) => assert.equal(rows[i].rank_weights, r + 1));
    const byF = [...ref.f.keys()].sort((a, b) => ref.f[b] - ref.f[a]);
    byF.forEach((i, r) => assert.equal(rows[i].rank_function, r + 1));
  });
}

Deno.test("unique-info ranks samples with corrupted targets at the top (k = 1 and k = 3)", async () => {
  for (const k of [1, 3]) {
    const corrupt = [4, 17];
    const pr = problem(7 + k, 30, 6, k, 12, corrupt);
    const { results } = await runPlugin(uniqueInfoPlugin, { "si-lambda": 0.1 }, batchesOf(pr, 16));
    const rows = rowsOf(results.unique_information);
    const top = (col: string) =>
      rows.filter((r) => (r[col] as number) <= 2).map((r) => Number(r.sample_id) - 100).sort((a, b) => a - b);
    assert.deepEqual(top("rank_weights"), corrupt, `k = ${k} weights`);
    assert.deepEqual(top("rank_function"), corrupt, `k = ${k} function`);
  }
});

Deno.test("unique-info without test rows gives null si_function and rank_function", async () => {
  const pr = problem(3, 5, 0, 2, 6);
  const ref = looReference(pr, 1);
  const { results } = await runPlugin(uniqueInfoPlugin, { "si-lambda": 1 }, batchesOf(pr, 3));
  const rows = rowsOf(results.unique_information);
  rows.forEach((r, i) => {
    assert.equal(r.si_function, null);
    assert.equal(r.rank_function, null);
    assertRel(r.si_weights as number, ref.w[i], 1e-8, "si_weights");
  });
});

Deno.test("unique-info: producer-sketched columns equal --si-sketch-dim, and approximate the unsketched values", async () => {
  const pr = problem(11, 12, 4, 2, 600);
  const m = 300, seed = 5;
  const ours = await runPlugin(uniqueInfoPlugin, { "si-lambda": 0.5, "si-sketch-dim": m }, batchesOf(pr, 7), { seed });
  const theirs = await runPlugin(uniqueInfoPlugin, { "si-lambda": 0.5 }, batchesOf(pr, 5, 9, { m, seed }));
  const a = rowsOf(ours.results.unique_information), b = rowsOf(theirs.results.unique_information);
  assert.deepEqual(a, b);
  assert.equal(ours.results.unique_information.schema.metadata.get("infotap.parameters"), String(2 * m));
  // a JL sketch preserves the kernel approximately: SI within tens of percent, on average
  const exact = rowsOf(
    (await runPlugin(uniqueInfoPlugin, { "si-lambda": 0.5 }, batchesOf(pr, 7))).results.unique_information,
  );
  let err = 0;
  a.forEach((r, i) => err += Math.abs((r.si_weights as number) / (exact[i].si_weights as number) - 1));
  assert.ok(err / a.length < 0.3, `mean relative error ${err / a.length}`);
  // a pre-sketched stream with another seed than --seed is refused when --si-sketch-dim is given
  await assert.rejects(
    () =>
      runPlugin(uniqueInfoPlugin, { "si-lambda": 0.5, "si-sketch-dim": m }, batchesOf(pr, 5, 9, { m, seed }), {
        seed: 6,
      }),
    /file 'jac.arrows', batch 0, column 'layer1.weight': Cannot use --si-sketch-dim 300 with --seed 6 .*current value is seed 5/,
  );
});

Deno.test("unique-info: bad input errors name file, batch and column", async () => {
  const pr = problem(5, 4, 2, 2, 5);
  // a train sample with one output missing
  const batches = batchesOf(pr, 3);
  const cut = (b: Batch, drop: (r: number) => boolean): Batch => {
    const keep = [...Array(b.numRows).keys()].filter((r) => !drop(r));
    return jacobianBatch(
      {
        sampleId: keep.map((r) => b.sampleId[r]),
        split: keep.map((r) => (b.split![r] === 0 ? "train" : "test")),
        output: keep.map((r) => b.output![r]),
        f0: keep.map((r) => b.f0![r]),
        target: keep.map((r) => (Number.isNaN(b.target![r]) ? null : b.target![r])),
        tensors: Object.fromEntries(b.columns.map((c) => [c.name, {
          width: c.width,
          values: Float32Array.from(keep.flatMap((r) => [...c.values.subarray(r * c.width, (r + 1) * c.width)])),
        }])),
      },
      b.file,
      b.index,
    );
  };
  const victim = batches.findIndex((b) => [...b.split!].some((s, r) => s === 0 && b.output![r] === 1));
  const vr = [...batches[victim].split!].findIndex((s, r) => s === 0 && batches[victim].output![r] === 1);
  const vid = batches[victim].sampleId[vr];
  const incomplete = batches.map((b, i) => (i === victim ? cut(b, (r) => r === vr) : b));
  const firstSeen = incomplete.findIndex((b) => [...b.sampleId].some((id, r) => id === vid && b.split![r] === 0));
  await assert.rejects(
    () => runPlugin(uniqueInfoPlugin, { "si-lambda": 1 }, incomplete),
    new RegExp(
      `^InputError: file 'jac.arrows', batch ${firstSeen}, column 'output': Cannot use train sample_id ${vid} as it needs one row for each of the 2 outputs 0..1 \\(missing 1;`,
    ),
  );
  // a duplicated row
  await assert.rejects(
    () => runPlugin(uniqueInfoPlugin, { "si-lambda": 1 }, [...batches, batches[0]]),
    new RegExp(`file 'jac.arrows', batch 0, column 'output': Cannot use row 0 as sample_id .* already has a row`),
  );
  // a train row without a target: refused by the decoder, and by the estimator for hand-made batches
  assert.throws(
    () =>
      jacobianBatch(
        {
          sampleId: [1],
          output: [0],
          f0: [0],
          target: [null],
          tensors: { w: { width: 1, values: new Float32Array([1]) } },
        },
        "bad.arrows",
        3,
      ),
    /file 'bad.arrows', batch 3, column 'target': Cannot read row 0 \(sample_id 1\) as a train row needs a finite target/,
  );
  const handMade = { ...batches[0], target: batches[0].target!.map((v, r) => (batches[0].split![r] === 0 ? NaN : v)) };
  await assert.rejects(
    () => runPlugin(uniqueInfoPlugin, { "si-lambda": 1 }, [handMade]),
    /file 'jac.arrows', batch 0, column 'target': Cannot use row \d+ \(sample_id \d+\) as a train row needs a finite target/,
  );
  // non-finite Jacobian values are counted and refused
  const nanBatch = {
    ...batches[1],
    columns: batches[1].columns.map((
      c,
      i,
    ) => (i === 0 ? { ...c, values: c.values.map((v, t) => (t < 2 ? NaN : v)) } : c)),
  };
  await assert.rejects(
    () => runPlugin(uniqueInfoPlugin, { "si-lambda": 1 }, [batches[0], nanBatch]),
    /file 'jac.arrows', batch 1, column 'layer1.weight': Cannot use the Jacobian as it has non-finite values \(2 of \d+\)/,
  );
  // one linearisation point: several steps are refused
  const stepped = (step: number, index: number) =>
    jacobianBatch(
      {
        sampleId: [index],
        output: [0],
        f0: [0],
        target: [1],
        step: [step],
        tensors: { w: { width: 2, values: new Float32Array([1, 2]) } },
      },
      "steps.arrows",
      index,
    );
  await assert.rejects(
    () => runPlugin(uniqueInfoPlugin, { "si-lambda": 1 }, [stepped(0, 0), stepped(5, 1)]),
    /file 'steps.arrows', batch 1, column 'step': Cannot mix training steps .*\(step 0\): current value is 5/,
  );
  // --si-lambda is required and > 0
  await assert.rejects(
    () => runPlugin(uniqueInfoPlugin, {}, batches),
    /\[unique-info\] Cannot run as --si-lambda is required/,
  );
  await assert.rejects(() => runPlugin(uniqueInfoPlugin, { "si-lambda": 0 }, batches), /--si-lambda as it must be > 0/);
});

Deno.test("unique-info: a stream with no train rows gives an empty table", async () => {
  const pr = problem(4, 3, 2, 2, 5);
  const testOnly = batchesOf(pr, 100).map((b) => {
    const keep = [...Array(b.numRows).keys()].filter((r) => b.split![r] === 1);
    return jacobianBatch({
      sampleId: keep.map((r) => b.sampleId[r]),
      split: keep.map(() => "test"),
      output: keep.map((r) => b.output![r]),
      f0: keep.map((r) => b.f0![r]),
      target: keep.map(() => null),
      tensors: Object.fromEntries(b.columns.map((c) => [c.name, {
        width: c.width,
        values: Float32Array.from(keep.flatMap((r) => [...c.values.subarray(r * c.width, (r + 1) * c.width)])),
      }])),
    });
  });
  const { results } = await runPlugin(uniqueInfoPlugin, { "si-lambda": 1 }, testOnly);
  assert.equal(results.unique_information.numRows, 0);
});

Deno.test("unique-info end to end: analyze() on a written jacobians/v1 stream", async () => {
  const pr = problem(8, 6, 3, 2, 9);
  const ref = looReference(pr, 0.2);
  const path = await Deno.makeTempFile({ suffix: ".arrows" });
  const out = await Deno.makeTempDir();
  try {
    const batches = batchesOf(pr, 5);
    const records = batches.map(recordBatchOf);
    await writeBatches(path, records);
    const r = await analyze({ inputs: [path], options: { "si-lambda": 0.2 }, out });
    const rows = rowsOf(r.tables.unique_information);
    rows.forEach((row, i) => assertRel(row.si_weights as number, ref.w[i], 1e-8, "si_weights"));
  } finally {
    await Deno.remove(path);
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("unique-info: the Gram products on a worker thread give the same table as one thread", async () => {
  // nk = 320 rows x P = 3000 in one batch: 3 row chunks and 1.5e8 multiply-adds (workers help from 2e7)
  const pr = problem(21, 160, 10, 2, 3000);
  const batches = batchesOf(pr, 400);
  const run = async (threads: number) =>
    rowsOf((await runPlugin(uniqueInfoPlugin, { "si-lambda": 0.2 }, batches, { threads })).results.unique_information);
  const one = await run(1);
  const before = threadStats.workerChunks;
  let two = await run(2);
  // a worker starts in tens of milliseconds: repeat (with pauses) until one has taken a chunk
  for (let tries = 0; threadStats.workerChunks === before && tries < 100; tries++) {
    await new Promise((r) => setTimeout(r, 50));
    two = await run(2);
  }
  assert.ok(threadStats.workerChunks > before, "no worker thread took part");
  assert.deepEqual(two, one);
  assert.ok(one.every((r) => (r.si_weights as number) > 0 && (r.si_function as number) > 0));
});

Deno.test("unique-info carries the input's flag column into unique_information.flag (through state and merge too)", async () => {
  const corrupt = [4, 17];
  const pr = problem(8, 30, 6, 3, 12, corrupt);
  const plain = await runPlugin(uniqueInfoPlugin, { "si-lambda": 0.1 }, batchesOf(pr, 16));
  assert.ok(!plain.results.unique_information.schema.fields.some((f) => f.name === "flag"));
  // Flag one row (output 0) of each corrupted sample; the others 0. A sample is flagged when any of its rows is.
  const flagged = batchesOf(pr, 16).map((b) => ({
    ...b,
    flag: Int32Array.from(b.sampleId, (id, r) => (corrupt.includes(Number(id) - 100) && b.output![r] === 0 ? 1 : 0)),
  }));
  const { estimator, results } = await runPlugin(uniqueInfoPlugin, { "si-lambda": 0.1 }, flagged);
  const rows = rowsOf(results.unique_information), before = rowsOf(plain.results.unique_information);
  assert.deepEqual(rows.filter((r) => r.flag === 1).map((r) => Number(r.sample_id) - 100), corrupt);
  assert.ok(rows.every((r) => r.flag === 0 || r.flag === 1));
  assert.deepEqual(rows.map((r) => r.si_weights), before.map((r) => r.si_weights)); // the flag changes nothing else
  // A restored state, and two halves merged, keep the flags.
  const restored = uniqueInfoPlugin.restore(estimator.state(), { "si-lambda": 0.1 }, { seed: 0 } as never);
  assert.deepEqual(rowsOf((await restored.result()).unique_information).map((r) => r.flag), rows.map((r) => r.flag));
  const half = Math.floor(flagged.length / 2);
  const { options, context } = prepare(uniqueInfoPlugin, { "si-lambda": 0.1 }, flagged);
  const part = async (bs: Batch[]) => {
    const e = uniqueInfoPlugin.create(options, context);
    for (const b of bs) await e.update(b);
    return e;
  };
  const a = await part(flagged.slice(0, half)), b = await part(flagged.slice(half));
  a.merge(b);
  const merged = rowsOf((await a.result()).unique_information);
  assert.deepEqual(merged.map((r) => r.flag), rows.map((r) => r.flag));
});
