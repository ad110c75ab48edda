/**
 * The validated, decoded record batch that estimators receive.
 *
 * Every tensor column is a row-major `Float32Array` of `numRows * width` values (zero-copy where the input is
 * Float32 without nulls). See `schemas/README.md` for the wire format.
 *
 * @module
 */

/** The three kinds of stream that wire format v1 defines (schema metadata `infotap.schema`). */
export type Kind = "activations/v1" | "gradients/v1" | "jacobians/v1";

/** All kinds, in documentation order. */
export const KINDS: readonly Kind[] = ["activations/v1", "gradients/v1", "jacobians/v1"];

/** One tensor column: a layer (activations) or a parameter tensor (gradients, Jacobians). */
export interface TensorColumn {
  /** Column name: the layer's or parameter tensor's name. */
  name: string;
  /** Number of neurons (or parameters) per row. */
  width: number;
  /** Row-major values, `numRows * width`; element `r * width + j` is neuron j of row r. Nulls become NaN. */
  values: Float32Array;
  /** Field metadata of the column (e.g. a sketch seed). */
  metadata: ReadonlyMap<string, string>;
}

/** A validated batch of any kind; columns that the kind does not define are null. */
export interface Batch {
  /** Schema kind. */
  kind: Kind;
  /** Input path as given (`-` for standard input). */
  file: string;
  /** Zero-based batch index within the file. */
  index: number;
  /** Number of rows. */
  numRows: number;
  /** `sample_id`, one per row. */
  sampleId: BigInt64Array;
  /** `step` when the column exists (nulls are an error). */
  step: BigInt64Array | null;
  /** `label` (activations) as Int32, when present. */
  label: Int32Array | null;
  /**
   * `draw`, when present: gradients, the index of the sampled label (or class, for weighted rows); activations, the
   * index of the weight-noise draw the row was recorded under (effective information).
   */
  draw: Int32Array | null;
  /** `weight` (gradients), when present: the row's weight in the Fisher mean (e.g. p(y|x)), finite and >= 0. */
  weight?: Float64Array | null;
  /** `row_type` (gradients), when present: {@linkcode ROW_GRADIENT} or {@linkcode ROW_WEIGHTS} per row. */
  rowType?: Uint8Array | null;
  /** `flag` (activations, Jacobians): non-zero marks a sample (e.g. a flipped label), when present. */
  flag?: Int32Array | null;
  /** `split` (Jacobians): 0 = train, 1 = test. */
  split: Uint8Array | null;
  /** `output` (Jacobians). */
  output: Int32Array | null;
  /** `f0` (Jacobians). */
  f0: Float32Array | null;
  /** `target` (Jacobians); null targets are NaN (allowed on test rows only). */
  target: Float32Array | null;
  /** Tensor columns in schema order. */
  columns: TensorColumn[];
  /** Schema metadata (`infotap.schema`, `infotap.fisher`, ...). */
  metadata: ReadonlyMap<string, string>;
  /** Bytes of Arrow body this batch came from (for throughput figures). */
  byteLength: number;
  /**
   * True when the batch's typed arrays view buffers that no other batch uses, so the pipeline may transfer
   * them to a worker thread (zero-copy). Estimators must not keep views of a batch after `update` returns
   * unless they copy them.
   */
  owned?: boolean;
}

/** Split codes used in {@linkcode Batch.split}. */
export const SPLIT_TRAIN = 0;
/** Split code of test rows. */
export const SPLIT_TEST = 1;

/** `row_type` code of a per-sample gradient row (the default). */
export const ROW_GRADIENT = 0;
/** `row_type` code of a row that holds the parameter values w* (at its step) instead of a gradient. */
export const ROW_WEIGHTS = 1;

/** Rows `[r0, r1)` of a batch, sharing memory with it. */
export function sliceBatch(batch: Batch, r0: number, r1: number): Batch {
  const s = <T extends { subarray(a: number, b: number): T }>(a: T | null) => (a ? a.subarray(r0, r1) : null);
  return {
    ...batch,
    numRows: r1 - r0,
    sampleId: batch.sampleId.subarray(r0, r1),
    step: s(batch.step),
    label: s(batch.label),
    draw: s(batch.draw),
    weight: s(batch.weight ?? null),
    rowType: s(batch.rowType ?? null),
    flag: s(batch.flag ?? null),
    split: s(batch.split),
    output: s(batch.output),
    f0: s(batch.f0),
    target: s(batch.target),
    columns: batch.columns.map((c) => ({ ...c, values: c.values.subarray(r0 * c.width, r1 * c.width) })),
    byteLength: Math.round(batch.byteLength * (r1 - r0) / Math.max(1, batch.numRows)),
  };
}

/** Concatenates batches of one layout into one (copies). */
export function concatBatches(batches: Batch[]): Batch {
  const first = batches[0];
  const n = batches.reduce((a, b) => a + b.numRows, 0);
  const cat = <T extends Float32Array | Float64Array | Int32Array | Uint8Array | BigInt64Array>(
    pick: (b: Batch) => T | null,
  ): T | null => {
    const a0 = pick(first);
    if (!a0) return null;
    const out = new (a0.constructor as new (n: number) => T)(n);
    let at = 0;
    for (const b of batches) {
      out.set(pick(b)! as never, at);
      at += b.numRows;
    }
    return out;
  };
  return {
    ...first,
    numRows: n,
    sampleId: cat((b) => b.sampleId)!,
    step: cat((b) => b.step),
    label: cat((b) => b.label),
    draw: cat((b) => b.draw),
    weight: cat((b) => b.weight ?? null),
    rowType: cat((b) => b.rowType ?? null),
    flag: cat((b) => b.flag ?? null),
    split: cat((b) => b.split),
    output: cat((b) => b.output),
    f0: cat((b) => b.f0),
    target: cat((b) => b.target),
    columns: first.columns.map((c, i) => {
      const values = new Float32Array(n * c.width);
      let at = 0;
      for (const b of batches) {
        values.set(b.columns[i].values, at);
        at += b.columns[i].values.length;
      }
      return { ...c, values };
    }),
    byteLength: batches.reduce((a, b) => a + b.byteLength, 0),
  };
}
