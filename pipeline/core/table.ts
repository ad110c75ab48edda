/**
 * Building result tables from plain columns, and joining the tables that several estimators fill.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tableFromColumns } from "./table.ts";
 * const t = tableFromColumns([
 *   { name: "layer", type: "utf8", values: ["fc1", "fc2"] },
 *   { name: "entropy", type: "float64", values: [1.5, null] },
 * ]);
 * assert.ok(t.numRows === 2 && t.getChild("entropy")!.get(1) === null);
 * ```
 *
 * @module
 */
import * as arrow from "apache-arrow";

/** Column types result tables use. */
export type ColumnType = "utf8" | "int32" | "int64" | "float64" | "float32" | "bool";

/** A column given as plain values (`null` for missing). Int64 accepts numbers or bigints. */
export interface ColumnSpec {
  name: string;
  type: ColumnType;
  values: ArrayLike<number | bigint | string | boolean | null>;
}

function arrowType(t: ColumnType): arrow.DataType {
  switch (t) {
    case "utf8":
      return new arrow.Utf8();
    case "int32":
      return new arrow.Int32();
    case "int64":
      return new arrow.Int64();
    case "float64":
      return new arrow.Float64();
    case "float32":
      return new arrow.Float32();
    case "bool":
      return new arrow.Bool();
  }
}

/** Builds one column as an Arrow vector. */
export function vectorFrom(spec: ColumnSpec): arrow.Vector {
  const type = arrowType(spec.type);
  const dense = denseVector(spec, type);
  if (dense) return dense;
  let values: ArrayLike<unknown> = spec.values;
  if (spec.type === "int64") {
    values = Array.from(spec.values, (v) => (v === null || v === undefined ? null : BigInt(v as number | bigint)));
  }
  const b = arrow.makeBuilder({ type, nullValues: [null, undefined] });
  for (let i = 0; i < values.length; i++) b.append(values[i]);
  return b.finish().toVector();
}

/**
 * Numeric columns without nulls straight from a typed array, and string columns without nulls from offsets and
 * UTF-8 bytes (each distinct string encoded once): no per-value builder calls, the same values as the builder's.
 */
function denseVector(spec: ColumnSpec, type: arrow.DataType): arrow.Vector | null {
  const v = spec.values;
  const n = v.length;
  if (spec.type === "utf8") return utf8Vector(v, type);
  let data: Float64Array | Float32Array | Int32Array | BigInt64Array;
  if (spec.type === "float64") data = new Float64Array(n);
  else if (spec.type === "float32") data = new Float32Array(n);
  else if (spec.type === "int32") data = new Int32Array(n);
  else if (spec.type === "int64") data = new BigInt64Array(n);
  else return null;
  for (let i = 0; i < n; i++) {
    const x = v[i];
    // a column with nulls goes through the builder (its buffers are what the Parquet writer has always seen)
    if (x === null || x === undefined) return null;
    if (data instanceof BigInt64Array) data[i] = typeof x === "bigint" ? x : BigInt(x as number);
    else {
      if (typeof x !== "number") return null;
      data[i] = x;
      // int32 columns must hold integers in range; anything else goes through the checking builder
      if (data instanceof Int32Array && data[i] !== x) return null;
    }
  }
  return arrow.makeVector(arrow.makeData({ type, length: n, nullCount: 0, data } as never));
}

/** A string column without nulls from its offsets and bytes; null (the builder) when it has a null. */
function utf8Vector(v: ArrayLike<unknown>, type: arrow.DataType): arrow.Vector | null {
  const n = v.length, enc = new TextEncoder(), seen = new Map<string, Uint8Array>();
  const offsets = new Int32Array(n + 1), parts: Uint8Array[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const x = v[i];
    if (typeof x !== "string") return null;
    let b = seen.get(x);
    if (!b) seen.set(x, b = enc.encode(x));
    parts[i] = b;
    offsets[i + 1] = offsets[i] + b.length;
  }
  const data = new Uint8Array(offsets[n]);
  for (let i = 0; i < n; i++) data.set(parts[i], offsets[i]);
  return arrow.makeVector(arrow.makeData({ type, length: n, nullCount: 0, valueOffsets: offsets, data } as never));
}

/** Builds a table from columns of equal length; `metadata` becomes schema metadata. */
export function tableFromColumns(columns: ColumnSpec[], metadata?: Record<string, string>): arrow.Table {
  const n = columns.length ? columns[0].values.length : 0;
  for (const c of columns) {
    if (c.values.length !== n) {
      throw new Error(
        `Cannot build table as column '${c.name}' has ${c.values.length} values, not ${n}: current value is ${c.values.length}`,
      );
    }
  }
  const vectors = columns.map(vectorFrom);
  const fields = columns.map((c, i) => new arrow.Field(c.name, vectors[i].type, true));
  const schema = new arrow.Schema(fields, new Map(Object.entries(metadata ?? {})));
  if (n === 0) return new arrow.Table(schema);
  const data = arrow.makeData({
    type: new arrow.Struct(fields),
    length: n,
    nullCount: 0,
    children: vectors.map((v) => v.data[0]),
  });
  return new arrow.Table(schema, [new arrow.RecordBatch(schema, data)]);
}

