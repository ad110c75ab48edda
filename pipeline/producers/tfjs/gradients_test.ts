import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { denseModel, perSampleGradients, tfjsGradientBatch } from "./gradients.ts";
import { analyze } from "../../analyze/run.ts";
import { writeBatches } from "../produce.ts";
import * as arrow from "apache-arrow";
import { main } from "../../cli/analyze.ts";
import { assertTablesClose, rowsOf, runPlugin } from "../../../tests/_util.ts";
import { fisherPlugin } from "../../../plugins/fisher/fisher.ts";
import { decodeBatch, validateSchema } from "../../../schemas/validate.ts";

await tf.setBackend("cpu");

/** A tiny MLP 3 -> 4 (tanh) -> 3 with seeded weights. */
function tiny(seed = 1) {
  return denseModel([
    {
      name: "fc1",
      weight: tf.variable(tf.randomNormal([3, 4], 0, 0.8, "float32", seed)),
      bias: tf.variable(tf.randomNormal([4], 0, 0.3, "float32", seed + 1)),
      activation: "tanh",
    },
    {
      name: "fc2",
      weight: tf.variable(tf.randomNormal([4, 3], 0, 0.8, "float32", seed + 2)),
      bias: tf.variable(tf.randomNormal([3], 0, 0.3, "float32", seed + 3)),
    },
  ]);
}

/** Independent float64 forward of the tiny MLP: log p(y|x) from flat parameter arrays. */
function logp64(p: Float64Array[], x: number[], y: number): number {
  const [w1, b1, w2, b2] = p;
  const h = [0, 1, 2, 3].map((o) => Math.tanh(x.reduce((s, xi, i) => s + xi * w1[i * 4 + o], 0) + b1[o]));
  const z = [0, 1, 2].map((c) => h.reduce((s, hi, i) => s + hi * w2[i * 3 + c], 0) + b2[c]);
  const m = Math.max(...z);
  return z[y] - m - Math.log(z.reduce((s, zi) => s + Math.exp(zi - m), 0));
}

Deno.test("tfjs per-sample gradients equal float64 finite differences of an independent forward pass", async () => {
  const model = tiny();
  const x = tf.randomNormal([5, 3], 0, 1, "float32", 7);
  const xs = x.arraySync() as number[][];
  const params = model.params.map((p) => Float64Array.from(p.tensor.dataSync()));
  const labels = new Int32Array([0, 2, 1, 1, 0]);
  const dense = await perSampleGradients(model, x, { labels });
  assert.equal(dense.fisher, "empirical");
  assert.deepEqual(dense.grads.map((g) => [g.name, g.width]), [
    ["fc1.weight", 12],
    ["fc1.bias", 4],
    ["fc2.weight", 12],
    ["fc2.bias", 3],
  ]);
  const h = 1e-6;
  let maxErr = 0;
  for (let r = 0; r < 5; r++) {
    for (let k = 0; k < params.length; k++) {
      for (let j = 0; j < params[k].length; j++) {
        const save = params[k][j];
        params[k][j] = save + h;
        const up = logp64(params, xs[r], labels[r]);
        params[k][j] = save - h;
        const down = logp64(params, xs[r], labels[r]);
        params[k][j] = save;
        const fd = (up - down) / (2 * h);
        const v = dense.grads[k].values[r * params[k].length + j];
        maxErr = Math.max(maxErr, Math.abs(v - fd));
        assert.ok(Math.abs(v - fd) <= 1e-5 + 1e-4 * Math.abs(fd), `row ${r} param ${k}[${j}]: ${v} vs ${fd}`);
      }
    }
  }
  assert.ok(maxErr < 1e-5, `max error ${maxErr}`);
  // The gradients are not trivially zero.
  assert.ok(dense.grads[0].values.some((v) => Math.abs(v) > 1e-2));
});

Deno.test("tfjs true Fisher: labels drawn from softmax, seeded, draws as rows; a valid gradients/v1 batch", async () => {
  const model = tiny(3);
  const x = tf.randomNormal([2, 3], 0, 1, "float32", 8);
  const a = await perSampleGradients(model, x, { draws: 3000, seed: 5 });
  const b = await perSampleGradients(model, x, { draws: 3000, seed: 5 });
  assert.deepEqual(a.labels, b.labels);
  assert.equal(a.fisher, "true");
  const probs = tf.softmax(model.logits(model.params.map((p) => p.tensor), x)).arraySync() as number[][];
  for (let i = 0; i < 2; i++) {
    for (let c = 0; c < 3; c++) {
      let k = 0;
      for (let d = 0; d < 3000; d++) if (a.labels[i * 3000 + d] === c) k++;
      const sd = Math.sqrt(probs[i][c] * (1 - probs[i][c]) / 3000);
      assert.ok(
        Math.abs(k / 3000 - probs[i][c]) < 5 * sd + 1e-9,
        `input ${i} class ${c}: ${k / 3000} vs ${probs[i][c]}`,
      );
    }
  }
  const rb = await tfjsGradientBatch(model, x, { draws: 2, seed: 1, step: 4, sampleId: new BigInt64Array([10n, 11n]) });
  const batch = decodeBatch(rb, validateSchema(rb.schema, "mem"), "mem", 0);
  assert.equal(batch.numRows, 4);
  assert.deepEqual([...batch.sampleId], [10n, 10n, 11n, 11n]);
  assert.deepEqual([...batch.draw!], [0, 1, 0, 1]);
  assert.deepEqual([...batch.step!], [4n, 4n, 4n, 4n]);
  assert.equal(batch.metadata.get("infotap.fisher"), "true");
});

