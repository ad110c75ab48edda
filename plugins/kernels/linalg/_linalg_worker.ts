/**
 * Worker thread of the linear-algebra jobs (products cut into row chunks, plugins/kernels/threads.ts). Started by
 * the thread runner with `node:worker_threads` (unref'd, so idle workers never keep a process alive).
 *
 * @module
 */
import { serveThreadJobs } from "../threads.ts";
import { gemmChunks } from "./gemm.ts";
import { postedGramChunks } from "./gram.ts";

serveThreadJobs({ gemm: gemmChunks, gram: postedGramChunks });
