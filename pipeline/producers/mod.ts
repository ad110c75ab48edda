/**
 * infotap's producer helpers, the `./producers` entry point: what training code uses to emit wire-format batches
 * (schemas/README.md) to files or to a live `serve`. Unlike the main entry point (`mod.ts`) this one loads
 * TensorFlow.js, for the tfjs helpers. Docs: README.md ("Watch a training run live"), docs/live.md.
 *
 * - Batches and streams: `makeRecordBatch`, `writeBatches`, `writeBatchesTo` (also in `mod.ts`), and the seeded
 *   Jacobian sketch `sketchJacobian`/`sketchMetadata` that the `unique-info` estimator agrees with.
 * - Live: `connectProducer` (TCP client of `serve`), `tfjsTap` (a `model.fit` callback).
 * - tfjs: `initTf`, per-sample gradients for `fisher` (`denseModel`, `perSampleGradients`, `tfjsGradientBatch`:
 *   sampled, empirical or exact), weight draws from the post-distribution for `effective-info` (`fisherDiagonal`,
 *   `posteriorStd`, `noisyActivationBatches`) and Jacobian rows for `unique-info` (`tfjsJacobians`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { denseModel, tfjsGradientBatch } from "./mod.ts";
 * const model = denseModel([{ name: "fc1", weight: tf.variable(tf.ones([3, 2])) }]);
 * const rb = await tfjsGradientBatch(model, tf.ones([4, 3]), { seed: 1, step: 0 });
 * assert.ok(rb.numRows === 4 && rb.schema.metadata.get("infotap.fisher") === "true");
 * ```
 *
 * @module
 */
export { makeRecordBatch, writeBatches, writeBatchesTo } from "./produce.ts";
export type { BatchInput, TensorInput } from "./produce.ts";
export { sketchJacobian, sketchMetadata } from "../../schemas/sketch.ts";
export { connectProducer } from "./connect.ts";
export type { ProducerConnection, ProducerOptions, ProducerReply } from "./connect.ts";
export { tfjsTap } from "./tfjs/tap.ts";
export type { GradientHookContext, Tap, TapOptions, TapSink } from "./tfjs/tap.ts";
export { initTf } from "./tfjs/setup.ts";
export { denseModel, perSampleGradients, tfjsGradientBatch } from "./tfjs/gradients.ts";
export type {
  Activation,
  DenseLayer,
  GradientOptions,
  NamedParam,
  PerSampleGradients,
  TfModel,
} from "./tfjs/gradients.ts";
export { fisherDiagonal, noisyActivationBatches, posteriorStd } from "./tfjs/weight_noise.ts";
export type { FisherDiagTable, NoiseOptions } from "./tfjs/weight_noise.ts";
export { tfjsJacobians } from "./tfjs/jacobians.ts";
export type { TfjsJacobianOptions, TfjsParam } from "./tfjs/jacobians.ts";
