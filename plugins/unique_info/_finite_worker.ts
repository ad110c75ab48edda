/**
 * Worker thread of the secular leave-one-out route (`finite_time.ts`, `looSecularAll`): takes samples from a
 * shared counter and writes their `diff` rows into shared memory. Started with `node:worker_threads` (unref'd).
 *
 * @module
 */
import { parentPort } from "node:worker_threads";
import { looSecularShare, type SecularJob } from "./finite_time.ts";
import { unpackViews } from "../kernels/threads.ts";

parentPort?.on("message", (message: unknown) => {
  let ok = true;
  try {
    looSecularShare(unpackViews(message) as SecularJob);
  } catch {
    ok = false;
  }
  parentPort!.postMessage(ok);
});
