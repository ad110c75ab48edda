/**
 * Producer side of wire format v1: build record batches from typed arrays and write them as an Arrow IPC
 * stream (or file), batch by batch, awaiting the sink (bounded memory; no `throughDOM()`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeRecordBatch, writeBatches } from "./produce.ts";
 * const rb = makeRecordBatch({
 *   kind: "activations/v1",
 *   sampleId: new BigInt64Array([0n, 1n]),
 *   tensors: [{ name: "fc1", width: 3, values: new Float32Array(6) }],
 * });
 * const path = await Deno.makeTempFile({ suffix: ".arrows" });
 * await writeBatches(path, [rb]);
 * assert.ok((await Deno.stat(path)).size > 0);
 * ```
 *
 * @module
 */
import * as arrow from "apache-arrow";
import { compareSchemas } from "apache-arrow/visitor/typecomparator";
import type { Kind } from "../../schemas/batch.ts";
import { show } from "../../schemas/errors.ts";
import { FISHER_KEY, SCHEMA_KEY, typeName } from "../../schemas/validate.ts";
import { ByteCollector } from "../core/byte_collector.ts";

/** A tensor column to write: `values` is row-major, `numRows * width`. */
export interface TensorInput {
  name: string;
  width: number;
  values: Float32Array;
  metadata?: Record<string, string>;
}

/** The columns of one batch to write; which are needed depends on `kind` (see `schemas/README.md`). */
export interface BatchInput {
  kind: Kind;
  sampleId: BigInt64Array;
  step?: BigInt64Array;
  label?: Int32Array;
  /** Gradients: label (or class) index; activations: the weight-noise draw (effective information). */
  draw?: Int32Array;
  /** Gradients: the row's weight in the Fisher mean (finite, >= 0), e.g. p(y|x) for one row per class. */
  weight?: Float64Array | Float32Array;
  /** Gradients: `gradient` (default) or `weights` (the row holds the parameter values w*) per row. */
  rowType?: ("gradient" | "weights")[];
  /** Activations, Jacobians: non-zero marks a sample (e.g. a flipped label); the report marks it. */
  flag?: Int32Array;
  /** Jacobians: "train" | "test" per row. */
  split?: string[];
  output?: Int32Array;
  f0?: Float32Array;
  /** Jacobians: null (NaN) allowed for test rows. */
  target?: Float32Array;
  /** Gradients: `true` (labels sampled from the model) or `empirical`. */
  fisher?: "true" | "empirical";
  tensors: TensorInput[];
  /** Extra schema metadata. */
  metadata?: Record<string, string>;
}

function prim(type: arrow.DataType, values: ArrayLike<unknown> & { length: number }, nullable = false): arrow.Data {
  if (!nullable) return arrow.makeData({ type, length: values.length, nullCount: 0, data: values } as never);
  const b = arrow.makeBuilder({ type, nullValues: [null, undefined] });
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    b.append(Number.isNaN(v) ? null : v);
  }
  return b.finish().toVector().data[0];
}

/** Builds one wire-format record batch (zero-copy for the tensor values). */
export function makeRecordBatch(input: BatchInput): arrow.RecordBatch {
  const n = input.sampleId.length;
  const fields: arrow.Field[] = [];
  const children: arrow.Data[] = [];
  const add = (name: string, type: arrow.DataType, data: arrow.Data, metadata?: Record<string, string>) => {
    fields.push(new arrow.Field(name, type, data.nullCount > 0, new Map(Object.entries(metadata ?? {}))));
    children.push(data);
  };
  add("sample_id", new arrow.Int64(), prim(new arrow.Int64(), input.sampleId));
  if (input.step) add("step", new arrow.Int64(), prim(new arrow.Int64(), input.step));
  if (input.label) add("label", new arrow.Int32(), prim(new arrow.Int32(), input.label));
  if (input.draw) add("draw", new arrow.Int32(), prim(new arrow.Int32(), input.draw));
  if (input.weight) {
    const t = input.weight instanceof Float64Array ? new arrow.Float64() : new arrow.Float32();
    add("weight", t, prim(t, input.weight));
  }
  if (input.rowType) add("row_type", new arrow.Utf8(), arrow.vectorFromArray(input.rowType, new arrow.Utf8()).data[0]);
  if (input.flag) add("flag", new arrow.Int32(), prim(new arrow.Int32(), input.flag));
  if (input.kind === "jacobians/v1") {
    const split = arrow.vectorFromArray(input.split ?? [], new arrow.Utf8());
    add("split", new arrow.Utf8(), split.data[0]);
    add("output", new arrow.Int32(), prim(new arrow.Int32(), input.output ?? new Int32Array(n)));
    add("f0", new arrow.Float32(), prim(new arrow.Float32(), input.f0 ?? new Float32Array(n)));
    const target = input.target ?? new Float32Array(n).fill(NaN);
    const tData = prim(new arrow.Float32(), target, true);
    fields.push(new arrow.Field("target", new arrow.Float32(), true));
    children.push(tData);
  }
  for (const t of input.tensors) {
    if (t.values.length !== n * t.width) {
      throw new Error(
        `Cannot build column '${t.name}' as it needs ${n} x ${t.width} values: current value is ${t.values.length}`,
      );
    }
    const item = new arrow.Field("item", new arrow.Float32(), false);
    const type = new arrow.FixedSizeList(t.width, item);
    const child = arrow.makeData({ type: new arrow.Float32(), length: n * t.width, nullCount: 0, data: t.values });
    add(t.name, type, arrow.makeData({ type, length: n, nullCount: 0, child }), t.metadata);
  }
  const meta = new Map<string, string>([[SCHEMA_KEY, input.kind], ...Object.entries(input.metadata ?? {})]);
  if (input.kind === "gradients/v1") meta.set(FISHER_KEY, input.fisher ?? "true");
  const schema = new arrow.Schema(fields, meta);
  const data = arrow.makeData({ type: new arrow.Struct(fields), length: n, nullCount: 0, children });
  return new arrow.RecordBatch(schema, data);
}

