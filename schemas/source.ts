/**
 * Reading wire-format record batches from files or standard input, batch by batch with bounded memory.
 *
 * Arrow IPC stream (`.arrows`) and file (`.arrow`) formats are both read as streams (the file format's footer
 * is not needed), in 1 MiB reads. Every batch is validated against the layout of the first one.
 *
 * @module
 */
import * as arrow from "apache-arrow";
import { InputError, show } from "./errors.ts";
import type { Batch } from "./batch.ts";
import { checkSameLayout, decodeBatch, type Layout, validateSchema } from "./validate.ts";
import { type ByteReader, IpcError, type IpcItem, readerFromChunks, readIpc } from "./ipc_reader.ts";

const CHUNK = 1 << 20;

/** Opens an input (`-` is stdin) for reading, with one-line errors for missing files and directories. */
export async function openInput(path: string): Promise<{ reader: ByteReader; close: () => void }> {
  if (path === "-") return { reader: Deno.stdin, close: () => {} };
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new InputError(`Cannot open input as it does not exist: current value is ${show(path)}`, { file: path });
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new InputError(`Cannot open input as permission is denied: current value is ${show(path)}`, { file: path });
    }
    throw new InputError(`Cannot open input as ${(e as Error).message}: current value is ${show(path)}`, {
      file: path,
    });
  }
  if ((await file.stat()).isDirectory) {
    file.close();
    throw new InputError(`Cannot read input as it is a directory: current value is ${show(path)}`, { file: path });
  }
  return { reader: file, close: () => file.close() };
}

/** Byte chunks (1 MiB reads) of a file or of stdin (`-`), with a callback for progress. */
export async function* readChunks(path: string, onBytes?: (n: number) => void): AsyncGenerator<Uint8Array> {
  const { reader, close } = await openInput(path);
  try {
    yield* chunksOf(reader, onBytes);
  } finally {
    close();
  }
}

async function* chunksOf(reader: ByteReader, onBytes?: (n: number) => void): AsyncGenerator<Uint8Array> {
  while (true) {
    const buf = new Uint8Array(CHUNK);
    let off = 0;
    while (off < CHUNK) {
      const n = await reader.read(buf.subarray(off));
      if (n === null) break;
      off += n;
    }
    if (off === 0) return;
    onBytes?.(off);
    yield buf.subarray(0, off);
    if (off < CHUNK) return;
  }
}

const FILE_MAGIC = [0x41, 0x52, 0x52, 0x4f, 0x57, 0x31]; // "ARROW1"

