/**
 * Checks a record batch's (or dictionary batch's) field nodes and buffers against its schema, its row count and
 * its body, before apache-arrow's `VectorLoader` turns them into views (which clamp silently: a short buffer
 * would become a short column). For the types the wire format uses (`schemas/README.md`): every column holds the
 * batch's rows, a `FixedSizeList` child holds rows x width values, every buffer lies inside the body, is aligned
 * and large enough, string offsets stay inside their data and dictionary indices inside their dictionary.
 *
 * @module
 */
import * as arrow from "apache-arrow";

interface Node {
  length: number;
  nullCount: number;
}
interface Region {
  offset: number;
  length: number;
}
/** The parts of a record batch header that are checked. */
export interface BatchHeader {
  length: number;
  nodes: Node[];
  buffers: Region[];
}

const FLOAT_BYTES = [2, 4, 8];

/**
 * Throws an Error saying which column and buffer is wrong when `h` does not describe `fields` over `body`.
 * `dictionaries` are those read so far (a dictionary column needs its dictionary first).
 */
export function checkBatch(
  fields: arrow.Field[],
  h: BatchHeader,
  body: Uint8Array,
  dictionaries: Map<number, arrow.Vector>,
): void {
  let ni = 0, bi = 0;
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const fail = (col: string, what: string): never => {
    throw new Error(`column '${col}': ${what}`);
  };
  const node = (col: string): Node => {
    if (ni >= h.nodes.length) fail(col, `the header lists ${h.nodes.length} field nodes, fewer than the schema needs`);
    const n = h.nodes[ni++];
    if (n.nullCount > n.length) fail(col, `its null count ${n.nullCount} exceeds its length ${n.length}`);
    return n;
  };
  const buffer = (col: string, what: string, need: number, align: number): Region => {
    if (bi >= h.buffers.length) fail(col, `the header lists ${h.buffers.length} buffers, fewer than the schema needs`);
    const b = h.buffers[bi++];
    if (b.offset + b.length > body.length) {
      fail(
        col,
        `its ${what} buffer (bytes ${b.offset} to ${b.offset + b.length}) lies outside the ${body.length}-byte body`,
      );
    }
    if (b.length < need) fail(col, `its ${what} buffer holds ${b.length} bytes where ${need} are needed`);
    if (need > 0 && b.offset % align !== 0) {
      fail(col, `its ${what} buffer starts at byte ${b.offset}, not aligned to ${align}`);
    }
    return b;
  };
  const visit = (type: arrow.DataType, col: string, rows: number, of: string): void => {
    const n = node(col);
    if (n.length !== rows) {
      fail(col, `it holds ${n.length} ${of === "" ? "rows where the batch has" : `values where ${of} make`} ${rows}`);
    }
    const validity = buffer(col, "validity", n.nullCount > 0 ? Math.ceil(n.length / 8) : 0, 1);
    const isNull = (i: number) => n.nullCount > 0 && (body[validity.offset + (i >> 3)] & (1 << (i & 7))) === 0;
    if (arrow.DataType.isInt(type)) {
      if (![8, 16, 32, 64].includes(type.bitWidth)) fail(col, `its integer width is ${type.bitWidth} bits`);
      buffer(col, "values", n.length * type.bitWidth / 8, type.bitWidth / 8);
    } else if (arrow.DataType.isFloat(type)) {
      const size = FLOAT_BYTES[type.precision];
      if (size === undefined) fail(col, `its float precision is ${type.precision}`);
      buffer(col, "values", n.length * size, size);
    } else if (arrow.DataType.isUtf8(type)) {
      const offsets = buffer(col, "offsets", n.length > 0 ? (n.length + 1) * 4 : 0, 4);
      const data = buffer(col, "data", 0, 1);
      let prev = 0;
      for (let i = 0; i <= n.length && n.length > 0; i++) {
        const o = dv.getInt32(offsets.offset + 4 * i, true);
        if (o < prev || o > data.length) fail(col, `its string offset ${i} is ${o} (data holds ${data.length} bytes)`);
        prev = o;
      }
    } else if (arrow.DataType.isDictionary(type)) {
      const idx = type.indices;
      if (![8, 16, 32, 64].includes(idx.bitWidth)) fail(col, `its dictionary index width is ${idx.bitWidth} bits`);
      const size = idx.bitWidth / 8;
      const values = buffer(col, "indices", n.length * size, size);
      const dict = dictionaries.get(type.id);
      if (!dict) fail(col, `its dictionary (id ${type.id}) has not arrived before the batch`);
      for (let i = 0; i < n.length; i++) {
        const at = values.offset + i * size;
        const k = size === 1
          ? dv.getInt8(at)
          : size === 2
          ? dv.getInt16(at, true)
          : size === 4
          ? dv.getInt32(at, true)
          : Number(dv.getBigInt64(at, true));
        if ((k < 0 || k >= dict!.length) && !isNull(i)) {
          fail(col, `row ${i} has dictionary index ${k} (the dictionary holds ${dict!.length} values)`);
        }
      }
    } else if (arrow.DataType.isFixedSizeList(type)) {
      const child = type.children[0];
      if (!child || type.children.length !== 1) fail(col, `its list type has ${type.children.length} children`);
      visit(child.type, col, n.length * type.listSize, `${n.length} rows x width ${type.listSize}`);
    } else fail(col, `its type ${type} is not part of the wire format`);
  };
  fields.forEach((f) => visit(f.type, String(f.name), h.length, ""));
  if (ni !== h.nodes.length || bi !== h.buffers.length) {
    throw new Error(
      `the header lists ${h.nodes.length} field nodes and ${h.buffers.length} buffers where the schema needs ${ni} and ${bi}`,
    );
  }
}