Deno.test("a tiny tfjs model trained for a few steps: the trace-over-steps table analyze writes with --by-step", async () => {
  const model = tiny(11);
  const rngX = tf.randomNormal([24, 3], 0, 1, "float32", 12);
  // Labels from a fixed linear rule, so training has something to learn.
  const labels = Int32Array.from(
    rngX.arraySync() as number[][],
    (r) => (r[0] + r[1] > 0.5 ? 0 : r[2] > 0 ? 1 : 2),
  );
  const vars = model.params.map((p) => p.tensor as tf.Variable);
  const steps = 5;
  const batches = [];
  const expected: number[] = [];
  for (let s = 0; s < steps; s++) {
    const rb = await tfjsGradientBatch(model, rngX, { seed: 3, step: s, draws: 2 });
    batches.push(rb);
    // Independent trace: sum over tensors of the mean over rows of g^2, straight from the batch's columns.
    const b = decodeBatch(rb, validateSchema(rb.schema, "mem"), "mem", s);
    expected.push(
      b.columns.reduce((acc, c) => acc + c.values.reduce((t, v) => t + v * v, 0), 0) / b.numRows,
    );
    // One step of gradient ascent on the mean log-likelihood, from the mean of the empirical per-sample gradients
    // (tfjs-core alone has no autodiff; see the module doc).
    const emp = await perSampleGradients(model, rngX, { labels });
    emp.grads.forEach((g, k) => {
      const mean = new Float32Array(g.width);
      for (let r = 0; r < 24; r++) for (let j = 0; j < g.width; j++) mean[j] += g.values[r * g.width + j] / 24;
      vars[k].assign(tf.add(vars[k], tf.mul(0.5, tf.tensor(mean, vars[k].shape))));
    });
  }
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/grads.arrows`;
    await writeBatches(path, batches);
    const r = await analyze({
      inputs: [path],
      estimators: ["fisher"],
      byStep: true,
      options: { "prior-var": 0.1, beta: 1, "fisher-rank": 8 },
      out: `${dir}/out`,
      format: "arrow",
      progress: false,
    });
    assert.ok(r.complete, r.error);
    const total = rowsOf(r.tables.fisher).filter((row) => row.level === "total");
    assert.deepEqual(total.map((row) => row.step), ["0", "1", "2", "3", "4"]);
    total.forEach((row, s) => {
      assert.ok(Math.abs((row.trace as number) - expected[s]) <= 1e-9 * expected[s], `step ${s}`);
      assert.equal(row.samples, "48");
      assert.equal(row.kind, "true Fisher");
      assert.ok((row.info_weights as number) > 0 && (row.logdet as number) > 0);
    });
    // Training moved the weights: the curve is not flat.
    assert.ok(new Set(total.map((row) => (row.trace as number).toFixed(6))).size === steps);
    // Layer rows exist per step, and the spectrum per step.
    assert.equal(rowsOf(r.tables.fisher).filter((row) => row.level === "layer").length, 2 * steps);
    assert.equal(new Set(rowsOf(r.tables.fisher_spectrum).map((row) => row.step)).size, steps);
    assert.ok((await Deno.stat(`${dir}/out/fisher.arrow`)).size > 0);
    // The same through the command line: `deno task analyze --estimators fisher --by-step ...`.
    const code = await main([
      "--estimators=fisher",
      "--by-step",
      "--prior-var=0.1",
      "--beta=1",
      "--fisher-rank=8",
      "--format=arrow",
      "--quiet",
      `--out=${dir}/cli`,
      path,
    ]);
    assert.equal(code, 0);
    const cli = arrow.tableFromIPC(await Deno.readFile(`${dir}/cli/fisher.arrow`));
    assertTablesClose(cli, r.tables.fisher, 0, 0, "cli vs analyze");
    console.log(
      "trace over steps:",
      total.map((row) => `${row.step}: ${(row.trace as number).toFixed(4)}`).join(", "),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Float64 p(y|x) of the tiny MLP (independent forward). */
const p64 = (p: Float64Array[], x: number[]) => [0, 1, 2].map((y) => Math.exp(logp64(p, x, y)));

Deno.test("tfjs exact Fisher: one row per class weighted by p(y|x); the trace equals a float64 exact Fisher", async () => {
  const model = tiny(5);
  const x = tf.randomNormal([6, 3], 0, 1, "float32", 9);
  const xs = x.arraySync() as number[][];
  const params = model.params.map((p) => Float64Array.from(p.tensor.dataSync()));
  const g = await perSampleGradients(model, x, { fisher: "exact" });
  assert.equal(g.fisher, "true");
  assert.deepEqual([...g.input.subarray(0, 6)], [0, 0, 0, 1, 1, 1]);
  assert.deepEqual([...g.labels.subarray(0, 6)], [0, 1, 2, 0, 1, 2]);
  xs.forEach((xi, i) => p64(params, xi).forEach((p, y) => assert.ok(Math.abs(g.weight![i * 3 + y] - p) < 1e-6)));
  // Reference: F_jj = (1/n) sum_x sum_y p(y|x) (d log p(y|x) / d w_j)^2, central differences in float64.
  const h = 1e-6, ref = params.map((t) => new Float64Array(t.length));
  for (const xi of xs) {
    const p = p64(params, xi);
    for (let k = 0; k < params.length; k++) {
      for (let j = 0; j < params[k].length; j++) {
        const save = params[k][j];
        for (let y = 0; y < 3; y++) {
          params[k][j] = save + h;
          const up = logp64(params, xi, y);
          params[k][j] = save - h;
          const fd = (up - logp64(params, xi, y)) / (2 * h);
          params[k][j] = save;
          ref[k][j] += (p[y] * fd * fd) / xs.length;
        }
      }
    }
  }
  const rb = await tfjsGradientBatch(model, x, { fisher: "exact", step: 2 });
  const decode = (b: arrow.RecordBatch) => [decodeBatch(b, validateSchema(b.schema, "mem"), "mem", 0)];
  const r = await runPlugin(fisherPlugin, { "fisher-rank": 0, "fisher-diag": true }, decode(rb));
  const diag = rowsOf(r.results.fisher_diag);
  ref.flatMap((t) => [...t]).forEach((f, j) =>
    assert.ok(Math.abs((diag[j].value as number) - f) <= 1e-6 + 1e-4 * f, `F_${j}: ${diag[j].value} vs ${f}`)
  );
  const exact = rowsOf(r.results.fisher).at(-1)!;
  assert.equal(exact.samples, "18");
  assert.equal(exact.inputs, "6");
  // The sampled true Fisher scatters around it, within its standard error (the exact one's is over inputs only).
  const sampled = await tfjsGradientBatch(model, x, { draws: 400, seed: 2 });
  const s = await runPlugin(fisherPlugin, { "fisher-rank": 0 }, decode(sampled));
  const tot = rowsOf(s.results.fisher).at(-1)!;
  assert.ok(Math.abs((tot.trace as number) - (exact.trace as number)) < 4 * (tot.trace_se as number), `${tot.trace}`);
  await assert.rejects(() => perSampleGradients(model, x, { fisher: "exact", draws: 2 }), /every class is a row/);
  await assert.rejects(
    () => perSampleGradients(model, x, { fisher: "exact", labels: new Int32Array(6) }),
    /dataset labels go with fisher 'empirical'/,
  );
});

Deno.test("tfjs sendWeights: a weights row gives weights_term = ||w*||^2 / (2 lambda^2), float64 reference", async () => {
  const model = tiny(7);
  const x = tf.randomNormal([4, 3], 0, 1, "float32", 10);
  const rb = await tfjsGradientBatch(model, x, { fisher: "exact", sendWeights: true, step: 3 });
  const batch = decodeBatch(rb, validateSchema(rb.schema, "mem"), "mem", 0);
  assert.equal(batch.numRows, 13);
  assert.deepEqual([...batch.rowType!].slice(-2), [0, 1]);
  assert.equal(batch.sampleId[12], -1n);
  const r = await runPlugin(fisherPlugin, { "fisher-rank": 0, "prior-var": 0.2, beta: 1 }, [batch], { byStep: true });
  const rows = rowsOf(r.results.fisher);
  let total = 0;
  for (const p of model.params) {
    const sq = Array.from(p.tensor.dataSync(), (v) => v * v).reduce((a, b) => a + b, 0);
    total += sq;
    const row = rows.find((x) => x.parameter === p.name)!;
    assert.ok(Math.abs((row.weights_term as number) - sq / 0.4) <= 1e-9 * sq / 0.4, `${p.name}`);
    assert.equal(row.samples, "12");
  }
  const t = rows.at(-1)!;
  assert.ok(Math.abs((t.weights_term as number) - total / 0.4) <= 1e-9 * total / 0.4);
  assert.ok((t.info_weights as number) > (t.weights_term as number));
});
