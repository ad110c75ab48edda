/**
 * {@linkcode ByteCollector}: the byte sink the Arrow IPC writers write into, handing out what they wrote so far
 * (their own queue never drains); used to stream batches to files and sockets one at a time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as arrow from "apache-arrow";
 * import { ByteCollector } from "./byte_collector.ts";
 * const c = new ByteCollector();
 * const w = new arrow.RecordBatchStreamWriter();
 * w.reset(c, arrow.tableFromArrays({ x: new Float64Array([1]) }).schema);
 * w.finish();
 * assert.ok(c.take().length > 0 && c.take().length === 0);
 * ```
 *
 * @module
 */
import * as arrow from "apache-arrow";

/** An Arrow byte sink that hands out what an IPC writer wrote so far. */
export class ByteCollector extends arrow.AsyncByteQueue {
  chunks: Uint8Array[] = [];
  override write(value: ArrayBufferView | Uint8Array): void {
    const u8 = value instanceof Uint8Array ? value : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    if (u8.byteLength > 0) this.chunks.push(u8);
  }
  /** The bytes written since the last call, as one array. */
  take(): Uint8Array {
    const n = this.chunks.reduce((a, c) => a + c.byteLength, 0);
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.byteLength;
    }
    this.chunks = [];
    return out;
  }
}
