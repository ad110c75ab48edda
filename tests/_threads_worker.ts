/**
 * Worker module of plugins/kernels/threads_test.ts: "mark" counts each chunk's runs in a shared array (and which
 * thread ran it); "fail" throws on every chunk.
 *
 * @module
 */
import { serveThreadJobs } from "../plugins/kernels/threads.ts";

serveThreadJobs({
  mark: (m: { runs: Int32Array; spin: number }) => (c: number) => {
    const t = performance.now();
    while (performance.now() - t < m.spin) { /* a chunk that takes a while */ }
    Atomics.add(m.runs, c, 1);
  },
  fail: () => () => {
    throw new Error("chunk failed");
  },
});
