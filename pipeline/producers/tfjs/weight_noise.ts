/**
 * Producer helpers for the effective information (docs/science.md section 2, docs/effective_info.md): draw the
 * weights from the post-distribution `N(w*, Sigma*)`, `Sigma* = diag(F_jj / beta + 1 / lambda^2)^-1`, with `F_jj`
 * from a `fisher_diag` result table, and record a dense tfjs model's pre-activations on probe inputs under each
 * draw as `activations/v1` batches with a `draw` column, for the `effective-info` estimator.
 *
 * - {@linkcode fisherDiagonal}: the diagonal per parameter tensor from a `fisher_diag` table (one step).
 * - {@linkcode posteriorStd}: `sigma_j = (F_jj / beta + 1 / lambda^2)^-1/2` per tensor.
 * - {@linkcode noisyActivationBatches}: one batch per draw; every input sees the same weights within a draw.
 *   Noise is float64 Box-Muller from mulberry32 of (`seed`, `step`, draw), rounded to float32 weights.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { denseModel } from "./gradients.ts";
 * import { noisyActivationBatches, posteriorStd } from "./weight_noise.ts";
 * const model = denseModel([{ name: "fc1", weight: tf.variable(tf.ones([2, 3])) }]);
 * const std = posteriorStd(new Map([["fc1.weight", new Float64Array(6).fill(4)]]), { priorVar: 1, beta: 1 });
 * assert.ok(Math.abs(std.get("fc1.weight")![0] - 1 / Math.sqrt(5)) < 1e-15);
 * const batches = await noisyActivationBatches(model, tf.ones([4, 2]), std, { draws: 3, seed: 1 });
 * assert.ok(batches.length === 3 && batches[2].numRows === 4 && batches[2].getChild("draw")!.get(0) === 2);
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import type * as arrow from "apache-arrow";
import { makeRecordBatch } from "../produce.ts";
import { activate, type TfModel } from "./gradients.ts";
import { gaussian, mixSeed } from "./random.ts";

/** Rows of a `fisher_diag` table: an Arrow table (as `analyze` returns it) or rows as `readResults` gives them. */
export type FisherDiagTable = arrow.Table | { rows: Record<string, unknown>[] };

/**
 * `F_jj` per parameter tensor from a `fisher_diag` table (`parameter`, `index`, `value`, `step`), at `step` (default:
 * the last step in the table; tables without steps have one). Null values (no finite gradient) become 0.
 */
export function fisherDiagonal(table: FisherDiagTable, step?: number | bigint): Map<string, Float64Array> {
  const rows: Record<string, unknown>[] = "rows" in table ? table.rows : table.toArray().map((r) => r.toJSON());
  if (rows.length === 0) {
    throw new Error("Cannot read the Fisher diagonal as the fisher_diag table is empty: current value is 0 rows");
  }
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  const steps = rows.map((r) => num(r.step));
  const at = step === undefined
    ? steps.reduce((a, s) => (s !== null && (a === null || s > a) ? s : a), null)
    : Number(step);
  const out = new Map<string, number[]>();
  let found = 0;
  rows.forEach((r, i) => {
    if (steps[i] !== at) return;
    found++;
    const name = String(r.parameter), k = Number(r.index);
    const v = out.get(name) ?? [];
    v[k] = num(r.value) ?? 0;
    out.set(name, v);
  });
  if (found === 0) {
    throw new Error(`Cannot read the Fisher diagonal as the table has no rows at step ${at}: current value is ${step}`);
  }
  return new Map([...out].map(([name, v]) => [name, Float64Array.from(v, (x) => x ?? 0)]));
}

/** `sigma_j = (F_jj / beta + 1 / lambda^2)^-1/2`: the post-distribution's standard deviation per weight. */
export function posteriorStd(
  diag: Map<string, Float64Array>,
  o: { priorVar: number; beta: number },
): Map<string, Float64Array> {
  if (!(o.priorVar > 0) || !(o.beta > 0)) {
    throw new Error(
      `Cannot form the post-distribution as priorVar and beta must be > 0: current value is ${o.priorVar}, ${o.beta}`,
    );
  }
  return new Map(
    [...diag].map(([name, f]) => [name, f.map((x) => 1 / Math.sqrt(Math.max(0, x) / o.beta + 1 / o.priorVar))]),
  );
}

