/**
 * Recycled message-body buffers. Reading a batch into fresh memory costs a page fault per 4 KiB (fresh 12 MiB
 * buffers read at ~3-4.5 GB/s here, a reused one at ~13 GB/s); when worker threads hand a batch's buffers back
 * after their estimators are done with it, the reader takes them again.
 *
 * Safe because a batch sent to a worker thread is transferred (the main thread no longer sees it) and the worker
 * returns the buffers only after every estimator's `update` has returned: estimators must not keep views of a
 * batch beyond `update` (see `Batch.owned`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BufferPool } from "./buffer_pool.ts";
 * const pool = new BufferPool();
 * const a = pool.take(1 << 20);
 * pool.give(a.buffer as ArrayBuffer);
 * assert.ok(pool.take(800_000).buffer === a.buffer); // reused: large enough, not much larger
 * assert.ok(pool.take(1 << 20).buffer !== a.buffer); // taken already: a fresh buffer
 * ```
 *
 * @module
 */

/** A small free list of ArrayBuffers, best fit first. */
export class BufferPool {
  #free: ArrayBuffer[] = [];

  constructor(readonly max = 8, readonly minBytes = 1 << 16) {}

  /** A `Uint8Array` of `n` bytes over a recycled buffer when one is large enough, else a fresh one. */
  take(n: number): Uint8Array {
    let best = -1;
    for (let i = 0; i < this.#free.length; i++) {
      const b = this.#free[i];
      if (b.byteLength >= n && (best < 0 || b.byteLength < this.#free[best].byteLength)) best = i;
    }
    if (best < 0 || this.#free[best].byteLength > 2 * n + this.minBytes) return new Uint8Array(n);
    const [buf] = this.#free.splice(best, 1);
    return new Uint8Array(buf, 0, n);
  }

  /** Returns a buffer for reuse (small or detached buffers are dropped; the list keeps the newest `max`). */
  give(buf: ArrayBuffer): void {
    if (buf.byteLength < this.minBytes || buf.detached) return;
    this.#free.push(buf);
    if (this.#free.length > this.max) this.#free.shift();
  }
}
