import assert from "node:assert/strict";
import {
  DEFAULT_THREAD_CAP,
  MAX_THREADS,
  packViews,
  resolveThreads,
  runChunks,
  threadStats,
  unpackViews,
} from "./threads.ts";

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
  // a worker starts in tens of milliseconds: repeat (with pauses) until one has taken a chunk; the counts are a view
  // at an offset into shared memory, which the worker must see at the same place
  const before = threadStats.workerChunks;
  for (let tries = 0; threadStats.workerChunks === before && tries < 100; tries++) {
    const all = new Int32Array(new SharedArrayBuffer(4 * (chunks + 5)));
    runChunks(job(all.subarray(3, 3 + chunks)), 2);
    assert.deepEqual([...all], [0, 0, 0, ...Array(chunks).fill(1), 0, 0]);
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

Deno.test("packViews: typed arrays travel as buffer, offset and length, and come back as views on the same memory", () => {
  const shared = new Float64Array(new SharedArrayBuffer(80)).subarray(2, 7);
  const plain = new BigInt64Array([1n, -2n, 3n]).subarray(1);
  const dv = new DataView(new ArrayBuffer(4));
  const message = { kind: "x", job: { shared, list: [plain, 3, "s", null], dv, n: 5 } };
  const packed = packViews(message) as { job: Record<string, unknown> };
  const views = (v: unknown): number =>
    ArrayBuffer.isView(v) && !(v instanceof DataView)
      ? 1
      : v !== null && typeof v === "object"
      ? Object.values(v).reduce((t: number, x) => t + views(x), 0)
      : 0;
  assert.equal(views(packed), 0); // nothing element-wise left for the receiving side to walk
  assert.equal(packed.job.dv, dv);
  const back = unpackViews(structuredClone(packed)) as typeof message;
  assert.ok(back.job.shared instanceof Float64Array && back.job.list[0] instanceof BigInt64Array);
  assert.deepEqual([back.job.shared.byteOffset, back.job.shared.length], [16, 5]);
  assert.deepEqual([...(back.job.list[0] as BigInt64Array)], [-2n, 3n]);
  assert.deepEqual(back.job.list.slice(1), [3, "s", null]);
  back.job.shared[0] = 7; // shared memory stays shared
  assert.equal(shared[0], 7);
  assert.deepEqual(unpackViews(packViews([1, { a: "b" }])), [1, { a: "b" }]);
});
