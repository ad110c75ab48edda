/**
 * The reader core: Arrow IPC messages (from {@linkcode readFrames}, the one framer) to apache-arrow record
 * batches. Each batch's nodes and buffers are checked against its schema and body before apache-arrow's
 * `VectorLoader` makes views of them; columns view the message body (zero-copy). Reads streams, concatenated
 * streams (each new schema is yielded for the caller to compare), and the file format: as its stream part, with
 * the footer's schema when the stream part has none (apache-arrow's writer puts it only in the footer). Compressed
 * bodies are refused. Wire format: `schemas/README.md`.
 *
 * @module
 */
import * as arrow from "apache-arrow";
import { VectorLoader } from "apache-arrow/visitor/vectorloader";
import type { RecordBatch as RecordBatchHeader } from "apache-arrow/ipc/metadata/message";
import { Footer } from "apache-arrow/ipc/metadata/file";
import type { ByteSource } from "./bytes.ts";
import { type Frame, type FrameOptions, IpcError, readFrames, sniff } from "./framer.ts";
import { FlatbufError, HEADER, verifyFooter } from "./_flatbuf.ts";
import { checkBatch } from "./_buffers.ts";

/** What the reader yields: a schema (first, and again for each concatenated stream), then record batches. */
export type IpcItem =
  | {
    type: "schema";
    schema: arrow.Schema;
    format: "stream" | "file";
    /** Byte offset of the schema message (of the footer, when the schema comes from there). */
    offset: number;
    /** 0 for the first stream; k for the k-th stream concatenated after an end-of-stream marker. */
    stream: number;
  }
  | { type: "batch"; batch: arrow.RecordBatch; index: number; bodyBytes: number; offset: number };

/** Options of {@linkcode readIpc}: those of the framer, and the file format's footer when read up front. */
export interface IpcOptions extends FrameOptions {
  /** `"stream"` refuses the file format (a socket takes streams). Default: both. */
  formats?: "any" | "stream";
  /** A file's footer and where it starts, read up front by random access ({@linkcode readFooterAt}). */
  footer?: { footer: Uint8Array; start: number } | null;
}

/** Decodes a footer's schema after verifying its flatbuffer; throws {@linkcode IpcError} when it is corrupt. */
function footerSchema(bytes: Uint8Array, offset: number): arrow.Schema {
  try {
    verifyFooter(bytes);
    return Footer.decode(bytes).schema;
  } catch (e) {
    const why = e instanceof FlatbufError ? e.message : (e as Error).message;
    throw new IpcError(`the file's footer is malformed (${why}) at byte ${offset}`, "corrupt", offset);
  }
}

/**
 * Reads an Arrow IPC stream or file from `src`. Yields `{type: "schema"}` first (and after each end-of-stream
 * marker that another stream follows), then `{type: "batch"}` per record batch. Throws {@linkcode IpcError}
 * after yielding every complete batch before the problem.
 */
