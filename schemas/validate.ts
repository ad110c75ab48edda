/**
 * Validation and decoding of wire format v1 record batches (see `schemas/README.md`).
 *
 * @module
 */
import * as arrow from "apache-arrow";
import {
  type Batch,
  type Kind,
  KINDS,
  ROW_GRADIENT,
  ROW_WEIGHTS,
  SPLIT_TEST,
  SPLIT_TRAIN,
  type TensorColumn,
} from "./batch.ts";
import { InputError, show } from "./errors.ts";

/** Schema metadata key naming the stream kind. */
export const SCHEMA_KEY = "infotap.schema";
/** Schema metadata key of gradient streams: `true` (labels sampled from the model) or `empirical`. */
export const FISHER_KEY = "infotap.fisher";
/** Field metadata key of a pre-sketched Jacobian column: the projection's seed. */
export const SKETCH_SEED_KEY = "infotap.sketch.seed";
/** Field metadata key of a pre-sketched Jacobian column: the original parameter count. */
export const SKETCH_SOURCE_DIM_KEY = "infotap.sketch.source_dim";

/** The widest tensor column accepted (2^28 values: 1 GiB of Float32 per row); wider ones are refused. */
export const MAX_WIDTH = 1 << 28;

/** The reserved (non-tensor) columns of each kind, with the Arrow types they accept. */
const RESERVED: Record<Kind, Record<string, { types: string[]; required: boolean }>> = {
  "activations/v1": {
    sample_id: { types: ["Int64"], required: true },
    step: { types: ["Int64"], required: false },
    label: { types: ["Int32", "Int64"], required: false },
    draw: { types: ["Int32"], required: false },
    flag: { types: ["Int32"], required: false },
  },
  "gradients/v1": {
    sample_id: { types: ["Int64"], required: true },
    step: { types: ["Int64"], required: false },
    draw: { types: ["Int32"], required: false },
    weight: { types: ["Float32", "Float64"], required: false },
    row_type: { types: ["Utf8", "Dictionary<Utf8>"], required: false },
  },
  "jacobians/v1": {
    sample_id: { types: ["Int64"], required: true },
    step: { types: ["Int64"], required: false },
    split: { types: ["Utf8", "Dictionary<Utf8>"], required: true },
    output: { types: ["Int32"], required: true },
    f0: { types: ["Float32"], required: true },
    target: { types: ["Float32"], required: true },
    flag: { types: ["Int32"], required: false },
  },
};

/** A short, stable name of an Arrow type for messages: `Int64`, `FixedSizeList<Float32>[128]`, ... */
export function typeName(t: arrow.DataType): string {
  if (arrow.DataType.isInt(t)) return `${t.isSigned ? "Int" : "Uint"}${t.bitWidth}`;
  if (arrow.DataType.isFloat(t)) return ["Float16", "Float32", "Float64"][t.precision];
  if (arrow.DataType.isUtf8(t)) return "Utf8";
  if (arrow.DataType.isDictionary(t)) return `Dictionary<${typeName(t.dictionary)}>`;
  if (arrow.DataType.isFixedSizeList(t)) return `FixedSizeList<${typeName(t.children[0].type)}>[${t.listSize}]`;
  return String(t);
}

/** The layout of a stream: its kind and tensor columns' names and widths, fixed across batches and files. */
export interface Layout {
  kind: Kind;
  tensors: { name: string; width: number }[];
  reserved: string[];
  metadata: Map<string, string>;
}

/**
 * Validates a schema against wire format v1 and returns its layout.
 * Throws {@linkcode InputError} naming the file and column on any violation.
 */
