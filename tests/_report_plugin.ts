/**
 * A test plugin that declares its report: it counts rows per layer (table `row_count`), draws them as a bar chart
 * (section `rows`) and lets `compare` rank runs by the mean count (`rows`, higher is better). Loaded with
 * `--plugin` by the report and compare tests, to show that the hosts draw and rank a table they do not name.
 *
 * @module
 */
import { definePlugin, type Estimator, type EstimatorPlugin } from "../pipeline/core/plugin.ts";
import { tableFromColumns } from "../pipeline/core/table.ts";
import { SCHEMA } from "../pipeline/core/plot_kit.ts";

function counter(start: Record<string, number> = {}): Estimator {
  const rows = { ...start };
  return {
    update(batch) {
      for (const c of batch.columns) rows[c.name] = (rows[c.name] ?? 0) + batch.numRows;
    },
    merge(other) {
      for (const [k, n] of Object.entries(other.state() as Record<string, number>)) rows[k] = (rows[k] ?? 0) + n;
    },
    state: () => ({ ...rows }),
    result: () => ({
      row_count: tableFromColumns([
        { name: "layer", type: "utf8", values: Object.keys(rows) },
        { name: "rows", type: "int64", values: Object.values(rows).map(BigInt) },
      ]),
    }),
  };
}

/** The `row-count` plugin. */
const plugin: EstimatorPlugin = definePlugin({
  name: "row-count",
  description: "Counts rows per layer, and declares a report section and a rank measure (tests only).",
  inputs: ["activations/v1"],
  options: {},
  tables: { row_count: {} },
  orderFree: true,
  create: () => counter(),
  restore: (state) => counter(state as Record<string, number>),
  report: {
    sections: [{
      id: "rows",
      title: "Rows per layer",
      tables: ["row_count"],
      build: (results) => {
        const t = results.tables.row_count;
        return {
          intro: `Rows counted per layer (table row_count), ${t.rows.length} layer(s).`,
          plots: [{
            id: "rows-bar",
            title: "Rows per layer",
            note: "One bar per layer.",
            spec: {
              $schema: SCHEMA,
              data: { values: t.rows },
              mark: "bar",
              encoding: {
                x: { field: "layer", type: "nominal" },
                y: { field: "rows", type: "quantitative" },
              },
            },
          }],
        };
      },
    }],
    rank: [{
      name: "rows",
      table: "row_count",
      column: "rows",
      layers: ["layer"],
      over: "layers",
      unit: "rows",
      better: "higher",
    }],
  },
});

export default plugin;
