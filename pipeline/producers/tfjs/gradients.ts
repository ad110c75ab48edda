/**
 * Producer helper for TensorFlow.js models: per-sample gradients `g = grad_w log p_w(y|x)` written as
 * `gradients/v1` record batches (docs/science.md section 2), for the `fisher` estimator.
 *
 * - True Fisher (`fisher: "true"`, the default when no labels are given): `y ~ softmax(logits)`, drawn in
 *   float64 from a seeded generator (mulberry32 of `seed` and `step`); `draws` labels per input, each a row with
 *   its `draw` index. Empirical Fisher: pass the dataset `labels`. Exact true Fisher (`fisher: "exact"`): one row
 *   per class, weighted by p(y|x) (the `weight` column): the expectation over labels without sampling noise, at
 *   `classes` times the rows. `sendWeights` appends the parameter values w* as a `weights` row (the `fisher`
 *   estimator's `||w*||^2 / (2 lambda^2)` term).
 * - tfjs has no `vmap`, and `@tensorflow/tfjs-core` registers no gradient functions (they ship as unbundled ES
 *   modules that Deno cannot load; only the `@tensorflow/tfjs` union bundle carries them), so `tf.grad` is not
 *   available with the project's dependencies. The fastest correct way for dense networks needs no autodiff: ONE
 *   batched forward pass keeps every layer's input `a_{l-1}` and pre-activation `z_l`; an explicit backward pass
 *   gives each row's delta, starting from `d log softmax(z)[y] / dz = onehot(y) - softmax(z)` and going down with
 *   `delta_{l-1} = (delta_l W_l^T) * act'(z_{l-1})` (rows never mix, so the batched pass holds every row's own
 *   delta); then `dW_l[i] = a_{l-1}[i] (outer) delta_l[i]` and `db_l[i] = delta_l[i]`. Cost: one training step's
 *   backward pass plus the outer products that the output holds anyway, against n backward passes for a
 *   per-row autodiff loop. Tested against float64 central finite differences of an independent forward pass.
 *   Supported layers: dense with `linear`, `relu`, `tanh`, `sigmoid` activations ({@linkcode denseModel}).
 * - Parameter tensors are named `<layer>.weight` (row-major `[in, out]`, as tfjs stores it) and `<layer>.bias`,
 *   so the `fisher` table groups them into layer `<layer>`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { denseModel, tfjsGradientBatch } from "./gradients.ts";
 * const model = denseModel([
 *   { name: "fc1", weight: tf.variable(tf.randomNormal([3, 4], 0, 1, "float32", 1)), bias: tf.variable(tf.zeros([4])), activation: "tanh" },
 *   { name: "fc2", weight: tf.variable(tf.randomNormal([4, 2], 0, 1, "float32", 2)) },
 * ]);
 * const rb = await tfjsGradientBatch(model, tf.randomNormal([5, 3], 0, 1, "float32", 3), { seed: 1, step: 0 });
 * assert.ok(rb.numRows === 5 && rb.schema.metadata.get("infotap.fisher") === "true");
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import type * as arrow from "apache-arrow";
import { makeRecordBatch } from "../produce.ts";
import { mulberry32 } from "../../core/random.ts";
import { mixSeed } from "./random.ts";

/** Activations of dense layers. */
export type Activation = "linear" | "relu" | "tanh" | "sigmoid";

/** One dense layer `a_out = activation(a_in W + b)`; `weight` is `[in, out]`. */
export interface DenseLayer {
  name: string;
  weight: tf.Tensor;
  bias?: tf.Tensor;
  activation?: Activation;
}

/** A named parameter tensor (a `tf.Variable` or any tensor). */
export interface NamedParam {
  name: string;
  tensor: tf.Tensor;
}

/** A dense model (from {@linkcode denseModel}): its parameters, `(params, x) -> logits`, and its layers. */
export interface TfModel {
  params: NamedParam[];
  logits: (params: tf.Tensor[], x: tf.Tensor) => tf.Tensor;
  dense: DenseLayer[];
}

