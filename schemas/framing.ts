/**
 * Internals of `serve`: a pull-based byte reader over a socket, the producer handshake line, and a framer that
 * cuts an Arrow IPC stream into whole messages so that a batch's size is known (and refused) before its body
 * is read, and a disconnect mid-batch is told apart from a clean end.
 *
 * Arrow IPC stream framing (format 1.0+): `0xFFFFFFFF`, int32 metadata length `m` (0 = end of stream),
 * `m` bytes of flatbuffer `Message` (whose `bodyLength` gives the body's size), then the body. Legacy streams
 * (before 0.15) omit the `0xFFFFFFFF`.
 *
 * @module
 */
import * as arrow from "apache-arrow";
import { InputError, show } from "./errors.ts";
import type { IpcMessage } from "./source.ts";

/** Buffers chunks pulled from a source; pulls only when asked (so backpressure reaches the sender). */
export class ByteReader {
  #it: AsyncIterator<Uint8Array>;
  #chunks: Uint8Array[] = [];
  #available = 0;
  #done = false;
  /** Total bytes received so far. */
  received = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#it = source[Symbol.asyncIterator]();
  }

  /** Bytes buffered and not yet taken. */
  get available(): number {
    return this.#available;
  }

  /** Pulls until `n` bytes are buffered; false when the source ended first. */
  async fill(n: number): Promise<boolean> {
    while (this.#available < n) {
      if (this.#done) return false;
      const r = await this.#it.next();
      if (r.done) {
        this.#done = true;
        return false;
      }
      if (r.value.length === 0) continue;
      this.#chunks.push(r.value);
      this.#available += r.value.length;
      this.received += r.value.length;
    }
    return true;
  }

  /** The first `n` buffered bytes (n <= available), without taking them. */
  peek(n: number): Uint8Array {
    if (this.#chunks[0]?.length >= n) return this.#chunks[0].subarray(0, n);
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of this.#chunks) {
      if (at >= n) break;
      const part = c.subarray(0, n - at);
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  /** Takes `n` buffered bytes (n <= available). */
  take(n: number): Uint8Array {
    const out = this.peek(n);
    let left = n;
    while (left > 0) {
      const c = this.#chunks[0];
      if (c.length <= left) {
        this.#chunks.shift();
        left -= c.length;
      } else {
        this.#chunks[0] = c.subarray(left);
        left = 0;
      }
    }
    this.#available -= n;
    return out.length === n && out.buffer.byteLength === n ? out : out.slice();
  }

  /** Stops reading (a pending pull resolves as the end). */
  async cancel(): Promise<void> {
    this.#done = true;
    await this.#it.return?.();
  }
}

/** The first line a producer may send: `INFOTAP1 <token>\n` (the token may be empty). */
export const HELLO = "INFOTAP1";
const MAX_HELLO = 512;

/**
 * Reads the optional handshake line. Returns the token presented (`""` for `INFOTAP1\n`), or null when the
 * stream starts with Arrow bytes instead. Throws a one-line Error on a malformed line.
 */
export async function readHello(r: ByteReader): Promise<string | null> {
  if (!(await r.fill(1))) return null;
  if (r.peek(1)[0] !== HELLO.charCodeAt(0)) return null;
  let n = 0;
  while (true) {
    if (!(await r.fill(n + 1))) break;
    n++;
    const bytes = r.peek(n);
    if (bytes[n - 1] === 0x0a) {
      const line = new TextDecoder().decode(r.take(n)).replace(/\r?\n$/, "");
      const m = /^INFOTAP1(?: ([\x21-\x7e]*))?$/.exec(line);
      if (!m) {
        throw new Error(
          `Cannot accept producer as its handshake line is not 'INFOTAP1 <token>': current value is ${
            show(line.slice(0, 40))
          }`,
        );
      }
      return m[1] ?? "";
    }
    if (n >= MAX_HELLO) break;
  }
  throw new Error(
    `Cannot accept producer as its handshake line is unterminated or longer than ${MAX_HELLO} bytes: current value is ${n} bytes`,
  );
}

/** Compares two strings in time independent of where they differ. */
export function sameToken(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a), y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** What the framer saw, read by the caller after the stream ends or fails. */
export interface FrameState {
  /** Whole messages passed on (schema, dictionaries, batches). */
  messages: number;
  /** Record-batch messages passed on. */
  batches: number;
  /** The end-of-stream marker arrived. */
  eos: boolean;
  /** Bytes of a message cut off by the end of the connection (0 when it ended between messages). */
  partialBytes: number;
  /** A refusal (oversized batch, not a stream), as a one-line message. */
  refused: string | null;
}

/**
 * Yields whole Arrow IPC messages from `r` (without the end-of-stream marker), refusing any message whose metadata plus body exceeds `maxBytes`
 * before reading its body. On a refusal or a cut-off message it records why in `state` and throws.
 */
export async function* frameMessages(
  r: ByteReader,
  maxBytes: number,
  state: FrameState,
  label: string,
): AsyncGenerator<IpcMessage> {
  const refuse = (message: string): never => {
    state.refused = message;
    throw new InputError(message, { file: label, batch: state.batches });
  };
  const cut = (): never => {
    state.partialBytes = r.available;
    throw new InputError(
      `Cannot read the record batch as the producer disconnected mid-message (earlier batches are kept): current value is ${r.available} bytes received`,
      { file: label, batch: state.batches },
    );
  };
  while (true) {
    if (!(await r.fill(4))) {
      if (r.available > 0) cut();
      return;
    }
    const head = r.peek(4);
    if (state.messages === 0 && head[0] === 0x41 && head[1] === 0x52) {
      refuse(
        "Cannot read the stream as a socket takes the Arrow IPC stream format, not the file format (ARROW1): current value is an Arrow file",
      );
    }
    const dv = new DataView(head.buffer, head.byteOffset, 4);
    let prefix = 4;
    let metaLen = dv.getInt32(0, true);
    if (dv.getUint32(0, true) === 0xffffffff) {
      if (!(await r.fill(8))) cut();
      const h8 = r.peek(8);
      metaLen = new DataView(h8.buffer, h8.byteOffset, 8).getInt32(4, true);
      prefix = 8;
    }
    if (metaLen === 0) {
      state.eos = true;
      r.take(prefix);
      return;
    }
    if (metaLen < 0 || metaLen > maxBytes) {
      refuse(
        `Cannot accept the message as its metadata length is negative or exceeds --max-batch-bytes ${maxBytes}: current value is ${metaLen} bytes`,
      );
    }
    if (!(await r.fill(prefix + metaLen))) cut();
    let message: arrow.Message;
    try {
      message = arrow.Message.decode(r.peek(prefix + metaLen).subarray(prefix));
    } catch (e) {
      refuse(
        `Cannot read the stream as a message header is corrupt: current value is ${show((e as Error).message)}`,
      );
    }
    const total = prefix + metaLen + Number(message!.bodyLength);
    if (message!.headerType === arrow.MessageHeader.RecordBatch && total > maxBytes) {
      refuse(
        `Cannot accept record batch as it exceeds --max-batch-bytes ${maxBytes}: current value is ${total} bytes`,
      );
    }
    if (total > maxBytes + (1 << 20)) {
      refuse(
        `Cannot accept the message as it exceeds --max-batch-bytes ${maxBytes}: current value is ${total} bytes`,
      );
    }
    if (!(await r.fill(total))) cut();
    const bytes = r.take(total);
    state.messages++;
    if (message!.headerType === arrow.MessageHeader.RecordBatch) state.batches++;
    yield { bytes, header: message!.headerType };
  }
}

/** Parses `HOST:PORT` (`[v6]:PORT` for IPv6). */
export function parseListen(s: string, flag = "--listen"): { hostname: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new InputError(`Cannot use ${flag} as it must be HOST:PORT (port 0-65535): current value is ${show(s)}`);
  }
  return { hostname: m[1] ?? m[2], port };
}

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}