/** Rejects bytes that start neither an Arrow IPC stream nor an Arrow file, with a one-line error. */
function checkMagic(first: Uint8Array, file: string): void {
  const isFile = FILE_MAGIC.every((b, i) => first[i] === b);
  const isStream = (first[0] === 0xff && first[1] === 0xff && first[2] === 0xff && first[3] === 0xff) ||
    // pre-0.15 streams start with the metadata length directly (small, little-endian)
    (first.length >= 8 && first[3] === 0 && first[2] === 0 && (first[0] | first[1]) !== 0);
  if (!isFile && !isStream) {
    const head = [...first.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    throw new InputError(
      `Cannot read input as it is not an Arrow IPC stream or file (no Arrow magic or continuation marker): current value is first bytes ${head}`,
      { file },
    );
  }
}

/** Options of {@linkcode readInput} and {@linkcode readStream}. */
export interface ReadOptions {
  /** The layout of earlier inputs (tensor widths must match). */
  expected?: Layout;
  /** Called with the size of each chunk read (progress). */
  onBytes?: (n: number) => void;
  /** Provides message body buffers (streams only; default: fresh ones). */
  alloc?: (n: number) => Uint8Array;
}

/** One validated batch with its layout, as read from one input. */
export interface ReadBatch {
  batch: Batch;
  layout: Layout;
}

/**
 * Reads one input (`-` for stdin), yielding validated batches. `expected` is the layout of earlier inputs
 * (tensor widths must match). Throws {@linkcode InputError} naming file and batch on any problem, after
 * yielding every complete batch before it.
 */
export async function* readInput(
  path: string,
  options: ReadOptions = {},
): AsyncGenerator<ReadBatch> {
  const { reader, close } = await openInput(path);
  try {
    yield* readSource(reader, path, options);
  } finally {
    close();
  }
}

/**
 * Reads an Arrow IPC stream (or file) from any async iterable of byte chunks (a socket's `ReadableStream`,
 * WebSocket messages), yielding validated batches; `label` names the source in errors (as the file). Bytes
 * are pulled only as batches are consumed (backpressure). Errors as {@linkcode readInput}.
 */
export function readStream(
  bytes: AsyncIterable<Uint8Array>,
  label: string,
  options: ReadOptions = {},
): AsyncGenerator<ReadBatch> {
  return readSource(readerFromChunks(bytes), label, options);
}

/**
 * Reads wire-format batches from any byte reader (file, stdin, socket); `label` names it in errors.
 * Streams (`.arrows`) go through the lean reader (`schemas/ipc_reader.ts`, bodies read straight into
 * place); the IPC file format (`.arrow`), whose schema may live only in the footer, through apache-arrow's
 * reader.
 */
export async function* readSource(
  reader: ByteReader,
  label: string,
  options: ReadOptions = {},
): AsyncGenerator<ReadBatch> {
  const first = new Uint8Array(8);
  let got = 0;
  while (got < 8) {
    const n = await reader.read(first.subarray(got));
    if (n === null) break;
    got += n;
  }
  if (got === 0) throw new InputError(`Cannot read input as it is empty: current value is 0 bytes`, { file: label });
  options.onBytes?.(got);
  checkMagic(first.subarray(0, got), label);
  const prefixed = prefixReader(first.subarray(0, got), reader);
  const where = (batch: number) => ({ file: label, batch });
  let layout: Layout | undefined;
  let index = 0;
  const check = (schema: arrow.Schema, at: number) => {
    const l = validateSchema(schema, label, at);
    if (options.expected) checkSameLayout(options.expected, l, label, at);
    else if (layout) checkSameLayout(layout, l, label, at);
    return l;
  };
  if (FILE_MAGIC.every((b, i) => first[i] === b)) {
    let r: arrow.AsyncRecordBatchStreamReader | arrow.AsyncRecordBatchFileReader;
    try {
      r = await arrow.RecordBatchReader.from(chunksOf(prefixed, options.onBytes)) as typeof r;
      await r.open();
    } catch (e) {
      throw new InputError(
        `Cannot read the Arrow schema as the input is truncated or corrupt: current value is ${
          show((e as Error).message)
        }`,
        where(0),
      );
    }
    if (!r.schema) {
      throw new InputError(`Cannot read the Arrow schema as the input holds none: current value is missing`, where(0));
    }
    yield* validated(r.schema, r[Symbol.asyncIterator](), label, options);
    return;
  }
  const items = readIpc(prefixed, options.onBytes, options.alloc);
  while (true) {
    let next: IteratorResult<IpcItem>;
    try {
      next = await items.next();
    } catch (e) {
      if (!(e instanceof IpcError)) throw e;
      if (!layout) {
        throw new InputError(`Cannot read the Arrow schema as ${e.message}: current value is ${show(label)}`, where(0));
      }
      throw new InputError(
        `Cannot read the record batch as the input is ${
          e.truncated ? "truncated" : "corrupt"
        } (earlier batches are kept): current value is ${show(e.message)}`,
        where(index),
      );
    }
    if (next.done) {
      if (!layout) {
        throw new InputError(
          `Cannot read the Arrow schema as the input holds none: current value is missing`,
          where(0),
        );
      }
      return;
    }
    const item = next.value;
    if (item.type === "schema") layout = check(item.schema, 0);
    else {
      const batch = decodeBatch(item.batch, layout!, label, item.index);
      batch.byteLength = item.bodyBytes;
      batch.owned = true; // every view is into this message's own body buffer (or a fresh conversion)
      yield { batch, layout: layout! };
      index = item.index + 1;
    }
  }
}

/** A reader that returns `head` first, then reads from `rest`. */
function prefixReader(head: Uint8Array, rest: ByteReader): ByteReader {
  let pending = head;
  return {
    read(p: Uint8Array): Promise<number | null> {
      if (pending.length > 0) {
        const k = Math.min(p.length, pending.length);
        p.set(pending.subarray(0, k));
        pending = pending.subarray(k);
        return Promise.resolve(k);
      }
      return rest.read(p);
    },
  };
}

/** Validates the schema and every batch of one input against it (and `options.expected`), decoding each. */
async function* validated(
  schema: arrow.Schema,
  it: AsyncIterator<arrow.RecordBatch>,
  path: string,
  options: ReadOptions,
): AsyncGenerator<ReadBatch> {
  let index = 0;
  let layout = validateSchema(schema, path, 0);
  if (options.expected) checkSameLayout(options.expected, layout, path, 0);
  while (true) {
    let next: IteratorResult<arrow.RecordBatch>;
    try {
      next = await it.next();
    } catch (e) {
      if (e instanceof InputError) throw e;
      throw new InputError(
        `Cannot read the record batch as the input is truncated or corrupt (earlier batches are kept): current value is ${
          show((e as Error).message)
        }`,
        { file: path, batch: index },
      );
    }
    if (next.done) break;
    const rb = next.value;
    if (rb.schema !== schema) {
      const l2 = validateSchema(rb.schema, path, index);
      checkSameLayout(layout, l2, path, index);
      layout = l2;
    }
    yield { batch: decodeBatch(rb, layout, path, index), layout };
    index++;
  }
}

const EOS = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);

