/**
 * The thread policy of infotap and the one thread runner of its kernels (KSG pairs, linear algebra).
 *
 * Policy, for every parallel path (analyze's data-parallel worker pool, KSG pairs, linear algebra): `threads` is
 * the most threads a path uses, the calling thread included. It is `--threads N` when given (1 to
 * {@linkcode MAX_THREADS}), else the environment variable `INFOTAP_THREADS` (read when permitted; `0` = the
 * machine's cores), else the machine's logical cores, at most {@linkcode DEFAULT_THREAD_CAP}. Estimators get it as
 * `context.threads` (1 inside analyze's pool workers: the pool already spends the threads). A path takes more than
 * one thread only when its work is large enough to pay for it, and its results never depend on the number.
 *
 * Runner ({@linkcode runChunks}): a job is cut into chunks that write disjoint outputs; the calling thread and up to
 * `threads - 1` worker threads (`node:worker_threads`, started on first use, kept unref'd) take chunks from a shared
 * counter until none is left, then the caller waits (`Atomics.wait`: the API stays synchronous) for the workers
 * that joined. Inputs and outputs live in SharedArrayBuffers for workers to see them. A worker that never starts
 * (no permission, slow start) simply never joins: the caller then does every chunk itself.
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
  const msg = { kind: job.kind, message: job.message, chunks: job.chunks, ctl };
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

/**
 * The worker side, called once by a worker module: `table[kind](message)` prepares a posted job and returns the
 * function that runs one of its chunks. The worker joins the job unless the caller has closed it, takes chunks until
 * none is left, and reports.
 */
export function serveThreadJobs(table: Record<string, (message: never) => (c: number) => void>): void {
  parentPort?.on("message", (msg: { kind: string; message: never; chunks: number; ctl: Int32Array }) => {
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
