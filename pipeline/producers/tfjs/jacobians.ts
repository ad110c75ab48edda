/**
 * Producer helper: per-sample, per-output Jacobian rows of a TensorFlow.js model at its initial weights `w0`, with
 * `f0` and targets, as `jacobians/v1` record batches (optionally sketched with `schemas/sketch.ts`), ready for
 * `writeBatches` and the `unique-info` estimator (docs/science.md section 3).
 *
 * The model is a function of its parameter tensors: `apply(params, x)` maps inputs `[rows, ...inputShape]` to
 * outputs `[rows, k]`. Row `(i, c)` is `d f_c(x_i) / d w` at `w0`, one column per parameter tensor (flattened
 * row-major, as `Tensor.dataSync()`), computed with `tf.grads`: one backward pass per sample and output, so this
 * suits small models; for large ones pass `sketchDim` so each batch leaves the producer already projected.
 * Backends: `cpu` (default, `@tensorflow/tfjs-backend-cpu`) or `wasm` (`@tensorflow/tfjs-backend-wasm`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { tfjsJacobians } from "./jacobians.ts";
 * const batches = [];
 * for await (const rb of tfjsJacobians({
 *   params: [{ name: "w", shape: [2, 1], values: new Float32Array([0.5, -1]) }],
 *   apply: ([w], x) => tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D),
 *   inputs: new Float32Array([1, 2, 3, 4]),
 *   inputShape: [2],
 *   targets: new Float32Array([1, 0]),
 * })) batches.push(rb);
 * // d(x . w)/dw = x: the rows are the inputs; f0 = x . w0
 * assert.ok(batches[0].numRows === 2 && batches[0].getChild("f0")!.get(0) === -1.5);
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
// tfjs-core registers no gradients by default, and its own `dist/register_all_gradients` is ESM with
// extensionless imports that Deno cannot load; the tfjs-layers node bundle registers every gradient into the
// shared global registry when imported (its only dependency is tfjs-core).
import "@tensorflow/tfjs-layers";
import "@tensorflow/tfjs-backend-cpu";
import type * as arrow from "apache-arrow";
import { makeRecordBatch } from "../produce.ts";
import { registerWasmBackend } from "./setup.ts";
import { sketchJacobian, sketchMetadata } from "../../../schemas/sketch.ts";

/** One parameter tensor of the model, at the initial weights. */
export interface TfjsParam {
  name: string;
  shape: number[];
  values: Float32Array;
}

/** Options of {@linkcode tfjsJacobians}. */
export interface TfjsJacobianOptions {
  /** Parameter tensors at `w0`; each becomes one Jacobian column. */
  params: TfjsParam[];
  /** The model: outputs `[rows, k]` from the parameter tensors (in `params` order) and inputs `[rows, ...]`. */
  apply: (params: tf.Tensor[], x: tf.Tensor) => tf.Tensor;
  /** Inputs, row-major: `n x prod(inputShape)`. */
  inputs: Float32Array;
  /** Shape of one input. */
  inputShape: number[];
  /** Targets `n x k` (NaN = none, test rows only). Omitted: all NaN (every sample must then be a test sample). */
  targets?: Float32Array;
  /** Per sample; default `0..n-1`. */
  sampleIds?: BigInt64Array;
  /** Per sample; default all "train". */
  split?: ("train" | "test")[];
  /** Project each column to this many values with the seeded sketch (columns carry the sketch metadata). */
  sketchDim?: number;
  /** Seed of the sketch (default 0). */
  seed?: number;
  /** Samples per record batch (default 64). */
  samplesPerBatch?: number;
  /** TensorFlow.js backend (default `cpu`). */
  backend?: "cpu" | "wasm";
}

async function useBackend(name: "cpu" | "wasm"): Promise<void> {
  if (tf.getBackend() === name) return;
  if (name === "wasm") await registerWasmBackend();
  if (!(await tf.setBackend(name))) {
    throw new Error(`Cannot use the TensorFlow.js backend as it failed to start: current value is '${name}'`);
  }
}

/** Yields `jacobians/v1` record batches of the model's Jacobian rows at `w0` (see the module doc). */
export async function* tfjsJacobians(opts: TfjsJacobianOptions): AsyncGenerator<arrow.RecordBatch> {
  await useBackend(opts.backend ?? "cpu");
  const d = opts.inputShape.reduce((a, b) => a * b, 1);
  if (opts.inputs.length % d !== 0) {
    throw new Error(
      `Cannot split the inputs into samples of shape [${opts.inputShape}]: current value is ${opts.inputs.length} values`,
    );
  }
  const n = opts.inputs.length / d;
  const per = opts.samplesPerBatch ?? 64;
  const params = opts.params.map((p) => tf.tensor(p.values, p.shape));
  const widths = opts.params.map((p) => p.values.length);
  try {
    for (let s0 = 0; s0 < n; s0 += per) {
      const s1 = Math.min(n, s0 + per);
      const cols = widths.map(() => [] as Float32Array[]);
      const f0: number[] = [], ids: bigint[] = [], split: string[] = [], out: number[] = [], target: number[] = [];
      for (let i = s0; i < s1; i++) {
        const x = tf.tensor(opts.inputs.subarray(i * d, (i + 1) * d), [1, ...opts.inputShape]);
        const y = tf.tidy(() => tf.reshape(opts.apply(params, x), [-1]));
        const fi = y.dataSync() as Float32Array;
        const k = fi.length;
        y.dispose();
        if (opts.targets && opts.targets.length !== n * k) {
          throw new Error(
            `Cannot use the targets as they must be n x k = ${n * k} values: current value is ${opts.targets.length}`,
          );
        }
        for (let c = 0; c < k; c++) {
          const grads = tf.tidy(() =>
            tf.grads((...ps: tf.Tensor[]) => tf.sum(tf.slice(tf.reshape(opts.apply(ps, x), [-1]), [c], [1])))(params)
          );
          grads.forEach((g, t) => cols[t].push(g.dataSync() as Float32Array));
          tf.dispose(grads);
          f0.push(fi[c]);
          ids.push(opts.sampleIds ? opts.sampleIds[i] : BigInt(i));
          split.push(opts.split?.[i] ?? "train");
          out.push(c);
          target.push(opts.targets ? opts.targets[i * k + c] : NaN);
        }
        x.dispose();
      }
      const rows = f0.length;
      const tensors = opts.params.map((p, t) => {
        const values = new Float32Array(rows * widths[t]);
        cols[t].forEach((g, r) => values.set(g, r * widths[t]));
        if (opts.sketchDim === undefined) return { name: p.name, width: widths[t], values };
        const seed = opts.seed ?? 0;
        return {
          name: p.name,
          width: opts.sketchDim,
          values: sketchJacobian(values, widths[t], opts.sketchDim, seed, p.name),
          metadata: sketchMetadata(seed, widths[t]),
        };
      });
      yield makeRecordBatch({
        kind: "jacobians/v1",
        sampleId: BigInt64Array.from(ids),
        split,
        output: Int32Array.from(out),
        f0: Float32Array.from(f0),
        target: Float32Array.from(target),
        tensors,
      });
    }
  } finally {
    tf.dispose(params);
  }
}
