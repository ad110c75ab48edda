/**
 * Worker thread for {@linkcode ksgPairs}: receives a {@linkcode PairJob} (shared memory), computes pairs until
 * none are left, and answers `"done"` (or the error message).
 *
 * @module
 */
import { type PairJob, runPairs } from "./ksg_pairs.ts";

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<PairJob>) => void) | null;
  postMessage(message: unknown): void;
};
scope.onmessage = (e) => {
  try {
    runPairs(e.data);
    scope.postMessage("done");
  } catch (err) {
    scope.postMessage(err instanceof Error ? err.message : String(err));
  }
};
