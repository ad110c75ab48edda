/**
 * The thread policy of infotap and the one thread runner of its kernels (KSG pairs, linear algebra): every
 * parallel path uses at most `threads` threads, the caller included: `--threads N`, else `INFOTAP_THREADS`, else
 * the cores, at most {@linkcode DEFAULT_THREAD_CAP} ({@linkcode resolveThreads}); estimators get it as
 * `context.threads`. {@linkcode runChunks} shares a job's chunks between the caller and worker threads that join
 * when they can, results never depending on how many did. Details: docs/internals.md, "Threads".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveThreads } from "./threads.ts";
 * assert.equal(resolveThreads(3), 3);
 * assert.ok(resolveThreads(0) >= 1); // the default
 * ```
 *
 * @module
 */
import { parentPort, Worker } from "node:worker_threads";

/** The most threads `--threads` accepts. */
export const MAX_THREADS = 64;
/** The most threads of the default (the machine's cores, or `INFOTAP_THREADS=0`). */
export const DEFAULT_THREAD_CAP = 8;

let defaultHeld: number | undefined;

/** The default thread count: `INFOTAP_THREADS` (0 = cores) when set and readable, else the cores; see the policy. */
export function defaultThreads(): number {
  return defaultHeld ??= readDefault();
}

function readDefault(): number {
  let v: string | undefined;
  try {
    const d = globalThis.Deno;
    if (d?.permissions.querySync({ name: "env", variable: "INFOTAP_THREADS" }).state === "granted") {
      v = d.env.get("INFOTAP_THREADS"); // never prompts
    }
  } catch { /* not Deno */ }
  const cores = Math.max(1, Math.min(DEFAULT_THREAD_CAP, globalThis.navigator?.hardwareConcurrency ?? 1));
  if (v === undefined || v.trim() === "") return cores;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) return 1;
  return n === 0 ? cores : Math.min(n, MAX_THREADS);
}

/** The threads of a run: `requested` when it is a positive number (at most {@linkcode MAX_THREADS}), else the default. */
export function resolveThreads(requested?: number): number {
  return requested !== undefined && requested > 0 ? Math.min(Math.floor(requested), MAX_THREADS) : defaultThreads();
}

/** One parallel job for {@linkcode runChunks}. */
export interface ThreadJob {
  /** The worker module that runs this kind of job (it calls {@linkcode serveThreadJobs}). */
  worker: URL;
  /** The entry of that module's table. */
  kind: string;
  /** Posted to the workers (structured clone: typed arrays on SharedArrayBuffers are shared, not copied). */
  message: unknown;
  /** Number of chunks. */
  chunks: number;
  /** Runs chunk `c` on this thread. */
  run(c: number): void;
  /** Told on this thread, after each chunk it runs, how many chunks are taken so far (a progress display). */
  progress?: (taken: number) => void;
}

/** Counters of this thread's jobs (tests, benchmarks): chunks done by worker threads so far. */
export const threadStats = { workerChunks: 0 };

/** `ctl` fields: next chunk, joined workers (| CLOSED), finished workers, failed workers, chunks done by workers. */
const NEXT = 0, JOINED = 1, DONE = 2, FAILED = 3, BY_WORKERS = 4, CLOSED = 1 << 30;

/** Started workers per worker module (kept, unref'd, for later jobs). */
const pools = new Map<string, { workers: Worker[]; failed: boolean }>();

function workers(url: URL, count: number): Worker[] {
  let pool = pools.get(url.href);
  if (!pool) pools.set(url.href, pool = { workers: [], failed: false });
  while (pool.workers.length < count && !pool.failed) {
    try {
      const w = new Worker(url);
      w.unref(); // idle workers do not keep the process alive
      w.on("error", () => {}); // a worker that fails to start never joins a job
      pool.workers.push(w);
    } catch {
      pool.failed = true;
    }
  }
  return pool.workers.slice(0, count);
}

/**
 * Runs every chunk of `job`, on this thread and on up to `threads - 1` worker threads (fewer when there are fewer
 * chunks). Returns when every chunk is done; throws when a worker failed.
 */
