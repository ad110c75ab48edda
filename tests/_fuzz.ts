/**
 * The fuzz corpus of `fuzz_test.ts`: small valid dumps of the three kinds and seeded mutations of them (bit
 * flips, truncations at and inside every message, inflated length fields, re-encoded headers and schemas with
 * wrong counts and list sizes, nulls in reserved columns, dictionary-encoded columns, duplicate and empty column
 * names, concatenated streams with garbage or another schema). Each case says what a reader must make of it.
 *
 * @module
 */
import * as arrow from "apache-arrow";
import {
  BufferRegion,
  FieldNode,
  Message as MessageMeta,
  RecordBatch as RecordBatchHeader,
} from "apache-arrow/ipc/metadata/message";
import { type BatchInput, makeRecordBatch, writeBatchesTo } from "../pipeline/producers/produce.ts";
import { Rng } from "./_util.ts";

/** The three kinds of dump the corpus starts from. */
export type Base = "acts" | "grads" | "jacs";

/** One input of the corpus and what reading it must give. */
export interface Case {
  name: string;
  base: Base;
  bytes: Uint8Array;
  /**
   * `error`: a one-line error (`complete: false`) after the batches before the damage; `ok`: complete, with
   * `rows` rows; `either`: one or the other, and when complete the layout and row count of the valid dump.
   */
  expect: "error" | "ok" | "either";
  /** Rows that must be analysed: all of them for `ok`, those of the complete batches before the damage for
   * truncations; undefined when it is not known. */
  rows?: number;
  /** `.arrow` (file format) instead of `.arrows`. */
  file?: boolean;
}

/** Rows per batch and batches per dump of each base. */
export const BATCHES = 3;
export const ROWS: Record<Base, number> = { acts: 20, grads: 10, jacs: 8 };
/** Tensor widths of each base's valid dump. */
export const WIDTHS: Record<Base, Record<string, number>> = {
  acts: { fc1: 16, fc2: 8 },
  grads: { w: 12, b: 3 },
  jacs: { w: 6 },
};

function values(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal());
}

/** The record batch inputs of one valid dump. */
export function baseInputs(base: Base): BatchInput[] {
  const rng = new Rng(base.length * 7919);
  const n = ROWS[base];
  return Array.from({ length: BATCHES }, (_, b) => {
    const ids = BigInt64Array.from({ length: n }, (_, i) => BigInt(b * n + i));
    const tensors = Object.entries(WIDTHS[base]).map(([name, width]) => ({
      name,
      width,
      values: values(rng, n * width),
    }));
    if (base === "acts") {
      return {
        kind: "activations/v1",
        sampleId: ids,
        step: new BigInt64Array(n).fill(BigInt(b)),
        label: Int32Array.from({ length: n }, (_, i) => i % 3),
        tensors,
      };
    }
    if (base === "grads") return { kind: "gradients/v1", sampleId: ids, fisher: "true", tensors };
    // Jacobians: 4 samples x 2 outputs per batch, the last sample of each batch on the test split.
    const sid = BigInt64Array.from({ length: n }, (_, i) => BigInt(b * 4 + (i >> 1)));
    const test = (i: number) => (i >> 1) === 3;
    return {
      kind: "jacobians/v1",
      sampleId: sid,
      split: Array.from({ length: n }, (_, i) => (test(i) ? "test" : "train")),
      output: Int32Array.from({ length: n }, (_, i) => i & 1),
      f0: values(rng, n),
      target: Float32Array.from({ length: n }, (_, i) => (test(i) ? NaN : rng.normal())),
      tensors,
    };
  });
}

/** The bytes of an IPC stream (or file) of `batches`, as infotap's writer makes them. */
export async function encode(batches: arrow.RecordBatch[], format: "stream" | "file" = "stream"): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const sink = new WritableStream<Uint8Array>({ write: (c) => void chunks.push(c.slice()) });
  await writeBatchesTo(sink.getWriter(), batches, format);
  return concat(chunks);
}

/** Concatenates byte arrays. */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

/** One message of a stream: where its prefix, metadata and body are. */
export interface Span {
  offset: number;
  metaStart: number;
  metaLength: number;
  bodyStart: number;
  bodyLength: number;
  end: number;
  header: number;
}

