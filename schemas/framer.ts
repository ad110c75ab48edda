/**
 * The one Arrow IPC framer: cuts a {@linkcode ByteSource} into whole messages (flatbuffer metadata verified and
 * decoded, body read straight into its own buffer), for files, stdin and sockets alike. Every size read from the
 * input is checked against the bytes present (when known), a stated limit and `maxMessageBytes` before anything
 * is allocated. Handles the continuation marker and legacy (pre-0.15) prefixes, the file format's magic and end,
 * and what follows an end-of-stream marker (the next concatenated stream, or an error naming the byte offset).
 * Wire format: `schemas/README.md`; IPC framing: https://arrow.apache.org/docs/format/Columnar.html#encapsulated-message-format
 *
 * @module
 */
import * as arrow from "apache-arrow";
import type { ByteSource } from "./bytes.ts";
import { FlatbufError, HEADER, verifyMessage } from "./_flatbuf.ts";

/** Metadata (flatbuffer) larger than this is refused: a schema of 100,000 columns takes about 10 MB. */
export const MAX_METADATA_BYTES = 64 << 20;
/** Footers larger than this are refused (a schema plus 24 bytes per batch). */
export const MAX_FOOTER_BYTES = 256 << 20;
/** Bodies of unknown-size inputs (stdin, sockets) larger than this grow as their bytes arrive, not allocated up front. */
const GROW_FROM = 64 << 20;
const CONTINUATION = 0xffffffff;
const MAGIC = [0x41, 0x52, 0x52, 0x4f, 0x57, 0x31]; // "ARROW1"
const HEADERS = ["", "schema", "dictionary batch", "record batch"];

/** What went wrong: the input is `empty`, `not-arrow`, `truncated`, `corrupt`, or a message was `refused` (a limit). */
export type IpcErrorKind = "empty" | "not-arrow" | "truncated" | "corrupt" | "refused";

/** An error in the byte stream; the message says what and at which byte (adapters add file and batch). */
export class IpcError extends Error {
  constructor(message: string, readonly kind: IpcErrorKind, readonly offset: number) {
    super(message);
    this.name = "IpcError";
  }
  /** The input ended too early (as opposed to holding wrong bytes). */
  get truncated(): boolean {
    return this.kind === "truncated";
  }
}

/** What the framer saw, for the caller to read after the stream ends or fails (serve's producer record). */
export interface FrameState {
  /** Whole messages passed on (schema, dictionaries, batches). */
  messages: number;
  /** Record-batch messages passed on. */
  batches: number;
  /** An end-of-stream marker arrived. */
  eos: boolean;
  /** Bytes of a message cut off by the end of the input (0 when it ended between messages). */
  partialBytes: number;
  /** A refusal (a limit, not Arrow, corrupt framing), as a one-line message. */
  refused: string | null;
}

/** A fresh {@linkcode FrameState}. */
export function frameState(): FrameState {
  return { messages: 0, batches: 0, eos: false, partialBytes: 0, refused: null };
}

/** Options of {@linkcode readFrames}. */
export interface FrameOptions {
  /** Refuses any message whose prefix, metadata and body exceed this many bytes, before reading its body. */
  maxMessageBytes?: number;
  /** How `maxMessageBytes` is named in refusals (e.g. `--max-batch-bytes`). */
  limitName?: string;
  /** Provides each body's buffer (default: a fresh one; a recycled one avoids page faults). */
  alloc?: (n: number) => Uint8Array;
  /**
   * Awaited with a message's size (prefix, metadata and body) once its limits are checked, before its body is
   * read: lets a server bound the bytes all its producers buffer at once (serve's `--max-buffered-bytes`).
   */
  reserve?: (bytes: number) => Promise<void>;
  /**
   * After an end-of-stream marker: `"next"` reads on (a following stream must be another Arrow stream, else an
   * error names the offset), `"stop"` returns (a socket: the producer waits for the answer). Default `"next"`.
   */
  afterEnd?: "next" | "stop";
  /** File format: the byte offset where the stream part ends (the footer's start), when the footer was read. */
  streamEnd?: number;
  /** Updated as messages pass (see {@linkcode FrameState}). */
  state?: FrameState;
}

/** One frame: a whole message, an end-of-stream marker, or (file format read in order) the footer. */
export type Frame =
  | {
    type: "message";
    /** `MessageHeader`: 1 schema, 2 dictionary batch, 3 record batch. */
    header: number;
    message: arrow.Message;
    body: Uint8Array;
    /** Byte offset of the message's prefix in the input. */
    offset: number;
    /** Prefix, metadata and body bytes. */
    bytes: number;
  }
  | { type: "end"; offset: number }
  | { type: "footer"; footer: Uint8Array; offset: number };

const hex = (b: Uint8Array) => [...b.subarray(0, 8)].map((x) => x.toString(16).padStart(2, "0")).join(" ");

/**
 * Reads the first bytes and tells an Arrow IPC stream from an Arrow file; consumes the file magic. Throws
 * {@linkcode IpcError} (`empty`, `not-arrow`) for anything else.
 */
