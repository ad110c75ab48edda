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
export type { Batch, Kind, TensorColumn } from "./schemas/batch.ts";
export { KINDS, ROW_GRADIENT, ROW_WEIGHTS, SPLIT_TEST, SPLIT_TRAIN } from "./schemas/batch.ts";
export { InputError } from "./schemas/errors.ts";
export type {
  Estimator,
  EstimatorContext,
  EstimatorPlugin,
  OptionSpec,
  OptionValues,
  Results,
  Scanner,
  StateValue,
} from "./pipeline/core/plugin.ts";
export { definePlugin, PluginError } from "./pipeline/core/plugin.ts";
export { Registry } from "./pipeline/core/registry.ts";
export { decodeState, encodeState } from "./pipeline/core/state.ts";
export { stepRuns } from "./pipeline/core/steps.ts";
export { tableFromColumns } from "./pipeline/core/table.ts";
export type { ColumnSpec } from "./pipeline/core/table.ts";
export { analyze } from "./pipeline/analyze/run.ts";
export type { AnalyzeOptions, AnalyzeResult } from "./pipeline/analyze/run.ts";
export { readInput, readStream } from "./schemas/source.ts";
export { serve } from "./pipeline/serve/serve.ts";
export type { ProducerRecord, ServeHandle, ServeOptions } from "./pipeline/serve/serve.ts";
export { connectProducer } from "./pipeline/producers/connect.ts";
export type { ProducerConnection, ProducerOptions, ProducerReply } from "./pipeline/producers/connect.ts";
export { tfjsTap } from "./pipeline/producers/tfjs/tap.ts";
export type { GradientHookContext, Tap, TapOptions, TapSink } from "./pipeline/producers/tfjs/tap.ts";
export { makeRecordBatch, writeBatches, writeBatchesTo } from "./pipeline/producers/produce.ts";
export type { BatchInput, TensorInput } from "./pipeline/producers/produce.ts";
export { toParquet, writeTables } from "./pipeline/core/write.ts";
export { denseModel, perSampleGradients, tfjsGradientBatch } from "./pipeline/producers/tfjs/gradients.ts";
export type {
  Activation,
  DenseLayer,
  GradientOptions,
  NamedParam,
  PerSampleGradients,
  TfModel,
} from "./pipeline/producers/tfjs/gradients.ts";
export { fisherDiagonal, noisyActivationBatches, posteriorStd } from "./pipeline/producers/tfjs/weight_noise.ts";
export type { FisherDiagTable, NoiseOptions } from "./pipeline/producers/tfjs/weight_noise.ts";
export { validateSchema } from "./schemas/validate.ts";
export { builtinPlugins } from "./plugins/mod.ts";
export { entropyPlugin } from "./plugins/entropy/entropy.ts";
export { fisherPlugin } from "./plugins/fisher/fisher.ts";
export { miPlugin } from "./plugins/mi/mi.ts";
export { labelMiPlugin } from "./plugins/label_mi/label_mi.ts";
export { uniqueInfoPlugin } from "./plugins/unique_info/unique_info.ts";
export { effectiveInfoPlugin } from "./plugins/effective_info/effective_info.ts";
export { diagonalBounds, fullBounds } from "./plugins/effective_info/mixture_bounds.ts";
export { fnv1a, sketchJacobian, sketchMetadata } from "./schemas/sketch.ts";
export { tfjsJacobians } from "./pipeline/producers/tfjs/jacobians.ts";
export type { TfjsJacobianOptions, TfjsParam } from "./pipeline/producers/tfjs/jacobians.ts";
export { SKETCH_SEED_KEY, SKETCH_SOURCE_DIM_KEY } from "./schemas/validate.ts";
export { compareRuns, formatComparison, runMeasures } from "./pipeline/report/compare.ts";
export type { Comparison, Metric, Ranking, RunMeasures } from "./pipeline/report/compare.ts";
export { kendallTau } from "./pipeline/report/kendall.ts";
export { readResults } from "./pipeline/report/results.ts";
export type { Cell, ResultDirectory, ResultTable } from "./pipeline/report/results.ts";
export { renderReport } from "./pipeline/report/report.ts";
export type { ReportOptions } from "./pipeline/report/report.ts";
