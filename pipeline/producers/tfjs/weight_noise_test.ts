import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { denseModel, tfjsGradientBatch } from "./gradients.ts";
import { fisherDiagonal, noisyActivationBatches, posteriorStd } from "./weight_noise.ts";
import { decodeBatch, validateSchema } from "../../../schemas/validate.ts";
import { rowsOf, runPlugin } from "../../../tests/_util.ts";
import { fisherPlugin } from "../../../plugins/fisher/fisher.ts";
import { effectiveInfoPlugin } from "../../../plugins/effective_info/effective_info.ts";
import type * as arrow from "apache-arrow";

await tf.setBackend("cpu");

const decode = (rbs: arrow.RecordBatch[]) =>
  rbs.map((b, i) => decodeBatch(b, validateSchema(b.schema, "mem"), "mem", i));

Deno.test("posteriorStd: sigma_j = (F_jj / beta + 1 / lambda^2)^-1/2; fisherDiagonal picks a step of fisher_diag", async () => {
  const model = denseModel([
    {
      name: "fc1",
      weight: tf.variable(tf.randomNormal([3, 4], 0, 1, "float32", 1)),
      bias: tf.variable(tf.zeros([4])),
      activation: "relu",
    },
    { name: "out", weight: tf.variable(tf.randomNormal([4, 3], 0, 1, "float32", 2)) },
  ]);
  const x = tf.randomNormal([10, 3], 0, 1, "float32", 3);
  const batches = decode([
    await tfjsGradientBatch(model, x, { fisher: "exact", step: 1 }),
    await tfjsGradientBatch(model, tf.mul(x, 2), { fisher: "exact", step: 2 }),
  ]);
  const { results } = await runPlugin(fisherPlugin, { "fisher-rank": 0, "fisher-diag": true }, batches, {
    byStep: true,
  });
  const last = fisherDiagonal(results.fisher_diag), first = fisherDiagonal(results.fisher_diag, 1);
  assert.deepEqual([...last.keys()], ["fc1.weight", "fc1.bias", "out.weight"]);
  assert.equal(last.get("fc1.weight")!.length, 12);
  const rows = rowsOf(results.fisher_diag);
  const want = (step: string, name: string, j: number) =>
    rows.find((r) => r.step === step && r.parameter === name && r.index === j)!.value as number;
  assert.equal(last.get("out.weight")![5], want("2", "out.weight", 5));
  assert.equal(first.get("out.weight")![5], want("1", "out.weight", 5));
  // The same from rows as readResults gives them.
  const asRows = fisherDiagonal({ rows: rows.map((r) => ({ ...r, step: Number(r.step) })) }, 1);
  assert.deepEqual(asRows.get("fc1.bias"), first.get("fc1.bias"));
  const std = posteriorStd(last, { priorVar: 0.5, beta: 0.01 });
  const f = last.get("fc1.weight")![3];
  assert.ok(Math.abs(std.get("fc1.weight")![3] - 1 / Math.sqrt(f / 0.01 + 2)) < 1e-15);
  assert.throws(() => fisherDiagonal(results.fisher_diag, 7), /no rows at step 7/);
  assert.throws(() => posteriorStd(last, { priorVar: 0, beta: 1 }), /priorVar and beta must be > 0/);
});