/** The messages of a valid stream (from `start`, 8 for a file), up to its end-of-stream marker. */
export function spans(bytes: Uint8Array, start = 0): Span[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Span[] = [];
  let at = start;
  while (at + 8 <= bytes.length) {
    const metaLength = dv.getInt32(at + 4, true);
    if (metaLength === 0) break;
    const meta = bytes.subarray(at + 8, at + 8 + metaLength);
    const m = MessageMeta.decode(meta);
    const bodyStart = at + 8 + metaLength;
    out.push({
      offset: at,
      metaStart: at + 8,
      metaLength,
      bodyStart,
      bodyLength: m.bodyLength,
      end: bodyStart + m.bodyLength,
      header: m.headerType,
    });
    at = bodyStart + m.bodyLength;
  }
  return out;
}

/** A framed message: prefix, metadata padded to 8 bytes, body. */
function frame(meta: Uint8Array, body: Uint8Array): Uint8Array {
  const padded = Math.ceil((meta.length + 8) / 8) * 8 - 8;
  const out = new Uint8Array(8 + padded + body.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, 0xffffffff, true);
  dv.setInt32(4, padded, true);
  out.set(meta, 8);
  out.set(body, 8 + padded);
  return out;
}

/** The stream with message `i`'s record-batch header rewritten by `edit` (the body kept). */
function editBatch(
  bytes: Uint8Array,
  s: Span,
  edit: (h: { length: number; nodes: FieldNode[]; buffers: BufferRegion[]; bodyLength: number }) => void,
): Uint8Array {
  const m = MessageMeta.decode(bytes.subarray(s.metaStart, s.metaStart + s.metaLength));
  const h = m.header() as unknown as RecordBatchHeader;
  const e = {
    length: h.length,
    nodes: h.nodes.map((n) => new FieldNode(n.length, n.nullCount)),
    buffers: h.buffers.map((b) => new BufferRegion(b.offset, b.length)),
    bodyLength: m.bodyLength,
  };
  edit(e);
  const header = new RecordBatchHeader(e.length, e.nodes, e.buffers, null);
  const meta = MessageMeta.encode(MessageMeta.from(header, e.bodyLength));
  return concat([bytes.subarray(0, s.offset), frame(meta, bytes.subarray(s.bodyStart, s.end)), bytes.subarray(s.end)]);
}

/** The stream with its schema message replaced by `schema`'s. */
function withSchema(bytes: Uint8Array, s: Span, schema: arrow.Schema): Uint8Array {
  const meta = MessageMeta.encode(MessageMeta.from(schema));
  return concat([bytes.subarray(0, s.offset), frame(meta, new Uint8Array(0)), bytes.subarray(s.end)]);
}

function flip(bytes: Uint8Array, bit: number): Uint8Array {
  const out = bytes.slice();
  out[bit >> 3] ^= 1 << (bit & 7);
  return out;
}

function setInt32(bytes: Uint8Array, at: number, v: number): Uint8Array {
  const out = bytes.slice();
  new DataView(out.buffer).setInt32(at, v, true);
  return out;
}

/** A record batch with hand-made columns (nulls, dictionaries, odd names), sharing `like`'s metadata. */
function handMade(like: arrow.RecordBatch, columns: { field: arrow.Field; data: arrow.Data }[]): arrow.RecordBatch {
  const fields = columns.map((c) => c.field);
  const schema = new arrow.Schema(fields, like.schema.metadata);
  const n = columns[0].data.length;
  return new arrow.RecordBatch(
    schema,
    arrow.makeData({ type: new arrow.Struct(fields), length: n, nullCount: 0, children: columns.map((c) => c.data) }),
  );
}

/** `like`'s columns, with `edit` applied to each (return null to drop it, an array to add). */
function columnsOf(
  rb: arrow.RecordBatch,
  edit: (f: arrow.Field, d: arrow.Data) => { field: arrow.Field; data: arrow.Data }[] | null = (f, d) => [{
    field: f,
    data: d,
  }],
): { field: arrow.Field; data: arrow.Data }[] {
  return rb.schema.fields.flatMap((f, i) => edit(f, rb.data.children[i]) ?? []);
}

/** A copy of a primitive column with a null at `row`. */
function withNull(field: arrow.Field, data: arrow.Data, row: number): { field: arrow.Field; data: arrow.Data } {
  const bitmap = new Uint8Array(Math.ceil(data.length / 8)).fill(0xff);
  bitmap[row >> 3] &= ~(1 << (row & 7));
  const d = arrow.makeData({
    type: data.type,
    length: data.length,
    nullCount: 1,
    nullBitmap: bitmap,
    data: data.values,
    valueOffsets: (data as arrow.Data<arrow.Utf8>).valueOffsets,
  } as never);
  return { field: new arrow.Field(field.name, field.type, true, field.metadata), data: d };
}