export async function* readIpc(src: ByteSource, options: IpcOptions = {}): AsyncGenerator<IpcItem> {
  const format = await sniff(src);
  if (format === "file" && options.formats === "stream") {
    const message =
      "Cannot read the stream as a socket takes the Arrow IPC stream format, not the file format (ARROW1): current value is an Arrow file";
    if (options.state) options.state.refused = message;
    throw new IpcError(message, "refused", 0);
  }
  const footer = options.footer ?? null;
  const frames = readFrames(src, format, { ...options, streamEnd: footer?.start });
  let schema: arrow.Schema | null = null;
  let dictionaries = new Map<number, arrow.Vector>();
  let index = 0, stream = 0, newStream = false;
  let held: Frame[] | null = null; // a file read in order whose stream part has no schema: held for the footer

  const corrupt = (what: string, at: number): never => {
    throw new IpcError(`${what} at byte ${at}`, "corrupt", at);
  };
  function* take(frame: Frame & { type: "message" }): Generator<IpcItem> {
    const { message, body, offset } = frame;
    const s = schema!;
    if (frame.header === HEADER.DictionaryBatch) {
      const h = message.header() as unknown as { id: number; isDelta: boolean; data: RecordBatchHeader };
      if (h.data.compression != null) {
        corrupt("a dictionary batch is compressed (IPC compression is not supported)", offset);
      }
      const type = s.dictionaries.get(h.id);
      if (!type) corrupt(`a dictionary batch has unknown id ${h.id}`, offset);
      const data = load([new arrow.Field("dictionary", type!)], h.data, body, offset, "dictionary batch");
      const prev = dictionaries.get(h.id);
      const v = new arrow.Vector(data);
      dictionaries.set(h.id, (prev && h.isDelta ? prev.concat(v) : v).memoize());
    } else if (frame.header === HEADER.RecordBatch) {
      const h = message.header() as unknown as RecordBatchHeader;
      if (h.compression != null) {
        corrupt("record batch bodies are compressed (IPC compression is not supported; write uncompressed)", offset);
      }
      const children = load(s.fields, h, body, offset, "record batch");
      const data = arrow.makeData({ type: new arrow.Struct(s.fields), length: h.length, children, nullCount: 0 });
      yield { type: "batch", batch: new arrow.RecordBatch(s, data), index: index++, bodyBytes: body.length, offset };
    }
  }
  function load(
    fields: arrow.Field[],
    h: RecordBatchHeader,
    body: Uint8Array,
    offset: number,
    what: string,
  ): arrow.Data[] {
    try {
      checkBatch(fields, h, body, dictionaries);
      return new VectorLoader(body, h.nodes, h.buffers, dictionaries, schema!.metadataVersion, h.variadicBufferCounts)
        .visitMany(fields.map((f) => f.type));
    } catch (e) {
      return corrupt(`a ${what} is malformed (${(e as Error).message})`, offset);
    }
  }

  try {
    for await (const frame of frames) {
      if (frame.type === "end") {
        if (!schema && format === "stream") corrupt("the stream ends before its schema", frame.offset);
        if (!schema && footer) {
          schema = footerSchema(footer.footer, footer.start);
          yield { type: "schema", schema, format, offset: footer.start, stream };
        } else if (!schema) held ??= [];
        newStream = true;
        continue;
      }
      if (frame.type === "footer") {
        if (held) {
          schema = footerSchema(frame.footer, frame.offset);
          yield { type: "schema", schema, format, offset: frame.offset, stream };
          for (const f of held) yield* take(f as Frame & { type: "message" });
          held = null;
        }
        continue;
      }
      if (frame.header === HEADER.Schema) {
        if (schema && !newStream) corrupt("a second schema message appears mid-stream", frame.offset);
        if (held) corrupt("a schema message follows record batches", frame.offset);
        if (schema) {
          stream++;
          dictionaries = new Map();
        }
        newStream = false;
        schema = frame.message.header() as arrow.Schema;
        yield { type: "schema", schema, format, offset: frame.offset, stream };
        continue;
      }
      if (!schema) {
        if (format === "stream") {
          corrupt(
            `a ${frame.header === HEADER.RecordBatch ? "record" : "dictionary"} batch comes before the schema`,
            frame.offset,
          );
        }
        if (footer) {
          schema = footerSchema(footer.footer, footer.start);
          yield { type: "schema", schema, format, offset: footer.start, stream };
        } else {
          (held ??= []).push(frame);
          continue;
        }
      }
      yield* take(frame);
    }
  } catch (e) {
    if (held && e instanceof IpcError) {
      throw new IpcError(
        `the file's footer is missing (${e.message}) and its stream part holds no schema message (apache-arrow's writer keeps the schema only in the footer), so none of its ${held.length} messages can be read`,
        e.kind,
        e.offset,
      );
    }
    throw e;
  }
}
