/**
 * Worker thread of `linalg_chol.ts`: takes row chunks of large products from a shared counter (see
 * `runLinalgJob` there). Started with `node:worker_threads` (unref'd, so idle workers never keep a process alive).
 *
 * @module
 */
import { parentPort } from "node:worker_threads";
import { type LinalgJob, workOnLinalgJob } from "./linalg.ts";

parentPort?.on("message", (msg: { job: LinalgJob; ctl: Int32Array }) => workOnLinalgJob(msg.job, msg.ctl));