/** Options of {@linkcode perSampleGradients} and {@linkcode tfjsGradientBatch}. */
export interface GradientOptions {
  /** Dataset labels (empirical Fisher). Without them labels are sampled from the model (true Fisher). */
  labels?: Int32Array;
  /**
   * `"exact"`: the true Fisher without sampling noise, one row per (input, class) weighted by p(y|x) (the
   * `weight` column; `draw` is the class). Default: `"empirical"` when `labels` are given, else `"true"`
   * (sampled labels).
   */
  fisher?: "true" | "empirical" | "exact";
  /** True Fisher: labels drawn per input (default 1); rows are input-major, draw-minor. */
  draws?: number;
  /** Seed of the label sampling (default 0); combined with `step`. */
  seed?: number;
  /** Training step, written as the `step` column. */
  step?: number | bigint;
  /** `sample_id` per input (default 0..n-1). */
  sampleId?: BigInt64Array;
  /**
   * {@linkcode tfjsGradientBatch}: also send the parameter values w* as a last row (`row_type = weights`,
   * `sample_id` -1), so that `fisher --prior-var` adds `||w*||^2 / (2 lambda^2)` to the information in the weights.
   */
  sendWeights?: boolean;
}

/** Per-sample gradients, row-major `rows x numel` per parameter tensor. */
export interface PerSampleGradients {
  fisher: "true" | "empirical";
  /** Input index of each row. */
  input: Int32Array;
  draw: Int32Array;
  /** The label each row's gradient is taken at. */
  labels: Int32Array;
  /** Exact Fisher: each row's weight p(y|x) (float64); absent otherwise. */
  weight?: Float64Array;
  grads: { name: string; width: number; values: Float32Array }[];
}

/** Applies a dense layer's activation to its pre-activation `z`. */
export function activate(a: Activation | undefined, z: tf.Tensor): tf.Tensor {
  switch (a ?? "linear") {
    case "linear":
      return z;
    case "relu":
      return tf.relu(z);
    case "tanh":
      return tf.tanh(z);
    case "sigmoid":
      return tf.sigmoid(z);
    default:
      throw new Error(`Cannot build a dense layer as its activation is unknown: current value is '${a}'`);
  }
}

/** Builds a {@linkcode TfModel} from dense layers (parameters `<name>.weight`, `<name>.bias`). */
export function denseModel(layers: DenseLayer[]): TfModel {
  const params: NamedParam[] = [];
  for (const l of layers) {
    params.push({ name: `${l.name}.weight`, tensor: l.weight });
    if (l.bias) params.push({ name: `${l.name}.bias`, tensor: l.bias });
  }
  const logits = (ps: tf.Tensor[], x: tf.Tensor) => {
    let a = x, k = 0;
    for (const l of layers) {
      const w = ps[k++];
      let z = tf.matMul(a as tf.Tensor2D, w as tf.Tensor2D) as tf.Tensor;
      if (l.bias) z = tf.add(z, ps[k++]);
      a = activate(l.activation, z);
    }
    return a;
  };
  return { params, logits, dense: layers };
}