/** One whole Arrow IPC message (prefix, metadata and body) and its header type. */
export interface IpcMessage {
  bytes: Uint8Array;
  header: arrow.MessageHeader;
}

/**
 * Like {@linkcode readStream}, for a source already cut into whole IPC messages (as `serve`'s framer yields
 * them). Each record batch is decoded as soon as its message is complete, never waiting for the next one
 * (`readStream` over a socket would hold the latest batch back until more bytes arrive), which a live view
 * needs. Errors as {@linkcode readInput}.
 */
export async function* readMessages(
  messages: AsyncIterable<IpcMessage>,
  label: string,
  options: ReadOptions = {},
): AsyncGenerator<ReadBatch> {
  const it = messages[Symbol.asyncIterator]();
  let schemaBytes: Uint8Array | null = null;
  let schema: arrow.Schema | null = null;
  const dictionaries: Uint8Array[] = [];
  const first = await it.next();
  if (first.done) throw new InputError(`Cannot read input as it is empty: current value is 0 bytes`, { file: label });
  // The chunks are handed to Arrow as they are (no concatenation): each read falls within one message, so
  // the batch's columns are views of the message bytes (zero-copy).
  const decodeOne = (bytes: Uint8Array[], schemaOnly = false): arrow.RecordBatch | arrow.Schema => {
    const reader = arrow.RecordBatchReader.from([...bytes, EOS]) as arrow.RecordBatchStreamReader;
    reader.open();
    if (schemaOnly) return reader.schema;
    const rb = reader.next();
    if (rb.done) throw new Error("a record batch message holds no batch");
    return rb.value;
  };
  try {
    if (first.value.header !== arrow.MessageHeader.Schema) throw new Error("the first message is not a schema");
    schemaBytes = first.value.bytes;
    schema = decodeOne([schemaBytes], true) as arrow.Schema;
  } catch (e) {
    throw new InputError(
      `Cannot read the Arrow schema as the input is truncated or corrupt: current value is ${
        show((e as Error).message)
      }`,
      { file: label, batch: 0 },
    );
  }
  async function* batches(): AsyncGenerator<arrow.RecordBatch> {
    while (true) {
      const m = await it.next();
      if (m.done) return;
      const { bytes, header } = m.value;
      if (header === arrow.MessageHeader.DictionaryBatch) dictionaries.push(bytes);
      else if (header === arrow.MessageHeader.RecordBatch) {
        yield decodeOne([schemaBytes!, ...dictionaries, bytes]) as arrow.RecordBatch;
      } else if (header === arrow.MessageHeader.Schema) {
        throw new Error("a second schema message arrived");
      }
    }
  }
  yield* validated(schema, batches(), label, options);
}

/** Copies stdin to a temporary file (for estimators that need two passes); returns its path. */
export async function spillStdin(onBytes?: (n: number) => void): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "infotap-stdin-", suffix: ".arrows" });
  const out = await Deno.open(path, { write: true, truncate: true });
  try {
    for await (const chunk of chunksOf(Deno.stdin, onBytes)) {
      let off = 0;
      while (off < chunk.length) off += await out.write(chunk.subarray(off));
    }
  } finally {
    out.close();
  }
  return path;
}