/** Options of {@linkcode noisyActivationBatches}. */
export interface NoiseOptions {
  /** Weight draws R (each a batch of all inputs). */
  draws: number;
  /** Seed of the noise (default 0), mixed with `step` and the draw index. */
  seed?: number;
  /** Training step, written as the `step` column. */
  step?: number | bigint;
  /** `sample_id` per input (default 0..n-1). */
  sampleId?: BigInt64Array;
  /** Dense layers to record (default all, the output logits included). */
  layers?: string[];
  /** Extra schema metadata. */
  metadata?: Record<string, string>;
}

/**
 * Pre-activations `z_l = a_{l-1} W_l + b_l` of the model's dense layers on inputs `x` under `draws` weight draws
 * `w = w* + std * eps`: one `activations/v1` batch per draw (columns `sample_id`, `step` when given, `draw`, one
 * per recorded layer). `std` must name every parameter tensor of the model (`<layer>.weight`, `<layer>.bias`).
 */
export async function noisyActivationBatches(
  model: TfModel,
  x: tf.Tensor,
  std: Map<string, Float64Array>,
  o: NoiseOptions,
): Promise<arrow.RecordBatch[]> {
  await tf.ready();
  if (!(Number.isInteger(o.draws) && o.draws >= 1)) {
    throw new Error(`Cannot draw weights as draws must be an integer >= 1: current value is ${o.draws}`);
  }
  const n = x.shape[0];
  const ids = o.sampleId ?? BigInt64Array.from({ length: n }, (_, i) => BigInt(i));
  if (ids.length !== n) {
    throw new Error(`Cannot use sampleId as there must be one per input (${n}): current value is ${ids.length}`);
  }
  const names = model.dense.map((l) => l.name);
  const record = o.layers ?? names;
  for (const l of record) {
    if (!names.includes(l)) {
      throw new Error(
        `Cannot record layer as the model has no such dense layer (has: ${names.join(", ")}): current value is '${l}'`,
      );
    }
  }
  const base = model.params.map((p) => {
    const s = std.get(p.name);
    const size = p.tensor.size;
    if (!s || s.length !== size) {
      throw new Error(
        `Cannot draw weights for '${p.name}' as the standard deviations must give one per weight (${size}): current value is ${
          s ? s.length : "missing"
        }`,
      );
    }
    return { values: p.tensor.dataSync() as Float32Array, shape: p.tensor.shape, std: s };
  });
  const meta = {
    "infotap.tapped": "pre-activation of dense layers under weight noise w ~ N(w*, Sigma*) (tfjs)",
    "infotap.noise": JSON.stringify({ draws: o.draws, seed: o.seed ?? 0 }),
    ...o.metadata,
  };
  const out: arrow.RecordBatch[] = [];
  for (let r = 0; r < o.draws; r++) {
    const eps = gaussian(mixSeed(mixSeed(o.seed ?? 0, o.step ?? 0), r + 1));
    const params = base.map((p) => {
      const w = new Float32Array(p.values.length);
      for (let j = 0; j < w.length; j++) w[j] = p.values[j] + p.std[j] * eps();
      return tf.tensor(w, p.shape);
    });
    const pre = preActivations(model, params, x);
    const tensors = record.map((name) => {
      const z = pre[names.indexOf(name)];
      return { name, width: z.shape[1]!, values: z.dataSync() as Float32Array };
    });
    tf.dispose([...params, ...pre]);
    out.push(makeRecordBatch({
      kind: "activations/v1",
      sampleId: ids,
      step: o.step === undefined ? undefined : new BigInt64Array(n).fill(BigInt(o.step)),
      draw: new Int32Array(n).fill(r),
      tensors,
      metadata: meta,
    }));
  }
  return out;
}

/** The dense layers' pre-activations with the given parameter tensors (in `model.params` order). */
function preActivations(model: TfModel, params: tf.Tensor[], x: tf.Tensor): tf.Tensor[] {
  return tf.tidy(() => {
    const out: tf.Tensor[] = [];
    let a = x, k = 0;
    for (const l of model.dense) {
      let z = tf.matMul(a as tf.Tensor2D, params[k++] as tf.Tensor2D) as tf.Tensor;
      if (l.bias) z = tf.add(z, params[k++]);
      out.push(z);
      a = activate(l.activation, z);
    }
    return out;
  });
}
