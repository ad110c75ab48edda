/**
 * A lean Arrow IPC reader (stream and file formats) that reads each message body straight into its own
 * buffer: one kernel copy, no re-joining of chunks. Decoding of messages and buffers is apache-arrow's own
 * (`Message.decode`, `VectorLoader`), so the record batches are ordinary `apache-arrow` batches.
 *
 * Supports dictionaries (and delta dictionaries), legacy (pre-0.15) length prefixes, and the file format
 * (read as its embedded stream; the footer is not needed). Compressed IPC bodies are refused with a clear
 * error. Errors are plain `Error`s whose message says what is wrong; the caller adds file and batch.
 *
 * @module
 */
import * as arrow from "apache-arrow";
import { VectorLoader } from "apache-arrow/visitor/vectorloader";
import type { RecordBatch as RecordBatchHeader } from "apache-arrow/ipc/metadata/message";

/** Anything with Deno's `read` contract (files, stdin, sockets). */
export interface ByteReader {
  read(p: Uint8Array): Promise<number | null>;
}

/** Adapts an async iterable of chunks (e.g. a ReadableStream) to {@linkcode ByteReader}. */
export function readerFromChunks(chunks: AsyncIterable<Uint8Array>): ByteReader {
  const it = chunks[Symbol.asyncIterator]();
  let pending: Uint8Array | null = null;
  return {
    async read(p: Uint8Array): Promise<number | null> {
      while (!pending || pending.length === 0) {
        const n = await it.next();
        if (n.done) return null;
        pending = n.value;
      }
      const k = Math.min(p.length, pending.length);
      p.set(pending.subarray(0, k));
      pending = pending.subarray(k);
      return k;
    },
  };
}

/** A buffered reader that can hand out exact byte counts, copying each byte once. */
class Source {
  #buf = new Uint8Array(1 << 16);
  #start = 0;
  #end = 0;
  #eof = false;
  /** Bytes consumed so far. */
  position = 0;

  constructor(readonly reader: ByteReader, readonly onBytes?: (n: number) => void) {}

  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    if (this.#start > 0) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    const n = await this.reader.read(this.#buf.subarray(this.#end));
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#end += n;
    this.onBytes?.(n);
    return true;
  }