export function validateSchema(schema: arrow.Schema, file: string, batch = 0): Layout {
  const where = { file, batch };
  const kindRaw = schema.metadata.get(SCHEMA_KEY);
  if (kindRaw === undefined) {
    throw new InputError(
      `Cannot read the stream as its schema has no '${SCHEMA_KEY}' metadata (expected one of ${
        KINDS.join(", ")
      }): current value is missing`,
      where,
    );
  }
  if (!(KINDS as readonly string[]).includes(kindRaw)) {
    throw new InputError(
      `Cannot read the stream as '${SCHEMA_KEY}' names an unknown kind (expected one of ${
        KINDS.join(", ")
      }): current value is ${show(kindRaw)}`,
      where,
    );
  }
  const kind = kindRaw as Kind;
  if (kind === "gradients/v1") {
    const f = schema.metadata.get(FISHER_KEY);
    if (f !== "true" && f !== "empirical") {
      throw new InputError(
        `Cannot read gradients as schema metadata '${FISHER_KEY}' must be 'true' (labels sampled from the model) or 'empirical' (dataset labels): current value is ${
          f === undefined ? "missing" : show(f)
        }`,
        where,
      );
    }
  }
  const reservedSpec = RESERVED[kind];
  const tensors: Layout["tensors"] = [];
  const reserved: string[] = [];
  const seen = new Set<string>();
  for (const [i, field] of schema.fields.entries()) {
    if (typeof field.name !== "string" || field.name === "") {
      throw new InputError(
        `Cannot read the stream as column ${i} has no name: current value is ${show(field.name)}`,
        where,
      );
    }
    if (seen.has(field.name)) {
      throw new InputError(
        `Cannot read the stream as a column name repeats: current value is ${show(field.name)}`,
        where,
      );
    }
    seen.add(field.name);
    const spec = reservedSpec[field.name];
    const tn = typeName(field.type);
    if (spec) {
      if (arrow.DataType.isDictionary(field.type) && ![8, 16, 32, 64].includes(field.type.indices.bitWidth)) {
        throw new InputError(
          `Cannot read column as its dictionary indices must be 8, 16, 32 or 64-bit integers: current value is ${field.type.indices.bitWidth} bits`,
          { ...where, column: field.name },
        );
      }
      if (!spec.types.includes(tn)) {
        throw new InputError(
          `Cannot read column as its type must be ${spec.types.join(" or ")}: current value is ${tn}`,
          { ...where, column: field.name },
        );
      }
      reserved.push(field.name);
      continue;
    }
    if (!arrow.DataType.isFixedSizeList(field.type)) {
      throw new InputError(
        `Cannot read column as a ${
          kind === "activations/v1" ? "layer" : "parameter tensor"
        } since its type must be FixedSizeList<Float32> (Float16/Float64 accepted): current value is ${tn}`,
        { ...where, column: field.name },
      );
    }
    const child = field.type.children.length === 1 ? field.type.children[0]?.type : undefined;
    if (!child || !arrow.DataType.isFloat(child) || !(child.precision >= 0 && child.precision <= 2)) {
      throw new InputError(
        `Cannot read column as its list elements must be Float32 (Float16/Float64 accepted): current value is ${tn}`,
        { ...where, column: field.name },
      );
    }
    if (!(field.type.listSize >= 1)) {
      throw new InputError(
        `Cannot read column as its width must be at least 1: current value is ${field.type.listSize}`,
        {
          ...where,
          column: field.name,
        },
      );
    }
    if (field.type.listSize > MAX_WIDTH) {
      throw new InputError(
        `Cannot read column as its width exceeds the limit of ${MAX_WIDTH} values per row: current value is ${field.type.listSize}`,
        { ...where, column: field.name },
      );
    }
    tensors.push({ name: field.name, width: field.type.listSize });
  }
  for (const [name, spec] of Object.entries(reservedSpec)) {
    if (spec.required && !seen.has(name)) {
      throw new InputError(
        `Cannot read ${kind} as required column '${name}' (${
          spec.types.join(" or ")
        }) is absent: current value is missing`,
        { ...where, column: name },
      );
    }
  }
  if (tensors.length === 0) {
    throw new InputError(
      `Cannot read ${kind} as it has no tensor column (FixedSizeList<Float32>): current value is ${
        show(schema.fields.map((f) => f.name))
      }`,
      where,
    );
  }
  return { kind, tensors, reserved, metadata: new Map(schema.metadata) };
}