/** Row labels: given (empirical), drawn from softmax(logits) in float64 (true), or every class weighted (exact). */
function rowLabels(model: TfModel, x: tf.Tensor, n: number, o: GradientOptions) {
  if (o.fisher !== undefined && !["true", "empirical", "exact"].includes(o.fisher)) {
    throw new Error(
      `Cannot compute gradients as fisher must be 'true', 'empirical' or 'exact': current value is ${o.fisher}`,
    );
  }
  if ((o.fisher === "empirical") !== (o.labels !== undefined) && o.fisher !== undefined) {
    throw new Error(
      `Cannot compute gradients as dataset labels go with fisher 'empirical' (and only with it): current value is ${o.fisher} ${
        o.labels ? "with" : "without"
      } labels`,
    );
  }
  if (o.labels) {
    if (o.labels.length !== n) {
      throw new Error(`Cannot use labels as there must be one per input (${n}): current value is ${o.labels.length}`);
    }
    if (o.draws !== undefined && o.draws !== 1) {
      throw new Error(
        `Cannot draw labels when dataset labels are given (empirical Fisher): current value is ${o.draws}`,
      );
    }
    return {
      fisher: "empirical" as const,
      input: Int32Array.from({ length: n }, (_, i) => i),
      draw: new Int32Array(n),
      labels: o.labels,
    };
  }
  const draws = o.draws ?? 1;
  if (!(Number.isInteger(draws) && draws >= 1)) {
    throw new Error(`Cannot draw labels as draws must be an integer >= 1: current value is ${draws}`);
  }
  const logits = tf.tidy(() => model.logits(model.params.map((p) => p.tensor), x));
  const z = logits.dataSync();
  const k = logits.shape[1]!;
  logits.dispose();
  if (o.fisher === "exact") return exactRows(z, n, k, o);
  const rand = mulberry32(mixSeed(o.seed ?? 0, o.step ?? 0));
  const input = new Int32Array(n * draws), draw = new Int32Array(n * draws), labels = new Int32Array(n * draws);
  const p = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    for (let c = 0; c < k; c++) max = Math.max(max, z[i * k + c]);
    let sum = 0;
    for (let c = 0; c < k; c++) sum += p[c] = Math.exp(z[i * k + c] - max);
    for (let d = 0; d < draws; d++) {
      const r = i * draws + d;
      let u = rand() * sum, c = 0;
      while (c < k - 1 && (u -= p[c]) >= 0) c++;
      input[r] = i;
      draw[r] = d;
      labels[r] = c;
    }
  }
  return { fisher: "true" as const, input, draw, labels };
}

/** Exact true Fisher: rows input-major, class-minor, weight p(y|x) from softmax(logits) in float64. */
function exactRows(z: ArrayLike<number>, n: number, k: number, o: GradientOptions) {
  if (o.draws !== undefined && o.draws !== 1) {
    throw new Error(
      `Cannot draw labels for the exact Fisher (every class is a row): current value is draws ${o.draws}`,
    );
  }
  const input = new Int32Array(n * k), draw = new Int32Array(n * k), labels = new Int32Array(n * k);
  const weight = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    let max = -Infinity, sum = 0;
    for (let c = 0; c < k; c++) max = Math.max(max, z[i * k + c]);
    for (let c = 0; c < k; c++) sum += weight[i * k + c] = Math.exp(z[i * k + c] - max);
    for (let c = 0; c < k; c++) {
      const r = i * k + c;
      weight[r] /= sum;
      input[r] = i;
      draw[r] = c;
      labels[r] = c;
    }
  }
  return { fisher: "true" as const, input, draw, labels, weight };
}

/** Per-sample gradients of `log p(y|x)` for every row (see the module doc for the method). */
export async function perSampleGradients(
  model: TfModel,
  x: tf.Tensor,
  options: GradientOptions = {},
): Promise<PerSampleGradients> {
  await tf.ready();
  const n = x.shape[0];
  const rows = rowLabels(model, x, n, options);
  return { ...rows, grads: denseGrads(model.dense, x, rows.input, rows.labels) };
}

/** d activation / d z, from z and a = activation(z). */
function actDeriv(a: Activation | undefined, z: tf.Tensor, out: tf.Tensor): tf.Tensor | null {
  switch (a ?? "linear") {
    case "linear":
      return null;
    case "relu":
      return tf.cast(tf.greater(z, 0), "float32");
    case "tanh":
      return tf.sub(1, tf.square(out));
    default: // sigmoid
      return tf.mul(out, tf.sub(1, out));
  }
}

/**
 * Row-wise outer products `a_r (outer) d_r` (`[rows, din, dout]`) in float32: each product is rounded once, as a
 * float32 tensor multiply rounds it. Plain loops: tfjs' broadcast multiply for this was 100x slower (wasm backend).
 */
function outer(a: ArrayLike<number>, d: Float32Array, din: number, dout: number): Float32Array {
  const rows = d.length / dout, out = new Float32Array(rows * din * dout);
  for (let r = 0; r < rows; r++) {
    const o = r * din * dout, ar = r * din, dr = r * dout;
    for (let i = 0; i < din; i++) {
      const x = a[ar + i], oi = o + i * dout;
      for (let j = 0; j < dout; j++) out[oi + j] = x * d[dr + j];
    }
  }
  return out;
}

