/**
 * Reading wire-format record batches, batch by batch with bounded memory: thin adapters over the one reader core
 * (`schemas/ipc_reader.ts` over `schemas/framer.ts` over `schemas/bytes.ts`) for files (`.arrows` streams and
 * `.arrow` files, whose footer is read first when present), stdin and sockets (serve's TCP and WebSocket
 * producers, through {@linkcode readSource}). Every batch is validated against the layout of the first one.
 * Wire format: `schemas/README.md`.
 *
 * @module
 */
import type * as arrow from "apache-arrow";
import { InputError, show } from "./errors.ts";
import type { Batch } from "./batch.ts";
import { checkSameLayout, decodeBatch, type Layout, schemaDifference, validateSchema } from "./validate.ts";
import { ByteSource, type Reader } from "./bytes.ts";
import { type FrameState, IpcError, readFooterAt } from "./framer.ts";
import { type IpcItem, readIpc } from "./ipc_reader.ts";

const CHUNK = 1 << 20;

/** An opened input: its reader, its size when it is a regular file, random access when it has it. */
interface Opened {
  reader: Reader;
  size: number | null;
  file: Deno.FsFile | null;
  close: () => void;
}

/** Opens an input (`-` is stdin) for reading, with one-line errors for missing files and directories. */
export async function openInput(path: string): Promise<Opened> {
  if (path === "-") return { reader: Deno.stdin, size: null, file: null, close: () => {} };
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
  const st = await file.stat();
  if (st.isDirectory) {
    file.close();
    throw new InputError(`Cannot read input as it is a directory: current value is ${show(path)}`, { file: path });
  }
  return { reader: file, size: st.isFile ? st.size : null, file: st.isFile ? file : null, close: () => file.close() };
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

async function* chunksOf(reader: Reader, onBytes?: (n: number) => void): AsyncGenerator<Uint8Array> {
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

/** Options of {@linkcode readInput}, {@linkcode readStream} and {@linkcode readSource}. */
export interface ReadOptions {
  /** The layout of earlier inputs (tensor widths must match). */
  expected?: Layout;
  /** Called with the size of each read (progress). */
  onBytes?: (n: number) => void;
  /** Provides message body buffers (default: fresh ones). */
  alloc?: (n: number) => Uint8Array;
  /**
   * A socket producer (serve): the stream format only, the end-of-stream marker ends it (the producer then
   * waits for the answer), errors worded for a connection, and `state` tells how it ended.
   */
  socket?: {
    /** Refuses a message whose prefix, metadata and body exceed this, before its body is read. */
    maxMessageBytes: number;
    /** How that limit is named in refusals (e.g. `--max-batch-bytes`). */
    limitName: string;
    /** Updated as messages pass. */
    state: FrameState;
    /** Awaited before each message body is read, with the message's size (see `FrameOptions.reserve`). */
    reserve?: (bytes: number) => Promise<void>;
  };
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
export async function* readInput(path: string, options: ReadOptions = {}): AsyncGenerator<ReadBatch> {
  const { reader, size, file, close } = await openInput(path);
  try {
    const src = new ByteSource(reader, { size, onBytes: options.onBytes });
    let footer: { footer: Uint8Array; start: number } | null = null;
    const head = await src.peek(8);
    if (file && size !== null && head.length === 8 && new TextDecoder().decode(head.subarray(0, 6)) === "ARROW1") {
      // The file format: its footer holds the schema (apache-arrow writes it nowhere else); read it first.
      footer = await readFooterAt(size, async (offset, out) => {
        await file.seek(offset, Deno.SeekMode.Start);
        let got = 0;
        while (got < out.length) {
          const n = await file.read(out.subarray(got));
          if (n === null) break;
          got += n;
        }
        return got;
      });
      await file.seek(src.received, Deno.SeekMode.Start);
    }
    yield* readSource(src, path, options, footer);
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
  return readSource(ByteSource.fromChunks(bytes, { onBytes: options.onBytes }), label, options);
}

/** The location and one-line message of a reader error. */
function inputError(e: IpcError, label: string, batch: number, haveSchema: boolean, socket: boolean): InputError {
  const where = { file: label, batch };
  if (e.kind === "empty") {
    return new InputError(`Cannot read input as it is empty: current value is 0 bytes`, { file: label });
  }
  if (e.kind === "not-arrow") {
    return new InputError(
      `Cannot read input as it is not an Arrow IPC stream or file (no Arrow magic or continuation marker): current value is ${
        e.message.replace(/^.*: (first bytes)/, "$1")
      }`,
      { file: label },
    );
  }
  if (e.kind === "refused") return new InputError(e.message, where);
  if (socket && e.kind === "truncated") {
    return new InputError(
      `Cannot read the record batch as the producer disconnected mid-message (earlier batches are kept): current value is ${
        show(e.message)
      }`,
      where,
    );
  }
  if (!haveSchema) {
    return new InputError(`Cannot read the Arrow schema as ${e.message}: current value is ${show(label)}`, {
      file: label,
      batch: 0,
    });
  }
  return new InputError(
    `Cannot read the record batch as the input is ${
      e.truncated ? "truncated" : "corrupt"
    } (earlier batches are kept): current value is ${show(e.message)}`,
    where,
  );
}

/**
 * Reads wire-format batches from any byte source (file, stdin, socket); `label` names it in errors. Streams
 * concatenated after an end-of-stream marker are read on when their schema is the first one's (else an error
 * names the byte offset). `footer`: a file's footer read up front (random access).
 */
export async function* readSource(
  src: ByteSource,
  label: string,
  options: ReadOptions = {},
  footer: { footer: Uint8Array; start: number } | null = null,
): AsyncGenerator<ReadBatch> {
  const socket = options.socket;
  const items = readIpc(src, {
    alloc: options.alloc,
    footer,
    ...(socket
      ? {
        formats: "stream",
        afterEnd: "stop",
        maxMessageBytes: socket.maxMessageBytes,
        limitName: socket.limitName,
        state: socket.state,
        reserve: socket.reserve,
      }
      : {}),
  });
  let layout: Layout | undefined;
  let first: arrow.Schema | undefined;
  let index = 0;
  while (true) {
    let next: IteratorResult<IpcItem>;
    try {
      next = await items.next();
    } catch (e) {
      if (!(e instanceof IpcError)) throw e;
      throw inputError(e, label, index, layout !== undefined, socket !== undefined);
    }
    if (next.done) break;
    const item = next.value;
    if (item.type === "schema") {
      if (!first) {
        const l = validateSchema(item.schema, label, 0);
        if (options.expected) checkSameLayout(options.expected, l, label, 0);
        layout = l;
        first = item.schema;
        continue;
      }
      const diff = schemaDifference(first, item.schema);
      if (diff) {
        throw new InputError(
          `Cannot read the stream concatenated after byte ${item.offset} as its schema differs from the first stream's (${diff}): current value is stream ${
            item.stream + 1
          }`,
          { file: label, batch: index },
        );
      }
      continue;
    }
    const batch = decodeBatch(item.batch, layout!, label, item.index);
    batch.byteLength = item.bodyBytes;
    batch.owned = true; // every view is into this message's own body buffer (or a fresh conversion)
    index = item.index + 1;
    yield { batch, layout: layout! };
  }
  if (!layout) {
    throw new InputError(`Cannot read the Arrow schema as the input holds none: current value is missing`, {
      file: label,
      batch: 0,
    });
  }
}

/**
 * Copies stdin to a temporary file (for estimators that need two passes); returns its path. The file is removed
 * when the copy fails or `signal` aborts it (an InputError then says so).
 */
export async function spillStdin(onBytes?: (n: number) => void, signal?: AbortSignal): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "infotap-stdin-", suffix: ".arrows" });
  const out = await Deno.open(path, { write: true, truncate: true });
  const aborted = new Promise<never>((_, reject) => {
    const stop = () =>
      reject(
        new InputError(
          `Cannot read standard input to its end as the run was interrupted (${
            signal!.reason ?? "aborted"
          }): current value is a partial copy, removed`,
        ),
      );
    if (signal?.aborted) stop();
    else signal?.addEventListener("abort", stop, { once: true });
  });
  aborted.catch(() => {});
  const chunks = chunksOf(Deno.stdin, onBytes);
  try {
    while (true) {
      const next = await (signal ? Promise.race([chunks.next(), aborted]) : chunks.next());
      if (next.done) break;
      let off = 0;
      while (off < next.value.length) off += await out.write(next.value.subarray(off));
    }
  } catch (e) {
    out.close();
    await Deno.remove(path).catch(() => {});
    throw e;
  }
  out.close();
  return path;
}
