/**
 * A tfjs tap ({@linkcode tfjsTap}): a `LayersModel.fit` callback that every `every` training steps runs a fixed
 * probe set through the model and writes the chosen layers' outputs as `activations/v1` record batches with their
 * `step` to a sink (a `serve` connection, {@linkcode connectProducer}, or `ServeHandle.local()`); `write` is
 * awaited, so a slow server slows training instead of filling memory. An optional `gradients` hook sends
 * `gradients/v1` batches to their own sink. What is tapped and how steps are counted: docs/producers.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tfl from "@tensorflow/tfjs-layers";
 * import { tfjsTap } from "./tap.ts";
 * import type * as arrow from "apache-arrow";
 * await tf.setBackend("cpu");
 * const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 3, inputShape: [2], name: "fc1" }), tfl.layers.dense({ units: 1 })] });
 * model.compile({ optimizer: "sgd", loss: "meanSquaredError" });
 * const got: arrow.RecordBatch[] = [];
 * const tap = tfjsTap({ model, layers: ["fc1"], probe: tf.ones([4, 2]), every: 2, sink: { write: async (rb) => void got.push(rb) } });
 * await model.fit(tf.ones([8, 2]), tf.ones([8, 1]), { batchSize: 2, epochs: 1, callbacks: tap });
 * assert.ok(got.length === 2 && got[1].numRows === 4); // steps 0 and 2 of 0..3
 * ```
 *
 * @module
 */
import type * as arrow from "apache-arrow";
import type * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { makeRecordBatch } from "../produce.ts";

/** Where the tap writes record batches (a {@linkcode ProducerConnection} is one). */
export interface TapSink {
  write(batch: arrow.RecordBatch): Promise<void>;
}

/** What a gradient hook receives. */
export interface GradientHookContext {
  model: tfl.LayersModel;
  probe: tf.Tensor;
  labels: Int32Array | undefined;
  sampleIds: BigInt64Array;
  step: number;
}

/** Options of {@linkcode tfjsTap}. */
export interface TapOptions {
  /** The model being trained. */
  model: tfl.LayersModel;
  /** Names of the layers whose outputs are captured. */
  layers: string[];
  /** The fixed probe inputs (first dimension: samples). */
  probe: tf.Tensor;
  /** Sample ids of the probe rows (default 0..n-1). */
  sampleIds?: BigInt64Array;
  /** Class labels of the probe rows (written as `label`). */
  labels?: Int32Array;
  /** Capture every N steps (default 1). */
  every?: number;
  /** Step number of the first batch (default 0; e.g. a resumed run's next step). */
  firstStep?: number;
  /** Where activation batches go. */
  sink: TapSink;
  /** Optional hook returning a `gradients/v1` batch for the probe at a captured step (docs/producers.md). */
  gradients?: (context: GradientHookContext) => Promise<arrow.RecordBatch | null>;
  /** Where gradient batches go (required with `gradients`). */
  gradientSink?: TapSink;
  /** Probe rows per `predict` call (default 256). */
  batchSize?: number;
}

/** The tap: pass it as `callbacks` to `model.fit`; `capture(step)` also captures on demand. */
export interface Tap {
  /** tfjs callback hook: counts the step, captures when due. */
  onBatchEnd(batch: number, logs?: unknown): Promise<void>;
  /** Captures the probe now, labelled with `step`. */
  capture(step: number): Promise<void>;
  /** The step the next batch will have. */
  readonly step: number;
  /** Steps captured so far. */
  readonly captured: number[];
}

/** Creates a tap for `model.fit(..., { callbacks: tap })`. */
export function tfjsTap(options: TapOptions): Tap {
  const every = options.every ?? 1;
  if (!Number.isInteger(every) || every < 1) {
    throw new Error(`Cannot tap every N steps as N must be an integer >= 1: current value is ${every}`);
  }
  if (options.gradients && !options.gradientSink) {
    throw new Error("Cannot send gradients as no gradientSink was given: current value is missing");
  }
  const model = options.model;
  const layers = options.layers.map((name) => {
    try {
      return model.getLayer(name);
    } catch {
      throw new Error(
        `Cannot tap layer as the model has no layer of that name (has: ${
          model.layers.map((l) => l.name).join(", ")
        }): current value is '${name}'`,
      );
    }
  });
  const n = options.probe.shape[0];
  const sampleIds = options.sampleIds ?? BigInt64Array.from({ length: n }, (_, i) => BigInt(i));
  if (sampleIds.length !== n || (options.labels && options.labels.length !== n)) {
    throw new Error(
      `Cannot tap as sampleIds and labels must have one entry per probe row (${n}): current value is ${sampleIds.length}`,
    );
  }
  const outputs = layers.map((l) => l.output as tfl.SymbolicTensor);
  const probeModel = tfl.model({ inputs: model.inputs, outputs });
  let step = options.firstStep ?? 0;
  const captured: number[] = [];

  const capture = async (at: number) => {
    let outs = probeModel.predict(options.probe, { batchSize: options.batchSize ?? 256 }) as tf.Tensor | tf.Tensor[];
    if (!Array.isArray(outs)) outs = [outs];
    const tensors = [];
    try {
      for (let i = 0; i < layers.length; i++) {
        const t = outs[i];
        const width = t.size / n;
        tensors.push({
          name: layers[i].name,
          width,
          values: (await t.data()) as Float32Array,
          metadata: { "infotap.tap.class": layers[i].getClassName(), "infotap.tap.tensor": "output" },
        });
      }
    } finally {
      for (const t of outs) t.dispose();
    }
    await options.sink.write(makeRecordBatch({
      kind: "activations/v1",
      sampleId: sampleIds,
      step: new BigInt64Array(n).fill(BigInt(at)),
      label: options.labels,
      tensors,
    }));
    if (options.gradients) {
      const g = await options.gradients({ model, probe: options.probe, labels: options.labels, sampleIds, step: at });
      if (g) await options.gradientSink!.write(g);
    }
    captured.push(at);
  };

  return {
    async onBatchEnd() {
      const s = step++;
      if (s % every === 0) await capture(s);
    },
    capture,
    get step() {
      return step;
    },
    captured,
  };
}
