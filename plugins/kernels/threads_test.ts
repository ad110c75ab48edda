import assert from "node:assert/strict";
import { DEFAULT_THREAD_CAP, MAX_THREADS, resolveThreads, runChunks, threadStats } from "./threads.ts";

const WORKER = new URL("../../tests/_threads_worker.ts", import.meta.url);
const pause = () => new Promise((r) => setTimeout(r, 50));

Deno.test("resolveThreads: an explicit count (capped), else the default (cores, at most the cap)", () => {
  assert.equal(resolveThreads(3), 3);
  assert.equal(resolveThreads(1000), MAX_THREADS);
  for (const none of [undefined, 0]) {
    const d = resolveThreads(none);
    assert.ok(Number.isInteger(d) && d >= 1, `${d}`);
    if (Deno.env.get("INFOTAP_THREADS") === undefined) assert.ok(d <= DEFAULT_THREAD_CAP, `${d}`);
  }
});

Deno.test("runChunks: every chunk runs exactly once, on this thread alone or shared with a worker", async () => {
  const chunks = 40;
  const job = (runs: Int32Array) => ({
    worker: WORKER,
    kind: "mark",
    message: { runs, spin: 2 },
    chunks,
    run: (c: number) => void Atomics.add(runs, c, 1),
  });
  const alone = new Int32Array(new SharedArrayBuffer(4 * chunks));
  runChunks(job(alone), 1);
  assert.deepEqual([...alone], Array(chunks).fill(1));
  // a worker starts in tens of milliseconds: repeat (with pauses) until one has taken a chunk
  const before = threadStats.workerChunks;
  for (let tries = 0; threadStats.workerChunks === before && tries < 100; tries++) {
    const runs = new Int32Array(new SharedArrayBuffer(4 * chunks));
    runChunks(job(runs), 2);
    assert.deepEqual([...runs], Array(chunks).fill(1));
    await pause();
  }
  assert.ok(threadStats.workerChunks > before, "no worker thread took part");
});

Deno.test("runChunks: a chunk that fails on a worker thread is a one-line error", async () => {
  let error: Error | null = null;
  for (let tries = 0; error === null && tries < 100; tries++) {
    try {
      runChunks({
        worker: WORKER,
        kind: "fail",
        message: null,
        chunks: 20,
        run: () => {
          const t = performance.now();
          while (performance.now() - t < 5) { /* this thread's chunks take a while: the worker joins */ }
        },
      }, 2);
    } catch (e) {
      error = e as Error;
    }
    await pause();
  }
  assert.match(
    String(error?.message),
    /^Cannot finish the fail job as a worker thread failed: current value is 1 failed$/,
  );
});