/**
 * Checks that a later schema (next batch or next file) has the layout of the first; names the column that differs.
 */
export function checkSameLayout(first: Layout, next: Layout, file: string, batch: number): void {
  const where = { file, batch };
  if (next.kind !== first.kind) {
    throw new InputError(
      `Cannot mix stream kinds in one run (the first input is ${first.kind}): current value is ${next.kind}`,
      where,
    );
  }
  const widths = new Map(next.tensors.map((t) => [t.name, t.width]));
  for (const t of first.tensors) {
    const w = widths.get(t.name);
    if (w === undefined) {
      throw new InputError(
        `Cannot read batch as a tensor column of earlier batches is absent: current value is missing`,
        {
          ...where,
          column: t.name,
        },
      );
    }
    if (w !== t.width) {
      throw new InputError(`Cannot read column as its width changed from ${t.width}: current value is ${w}`, {
        ...where,
        column: t.name,
      });
    }
    widths.delete(t.name);
  }
  for (const name of widths.keys()) {
    throw new InputError(
      `Cannot read batch as it adds a tensor column absent from earlier batches: current value is ${show(name)}`,
      {
        ...where,
        column: name,
      },
    );
  }
  const a = first.metadata.get(FISHER_KEY), b = next.metadata.get(FISHER_KEY);
  if (a !== b) {
    throw new InputError(`Cannot mix Fisher kinds '${a}' and '${b}' in one run: current value is ${show(b)}`, where);
  }
}

/**
 * Describes the first difference between two schemas that matters to a reader (column names and types, the kind,
 * the Fisher flag), or returns null when there is none. Used for streams concatenated after an end-of-stream
 * marker, which must repeat the first stream's schema.
 */
export function schemaDifference(a: arrow.Schema, b: arrow.Schema): string | null {
  for (const key of [SCHEMA_KEY, FISHER_KEY]) {
    if (a.metadata.get(key) !== b.metadata.get(key)) {
      return `metadata '${key}' is ${show(b.metadata.get(key) ?? "missing")}, not ${
        show(a.metadata.get(key) ?? "missing")
      }`;
    }
  }
  const n = Math.max(a.fields.length, b.fields.length);
  for (let i = 0; i < n; i++) {
    const x = a.fields[i], y = b.fields[i];
    if (!x) return `it adds column ${show(y.name)}`;
    if (!y) return `it lacks column ${show(x.name)}`;
    if (x.name !== y.name) return `column ${i} is ${show(y.name)}, not ${show(x.name)}`;
    if (typeName(x.type) !== typeName(y.type)) {
      return `column ${show(x.name)} is ${typeName(y.type)}, not ${typeName(x.type)}`;
    }
  }
  return null;
}

/** Throws unless a column's data holds exactly the batch's rows (no silent clamping of short columns). */
function checkLength(data: arrow.Data, rows: number, where: { file: string; batch: number; column: string }): void {
  const values = data.values as ArrayLike<unknown> | undefined;
  if (data.length !== rows || (values !== undefined && values.length < data.offset + data.length)) {
    throw new InputError(
      `Cannot read column as it holds ${
        values === undefined ? data.length : Math.min(data.length, values.length - data.offset)
      } values where the batch has ${rows} rows: current value is ${data.length}`,
      where,
    );
  }
}

function noNulls(data: arrow.Data, where: { file: string; batch: number; column: string }): void {
  if (data.nullCount > 0) {
    throw new InputError(`Cannot read column as it holds nulls: current value is ${data.nullCount} null(s)`, where);
  }
}

function int64Column(data: arrow.Data, where: { file: string; batch: number; column: string }): BigInt64Array {
  noNulls(data, where);
  return (data.values as BigInt64Array).subarray(data.offset, data.offset + data.length);
}

