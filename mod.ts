/**
 * infotap: measure where the information is in a neural network, from the activation, gradient and Jacobian
 * batches a training run already produces. Definitions: ../shared/SCIENCE.md (see also `schemas/README.md`).
 *
 * This module exports the plugin contract (to write estimators), the pipeline (to run them from code), the
 * live server (`serve`) with its producer client (`connectProducer`) and tfjs tap (`tfjsTap`), the
 * wire-format producer helpers (to emit batches), and the built-in estimators.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { analyze, makeRecordBatch, writeBatches } from "./mod.ts";
 * const values = Float32Array.from({ length: 400 }, (_, i) => (i * 7919) % 100);
 * const path = await Deno.makeTempFile({ suffix: ".arrows" });
 * await writeBatches(path, [makeRecordBatch({
 *   kind: "activations/v1",
 *   sampleId: BigInt64Array.from({ length: 100 }, (_, i) => BigInt(i)),
 *   tensors: [{ name: "fc1", width: 4, values }],
 * })]);
 * const r = await analyze({ inputs: [path], options: { bins: 10 } });
 * assert.ok(r.complete && r.tables.neuron_entropy.numRows === 4);
 * ```
 *
 * @module
 */
export type { Batch, Kind, TensorColumn } from "./pipeline/batch.ts";
export { KINDS, SPLIT_TEST, SPLIT_TRAIN } from "./pipeline/batch.ts";
export { InputError } from "./pipeline/errors.ts";
export type {
  Estimator,
  EstimatorContext,
  EstimatorPlugin,
  OptionSpec,
  OptionValues,
  Results,
  Scanner,
  StateValue,
} from "./pipeline/plugin.ts";
export { definePlugin, PluginError } from "./pipeline/plugin.ts";
export { Registry } from "./pipeline/registry.ts";
export { decodeState, encodeState } from "./pipeline/state.ts";
export { stepRuns } from "./pipeline/steps.ts";
export { tableFromColumns } from "./pipeline/table.ts";
export type { ColumnSpec } from "./pipeline/table.ts";
export { analyze } from "./pipeline/run.ts";
export type { AnalyzeOptions, AnalyzeResult } from "./pipeline/run.ts";
export { readInput, readStream } from "./pipeline/source.ts";
export { serve } from "./pipeline/serve.ts";
export type { ProducerRecord, ServeHandle, ServeOptions } from "./pipeline/serve.ts";
export { connectProducer } from "./pipeline/connect.ts";
export type { ProducerConnection, ProducerOptions, ProducerReply } from "./pipeline/connect.ts";
export { tfjsTap } from "./pipeline/tfjs_tap.ts";
export type { GradientHookContext, Tap, TapOptions, TapSink } from "./pipeline/tfjs_tap.ts";
export { makeRecordBatch, writeBatches, writeBatchesTo } from "./pipeline/produce.ts";
export type { BatchInput, TensorInput } from "./pipeline/produce.ts";
export { toParquet, writeTables } from "./pipeline/write.ts";
export { denseModel, perSampleGradients, tfjsGradientBatch } from "./pipeline/tfjs_gradients.ts";
export type {
  Activation,
  DenseLayer,
  GradientOptions,
  NamedParam,
  PerSampleGradients,
  TfModel,
} from "./pipeline/tfjs_gradients.ts";
export { validateSchema } from "./schemas/validate.ts";
export { builtinPlugins } from "./plugins/mod.ts";
export { entropyPlugin } from "./plugins/entropy.ts";
export { fisherPlugin } from "./plugins/fisher.ts";
export { miPlugin } from "./plugins/mi.ts";
export { labelMiPlugin } from "./plugins/label_mi.ts";
export { uniqueInfoPlugin } from "./plugins/unique_info.ts";
export { fnv1a, sketchJacobian, sketchMetadata } from "./pipeline/sketch.ts";
export { tfjsJacobians } from "./pipeline/tfjs_jacobians.ts";
export type { TfjsJacobianOptions, TfjsParam } from "./pipeline/tfjs_jacobians.ts";
export { SKETCH_SEED_KEY, SKETCH_SOURCE_DIM_KEY } from "./schemas/validate.ts";
export { compareRuns, formatComparison, runMeasures } from "./pipeline/compare.ts";
export type { Comparison, Metric, Ranking, RunMeasures } from "./pipeline/compare.ts";
export { kendallTau } from "./pipeline/kendall.ts";
export { readResults } from "./pipeline/results.ts";
export type { Cell, ResultDirectory, ResultTable } from "./pipeline/results.ts";
export { renderReport } from "./pipeline/report.ts";
export type { ReportOptions } from "./pipeline/report.ts";
