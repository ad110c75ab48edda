/**
 * A test plugin slower than any producer: it counts rows and sleeps `--delay-ms` per batch, so that a fast
 * producer must be held back by `serve` (backpressure) rather than buffered; `--result-delay-ms` makes each
 * result slow too (a final write long enough to be signalled in the middle of).
 *
 * @module
 */
import { definePlugin, type Estimator, type EstimatorPlugin } from "../pipeline/core/plugin.ts";
import { tableFromColumns } from "../pipeline/core/table.ts";

function counter(delayMs: number, resultMs: number, start = 0): Estimator {
  let rows = start;
  return {
    async update(batch) {
      await new Promise((r) => setTimeout(r, delayMs));
      rows += batch.numRows;
    },
    merge(other) {
      rows += (other.state() as { rows: number }).rows;
    },
    state: () => ({ rows }),
    result: async () => {
      await new Promise((r) => setTimeout(r, resultMs));
      return { slow_count: tableFromColumns([{ name: "rows", type: "int64", values: [rows] }]) };
    },
  };
}

/** The `slow-count` plugin. */
const plugin: EstimatorPlugin = definePlugin({
  name: "slow-count",
  description: "Counts rows, sleeping --delay-ms per batch (tests only).",
  inputs: ["activations/v1"],
  options: {
    "delay-ms": { type: "integer", default: 10, min: 0, description: "sleep per batch, in ms" },
    "result-delay-ms": { type: "integer", default: 0, min: 0, description: "sleep per result, in ms" },
  },
  tables: { slow_count: {} },
  create: (o) => counter(o["delay-ms"] as number, o["result-delay-ms"] as number),
  restore: (state, o) =>
    counter(o["delay-ms"] as number, o["result-delay-ms"] as number, (state as { rows: number }).rows),
});
export default plugin;