export async function sniff(src: ByteSource): Promise<"stream" | "file"> {
  const first = await src.peek(8);
  if (first.length === 0) throw new IpcError("the input is empty", "empty", src.position);
  if (first.length < 4 && first.every((b) => b === 0xff)) {
    throw new IpcError(`the input ends inside a message prefix (${first.length} of 8 bytes)`, "truncated", 0);
  }
  if (first.length >= 6 && MAGIC.every((b, i) => first[i] === b)) {
    if (first.length < 8) throw new IpcError("the file ends inside its magic", "truncated", src.position);
    src.take(8);
    return "file";
  }
  const isStream = (first[0] === 0xff && first[1] === 0xff && first[2] === 0xff && first[3] === 0xff) ||
    // pre-0.15 streams start with the metadata length directly (small, little-endian)
    (first.length >= 8 && first[3] === 0 && first[2] === 0 && (first[0] | first[1]) !== 0);
  if (!isStream) {
    throw new IpcError(
      `the input is not an Arrow IPC stream or file (no Arrow magic or continuation marker): first bytes ${hex(first)}`,
      "not-arrow",
      src.position,
    );
  }
  return "stream";
}

/**
 * Yields the frames of an Arrow IPC stream (or a file's stream part, after {@linkcode sniff}). Throws
 * {@linkcode IpcError} after yielding every complete message before the problem.
 */
export async function* readFrames(
  src: ByteSource,
  format: "stream" | "file",
  options: FrameOptions = {},
): AsyncGenerator<Frame> {
  const state = options.state ?? frameState();
  const alloc = options.alloc ?? ((n: number) => new Uint8Array(n));
  const max = options.maxMessageBytes ?? Infinity;
  const limitName = options.limitName ?? "the message size limit";
  const end = options.streamEnd ?? src.size; // bytes beyond this are not part of the stream
  const left = () => (end === null ? Infinity : end - src.position);
  let eosAt = -1; // offset of the last end-of-stream marker while looking for a next stream
  let at = src.position;
  const cut = (what: string): never => {
    state.partialBytes = src.received - at;
    throw new IpcError(what, "truncated", at);
  };
  const corrupt = (what: string): never => {
    if (eosAt >= 0) {
      throw new IpcError(
        `the bytes after the end-of-stream marker at byte ${eosAt} are not another Arrow stream (${what}): first bytes ${
          hex(afterEos)
        }`,
        "corrupt",
        at,
      );
    }
    throw new IpcError(`${what} at byte ${at}`, "corrupt", at);
  };
  const refuse = (message: string): never => {
    state.refused = message;
    throw new IpcError(message, "refused", at);
  };
  let afterEos = new Uint8Array(0);
  while (true) {
    at = src.position;
    if (format === "file" && options.streamEnd !== undefined && at === options.streamEnd) return;
    const head = await src.peek(8);
    if (eosAt >= 0) afterEos = head.slice();
    if (head.length === 0) {
      if (format === "file") cut("the file ends without its end-of-stream marker and footer");
      return; // a stream may end without its end-of-stream marker
    }
    const dv = new DataView(head.buffer, head.byteOffset, head.length);
    if (head.length < 4) {
      if (eosAt >= 0) corrupt(`${head.length} bytes`);
      cut(`the input ends inside a message prefix (${head.length} of 8 bytes)`);
    }
    let prefix = 4, metaLen = dv.getInt32(0, true);
    if (dv.getUint32(0, true) === CONTINUATION) {
      if (head.length < 8) {
        if (eosAt >= 0) corrupt(`${head.length} bytes`);
        cut(`the input ends inside a message prefix (${head.length} of 8 bytes)`);
      }
      prefix = 8;
      metaLen = dv.getInt32(4, true);
    } // else a legacy (pre-0.15) prefix: the metadata length alone

    if (metaLen === 0) {
      if (eosAt >= 0) corrupt("a second end-of-stream marker");
      src.take(prefix);
      state.eos = true;
      yield { type: "end", offset: at };
      if (format === "file") {
        if (options.streamEnd !== undefined) {
          if (src.position !== options.streamEnd) {
            throw new IpcError(
              `the file holds ${
                options.streamEnd - src.position
              } bytes between its end-of-stream marker at byte ${at} and its footer`,
              "corrupt",
              src.position,
            );
          }
          return;
        }
        const footerAt = src.position;
        yield { type: "footer", footer: await readTrailer(src), offset: footerAt };
        return;
      }
      if (options.afterEnd === "stop") return;
      eosAt = at;
      continue;
    }
    if (metaLen < 0 || metaLen > MAX_METADATA_BYTES || metaLen > max) {
      if (max < Infinity && eosAt < 0) {
        refuse(
          `Cannot accept the message as its metadata length is negative or exceeds ${limitName} ${max}: current value is ${metaLen} bytes`,
        );
      }
      corrupt(`a message declares ${metaLen} metadata bytes`);
    }
    if (prefix + metaLen > left()) {
      state.partialBytes = src.received - at;
      throw new IpcError(`the input ends inside a message's metadata (${metaLen} bytes expected)`, "truncated", at);
    }
    src.take(prefix);
    const meta = new Uint8Array(metaLen);
    if (await src.readInto(meta) < metaLen) {
      cut(`the input ends inside a message's metadata (${metaLen} bytes expected)`);
    }
    let header: number, bodyLength: number, message: arrow.Message;
    try {
      ({ header, bodyLength } = verifyMessage(meta));
      message = arrow.Message.decode(meta);
    } catch (e) {
      const why = e instanceof FlatbufError ? e.message : `${(e as Error).message}`;
      if (max < Infinity && eosAt < 0) {
        refuse(`Cannot read the stream as a message header is corrupt: current value is '${why}'`);
      }
      corrupt(`a message's metadata is malformed (${why})`);
    }
    if (eosAt >= 0 && header! !== HEADER.Schema) corrupt(`a ${HEADERS[header!] ?? "message"} without a schema`);
    const total = prefix + metaLen + bodyLength!;
    if (header! === HEADER.RecordBatch && total > max) {
      refuse(`Cannot accept record batch as it exceeds ${limitName} ${max}: current value is ${total} bytes`);
    }
    if (total > max + (1 << 20)) {
      refuse(`Cannot accept the message as it exceeds ${limitName} ${max}: current value is ${total} bytes`);
    }
    if (bodyLength! > left()) {
      state.partialBytes = src.received - at;
      throw new IpcError(
        `the input ends inside a message body (${Math.max(0, left())} of ${bodyLength!} bytes)`,
        "truncated",
        at,
      );
    }
    await options.reserve?.(total);
    const body = await readBody(src, bodyLength!, end !== null, alloc);
    if (body.length < bodyLength!) {
      cut(`the input ends inside a message body (${body.length} of ${bodyLength!} bytes)`);
    }
    eosAt = -1;
    state.messages++;
    if (header! === HEADER.RecordBatch) state.batches++;
    yield { type: "message", header: header!, message: message!, body, offset: at, bytes: total };
  }
}