  /** Fills `out` completely; returns the bytes obtained (less than out.length only at end of input). */
  async readInto(out: Uint8Array): Promise<number> {
    let off = Math.min(out.length, this.#end - this.#start);
    out.set(this.#buf.subarray(this.#start, this.#start + off));
    this.#start += off;
    // Large remainders go straight from the kernel into `out`.
    while (off < out.length && !this.#eof) {
      if (out.length - off >= this.#buf.length) {
        const n = await this.reader.read(out.subarray(off));
        if (n === null) this.#eof = true;
        else {
          off += n;
          this.onBytes?.(n);
        }
      } else {
        if (!(await this.#fill())) break;
        const k = Math.min(out.length - off, this.#end - this.#start);
        out.set(this.#buf.subarray(this.#start, this.#start + k), off);
        this.#start += k;
        off += k;
      }
    }
    this.position += off;
    return off;
  }
}

const CONTINUATION = 0xffffffff;
const MAGIC = [0x41, 0x52, 0x52, 0x4f, 0x57, 0x31]; // "ARROW1"

/** An error in the byte stream: truncated or malformed (the caller names file and batch). */
export class IpcError extends Error {
  constructor(message: string, readonly truncated: boolean) {
    super(message);
    this.name = "IpcError";
  }
}

/** What the reader yields: the schema first, then each record batch with its index and body size. */
export type IpcItem =
  | { type: "schema"; schema: arrow.Schema; format: "stream" | "file" }
  | { type: "batch"; batch: arrow.RecordBatch; index: number; bodyBytes: number };

/**
 * Reads an Arrow IPC stream or file. Yields `{type: "schema"}` once, then `{type: "batch"}` per record
 * batch. `alloc` provides each message body's buffer (default: a fresh one; a recycled buffer avoids the page
 * faults of fresh memory, see `pipeline/analyze/buffer_pool.ts`). Throws {@linkcode IpcError} on truncation or malformed data, after yielding every complete batch.
 */
export async function* readIpc(
  reader: ByteReader,
  onBytes?: (n: number) => void,
  alloc: (n: number) => Uint8Array = (n) => new Uint8Array(n),
): AsyncGenerator<IpcItem> {
  const src = new Source(reader, onBytes);
  const head = new Uint8Array(8);
  const dv = new DataView(head.buffer);
  let got = await src.readInto(head);
  if (got === 0) throw new IpcError("the input is empty", false);
  let format: "stream" | "file" = "stream";
  if (got >= 6 && MAGIC.every((b, i) => head[i] === b)) {
    format = "file";
    if (got < 8) throw new IpcError("the file ends inside its magic", true);
    got = await src.readInto(head); // first message prefix after "ARROW1\0\0"
  }
  let schema: arrow.Schema | null = null;
  const dictionaries = new Map<number, arrow.Vector>();
  let index = 0;
  while (true) {
    if (got === 0 && format === "stream") return; // end of input without EOS marker: allowed for streams
    if (got < 4) throw new IpcError(`the input ends inside a message prefix (${got} of 8 bytes)`, true);
    let metaLen: number;
    let rest: number;
    if (dv.getUint32(0, true) === CONTINUATION) {
      if (got < 8) throw new IpcError(`the input ends inside a message prefix (${got} of 8 bytes)`, true);
      metaLen = dv.getInt32(4, true);
      rest = 0;
    } else {
      metaLen = dv.getInt32(0, true); // legacy format: no continuation marker
      rest = got - 4; // 4 bytes of the metadata already read
    }
    if (metaLen === 0) {
      if (!schema) throw new IpcError("the stream ends before its schema", true);
      return;
    }
    if (metaLen < 0 || metaLen > 1 << 30) throw new IpcError(`a message declares ${metaLen} metadata bytes`, false);
    const meta = new Uint8Array(metaLen);
    if (rest) meta.set(head.subarray(4, 8));
    if (await src.readInto(meta.subarray(rest)) < metaLen - rest) {
      throw new IpcError(`the input ends inside a message's metadata (${metaLen} bytes expected)`, true);
    }
    let message: arrow.Message;
    try {
      message = arrow.Message.decode(meta);
    } catch (e) {
      throw new IpcError(`a message's metadata is malformed (${(e as Error).message})`, false);
    }
    const bodyLength = Number(message.bodyLength);
    const body = alloc(bodyLength);
    const n = await src.readInto(body);
    if (n < bodyLength) {
      throw new IpcError(`the input ends inside a message body (${n} of ${bodyLength} bytes)`, true);
    }
    if (message.isSchema()) {
      if (schema) throw new IpcError("a second schema message appears mid-stream", false);
      schema = message.header() as arrow.Schema;
      yield { type: "schema", schema, format };
    } else if (message.isDictionaryBatch()) {
      if (!schema) throw new IpcError("a dictionary batch comes before the schema", false);
      const h = message.header() as unknown as { id: number; isDelta: boolean; data: RbHeader };
      if (h.data.compression != null) throw new IpcError("dictionary batches are compressed (not supported)", false);
      const type = schema.dictionaries.get(h.id);
      if (!type) throw new IpcError(`a dictionary batch has unknown id ${h.id}`, false);
      const data = new VectorLoader(
        body,
        h.data.nodes,
        h.data.buffers,
        dictionaries,
        schema.metadataVersion,
        h.data.variadicBufferCounts,
      )
        .visitMany([type]);
      const prev = dictionaries.get(h.id);
      dictionaries.set(
        h.id,
        (prev && h.isDelta ? prev.concat(new arrow.Vector(data)) : new arrow.Vector(data)).memoize(),
      );
    } else if (message.isRecordBatch()) {
      if (!schema) throw new IpcError("a record batch comes before the schema", false);
      const h = message.header() as unknown as RbHeader;
      if (h.compression != null) {
        throw new IpcError(
          "record batch bodies are compressed (IPC compression is not supported; write uncompressed)",
          false,
        );
      }
      let children: arrow.Data[];
      try {
        children = new VectorLoader(
          body,
          h.nodes,
          h.buffers,
          dictionaries,
          schema.metadataVersion,
          h.variadicBufferCounts,
        )
          .visitMany(schema.fields.map((f) => f.type));
      } catch (e) {
        throw new IpcError(`a record batch is malformed (${(e as Error).message})`, false);
      }
      const data = arrow.makeData({ type: new arrow.Struct(schema.fields), length: h.length, children, nullCount: 0 });
      yield { type: "batch", batch: new arrow.RecordBatch(schema, data), index: index++, bodyBytes: bodyLength };
    }
    got = await src.readInto(head);
    if (got === 0 && format === "file") {
      throw new IpcError("the file ends without its end-of-stream marker and footer", true);
    }
  }
}

type RbHeader = RecordBatchHeader;
