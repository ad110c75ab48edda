/**
 * The mi plugin's part of the report and of `compare`: one heatmap per layer of the MI between its neurons at the
 * last step (averaged over blocks of neurons for layers wider than {@linkcode MI_MAX_SIDE}), the layer summary's
 * mean MI over steps, and mean pairwise MI as a measure to rank runs by. See docs/report.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { miReport } from "./report.ts";
 * const rows = [{ layer_a: "fc1", neuron_a: 0, layer_b: "fc1", neuron_b: 1, mi: 0.3, step: null }];
 * const table = { columns: Object.keys(rows[0]), rows, files: [], metadata: {} };
 * const s = miReport.sections![0].build({ dir: "r", run: null, tables: { neuron_mi: table } }, { samples: 8 });
 * assert.deepEqual(s!.plots.map((p) => p.id), ["mi-fc1"]);
 * ```
 *
 * @module
 */
import type { PluginReport, ReportPlot, ResultDirectory, SectionContent } from "../../pipeline/core/report_contract.ts";
import * as kit from "../../pipeline/report/plot_kit.ts";

/** At most this many cells on a side of an MI heatmap (larger layers are averaged over blocks of neurons). */
export const MI_MAX_SIDE = 48;

/** MI between neurons of the same layer at the last step, as heatmaps (averaged over blocks for big layers). */
function miSection(results: ResultDirectory): SectionContent | null {
  const t = results.tables.neuron_mi;
  const steps = kit.stepsOf(t.rows);
  const last = steps[steps.length - 1];
  const rows = t.rows.filter((r) => kit.stepOf(r) === last);
  const within = rows.filter((r) => r.layer_a === r.layer_b);
  const cross = rows.length - within.length;
  const layers = kit.layerOrder(results, within.map((r) => String(r.layer_a)));
  const plots: ReportPlot[] = [];
  for (const layer of layers) {
    const lr = within.filter((r) => r.layer_a === layer);
    let width = 0;
    for (const r of lr) width = Math.max(width, Number(r.neuron_a) + 1, Number(r.neuron_b) + 1);
    const g = Math.ceil(width / MI_MAX_SIDE);
    const side = Math.ceil(width / g);
    const sum = new Float64Array(side * side), cnt = new Float64Array(side * side);
    let missing = 0;
    for (const r of lr) {
      const v = kit.num(r.mi);
      if (v === null) {
        missing++;
        continue;
      }
      const a = Math.floor(Number(r.neuron_a) / g), b = Math.floor(Number(r.neuron_b) / g);
      sum[a * side + b] += v;
      cnt[a * side + b]++;
      if (a !== b) {
        sum[b * side + a] += v;
        cnt[b * side + a]++;
      }
    }
    const data: Record<string, number>[] = [];
    for (let a = 0; a < side; a++) {
      for (let b = 0; b < side; b++) {
        if (cnt[a * side + b] === 0) continue;
        data.push({
          a: a * g,
          a1: Math.min(width, (a + 1) * g),
          b: b * g,
          b1: Math.min(width, (b + 1) * g),
          mi: kit.r4(sum[a * side + b] / cnt[a * side + b]),
        });
      }
    }
    if (data.length === 0) continue;
    const est = lr.find((r) => r.estimator)?.estimator;
    plots.push({
      id: `mi-${layer}`,
      title: `MI between neurons of ${layer}`,
      note: `${lr.length} pairs of ${width} neurons${est ? `, ${est} estimator` : ""}, ${kit.atStep(last)}.` +
        (g > 1 ? ` Each cell is the mean MI over a block of ${g} x ${g} neurons (${side} x ${side} cells).` : "") +
        kit.missingNote(missing, "pairs"),
      spec: {
        $schema: kit.SCHEMA,
        width: 280,
        height: 280,
        data: { values: data },
        mark: { type: "rect", tooltip: true },
        encoding: {
          x: {
            field: "a",
            type: "quantitative",
            title: "neuron",
            scale: { domain: [0, width], nice: false },
            axis: { grid: false },
          },
          x2: { field: "a1" },
          y: {
            field: "b",
            type: "quantitative",
            title: "neuron",
            scale: { domain: [0, width], nice: false, reverse: true },
            axis: { grid: false },
          },
          y2: { field: "b1" },
          color: { field: "mi", type: "quantitative", title: "MI (nats)", scale: { scheme: "viridis" } },
        },
      },
    });
  }
  if (plots.length === 0) return null;
  return {
    intro:
      `Pairwise MI of the neurons within each layer (table neuron_mi) at the last step${
        steps.length > 1
          ? ` (${kit.stepLabel(last)} of ${steps.length} steps; the mean over steps is in the layer summary)`
          : ""
      }.` + (cross > 0 ? ` ${cross} pairs across layers are not drawn.` : ""),
    plots,
  };
}

/** What the `mi` plugin declares for `report` and `compare`. */
export const miReport: PluginReport = {
  layerSummary: [{ column: "mi_mean", label: "mi", axis: "mean MI (nats)", over: "pairs of neurons" }],
  sections: [{ id: "mi", title: "Mutual information between neurons", tables: ["neuron_mi"], build: miSection }],
  rank: [{ name: "mi", table: "neuron_mi", column: "mi", layers: ["layer_a", "layer_b"], over: "pairs", unit: "nats" }],
};
