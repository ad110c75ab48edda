/**
 * A FlatBuffers verifier for the Arrow IPC metadata (`Message.fbs`, `Schema.fbs`, `File.fbs`), run before
 * apache-arrow decodes a message. The FlatBuffers JavaScript library has no verifier, and its accessors read
 * out of bounds as zeros: a flipped length or offset then makes the decoder loop for billions of entries or
 * build a wrong schema. This walks every table, vector and string the decoder will touch, checks that each lies
 * inside the bytes, bounds depth and table count (a shared sub-table cannot multiply work), and checks that the
 * 64-bit counts the decoder turns into numbers are non-negative safe integers.
 *
 * Layout references: https://arrow.apache.org/docs/format/Columnar.html#serialization-and-interprocess-communication-ipc
 *
 * @module
 */

const MAX_DEPTH = 64;
const MAX_TABLES = 1_000_000;

/** Thrown on malformed metadata; the message says what and where (byte offset within the metadata). */
export class FlatbufError extends Error {}

/** Message header types (`MessageHeader` in Message.fbs). */
export const HEADER = { Schema: 1, DictionaryBatch: 2, RecordBatch: 3, Tensor: 4, SparseTensor: 5 } as const;
/** Type union ids (`Type` in Schema.fbs) with an offset field beyond scalars. */
const TYPE_TIMESTAMP = 10, TYPE_UNION = 14, TYPE_MAX = 26;

class Verifier {
  #tables = 0;
  readonly dv: DataView;
  constructor(readonly buf: Uint8Array) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  fail(what: string, at: number): never {
    throw new FlatbufError(`${what} (at metadata byte ${at} of ${this.buf.length})`);
  }

  #in(at: number, n: number, what: string): void {
    if (at < 0 || n < 0 || at + n > this.buf.length) this.fail(`${what} lies outside the metadata`, at);
  }

  u32(at: number): number {
    this.#in(at, 4, "an offset");
    return this.dv.getUint32(at, true);
  }

  /** Verifies the table at `pos` and returns an accessor for its fields. */
  table(pos: number, depth: number): Table {
    if (depth > MAX_DEPTH) this.fail(`tables nest deeper than ${MAX_DEPTH}`, pos);
    if (++this.#tables > MAX_TABLES) this.fail(`more than ${MAX_TABLES} tables`, pos);
    this.#in(pos, 4, "a table");
    const vt = pos - this.dv.getInt32(pos, true);
    this.#in(vt, 4, "a vtable");
    const vtSize = this.dv.getUint16(vt, true), objSize = this.dv.getUint16(vt + 2, true);
    if (vtSize < 4 || vtSize % 2 !== 0) this.fail(`a vtable declares ${vtSize} bytes`, vt);
    this.#in(vt, vtSize, "a vtable");
    this.#in(pos, objSize, "a table");
    return new Table(this, pos, vt, vtSize, objSize, depth);
  }

  /** The position of the first element and the length of the vector at `at`, checked to fit. */
  vector(at: number, elemSize: number): { start: number; length: number } {
    const length = this.u32(at);
    this.#in(at + 4, length * elemSize, `a vector of ${length} entries`);
    return { start: at + 4, length };
  }
}

class Table {
  constructor(
    readonly v: Verifier,
    readonly pos: number,
    readonly vt: number,
    readonly vtSize: number,
    readonly objSize: number,
    readonly depth: number,
  ) {}

  /** The field's offset within the table, or 0 when absent; checked to leave `size` bytes inside the table. */
  field(index: number, size: number): number {
    const e = 4 + 2 * index;
    if (e >= this.vtSize) return 0;
    const off = this.v.dv.getUint16(this.vt + e, true);
    if (off !== 0 && off + size > this.objSize) this.v.fail(`field ${index} lies outside its table`, this.pos);
    return off;
  }

  /** A scalar field's value as a signed 64-bit integer (or its default when absent). */
  i64(index: number, dflt = 0n): bigint {
    const off = this.field(index, 8);
    return off ? this.v.dv.getBigInt64(this.pos + off, true) : dflt;
  }

  u8(index: number): number {
    const off = this.field(index, 1);
    return off ? this.v.dv.getUint8(this.pos + off) : 0;
  }

  i16(index: number): number {
    const off = this.field(index, 2);
    return off ? this.v.dv.getInt16(this.pos + off, true) : 0;
  }

  /** The absolute position an offset field points to, or 0 when absent. */
  ref(index: number): number {
    const off = this.field(index, 4);
    if (!off) return 0;
    const at = this.pos + off;
    const target = at + this.v.u32(at);
    if (target >= this.v.buf.length) this.v.fail(`field ${index} points outside the metadata`, at);
    return target;
  }

  sub(index: number): Table | null {
    const at = this.ref(index);
    return at ? this.v.table(at, this.depth + 1) : null;
  }

  string(index: number): void {
    const at = this.ref(index);
    if (at) this.v.vector(at, 1);
  }

  /** Verifies a vector of tables with `each`. */
  tables(index: number, each: (t: Table) => void): void {
    const at = this.ref(index);
    if (!at) return;
    const { start, length } = this.v.vector(at, 4);
    for (let i = 0; i < length; i++) {
      const p = start + 4 * i;
      each(this.v.table(p + this.v.u32(p), this.depth + 1));
    }
  }

