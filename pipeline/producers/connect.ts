/**
 * Producer side of `serve`: {@linkcode connectProducer} opens a TCP connection, presents the token, and
 * returns a {@linkcode ProducerConnection} that writes record batches as one Arrow IPC stream (through
 * `writeBatchesTo`; a batch with another schema than the first is refused with an error). `write` resolves once the socket took the bytes, so a producer faster than the server
 * is slowed down (backpressure) instead of buffering.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serve } from "../serve/serve.ts";
 * import { connectProducer } from "./connect.ts";
 * import { makeRecordBatch } from "./produce.ts";
 * const out = await Deno.makeTempDir();
 * const server = await serve({ listen: "127.0.0.1:0", out, options: { range: [0, 1] }, log: () => {} });
 * const producer = await connectProducer({ port: server.port });
 * await producer.write(makeRecordBatch({
 *   kind: "activations/v1",
 *   sampleId: new BigInt64Array([0n, 1n]),
 *   tensors: [{ name: "fc1", width: 2, values: new Float32Array([0.1, 0.2, 0.3, 0.9]) }],
 * }));
 * const reply = await producer.close();
 * assert.ok(reply.rows === 2);
 * await server.stop();
 * ```
 *
 * @module
 */
import type * as arrow from "apache-arrow";
import { schemaChange, writeBatchesTo } from "./produce.ts";
import { show } from "../../schemas/errors.ts";
import { HELLO } from "../../schemas/handshake.ts";

/** Where a producer connects. */
export interface ProducerOptions {
  /** Server address (default 127.0.0.1). */
  host?: string;
  /** Server port. */
  port: number;
  /** Token, when the server requires one. */
  token?: string;
}

/** The server's answer to a whole stream. */
export interface ProducerReply {
  /** Batches the server analysed from this connection. */
  batches: number;
  /** Rows the server analysed from this connection. */
  rows: number;
}

/** An open stream to a `serve` endpoint. */
export interface ProducerConnection {
  /** Sends one record batch (all batches of a connection share one schema); resolves when the socket took it. */
  write(batch: arrow.RecordBatch): Promise<void>;
  /** Ends the stream and waits for the server's answer; throws the server's error message if it refused. */
  close(): Promise<ProducerReply>;
  /** Drops the connection without ending the stream (a batch in transit is lost). */
  abort(): void;
}

/** Reads `\n`-terminated lines from a byte stream. */
class LineReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #buf = "";
  #dec = new TextDecoder();
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }
  async line(): Promise<string | null> {
    while (true) {
      const i = this.#buf.indexOf("\n");
      if (i >= 0) {
        const l = this.#buf.slice(0, i);
        this.#buf = this.#buf.slice(i + 1);
        return l;
      }
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await this.#reader.read();
      } catch {
        return this.#buf.length ? this.#take() : null;
      }
      if (r.done) return this.#buf.length ? this.#take() : null;
      this.#buf += this.#dec.decode(r.value, { stream: true });
      if (this.#buf.length > 64 * 1024) return this.#take();
    }
  }
  #take(): string {
    const l = this.#buf;
    this.#buf = "";
    return l;
  }
  cancel(): void {
    this.#reader.cancel().catch(() => {});
  }
}

function parseReply(line: string | null): ProducerReply {
  if (line === null) {
    throw new Error("Cannot confirm the stream as the server closed without an answer: current value is no reply");
  }
  if (line.startsWith("ERR ")) throw new Error(`infotap serve refused the stream: ${line.slice(4)}`);
  const m = /^OK (\d+) (\d+)$/.exec(line);
  if (!m) {
    throw new Error(
      `Cannot confirm the stream as the server's answer is unexpected: current value is '${line.slice(0, 80)}'`,
    );
  }
  return { batches: Number(m[1]), rows: Number(m[2]) };
}