/** One batched forward pass, an explicit backward pass for the deltas, then outer products. */
function denseGrads(layers: DenseLayer[], x: tf.Tensor, input: Int32Array, labels: Int32Array) {
  // The typed arrays leave through `out`, not as tidy's return value: tidy walks what it returns element by
  // element looking for tensors (seconds for a few million floats).
  const out: PerSampleGradients["grads"] = [];
  tf.tidy(() => {
    const xr = tf.gather(x, tf.tensor1d(input, "int32"));
    const ins: tf.Tensor[] = [], zs: tf.Tensor[] = [], outs: tf.Tensor[] = [];
    let a: tf.Tensor = xr;
    for (const l of layers) {
      ins.push(a);
      let z = tf.matMul(a as tf.Tensor2D, l.weight as tf.Tensor2D) as tf.Tensor;
      if (l.bias) z = tf.add(z, l.bias);
      zs.push(z);
      a = activate(l.activation, z);
      outs.push(a);
    }
    const classes = a.shape[1]!;
    // d log softmax(logits)[y] / d logits = onehot(y) - softmax(logits), row by row.
    let da: tf.Tensor = tf.sub(tf.cast(tf.oneHot(tf.tensor1d(labels, "int32"), classes), "float32"), tf.softmax(a));
    for (let i = layers.length - 1; i >= 0; i--) {
      const l = layers[i];
      const d = actDeriv(l.activation, zs[i], outs[i]);
      const dz = d ? tf.mul(da, d) : da;
      const [din, dout] = l.weight.shape as [number, number];
      const dzv = dz.dataSync() as Float32Array;
      const grads = [{ name: `${l.name}.weight`, width: din * dout, values: outer(ins[i].dataSync(), dzv, din, dout) }];
      if (l.bias) grads.push({ name: `${l.name}.bias`, width: dout, values: dzv });
      out.unshift(...grads);
      if (i > 0) da = tf.matMul(dz as tf.Tensor2D, l.weight as tf.Tensor2D, false, true);
    }
  });
  return out;
}

/**
 * Per-sample gradients of a tfjs model on inputs `x` as one `gradients/v1` record batch (columns: `sample_id`,
 * `step` when given, `draw`, one tensor column per parameter; schema metadata `infotap.fisher`).
 */
export async function tfjsGradientBatch(
  model: TfModel,
  x: tf.Tensor,
  options: GradientOptions = {},
): Promise<arrow.RecordBatch> {
  const g = await perSampleGradients(model, x, options);
  const n = x.shape[0];
  const ids = options.sampleId ?? BigInt64Array.from({ length: n }, (_, i) => BigInt(i));
  if (ids.length !== n) {
    throw new Error(`Cannot use sampleId as there must be one per input (${n}): current value is ${ids.length}`);
  }
  const rows = g.input.length;
  if (!options.sendWeights) {
    return makeRecordBatch({
      kind: "gradients/v1",
      fisher: g.fisher,
      sampleId: BigInt64Array.from(g.input, (i) => ids[i]),
      step: options.step === undefined ? undefined : new BigInt64Array(rows).fill(BigInt(options.step)),
      draw: g.draw,
      weight: g.weight,
      tensors: g.grads,
    });
  }
  // One more row: the parameter values w* (row_type "weights"), after the gradient rows.
  const tensors = g.grads.map((t, i) => {
    const values = new Float32Array((rows + 1) * t.width);
    values.set(t.values);
    values.set(model.params[i].tensor.dataSync() as Float32Array, rows * t.width);
    return { name: t.name, width: t.width, values };
  });
  const weight = g.weight ? new Float64Array(rows + 1) : undefined;
  weight?.set(g.weight!);
  return makeRecordBatch({
    kind: "gradients/v1",
    fisher: g.fisher,
    sampleId: BigInt64Array.from({ length: rows + 1 }, (_, r) => (r < rows ? ids[g.input[r]] : -1n)),
    step: options.step === undefined ? undefined : new BigInt64Array(rows + 1).fill(BigInt(options.step)),
    draw: Int32Array.from({ length: rows + 1 }, (_, r) => (r < rows ? g.draw[r] : 0)),
    weight,
    rowType: Array.from({ length: rows + 1 }, (_, r) => (r < rows ? "gradient" : "weights")),
    tensors,
  });
}