Deno.test("noisyActivationBatches: per-input moments of a noisy linear layer are x W* + b and sigma^2 ||x||^2 + sigma_b^2", async () => {
  const w = tf.variable(tf.randomNormal([3, 2], 0, 1, "float32", 4)), b = tf.variable(tf.tensor1d([0.5, -1]));
  const model = denseModel([{ name: "lin", weight: w, bias: b }]);
  const x = tf.randomNormal([5, 3], 0, 1, "float32", 5);
  const sw = 0.2, sb = 0.1, draws = 1500;
  const std = new Map([["lin.weight", new Float64Array(6).fill(sw)], ["lin.bias", new Float64Array(2).fill(sb)]]);
  const rbs = await noisyActivationBatches(model, x, std, {
    draws,
    seed: 3,
    step: 7,
    sampleId: BigInt64Array.from([5n, 6n, 7n, 8n, 9n]),
  });
  assert.equal(rbs.length, draws);
  const batches = decode(rbs);
  assert.deepEqual([...batches[1].sampleId], [5n, 6n, 7n, 8n, 9n]);
  assert.deepEqual([...batches[1].draw!], [1, 1, 1, 1, 1]);
  assert.equal(batches[0].step![0], 7n);
  assert.match(batches[0].metadata.get("infotap.tapped")!, /weight noise/);
  const xs = x.arraySync() as number[][], ws = w.arraySync() as number[][], bs = b.arraySync() as number[];
  for (let i = 0; i < 5; i++) {
    const xx = xs[i].reduce((a, v) => a + v * v, 0);
    for (let o = 0; o < 2; o++) {
      const v = batches.map((bt) => bt.columns[0].values[i * 2 + o]);
      const m = v.reduce((a, q) => a + q, 0) / draws;
      const s2 = v.reduce((a, q) => a + (q - m) ** 2, 0) / (draws - 1);
      const mu = xs[i].reduce((a, q, k) => a + q * ws[k][o], 0) + bs[o], var_ = sw * sw * xx + sb * sb;
      assert.ok(Math.abs(m - mu) < 4 * Math.sqrt(var_ / draws), `mean ${i},${o}: ${m} vs ${mu}`);
      // sd of a sample variance: var * sqrt(2 / (R - 1)).
      assert.ok(Math.abs(s2 - var_) < 4 * var_ * Math.sqrt(2 / draws), `var ${i},${o}: ${s2} vs ${var_}`);
    }
  }
  // Seeded: the same draws again; another seed differs.
  const again = await noisyActivationBatches(model, x, std, { draws: 2, seed: 3, step: 7 });
  const vals = (rb: arrow.RecordBatch) => [...decode([rb])[0].columns[0].values];
  assert.deepEqual(vals(again[1]), vals(rbs[1]));
  const other = await noisyActivationBatches(model, x, std, { draws: 2, seed: 4, step: 7 });
  assert.notDeepEqual(vals(other[1]), vals(rbs[1]));
  await assert.rejects(
    () => noisyActivationBatches(model, x, new Map([["lin.weight", new Float64Array(6)]]), { draws: 1 }),
    /Cannot draw weights for 'lin.bias' as the standard deviations must give one per weight \(2\): current value is missing/,
  );
  await assert.rejects(
    () => noisyActivationBatches(model, x, std, { draws: 1, layers: ["fc9"] }),
    /no such dense layer/,
  );
});

Deno.test("Fisher -> post-distribution -> noisy activations -> effective-info: larger beta, less information", async () => {
  const model = denseModel([
    {
      name: "fc1",
      weight: tf.variable(tf.randomNormal([4, 6], 0, 0.7, "float32", 6)),
      bias: tf.variable(tf.zeros([6])),
      activation: "relu",
    },
    {
      name: "out",
      weight: tf.variable(tf.randomNormal([6, 3], 0, 0.7, "float32", 7)),
      bias: tf.variable(tf.zeros([3])),
    },
  ]);
  const x = tf.randomNormal([40, 4], 0, 1, "float32", 8);
  const fisher = await runPlugin(
    fisherPlugin,
    { "fisher-rank": 0, "fisher-diag": true },
    decode([
      await tfjsGradientBatch(model, x, { fisher: "exact" }),
    ]),
  );
  const diag = fisherDiagonal(fisher.results.fisher_diag);
  const info = [];
  for (const beta of [1e-3, 1e-2, 1e-1]) {
    const std = posteriorStd(diag, { priorVar: 0.05, beta });
    const rbs = await noisyActivationBatches(model, x, std, { draws: 30, seed: 1 });
    const { results } = await runPlugin(effectiveInfoPlugin, {}, decode(rbs));
    info.push(rowsOf(results.effective_info).filter((r) => r.level === "layer"));
  }
  for (const layer of [0, 1]) {
    const up = info.map((rows) => rows[layer].upper as number), lo = info.map((rows) => rows[layer].lower as number);
    assert.ok(up[0] > up[1] && up[1] > up[2] && lo[0] > lo[1] && lo[1] > lo[2], `layer ${layer}: ${up} ${lo}`);
  }
  assert.deepEqual(info[0].map((r) => [r.layer, r.covariance, r.inputs, r.draws]), [
    ["fc1", "diagonal", "40", "30"],
    ["out", "diagonal", "40", "30"],
  ]);
});