/** Reads a body: in one buffer when its size is known to be present or small, else growing as bytes arrive. */
async function readBody(
  src: ByteSource,
  n: number,
  present: boolean,
  alloc: (n: number) => Uint8Array,
): Promise<Uint8Array> {
  if (present || n <= GROW_FROM) {
    const body = alloc(n);
    const got = await src.readInto(body);
    return got < n ? body.subarray(0, got) : body;
  }
  let buf = new Uint8Array(GROW_FROM);
  let got = await src.readInto(buf);
  while (got === buf.length && got < n) {
    const next = new Uint8Array(Math.min(n, buf.length * 2));
    next.set(buf);
    got += await src.readInto(next.subarray(got));
    buf = next;
  }
  return got < n ? buf.subarray(0, got) : buf;
}

/**
 * Reads a file's trailer in order (after its end-of-stream marker): footer, its int32 length, `ARROW1`. Returns
 * the footer bytes; throws {@linkcode IpcError} when the file ends early or bytes follow.
 */
async function readTrailer(src: ByteSource): Promise<Uint8Array> {
  const at = src.position;
  const chunks: Uint8Array[] = [];
  let n = 0;
  while (true) {
    const chunk = new Uint8Array(1 << 16);
    const got = await src.readInto(chunk);
    chunks.push(chunk.subarray(0, got));
    n += got;
    if (got < chunk.length) break;
    if (n > MAX_FOOTER_BYTES + 10) {
      throw new IpcError(
        `the bytes after the file's end-of-stream marker at byte ${at} exceed ${MAX_FOOTER_BYTES} (not a footer)`,
        "corrupt",
        at,
      );
    }
  }
  const all = new Uint8Array(n);
  let k = 0;
  for (const c of chunks) all.set(c, (k += c.length) - c.length);
  const magicOk = n >= 10 && MAGIC.every((b, i) => all[n - 6 + i] === b);
  const len = n >= 10 ? new DataView(all.buffer).getInt32(n - 10, true) : -1;
  if (!magicOk || len !== n - 10) {
    throw new IpcError(
      `the file's footer after byte ${at} is incomplete or followed by other bytes (${n} bytes, footer length ${len})`,
      magicOk ? "corrupt" : "truncated",
      at,
    );
  }
  return all.subarray(0, len);
}

/**
 * Reads the trailer of a file of known size through `readAt` (random access): returns the footer bytes and the
 * offset where the footer starts (the end of the stream part), or null when the file has no valid trailer
 * (truncated: its stream part is read alone).
 */
export async function readFooterAt(
  size: number,
  readAt: (offset: number, out: Uint8Array) => Promise<number>,
): Promise<{ footer: Uint8Array; start: number } | null> {
  if (size < 8 + 10) return null;
  const tail = new Uint8Array(10);
  if (await readAt(size - 10, tail) < 10 || !MAGIC.every((b, i) => tail[4 + i] === b)) return null;
  const len = new DataView(tail.buffer).getInt32(0, true);
  if (len <= 0 || len > MAX_FOOTER_BYTES || len > size - 18) return null;
  const footer = new Uint8Array(len);
  if (await readAt(size - 10 - len, footer) < len) return null;
  return { footer, start: size - 10 - len };
}