  /** Verifies a vector of structs (or scalars) of `size` bytes; returns its start and length. */
  structs(index: number, size: number): { start: number; length: number } {
    const at = this.ref(index);
    return at ? this.v.vector(at, size) : { start: 0, length: 0 };
  }
}

/** A count or offset the decoder converts to a number: must be a safe, non-negative integer. */
function count(v: Verifier, x: bigint, what: string, at: number): void {
  if (x < 0n || x > BigInt(Number.MAX_SAFE_INTEGER)) v.fail(`${what} is ${x}`, at);
}

function keyValues(t: Table, index: number): void {
  t.tables(index, (kv) => {
    kv.string(0);
    kv.string(1);
  });
}

function field(t: Table): void {
  t.string(0);
  const type = t.u8(2);
  if (type > TYPE_MAX) t.v.fail(`a field has unknown type id ${type}`, t.pos);
  const typeTable = t.sub(3);
  if (typeTable && type === TYPE_TIMESTAMP) typeTable.string(1);
  if (typeTable && type === TYPE_UNION) typeTable.structs(1, 4);
  const dict = t.sub(4);
  if (dict) {
    const id = dict.i64(0);
    if (id < -BigInt(Number.MAX_SAFE_INTEGER) || id > BigInt(Number.MAX_SAFE_INTEGER)) {
      t.v.fail(`a dictionary id is ${id}`, dict.pos);
    }
    dict.sub(1);
  }
  t.tables(5, field);
  keyValues(t, 6);
}

function schema(t: Table): void {
  t.tables(1, field);
  keyValues(t, 2);
  t.structs(3, 8);
}

function recordBatch(t: Table, version: number): void {
  count(t.v, t.i64(0), "a record batch's length", t.pos);
  const nodes = t.structs(1, 16);
  for (let i = 0; i < nodes.length; i++) {
    const at = nodes.start + 16 * i;
    count(t.v, t.v.dv.getBigInt64(at, true), "a field node's length", at);
    count(t.v, t.v.dv.getBigInt64(at + 8, true), "a field node's null count", at);
  }
  // Buffers were 24 bytes (page, offset, length) before metadata version V4.
  const size = version < 3 ? 24 : 16, skip = size - 16;
  const buffers = t.structs(2, size);
  for (let i = 0; i < buffers.length; i++) {
    const at = buffers.start + size * i + skip;
    count(t.v, t.v.dv.getBigInt64(at, true), "a buffer's offset", at);
    count(t.v, t.v.dv.getBigInt64(at + 8, true), "a buffer's length", at);
  }
  t.sub(3);
  const variadic = t.structs(4, 8);
  for (let i = 0; i < variadic.length; i++) {
    const at = variadic.start + 8 * i;
    count(t.v, t.v.dv.getBigInt64(at, true), "a variadic buffer count", at);
  }
}

/**
 * Verifies one IPC `Message` flatbuffer (the metadata after the length prefix). Returns its header type and
 * body length. Throws {@linkcode FlatbufError} when it is malformed or of a kind infotap does not read.
 */
export function verifyMessage(buf: Uint8Array): { header: number; bodyLength: number } {
  const v: Verifier = new Verifier(buf);
  const m = v.table(v.u32(0), 0);
  const version = m.i16(0);
  const header = m.u8(1);
  const bodyLength = m.i64(3);
  count(v, bodyLength, "the body length", m.pos);
  keyValues(m, 4);
  const h = m.sub(2);
  if (header === HEADER.Schema) {
    if (!h) v.fail("a schema message has no schema", m.pos);
    schema(h);
  } else if (header === HEADER.RecordBatch) {
    if (!h) v.fail("a record batch message has no header", m.pos);
    recordBatch(h, version);
  } else if (header === HEADER.DictionaryBatch) {
    if (!h) v.fail("a dictionary batch message has no header", m.pos);
    const id = h.i64(0);
    if (id < -BigInt(Number.MAX_SAFE_INTEGER) || id > BigInt(Number.MAX_SAFE_INTEGER)) {
      v.fail(`a dictionary id is ${id}`, h.pos);
    }
    const data = h.sub(1);
    if (!data) v.fail("a dictionary batch has no data", h.pos);
    recordBatch(data, version);
  } else if (header === HEADER.Tensor || header === HEADER.SparseTensor) {
    v.fail("a tensor message is not part of the wire format", m.pos);
  } else v.fail(`a message has unknown header type ${header}`, m.pos);
  return { header, bodyLength: Number(bodyLength) };
}

/** Verifies an IPC file `Footer` flatbuffer (schema and block lists). Throws {@linkcode FlatbufError}. */
export function verifyFooter(buf: Uint8Array): void {
  const v: Verifier = new Verifier(buf);
  const f = v.table(v.u32(0), 0);
  const s = f.sub(1);
  if (!s) v.fail("the footer has no schema", f.pos);
  schema(s);
  for (const index of [2, 3]) {
    const blocks = f.structs(index, 24);
    for (let i = 0; i < blocks.length; i++) {
      const at = blocks.start + 24 * i;
      count(v, v.dv.getBigInt64(at, true), "a block's offset", at);
      count(v, v.dv.getBigInt64(at + 16, true), "a block's body length", at);
    }
  }
  keyValues(f, 4);
}
