/**
 * The bytes all of serve's producers may hold in messages at once (`--max-buffered-bytes`): a TCP producer
 * reserves a message's size before its body is read and waits, first come first served, while the budget is
 * spent (TCP flow control then holds the sender back); it gives the bytes back once the batch is analysed. A
 * WebSocket producer, which cannot be held back, takes what its queued messages hold or is cut off.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ByteBudget } from "./budget.ts";
 * const budget = new ByteBudget(100);
 * await budget.acquire(60);
 * let second = false;
 * const waiting = budget.acquire(60).then(() => (second = true));
 * await Promise.resolve();
 * assert.ok(!second && !budget.take(50));
 * budget.release(60);
 * await waiting;
 * assert.ok(second && budget.used === 60);
 * ```
 *
 * @module
 */

/** A byte budget shared by producers (see the module). */
export class ByteBudget {
  /** Bytes held now. */
  used = 0;
  /** The most bytes held at once. */
  peak = 0;
  /** Reservations that had to wait. */
  waits = 0;
  #queue: { n: number; grant: () => void }[] = [];

  constructor(readonly limit: number) {}

  /** Waits until `n` bytes fit (after earlier waiters), then holds them. `n` must not exceed the limit. */
  async acquire(n: number): Promise<void> {
    if (this.#queue.length === 0 && this.used + n <= this.limit) return this.#hold(n);
    this.waits++;
    await new Promise<void>((grant) => this.#queue.push({ n, grant }));
  }

  /** Holds `n` bytes when they fit now and nobody waits; false otherwise (nothing held). */
  take(n: number): boolean {
    if (this.#queue.length > 0 || this.used + n > this.limit) return false;
    this.#hold(n);
    return true;
  }

  /** Gives `n` bytes back and grants the waiters that now fit, in order. */
  release(n: number): void {
    this.used -= n;
    while (this.#queue.length > 0 && this.used + this.#queue[0].n <= this.limit) {
      const w = this.#queue.shift()!;
      this.#hold(w.n);
      w.grant();
    }
  }

  #hold(n: number): void {
    this.used += n;
    if (this.used > this.peak) this.peak = this.used;
  }
}
