/**
 * infotap: measure where the information is in a neural network, from the activation, gradient and Jacobian
 * batches a training run already produces. Definitions: docs/science.md; wire format: schemas/README.md.
 *
 * This entry point loads no TensorFlow.js. It exports the wire format (types, reading, validation, the sketch),
 * the plugin contract and registry (to write estimators), the built-in estimators, the run (`analyze`, `serve`),
 * the writers (result tables, and `makeRecordBatch`/`writeBatches` to emit batches), and the results side
 * (`readResults`, `renderReport`, `compareRuns`). Producer helpers for training code (`connectProducer`, the tfjs
 * tap, per-sample gradients and Jacobians) are the second entry point, `./producers` (pipeline/producers/mod.ts).
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

// The wire format: batch types, reading and validation, the shared Jacobian sketch.
export type { Batch, Kind, TensorColumn } from "./schemas/batch.ts";
export { KINDS, ROW_GRADIENT, ROW_WEIGHTS, SPLIT_TEST, SPLIT_TRAIN } from "./schemas/batch.ts";
export { InputError } from "./schemas/errors.ts";
export { readInput, readStream } from "./schemas/source.ts";
export { SKETCH_SEED_KEY, SKETCH_SOURCE_DIM_KEY, validateSchema } from "./schemas/validate.ts";
export { sketchJacobian, sketchMetadata } from "./schemas/sketch.ts";

// The plugin contract, the registry, state and table helpers.
export type {
  Estimator,
  EstimatorContext,
  EstimatorPlugin,
  EstimatorSummary,
  LiveHint,
  OptionSpec,
  OptionValues,
  Results,
  Scanner,
  StateValue,
  TableSpec,
} from "./pipeline/core/plugin.ts";
export { definePlugin, PluginError } from "./pipeline/core/plugin.ts";
export { Registry } from "./pipeline/core/registry.ts";
export { decodeState, encodeState } from "./pipeline/core/state.ts";
export { stepRuns } from "./pipeline/core/steps.ts";
export { tableFromColumns } from "./pipeline/core/table.ts";
export type { ColumnSpec } from "./pipeline/core/table.ts";
export type { GpuContext } from "./plugins/kernels/gpu/context.ts";

// The built-in estimators.
export { builtinPlugins } from "./plugins/mod.ts";
export { entropyPlugin } from "./plugins/entropy/entropy.ts";
export { fisherPlugin } from "./plugins/fisher/fisher.ts";
export { labelMiPlugin } from "./plugins/label_mi/label_mi.ts";
export { miPlugin } from "./plugins/mi/mi.ts";
export { uniqueInfoPlugin } from "./plugins/unique_info/unique_info.ts";
export { effectiveInfoPlugin } from "./plugins/effective_info/effective_info.ts";
export { diagonalBounds, fullBounds } from "./plugins/effective_info/mixture_bounds.ts";

// Running estimators: over files or streams, or live.
export { analyze } from "./pipeline/analyze/run.ts";
export type { AnalyzeOptions, AnalyzeResult } from "./pipeline/analyze/run.ts";
export { serve } from "./pipeline/serve/serve.ts";
export type { ProducerRecord, ServeHandle, ServeOptions } from "./pipeline/serve/serve.ts";

// Writers: result tables, and wire-format batches (also in ./producers).
export { toParquet, writeTables } from "./pipeline/core/write.ts";
export { makeRecordBatch, writeBatches, writeBatchesTo } from "./pipeline/producers/produce.ts";
export type { BatchInput, TensorInput } from "./pipeline/producers/produce.ts";

// Results: read a results directory, render the HTML report, compare runs.
export { readResults } from "./pipeline/report/results.ts";
export type { Cell, ResultDirectory, ResultTable } from "./pipeline/report/results.ts";
export { renderReport } from "./pipeline/report/report.ts";
export type { ReportOptions } from "./pipeline/report/report.ts";
export { compareRuns, formatComparison, runMeasures } from "./pipeline/report/compare.ts";
export type { Comparison, Metric, Ranking, RunMeasures } from "./pipeline/report/compare.ts";
export { kendallTau } from "./pipeline/report/kendall.ts";
export type {
  LayerSummaryMeasure,
  PluginReport,
  RankMeasure,
  ReportContext,
  ReportPlot,
  ReportSection,
  SampleGroup,
  SectionContent,
} from "./pipeline/core/report_contract.ts";