export function runChunks(job: ThreadJob, threads: number): void {
  const helpers = threads > 1 && job.chunks > 1 ? workers(job.worker, Math.min(threads - 1, job.chunks - 1)) : [];
  if (helpers.length === 0) {
    for (let c = 0; c < job.chunks; c++) {
      job.run(c);
      job.progress?.(c + 1);
    }
    return;
  }
  const ctl = new Int32Array(new SharedArrayBuffer(20));
  const msg = packViews({ kind: job.kind, message: job.message, chunks: job.chunks, ctl });
  for (const w of helpers) {
    try {
      w.postMessage(msg);
    } catch { /* a dead worker does not join */ }
  }
  try {
    for (let c = Atomics.add(ctl, NEXT, 1); c < job.chunks; c = Atomics.add(ctl, NEXT, 1)) {
      job.run(c);
      job.progress?.(Math.min(job.chunks, Atomics.load(ctl, NEXT)));
    }
  } finally {
    const joined = Atomics.or(ctl, JOINED, CLOSED) & ~CLOSED;
    for (let d = Atomics.load(ctl, DONE); d < joined; d = Atomics.load(ctl, DONE)) {
      try {
        Atomics.wait(ctl, DONE, d, 1000);
      } catch { /* engines that forbid waiting on the main thread: spin */ }
    }
  }
  threadStats.workerChunks += Atomics.load(ctl, BY_WORKERS);
  if (Atomics.load(ctl, FAILED) > 0) {
    throw new Error(
      `Cannot finish the ${job.kind} job as a worker thread failed: current value is ${ctl[FAILED]} failed`,
    );
  }
}

/** Typed arrays a posted message may carry (rebuilt by name on the worker side). */
const VIEWS = {
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
};
type ViewName = keyof typeof VIEWS;
/** The key that marks a typed array posted as its buffer and place ({@linkcode packViews}). */
const VIEW = "infotap.view";

function isPlain(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== "object") return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * `value` with every typed array in it (in plain objects and arrays) replaced by its buffer, offset, length and
 * type. Why: Deno's `node:worker_threads` walks every own property of a received message looking for message ports
 * (`patchMessagePortIfFound`), every index of a typed array included: 0.2 to 0.4 us an element on the receiving
 * thread, seconds for a layer's prepared neurons, where a bare (Shared)ArrayBuffer costs nothing. The buffer is
 * cloned or shared exactly as the typed array's would be.
 */
export function packViews(value: unknown): unknown {
  if (ArrayBuffer.isView(value)) {
    const view = value as ArrayBufferView & { length: number }, name = view.constructor.name as ViewName;
    if ((VIEWS[name] as unknown) !== view.constructor) return value; // DataView, subclasses: posted as they are
    return { [VIEW]: name, buffer: view.buffer, byteOffset: view.byteOffset, length: view.length };
  }
  if (Array.isArray(value)) return value.map(packViews);
  if (!isPlain(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = packViews(v);
  return out;
}

/** The inverse of {@linkcode packViews}: views on the posted buffers (shared memory stays shared). */
export function unpackViews(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unpackViews);
  if (!isPlain(value)) return value;
  const name = value[VIEW];
  if (typeof name === "string" && Object.hasOwn(VIEWS, name)) {
    const { buffer, byteOffset, length } = value as { buffer: ArrayBufferLike; byteOffset: number; length: number };
    return new VIEWS[name as ViewName](buffer as ArrayBuffer, byteOffset, length);
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = unpackViews(v);
  return out;
}

/**
 * The worker side, called once by a worker module: `table[kind](message)` prepares a posted job and returns the
 * function that runs one of its chunks. The worker joins the job unless the caller has closed it, takes chunks until
 * none is left, and reports.
 */
export function serveThreadJobs(table: Record<string, (message: never) => (c: number) => void>): void {
  parentPort?.on("message", (posted: unknown) => {
    const msg = unpackViews(posted) as { kind: string; message: never; chunks: number; ctl: Int32Array };
    const { ctl } = msg;
    for (;;) {
      const v = Atomics.load(ctl, JOINED);
      if (v & CLOSED) return;
      if (Atomics.compareExchange(ctl, JOINED, v, v + 1) === v) break;
    }
    try {
      const run = table[msg.kind](msg.message);
      for (let c = Atomics.add(ctl, NEXT, 1); c < msg.chunks; c = Atomics.add(ctl, NEXT, 1)) {
        run(c);
        Atomics.add(ctl, BY_WORKERS, 1);
      }
    } catch {
      Atomics.add(ctl, FAILED, 1);
    } finally {
      Atomics.add(ctl, DONE, 1);
      Atomics.notify(ctl, DONE);
    }
  });
}
