/**
 * Data-parallel estimation on worker threads: each worker runs its own copy of the estimators (or first-pass
 * scanners) on a round-robin share of the batches; at the end their states are restored and merged on the
 * main thread. Correct only for plugins whose results do not depend on batch order (`orderFree`) — the
 * contract tests check that merge(A, B) equals one pass over A then B. Batches whose buffers are owned
 * (`Batch.owned`) are transferred, not copied. At most two batches are in flight per worker (bounded memory).
 *
 * @module
 */
import type { Batch } from "../../schemas/batch.ts";
import { InputError, type InputLocation } from "../../schemas/errors.ts";
import type { SetPlan } from "../core/estimator_set.ts";

/** What a worker is told at start. */
export interface InitMessage {
  type: "init";
  mode: "scan" | "estimate";
  /** Module URLs of user plugins to load (built-ins are always there). */
  modules: string[];
  /** The estimator set each worker makes (on the CPU). */
  plan: SetPlan;
}

const IN_FLIGHT = 2;

interface Slot {
  worker: Worker;
  inflight: number;
  waiters: (() => void)[];
  done?: (states: Uint8Array[]) => void;
  ready?: () => void;
}

/** The buffers of a batch that owns them (`Batch.owned`), for a zero-copy transfer; [] otherwise. */
export function transferables(batch: Batch): ArrayBuffer[] {
  if (!batch.owned) return [];
  const set = new Set<ArrayBuffer>();
  const add = (a: ArrayBufferView | null) => {
    if (a && a.buffer instanceof ArrayBuffer) set.add(a.buffer);
  };
  const reserved = [batch.sampleId, batch.step, batch.label, batch.draw, batch.weight ?? null, batch.rowType ?? null];
  [...reserved, batch.flag ?? null, batch.split, batch.output, batch.f0, batch.target].forEach(add);
  for (const c of batch.columns) add(c.values);
  return [...set];
}

/** A pool of worker threads running one set of scanners or estimators each. */
export class WorkerPool {
  #slots: Slot[] = [];
  #next = 0;
  #error: Error | null = null;
  /** Receives the buffers workers hand back after a batch (for reuse by the reader). */
  onBuffer?: (buf: ArrayBuffer) => void;

  private constructor() {}

  /** Starts `n` workers and initialises their scanners or estimators. */
  static async start(n: number, init: Omit<InitMessage, "type">): Promise<WorkerPool> {
    const pool = new WorkerPool();
    const url = new URL("./_worker.ts", import.meta.url).href;
    const ready: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const slot: Slot = { worker: new Worker(url, { type: "module" }), inflight: 0, waiters: [] };
      ready.push(new Promise((resolve) => (slot.ready = resolve)));
      slot.worker.onmessage = (ev: MessageEvent) => pool.#onMessage(slot, ev.data);
      slot.worker.onerror = (ev: ErrorEvent) => {
        ev.preventDefault();
        pool.#fail(new Error(`Cannot run the worker thread as it crashed: current value is ${ev.message}`), true);
      };
      slot.worker.postMessage({ type: "init", ...init });
      pool.#slots.push(slot);
    }
    await Promise.all(ready);
    pool.#check();
    return pool;
  }

  #fail(e: Error, crashed = false): void {
    this.#error ??= e;
    for (const s of this.#slots) {
      s.ready?.();
      s.waiters.splice(0).forEach((w) => w());
      if (crashed) s.done?.([]);
    }
  }

  #onMessage(
    slot: Slot,
    m: {
      type: string;
      states?: Uint8Array[];
      buffers?: ArrayBuffer[];
      message?: string;
      where?: InputLocation | null;
      name?: string;
    },
  ): void {
    if (m.type === "ready") slot.ready?.();
    else if (m.type === "ack") {
      for (const b of m.buffers ?? []) this.onBuffer?.(b);
      slot.inflight--;
      slot.waiters.shift()?.();
    } else if (m.type === "done") slot.done?.(m.states!);
    else if (m.type === "error") {
      const e = m.where
        ? new InputError(m.message!, m.where)
        : Object.assign(new Error(m.message), { name: m.name ?? "Error" });
      this.#fail(e);
    }
  }

  #check(): void {
    if (this.#error) throw this.#error;
  }

  /** The first error a worker reported (its estimators keep the batches before it). */
  get error(): Error | null {
    return this.#error;
  }

  /** Sends a batch to the next worker (round-robin), waiting while it has two batches in flight. */
  async send(batch: Batch): Promise<void> {
    this.#check();
    const slot = this.#slots[this.#next];
    this.#next = (this.#next + 1) % this.#slots.length;
    while (slot.inflight >= IN_FLIGHT && !this.#error) await new Promise<void>((r) => slot.waiters.push(r));
    this.#check();
    slot.inflight++;
    slot.worker.postMessage({ type: "batch", batch }, transferables(batch));
  }

  /**
   * Waits for every batch, then returns each worker's encoded states (one per plugin, in order; in scan mode
   * null for a plugin without a first pass). A worker
   * that reported an error still returns its states (the batches it took before the error); one that crashed
   * cannot, and then this throws.
   */
  async finish(): Promise<Uint8Array[][]> {
    const out = await Promise.all(this.#slots.map((slot) => {
      const p = new Promise<Uint8Array[]>((r) => (slot.done = r));
      slot.worker.postMessage({ type: "finish" });
      return p;
    }));
    if (out.some((s) => s.length === 0 && this.#error)) throw this.#error;
    return out;
  }

  /** Stops every worker. */
  close(): void {
    for (const s of this.#slots) s.worker.terminate();
  }
}