function int32Column(data: arrow.Data, where: { file: string; batch: number; column: string }): Int32Array {
  noNulls(data, where);
  const v = data.values as Int32Array | BigInt64Array;
  if (v instanceof Int32Array) return v.subarray(data.offset, data.offset + data.length);
  const out = new Int32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const x = v[data.offset + i];
    if (x > 2147483647n || x < -2147483648n) {
      throw new InputError(`Cannot read column as a value is outside Int32: current value is ${x}`, where);
    }
    out[i] = Number(x);
  }
  return out;
}

function isValid(data: arrow.Data, i: number): boolean {
  if (data.nullCount === 0 || !data.nullBitmap || data.nullBitmap.length === 0) return true;
  const j = data.offset + i;
  return (data.nullBitmap[j >> 3] & (1 << (j & 7))) !== 0;
}

function float32Column(data: arrow.Data): Float32Array {
  const v = (data.values as Float32Array).subarray(data.offset, data.offset + data.length);
  if (data.nullCount === 0) return v;
  const out = Float32Array.from(v);
  for (let i = 0; i < out.length; i++) if (!isValid(data, i)) out[i] = NaN;
  return out;
}

/** Converts IEEE half-precision bits to a float. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function tensorValues(data: arrow.Data, width: number): Float32Array {
  const child = data.children[0];
  const first = data.offset * width + child.offset;
  const n = data.length * width;
  const precision = (child.type as arrow.Float).precision;
  let out: Float32Array;
  if (precision === arrow.Precision.SINGLE) {
    out = (child.values as Float32Array).subarray(first, first + n);
  } else if (precision === arrow.Precision.DOUBLE) {
    out = Float32Array.from((child.values as Float64Array).subarray(first, first + n));
  } else {
    const h = (child.values as Uint16Array).subarray(first, first + n);
    out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = halfToFloat(h[i]);
  }
  if (data.nullCount === 0 && child.nullCount === 0) return out;
  // Nulls are never dropped silently: a null row or element becomes NaN and is counted as non-finite.
  if (out.buffer === child.values.buffer) out = Float32Array.from(out);
  for (let r = 0; r < data.length; r++) {
    if (!isValid(data, r)) out.fill(NaN, r * width, (r + 1) * width);
  }
  if (child.nullCount > 0) {
    for (let i = 0; i < n; i++) if (!isValid(child, data.offset * width + i)) out[i] = NaN;
  }
  return out;
}

/** A Utf8 (or dictionary) column of named codes, e.g. `split` (`train`/`test`) or `row_type`. */
function codeColumn(
  col: arrow.Vector,
  codes: Record<string, number>,
  where: { file: string; batch: number; column: string },
): Uint8Array {
  const out = new Uint8Array(col.length);
  for (let i = 0; i < col.length; i++) {
    const s = col.get(i);
    if (typeof s !== "string" || !Object.hasOwn(codes, s)) {
      throw new InputError(
        `Cannot read row ${i} as ${where.column} must be ${
          Object.keys(codes).map((k) => `'${k}'`).join(" or ")
        }: current value is ${show(s)}`,
        where,
      );
    }
    out[i] = codes[s];
  }
  return out;
}

/** `weight` (gradients): Float32 or Float64, no nulls, every value finite and >= 0; as Float64. */
function weightColumn(col: arrow.Vector, sid: BigInt64Array, where: { file: string; batch: number; column: string }) {
  const data = col.data[0];
  noNulls(data, where);
  const v = data.values as Float32Array | Float64Array;
  const out = Float64Array.from(v.subarray(data.offset, data.offset + data.length));
  for (let i = 0; i < out.length; i++) {
    if (!(out[i] >= 0 && out[i] < Infinity)) {
      throw new InputError(
        `Cannot read row ${i} (sample_id ${sid[i]}) as a row weight must be finite and >= 0: current value is ${
          out[i]
        }`,
        where,
      );
    }
  }
  return out;
}

