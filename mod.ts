/**
 * infotap: measure where the information is in a neural network, from the activation, gradient and Jacobian
 * batches a training run already produces. Definitions: ../shared/SCIENCE.md (see also `schemas/README.md`).
 *
 * This module exports the plugin contract (to write estimators), the pipeline (to run them from code), the
 * wire-format producer helpers (to emit batches), and the built-in estimators.
 *
 * @example
 * ```ts
 * import { analyze, makeRecordBatch, writeBatches } from "./mod.ts";
 * const values = Float32Array.from({ length: 400 }, (_, i) => (i * 7919) % 100);
 * const path = await Deno.makeTempFile({ suffix: ".arrows" });
 * await writeBatches(path, [makeRecordBatch({
 *   kind: "activations/v1",
 *   sampleId: BigInt64Array.from({ length: 100 }, (_, i) => BigInt(i)),
 *   tensors: [{ name: "fc1", width: 4, values }],
 * })]);
 * const r = await analyze({ inputs: [path], options: { bins: 10 } });
 * console.assert(r.complete && r.tables.neuron_entropy.numRows === 4);
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
export { readInput } from "./pipeline/source.ts";
export { makeRecordBatch, writeBatches, writeBatchesTo } from "./pipeline/produce.ts";
export type { BatchInput, TensorInput } from "./pipeline/produce.ts";
export { toParquet, writeTables } from "./pipeline/write.ts";
export { validateSchema } from "./schemas/validate.ts";
export { builtinPlugins } from "./plugins/mod.ts";
export { entropyPlugin } from "./plugins/entropy.ts";
export { uniqueInfoPlugin } from "./plugins/unique_info.ts";
export { fnv1a, sketchJacobian, sketchMetadata } from "./pipeline/sketch.ts";
export { tfjsJacobians } from "./pipeline/tfjs_jacobians.ts";
export type { TfjsJacobianOptions, TfjsParam } from "./pipeline/tfjs_jacobians.ts";
export { SKETCH_SEED_KEY, SKETCH_SOURCE_DIM_KEY } from "./schemas/validate.ts";