/** The column as a dictionary-encoded one (indices 0..n-1 into its own values). */
function asDictionary(field: arrow.Field, data: arrow.Data, id: number): { field: arrow.Field; data: arrow.Data } {
  const type = new arrow.Dictionary(field.type, new arrow.Int32(), id);
  const d = arrow.makeData({
    type,
    length: data.length,
    nullCount: 0,
    data: Int32Array.from({ length: data.length }, (_, i) => i),
    dictionary: new arrow.Vector([data]),
  });
  return { field: new arrow.Field(field.name, type, false, field.metadata), data: d };
}

/**
 * The corpus: every mutation class on each base (`flips` random bit flips per base). Seeded: the same seed gives
 * the same cases.
 */
export async function corpus(seed: number, flips: number): Promise<Case[]> {
  const rng = new Rng(seed);
  const cases: Case[] = [];
  for (const base of ["acts", "grads", "jacs"] as Base[]) {
    const batches = baseInputs(base).map(makeRecordBatch);
    const bytes = await encode(batches);
    const sp = spans(bytes);
    const n = ROWS[base];
    const total = n * BATCHES;
    const add = (name: string, b: Uint8Array, expect: Case["expect"], rows?: number, file = false) =>
      cases.push({ name: `${base}: ${name}`, base, bytes: b, expect, rows, file });
    add("valid", bytes, "ok", total);

    // Bit flips: half anywhere, half inside message prefixes and metadata (where structure lives).
    for (let k = 0; k < flips; k++) {
      const s = sp[Math.floor(rng.next() * sp.length)];
      const bit = k % 2 === 0
        ? Math.floor(rng.next() * bytes.length * 8)
        : s.offset * 8 + Math.floor(rng.next() * (8 + s.metaLength) * 8);
      add(`bit ${bit} flipped`, flip(bytes, bit), "either");
    }

    // Truncations at every message boundary and inside prefixes, metadata and bodies.
    sp.forEach((s, i) => {
      const before = Math.max(0, i - 1) * n; // complete record batches before message i (message 0 is the schema)
      const cuts = [s.offset, s.offset + 1, s.offset + 4, s.offset + 7, s.metaStart + (s.metaLength >> 1), s.bodyStart];
      if (s.bodyLength > 0) cuts.push(s.bodyStart + 1, s.bodyStart + (s.bodyLength >> 1), s.end - 1);
      // A stream may end between messages without its end-of-stream marker (the Arrow format allows it).
      for (const at of cuts) {
        add(`cut at byte ${at} (message ${i})`, bytes.slice(0, at), at === s.offset && i > 1 ? "ok" : "error", before);
      }
    });
    const eos = sp[sp.length - 1].end;
    add("cut before the end-of-stream marker", bytes.slice(0, eos), "ok", total);
    add("cut inside the end-of-stream marker", bytes.slice(0, eos + 4), "error", total);

    // Inflated or negative metadata length prefixes.
    sp.forEach((s, i) => {
      const rows = Math.max(0, i - 1) * n;
      // Longer metadata swallows the body's first bytes: the body read after it is shifted, which only the
      // framing after it can reveal (the last batch then ends the stream without its marker).
      for (const v of [s.metaLength + 8, s.metaLength * 2]) {
        add(`metadata length of message ${i} set to ${v}`, setInt32(bytes, s.offset + 4, v), "either");
      }
      for (const v of [0x7fffffff, -8, -1]) {
        add(`metadata length of message ${i} set to ${v}`, setInt32(bytes, s.offset + 4, v), "error", rows);
      }
    });

    // Record batch headers re-encoded with wrong lengths, counts, offsets and body lengths.
    sp.forEach((s, i) => {
      if (s.header !== arrow.MessageHeader.RecordBatch) return;
      const rows = (i - 1) * n;
      const e = (name: string, edit: Parameters<typeof editBatch>[2]) =>
        add(`batch ${i - 1}: ${name}`, editBatch(bytes, s, edit), "error", rows);
      for (const v of [n + 1, n * 1000, 2 ** 31 - 1, 2 ** 57, -1]) e(`length ${v}`, (h) => void (h.length = v));
      e("one field node dropped", (h) => void h.nodes.pop());
      e("one buffer dropped", (h) => void h.buffers.pop());
      const header = MessageMeta.decode(bytes.subarray(s.metaStart, s.metaStart + s.metaLength)).header();
      const nodes = (header as unknown as RecordBatchHeader).nodes.length;
      for (const k of [1, nodes - 1]) {
        for (const v of [n - 1, n * 2 ** 20, 2 ** 57, -1]) {
          e(`node ${k} length ${v}`, (h) => void (h.nodes[k].length = v));
        }
      }
      e("node 0 null count above its length", (h) => void (h.nodes[0].nullCount = n + 1));
      for (const v of [2 ** 40, -8, s.bodyLength]) {
        e(`last buffer offset ${v}`, (h) => void (h.buffers[h.buffers.length - 1].offset = v));
      }
      for (const v of [2 ** 40, 2 ** 57, -1]) {
        e(`last buffer length ${v}`, (h) => void (h.buffers[h.buffers.length - 1].length = v));
      }
      e("a buffer misaligned", (h) => void (h.buffers[h.buffers.length - 1].offset += 2));
      for (const v of [2 ** 40, 2 ** 57, -8]) e(`body length ${v}`, (h) => void (h.bodyLength = v));
    });

    // Schemas re-encoded with wrong list sizes, types, names.
    const schema = batches[0].schema;
    const tensor = schema.fields.findIndex((f) => arrow.DataType.isFixedSizeList(f.type));
    const tf = schema.fields[tensor];
    const w = (tf.type as arrow.FixedSizeList).listSize;
    const refield = (edit: (f: arrow.Field, i: number) => arrow.Field | arrow.Field[]) =>
      new arrow.Schema(schema.fields.flatMap((f, i) => edit(f, i)), schema.metadata);
    const list = (size: number, child: arrow.DataType = new arrow.Float32()) =>
      new arrow.FixedSizeList(size, new arrow.Field("item", child, false));
    for (const size of [-1, 0, 2 ** 31 - 1, w + 1, 2 * w, w - 1, w * 513]) {
      add(
        `list size of '${tf.name}' set to ${size}`,
        withSchema(bytes, sp[0], refield((f, i) => (i === tensor ? new arrow.Field(f.name, list(size)) : f))),
        "error",
        0,
      );
    }
    // Float16 elements read half of each values buffer (larger buffers are allowed): garbage, but well-formed.
    for (const t of [new arrow.Float64(), new arrow.Float16(), new arrow.Int32()]) {
      const half = arrow.DataType.isFloat(t) && t.precision === arrow.Precision.HALF;
      const mutated = withSchema(
        bytes,
        sp[0],
        refield((f, i) => (i === tensor ? new arrow.Field(f.name, list(w, t)) : f)),
      );
      add(`list elements of '${tf.name}' declared ${t}`, mutated, half ? "either" : "error", half ? undefined : 0);
    }
    add(
      `'${tf.name}' renamed to ''`,
      withSchema(bytes, sp[0], refield((f, i) => (i === tensor ? new arrow.Field("", f.type) : f))),
      "error",
      0,
    );
    add(
      "sample_id declared Int32",
      withSchema(
        bytes,
        sp[0],
        refield((f) => (f.name === "sample_id" ? new arrow.Field(f.name, new arrow.Int32()) : f)),
      ),
      "error",
      0,
    );
    add(
      "a column added to the schema only",
      withSchema(bytes, sp[0], refield((f, i) => (i === tensor ? [f, new arrow.Field("extra", list(4))] : f))),
      "error",
      0,
    );

    // Hand-made batches: nulls in reserved columns, dictionaries, duplicate and empty names.
    const rb = batches[0];
    const one = async (name: string, cols: { field: arrow.Field; data: arrow.Data }[], expect: Case["expect"]) =>
      add(name, await encode([handMade(rb, cols)]), expect, expect === "error" ? 0 : n);
    for (const f of rb.schema.fields) {
      if (arrow.DataType.isFixedSizeList(f.type)) continue;
      if (f.name === "target") continue; // nulls allowed on test rows
      await one(
        `a null in '${f.name}'`,
        columnsOf(rb, (g, d) => [g === f ? withNull(g, d, 3) : { field: g, data: d }]),
        "error",
      );
    }
    if (base === "jacs") {
      await one(
        "a null target on a train row",
        columnsOf(rb, (g, d) => [g.name === "target" ? withNull(g, d, 0) : { field: g, data: d }]),
        "error",
      );
      await one(
        "split dictionary-encoded (allowed)",
        columnsOf(rb, (g, d) => [g.name === "split" ? asDictionary(g, d, 7) : { field: g, data: d }]),
        "either",
      );
      const big = (value: number) =>
        columnsOf(rb, (g, d) => [
          g.name === "output"
            ? {
              field: g,
              data: arrow.makeData({
                type: g.type,
                length: d.length,
                nullCount: 0,
                data: Int32Array.from(d.values as Int32Array, (x, i) => (i === 0 ? value : x)),
              }),
            }
            : { field: g, data: d },
        ]);
      await one("an output of 2^31-1", big(2 ** 31 - 1), "error");
      await one("an output of 100000", big(100_000), "error");
      await one("an output of -1", big(-1), "error");
    }
    let id = 1;
    for (const f of rb.schema.fields) {
      if (f.name === "split") continue;
      await one(
        `'${f.name}' dictionary-encoded`,
        columnsOf(rb, (g, d) => [g === f ? asDictionary(g, d, id++) : { field: g, data: d }]),
        "error",
      );
    }
    await one(
      "a duplicate tensor column",
      columnsOf(rb, (g, d) => (g === tf ? [{ field: g, data: d }, { field: g, data: d }] : [{ field: g, data: d }])),
      "error",
    );
    await one(
      "sample_id twice",
      columnsOf(
        rb,
        (g, d) => (g.name === "sample_id" ? [{ field: g, data: d }, { field: g, data: d }] : [{ field: g, data: d }]),
      ),
      "error",
    );
    await one(
      "a tensor column named ''",
      columnsOf(rb, (g, d) => [{ field: g === tf ? new arrow.Field("", g.type) : g, data: d }]),
      "error",
    );

    // Concatenated streams: the same schema reads on; garbage or another schema is an error naming the offset.
    // (Jacobians: the same samples twice are refused by unique-info, after the first stream's rows.)
    const twice = base === "jacs" ? "error" : "ok";
    add("the stream twice", concat([bytes, bytes]), twice, base === "jacs" ? total : 2 * total);
    add("the stream three times", concat([bytes, bytes, bytes]), twice, base === "jacs" ? total : 3 * total);
    add("garbage after the stream", concat([bytes, new TextEncoder().encode("hello, world")]), "error", total);
    add("zeros after the stream", concat([bytes, new Uint8Array(8)]), "error", total);
    add("a second end-of-stream marker", concat([bytes, bytes.subarray(eos)]), "error", total);
    add(
      "random bytes after the stream",
      concat([bytes, Uint8Array.from({ length: 64 }, () => rng.next() * 256)]),
      "error",
      total,
    );
    add("3 bytes after the stream", concat([bytes, new Uint8Array([0xff, 0xff, 0xff])]), "error", total);
    add(
      "a cut stream after the stream",
      concat([bytes, bytes.subarray(0, sp[2].bodyStart + 5)]),
      "error",
      base === "jacs" ? total : total + n,
    );
    add("a batch without schema after the stream", concat([bytes, bytes.subarray(sp[1].offset)]), "error", total);
    const other = base === "acts" ? "grads" : "acts";
    add(
      `a ${other} stream after the stream`,
      concat([bytes, await encode(baseInputs(other).map(makeRecordBatch))]),
      "error",
      total,
    );

    // The file format: truncated files keep their complete batches; a damaged footer is not needed.
    const file = await encode(batches, "file");
    const fsp = spans(file, 8);
    add("file format", file, "ok", total, true);
    fsp.forEach((s, i) => {
      const before = Math.max(0, i - 1) * n;
      for (const at of [s.offset, s.bodyStart + 1]) {
        add(`file cut at byte ${at}`, file.slice(0, at), "error", before, true);
      }
    });
    add("file cut inside its footer", file.slice(0, file.length - 20), "error", total, true);
    add("file without its last byte", file.slice(0, file.length - 1), "error", total, true);
    for (let k = 0; k < flips / 4; k++) {
      add(`file bit flipped`, flip(file, Math.floor(rng.next() * file.length * 8)), "either", undefined, true);
    }
  }
  return cases;
}
