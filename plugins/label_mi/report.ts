/**
 * The label-mi plugin's part of the report: histograms per layer of the MI between each neuron and the class
 * label at the last step and, with two steps or more, the mean per layer over steps. See docs/report.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { labelMiReport } from "./report.ts";
 * const rows = [0.1, 0.4].flatMap((mi, neuron) => [0, 5].map((step) => ({ layer: "fc1", neuron, mi, step })));
 * const table = { columns: Object.keys(rows[0]), rows, files: [], metadata: {} };
 * const s = labelMiReport.sections![0].build({ dir: "r", run: null, tables: { label_mi: table } }, { samples: 8 });
 * assert.deepEqual(s!.plots.map((p) => p.id), ["label-mi-hist", "label-mi-steps"]);
 * ```
 *
 * @module
 */
import type { PluginReport, ResultDirectory, SectionContent } from "../../pipeline/core/report_contract.ts";
import * as kit from "../../pipeline/report/plot_kit.ts";

/** MI between each neuron and the label: histogram per layer at the last step, and the mean over steps. */
function labelMiSection(results: ResultDirectory): SectionContent {
  const t = results.tables.label_mi;
  const steps = kit.stepsOf(t.rows);
  const last = steps[steps.length - 1];
  const rows = t.rows.filter((r) => kit.stepOf(r) === last);
  const layers = kit.layerOrder(results, t.rows.map((r) => String(r.layer)));
  const { values, missing } = kit.finite(rows, "mi");
  const [lo, hi] = kit.range(values);
  const section: SectionContent = { intro: "MI between each neuron and the class label (table label_mi).", plots: [] };
  if (values.length === 0) {
    section.intro += ` None of its ${rows.length} rows (${kit.atStep(last)}) has a finite MI: nothing to plot.`;
    return section;
  }
  const data: kit.LayerBins[] = [];
  for (const layer of layers) {
    const v = kit.finite(rows.filter((r) => r.layer === layer), "mi").values;
    if (v.length) { for (const b of kit.histogram(v, lo, hi)) data.push({ layer, step: kit.stepLabel(last), ...b }); }
  }
  const plots = section.plots;
  plots.push({
    id: "label-mi-hist",
    title: "MI between each neuron and the label, per layer",
    note: `${
      kit.atStep(last).replace(/^./, (c) => c.toUpperCase())
    }; ${rows.length} neurons; ${kit.BINS} bins over [${kit.r4(lo)}, ${kit.r4(hi)}] nats.` +
      kit.missingNote(missing, "neurons"),
    spec: kit.histogramGrid(data, layers, null, "label MI (nats)", "neurons"),
  });
  const numeric = steps.filter((s) => s !== null) as number[];
  if (numeric.length > 1) {
    const data: { layer: string; step: number; mean: number }[] = [];
    for (const layer of layers) {
      for (const s of numeric) {
        const v = kit.finite(t.rows.filter((r) => r.layer === layer && kit.stepOf(r) === s), "mi").values;
        if (v.length) data.push({ layer, step: s, mean: kit.r4(v.reduce((a, b) => a + b, 0) / v.length) });
      }
    }
    plots.push({
      id: "label-mi-steps",
      title: "Mean label MI over training, per layer",
      note: `Mean over each layer's neurons, ${numeric.length} steps.`,
      spec: kit.lineChart(data, {
        x: { field: "step", type: "quantitative" },
        y: { field: "mean", type: "quantitative", title: "label MI (nats), mean over neurons" },
        color: { field: "layer", type: "nominal", sort: layers },
      }),
    });
  }
  return section;
}

/** What the `label-mi` plugin declares for `report`. */
export const labelMiReport: PluginReport = {
  sections: [{ id: "label-mi", title: "Label MI", tables: ["label_mi"], build: labelMiSection }],
};