/** Concatenates tables of the same schema. */
export function concatTables(tables: arrow.Table[]): arrow.Table {
  const nonEmpty = tables.filter((t) => t.numRows > 0);
  if (nonEmpty.length === 0) return tables[0];
  return new arrow.Table(nonEmpty[0].schema, nonEmpty.flatMap((t) => t.batches));
}

/**
 * The table as one record batch: numeric and string columns without nulls are concatenated buffer by buffer,
 * other columns (with nulls, or of other types) go through the builder value by value, as `tableFromColumns`
 * builds them; either way the Arrow buffers are those the builder gives. A table of one batch is returned as it is.
 */
export function combineBatches(table: arrow.Table): arrow.Table {
  if (table.batches.length <= 1) return table;
  const children = table.schema.fields.map((f) => {
    const col = table.getChild(f.name)!;
    return (col.nullCount === 0 ? denseConcat(col) : null) ?? builtConcat(col);
  });
  const data = arrow.makeData({ type: new arrow.Struct(table.schema.fields), length: table.numRows, children });
  return new arrow.Table(table.schema, [new arrow.RecordBatch(table.schema, data)]);
}

/** A column without nulls as one Data: Int/Float values concatenated, Utf8 offsets and bytes; null for other types. */
function denseConcat(col: arrow.Vector): arrow.Data | null {
  const type = col.type, n = col.length;
  if (arrow.DataType.isInt(type) || arrow.DataType.isFloat(type)) {
    return arrow.makeData({ type, length: n, nullCount: 0, data: col.toArray() } as never);
  }
  if (!(type instanceof arrow.Utf8)) return null;
  const chunks = col.data as arrow.Data<arrow.Utf8>[];
  const offsets = new Int32Array(n + 1);
  let rows = 0, bytes = 0;
  for (const d of chunks) {
    const o = d.valueOffsets;
    bytes += o[d.length] - o[0];
  }
  const values = new Uint8Array(bytes);
  bytes = 0;
  for (const d of chunks) {
    const o = d.valueOffsets, base = o[0];
    values.set(d.values.subarray(base, o[d.length]), bytes);
    for (let i = 1; i <= d.length; i++) offsets[rows + i] = bytes + o[i] - base;
    rows += d.length;
    bytes = offsets[rows];
  }
  return arrow.makeData({ type, length: n, nullCount: 0, valueOffsets: offsets, data: values } as never);
}

/** A column as one Data through the builder (nulls kept), read chunk by chunk. */
function builtConcat(col: arrow.Vector): arrow.Data {
  const b = arrow.makeBuilder({ type: col.type, nullValues: [null, undefined] });
  for (const d of col.data) {
    const chunk = new arrow.Vector([d]);
    for (let i = 0; i < d.length; i++) b.append(chunk.get(i));
  }
  return b.finish().toVector().data[0];
}

/**
 * Outer join of two tables on key columns (compared as strings; nulls equal nulls). The result keeps `a`'s
 * rows in order, then `b`'s unmatched rows; non-key columns of both, null where a side had no row.
 */
export function joinTables(a: arrow.Table, b: arrow.Table, keys: string[]): arrow.Table {
  const keyOf = (t: arrow.Table, i: number) =>
    keys.map((k) => String(t.getChild(k)?.get(i) ?? "\u0000null")).join("\u0001");
  const bIndex = new Map<string, number>();
  for (let i = 0; i < b.numRows; i++) bIndex.set(keyOf(b, i), i);
  const rows: [number | null, number | null][] = [];
  const usedB = new Set<number>();
  for (let i = 0; i < a.numRows; i++) {
    const j = bIndex.get(keyOf(a, i));
    if (j !== undefined) usedB.add(j);
    rows.push([i, j ?? null]);
  }
  for (let j = 0; j < b.numRows; j++) if (!usedB.has(j)) rows.push([null, j]);
  const fields: arrow.Field[] = [];
  const vectors: arrow.Vector[] = [];
  const seen = new Set<string>();
  for (const [side, t] of [[0, a], [1, b]] as const) {
    for (const f of t.schema.fields) {
      if (seen.has(f.name)) continue;
      seen.add(f.name);
      const isKey = keys.includes(f.name);
      const col = t.getChild(f.name)!;
      const other = side === 0 ? b : a;
      const otherCol = isKey ? other.getChild(f.name) : null;
      const builder = arrow.makeBuilder({ type: f.type, nullValues: [null, undefined] });
      for (const r of rows) {
        const i = r[side];
        if (i !== null) builder.append(col.get(i));
        else if (otherCol && r[1 - side] !== null) builder.append(otherCol.get(r[1 - side]!));
        else builder.append(null);
      }
      const v = builder.finish().toVector();
      fields.push(new arrow.Field(f.name, f.type, true));
      vectors.push(v);
    }
  }
  const meta = new Map([...a.schema.metadata, ...b.schema.metadata]);
  const schema = new arrow.Schema(fields, meta);
  if (rows.length === 0) return new arrow.Table(schema);
  const data = arrow.makeData({
    type: new arrow.Struct(fields),
    length: rows.length,
    nullCount: 0,
    children: vectors.map((v) => v.data[0]),
  });
  return new arrow.Table(schema, [new arrow.RecordBatch(schema, data)]);
}
