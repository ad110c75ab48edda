/**
 * The one byte source under every input (files, stdin, TCP and WebSocket producers): a buffered, pull-based
 * reader that hands out exact byte counts and reads large spans (message bodies) straight from the kernel into
 * their destination, so each byte is copied once. See `schemas/README.md` for the wire format read on top.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ByteSource } from "./bytes.ts";
 * const src = ByteSource.fromChunks([new Uint8Array([1, 2]), new Uint8Array([3, 4, 5])]);
 * assert.deepEqual([...await src.peek(3)], [1, 2, 3]);
 * const out = new Uint8Array(4);
 * assert.equal(await src.readInto(out), 4);
 * assert.deepEqual([...out], [1, 2, 3, 4]);
 * assert.equal(src.position, 4);
 * ```
 *
 * @module
 */

/** Anything with Deno's `read` contract: files, stdin, `Deno.Conn`. */
export interface Reader {
  read(p: Uint8Array): Promise<number | null>;
}

/** Options of {@linkcode ByteSource}. */
export interface ByteSourceOptions {
  /** Total size of the input when known (a regular file): reads past it are known to fail before they start. */
  size?: number | null;
  /** Called with the size of each read from the underlying reader (progress). */
  onBytes?: (n: number) => void;
  /** Called by {@linkcode ByteSource.cancel} (e.g. to close the reader). */
  cancel?: () => Promise<void> | void;
}

const STAGING = 1 << 16;

/** A buffered byte source; see the module documentation. */
export class ByteSource {
  #buf = new Uint8Array(STAGING);
  #start = 0;
  #end = 0;
  #eof = false;
  #reader: Reader;
  #onBytes?: (n: number) => void;
  #cancel?: () => Promise<void> | void;
  /** Bytes consumed so far (the offset of the next byte handed out). */
  position = 0;
  /** Bytes pulled from the underlying reader so far (consumed or buffered). */
  received = 0;
  /** Total size of the input when known (regular files), else null. */
  readonly size: number | null;

  constructor(reader: Reader, options: ByteSourceOptions = {}) {
    this.#reader = reader;
    this.size = options.size ?? null;
    this.#onBytes = options.onBytes;
    this.#cancel = options.cancel;
  }

  /** A source over an async iterable of chunks (a `ReadableStream`, WebSocket messages); pulls only when asked. */
  static fromChunks(
    chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options: ByteSourceOptions = {},
  ): ByteSource {
    const it = Symbol.asyncIterator in chunks
      ? (chunks as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]()
      : (chunks as Iterable<Uint8Array>)[Symbol.iterator]();
    let pending: Uint8Array | null = null;
    const reader: Reader = {
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
    return new ByteSource(reader, {
      ...options,
      cancel: async () => {
        await options.cancel?.();
        await it.return?.();
      },
    });
  }

  /** Bytes buffered and not yet consumed. */
  get available(): number {
    return this.#end - this.#start;
  }

  /** Bytes left in the input when its size is known, else null. */
  get remaining(): number | null {
    return this.size === null ? null : Math.max(0, this.size - this.position);
  }

  /** True once the underlying reader reported its end and every buffered byte is consumed. */
  get ended(): boolean {
    return this.#eof && this.available === 0;
  }

  #got(n: number): void {
    this.received += n;
    this.#onBytes?.(n);
  }

  /** One read from the underlying reader into the staging buffer; false at its end. */
  async #pull(): Promise<boolean> {
    if (this.#eof) return false;
    if (this.#end === this.#buf.length) {
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        const bigger = new Uint8Array(this.#buf.length * 2);
        bigger.set(this.#buf);
        this.#buf = bigger;
      }
    }
    const n = await this.#reader.read(this.#buf.subarray(this.#end));
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#end += n;
    this.#got(n);
    return true;
  }

  /** Pulls until `n` bytes are buffered; false when the input ended first. Waits for no byte beyond `n`. */
  async fill(n: number): Promise<boolean> {
    if (this.#start > 0 && this.#buf.length - this.#start < n) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    while (this.available < n) if (!(await this.#pull())) return false;
    return true;
  }

  /** Up to `n` buffered bytes (fewer only at the end of the input), without consuming them. */
  async peek(n: number): Promise<Uint8Array> {
    await this.fill(n);
    return this.#buf.subarray(this.#start, this.#start + Math.min(n, this.available));
  }

  /** The bytes buffered now, without pulling or consuming. */
  buffered(): Uint8Array {
    return this.#buf.subarray(this.#start, this.#end);
  }

  /** Pulls once more into the buffer (for scanning, e.g. a handshake line); false at the end of the input. */
  pull(): Promise<boolean> {
    return this.#pull();
  }

  /** Consumes `n` buffered bytes (n <= available) and returns a copy of them. */
  take(n: number): Uint8Array {
    if (n > this.available) throw new RangeError(`take(${n}) with ${this.available} bytes buffered`);
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.#start += n;
    this.position += n;
    return out;
  }

  /** Fills `out` completely; returns the bytes obtained (less than `out.length` only at the end of the input). */
  async readInto(out: Uint8Array): Promise<number> {
    let off = Math.min(out.length, this.available);
    out.set(this.#buf.subarray(this.#start, this.#start + off));
    this.#start += off;
    // Large remainders go straight from the kernel into `out`.
    while (off < out.length && !this.#eof) {
      if (out.length - off >= this.#buf.length) {
        const n = await this.#reader.read(out.subarray(off));
        if (n === null) this.#eof = true;
        else {
          off += n;
          this.#got(n);
        }
      } else {
        if (this.#start === this.#end) this.#start = this.#end = 0;
        if (!(await this.#pull())) break;
        const k = Math.min(out.length - off, this.available);
        out.set(this.#buf.subarray(this.#start, this.#start + k), off);
        this.#start += k;
        off += k;
      }
    }
    this.position += off;
    return off;
  }

  /** Stops reading: a pending read resolves as the end (closes the reader where the adapter says so). */
  async cancel(): Promise<void> {
    this.#eof = true;
    await this.#cancel?.();
  }
}