/**
 * Decodes one record batch of a validated layout into a {@linkcode Batch}. Throws {@linkcode InputError}
 * naming the file, batch and column on nulls where none are allowed, or on bad split/target values.
 */
export function decodeBatch(rb: arrow.RecordBatch, layout: Layout, file: string, index: number): Batch {
  const at = (column: string) => ({ file, batch: index, column });
  const col = (name: string) => {
    const v = rb.getChild(name);
    if (v && (v.data.length !== 1 || !v.data[0])) {
      throw new InputError(
        `Cannot read column as it is split into ${v.data.length} chunks: current value is ${v.data.length}`,
        at(name),
      );
    }
    if (v && (arrow.DataType.isInt(v.type) || arrow.DataType.isFloat(v.type))) {
      checkLength(v.data[0], rb.numRows, at(name));
    }
    if (v && v.length !== rb.numRows) {
      throw new InputError(
        `Cannot read column as it holds ${v.length} rows where the batch has ${rb.numRows}: current value is ${v.length}`,
        at(name),
      );
    }
    return v;
  };
  const sid = col("sample_id")!;
  const batch: Batch = {
    kind: layout.kind,
    file,
    index,
    numRows: rb.numRows,
    sampleId: int64Column(sid.data[0], at("sample_id")),
    step: col("step") ? int64Column(col("step")!.data[0], at("step")) : null,
    label: col("label") ? int32Column(col("label")!.data[0], at("label")) : null,
    draw: col("draw") ? int32Column(col("draw")!.data[0], at("draw")) : null,
    flag: col("flag") ? int32Column(col("flag")!.data[0], at("flag")) : null,
    split: null,
    output: null,
    f0: null,
    target: null,
    columns: [],
    metadata: layout.metadata,
    byteLength: 0,
  };
  if (layout.kind === "gradients/v1") {
    if (col("weight")) batch.weight = weightColumn(col("weight")!, batch.sampleId, at("weight"));
    if (col("row_type")) {
      batch.rowType = codeColumn(col("row_type")!, { gradient: ROW_GRADIENT, weights: ROW_WEIGHTS }, at("row_type"));
    }
  }
  if (layout.kind === "jacobians/v1") {
    batch.split = codeColumn(col("split")!, { train: SPLIT_TRAIN, test: SPLIT_TEST }, at("split"));
    batch.output = int32Column(col("output")!.data[0], at("output"));
    const f0 = col("f0")!.data[0];
    noNulls(f0, at("f0"));
    batch.f0 = float32Column(f0);
    batch.target = float32Column(col("target")!.data[0]);
    for (let i = 0; i < batch.numRows; i++) {
      if (batch.split[i] === SPLIT_TRAIN && !Number.isFinite(batch.target[i])) {
        throw new InputError(
          `Cannot read row ${i} (sample_id ${
            batch.sampleId[i]
          }) as a train row needs a finite target: current value is ${batch.target[i]}`,
          at("target"),
        );
      }
    }
  }
  let bytes = 0;
  for (const t of layout.tensors) {
    const field = rb.schema.fields.find((f) => f.name === t.name)!;
    const data = col(t.name)!.data[0];
    const child = data.children[0];
    const need = (data.offset + data.length) * t.width;
    if (!child || child.length + child.offset < need || child.values.length < child.offset + need) {
      throw new InputError(
        `Cannot read column as its values hold ${
          child ? Math.min(child.length + child.offset, child.values.length) : 0
        } numbers where ${data.length} rows x width ${t.width} need ${need}: current value is ${child?.length ?? 0}`,
        at(t.name),
      );
    }
    const values = tensorValues(data, t.width);
    bytes += values.byteLength;
    batch.columns.push({ name: t.name, width: t.width, values, metadata: field.metadata } as TensorColumn);
  }
  batch.byteLength = bytes + batch.numRows * 8;
  return batch;
}