/**
 * Writes batches (an iterable or async iterable) to a path as an Arrow IPC stream, or as an IPC file when the
 * path ends in `.arrow`. Each batch is written and flushed before the next is pulled.
 */
export async function writeBatches(
  path: string,
  batches: Iterable<arrow.RecordBatch> | AsyncIterable<arrow.RecordBatch>,
): Promise<void> {
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    await writeBatchesTo(file.writable.getWriter(), batches, path.endsWith(".arrow") ? "file" : "stream");
  } finally {
    try {
      file.close();
    } catch { /* closed by the writable */ }
  }
}

/**
 * apache-arrow's file writer puts the schema only in the footer; this one also writes it at the start of the
 * stream part, as the IPC file format specifies (and pyarrow does), so that a file cut short keeps its schema
 * and its complete batches can still be read.
 */
class FileWriter extends arrow.RecordBatchFileWriter {
  protected override _writeSchema(schema: arrow.Schema): this {
    return this._writeMagic()._writePadding(2)._writeMessage(arrow.Message.from(schema));
  }
}

/**
 * Why `next` cannot follow `first` in one IPC stream (apache-arrow's writer would silently end the stream at
 * it), or null when it can: the first column whose name, type or nullability differs.
 */
export function schemaChange(first: arrow.Schema, next: arrow.Schema): string | null {
  const same: boolean = compareSchemas(first, next); // (a type guard: kept as a plain boolean)
  if (first === next || same) return null;
  const n = Math.max(first.fields.length, next.fields.length);
  for (let i = 0; i < n; i++) {
    const a = first.fields[i], b = next.fields[i];
    if (!a) return `column ${show(b.name)} is added`;
    if (!b) return `column ${show(a.name)} is missing`;
    if (a.name !== b.name) return `column ${i} is ${show(b.name)}, not ${show(a.name)}`;
    if (a.nullable !== b.nullable) return `column ${show(a.name)} is ${b.nullable ? "" : "not "}nullable`;
    if (!compareSchemas(new arrow.Schema([a]), new arrow.Schema([b]))) {
      return `column ${show(a.name)} is ${typeName(b.type)}, not ${typeName(a.type)}`;
    }
  }
  return "the columns differ";
}

/**
 * Writes batches to a WritableStream writer (file, socket, stdout), awaiting each write. All batches must share
 * the first one's schema: a batch with another one ends the stream there (the batches before it are written and
 * the stream is closed properly) and throws a one-line error.
 */
export async function writeBatchesTo(
  sink: WritableStreamDefaultWriter<Uint8Array>,
  batches: Iterable<arrow.RecordBatch> | AsyncIterable<arrow.RecordBatch>,
  format: "stream" | "file" = "stream",
): Promise<void> {
  const collector = new ByteCollector();
  let writer: arrow.RecordBatchStreamWriter | arrow.RecordBatchFileWriter | null = null;
  const drain = async () => {
    const bytes = collector.take();
    if (bytes.length) await sink.write(bytes);
  };
  let index = 0, first: arrow.Schema | null = null;
  let refused: string | null = null;
  for await (const rb of batches as AsyncIterable<arrow.RecordBatch>) {
    if (!writer) {
      writer = format === "file" ? new FileWriter() : new arrow.RecordBatchStreamWriter();
      writer.reset(collector, rb.schema);
      first = rb.schema;
    }
    const change = schemaChange(first!, rb.schema);
    if (change) {
      refused =
        `Cannot write batch ${index} as its schema differs from the first batch's (${change}; one stream has one schema, write another stream for it): current value is ${
          show(rb.schema.fields.map((f) => f.name))
        }`;
      break;
    }
    writer.write(rb);
    await drain();
    index++;
  }
  if (writer) {
    writer.finish();
    await drain();
  }
  await sink.close();
  if (refused) throw new Error(refused);
}