/** Connects to a `serve` endpoint and completes the handshake (throws the server's message if refused). */
export async function connectProducer(options: ProducerOptions): Promise<ProducerConnection> {
  const conn = await Deno.connect({ hostname: options.host ?? "127.0.0.1", port: options.port, transport: "tcp" });
  const lines = new LineReader(conn.readable);
  // Not conn.writable: closing it closes the whole socket, and the server's answer comes after our end.
  const writer = new WritableStream<Uint8Array>({
    async write(chunk) {
      let off = 0;
      while (off < chunk.length) off += await conn.write(chunk.subarray(off));
    },
    async close() {
      await conn.closeWrite();
    },
  }).getWriter();
  try {
    await writer.write(new TextEncoder().encode(`${HELLO} ${options.token ?? ""}\n`));
    const hello = await lines.line();
    if (hello !== "OK") {
      throw new Error(
        hello?.startsWith("ERR ")
          ? `infotap serve refused the producer: ${hello.slice(4)}`
          : "Cannot connect producer as the server did not answer the handshake: current value is no reply",
      );
    }
  } catch (e) {
    lines.cancel();
    try {
      conn.close();
    } catch { /* closed */ }
    throw e;
  }
  // One-slot hand-off from write() to the stream writer.
  let pending: { rb: arrow.RecordBatch; done: () => void } | null = null;
  let waiting: ((v: IteratorResult<arrow.RecordBatch>) => void) | null = null;
  let ended = false;
  let failure: unknown = null;
  const batches: AsyncIterable<arrow.RecordBatch> = {
    [Symbol.asyncIterator]: () => ({
      next: () =>
        new Promise<IteratorResult<arrow.RecordBatch>>((resolve) => {
          if (pending) {
            const p = pending;
            pending = null;
            p.done();
            resolve({ value: p.rb, done: false });
          } else if (ended) resolve({ value: undefined, done: true });
          else waiting = resolve;
        }),
    }),
  };
  const writing = writeBatchesTo(writer, batches).catch((e) => {
    failure = e;
    if (pending) {
      pending.done();
      pending = null;
    }
  });
  let lastWrite: Promise<void> = Promise.resolve();
  let first: arrow.Schema | null = null;
  const reply = async (): Promise<ProducerReply> => parseReply(await lines.line());
  return {
    async write(rb) {
      if (ended) throw new Error("Cannot write a batch as the producer is closed: current value is closed");
      const change = first ? schemaChange(first, rb.schema) : null;
      if (change) {
        throw new Error(
          `Cannot write the batch as its schema differs from the connection's first batch (${change}; one connection carries one stream, open another for it): current value is ${
            show(rb.schema.fields.map((f) => f.name))
          }`,
        );
      }
      first ??= rb.schema;
      await lastWrite;
      if (failure) throw new Error(await refusal(failure));
      lastWrite = new Promise<void>((done) => {
        if (waiting) {
          const w = waiting;
          waiting = null;
          // Hand over now; the writer pulls the next only after writing this one.
          w({ value: rb, done: false });
          done();
        } else pending = { rb, done };
      });
      await lastWrite;
    },
    async close() {
      await lastWrite;
      ended = true;
      if (waiting) {
        const w = waiting;
        waiting = null;
        w({ value: undefined, done: true });
      }
      await writing;
      try {
        if (failure) throw new Error(await refusal(failure));
        return await reply();
      } finally {
        lines.cancel();
        try {
          conn.close();
        } catch { /* closed */ }
      }
    },
    abort() {
      ended = true;
      lines.cancel();
      try {
        conn.close();
      } catch { /* closed */ }
    },
  };

  /** The server's ERR line when it explains a failed write, else the write error. */
  async function refusal(e: unknown): Promise<string> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((res) => (timer = setTimeout(() => res(null), 2000)));
    const line = await Promise.race([lines.line(), timeout]);
    clearTimeout(timer);
    if (line?.startsWith("ERR ")) return `infotap serve refused the stream: ${line.slice(4)}`;
    return `Cannot send to infotap serve as the connection failed: current value is ${(e as Error)?.message ?? e}`;
  }
}
