/**
 * Worker thread of {@linkcode ksgPairs} (plugins/mi/ksg_pairs.ts): takes chunks of pairs of a posted job (shared
 * memory) from the thread runner (plugins/kernels/threads.ts).
 *
 * @module
 */
import { serveThreadJobs } from "../kernels/threads.ts";
import { pairChunks } from "./ksg_pairs.ts";

serveThreadJobs({ ksg: pairChunks });
