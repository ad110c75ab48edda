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
import {
  atStep,
  type Binned,
  BINS,
  finite,
  histogram,
  histogramGrid,
  layerOrder,
  missingNote,
  r4,
  range,
  SCHEMA,
  stepLabel,
  stepOf,
  stepsOf,
} from "../../pipeline/report/plot_kit.ts";

/** MI between each neuron and the label: histogram per layer at the last step, and the mean over steps. */
function labelMiSection(results: ResultDirectory): SectionContent {
  const t = results.tables.label_mi;
  const steps = stepsOf(t.rows);
  const last = steps[steps.length - 1];
  const rows = t.rows.filter((r) => stepOf(r) === last);
  const layers = layerOrder(results, t.rows.map((r) => String(r.layer)));
  const { values, missing } = finite(rows, "mi");
  const [lo, hi] = range(values);
  const section: SectionContent = { intro: "MI between each neuron and the class label (table label_mi).", plots: [] };
  if (values.length === 0) {
    section.intro += ` None of its ${rows.length} rows (${atStep(last)}) has a finite MI: nothing to plot.`;
    return section;
  }
  const data: (Binned & { layer: string; step: string })[] = [];
  for (const layer of layers) {
    const v = finite(rows.filter((r) => r.layer === layer), "mi").values;
    if (v.length) { for (const b of histogram(v, lo, hi)) data.push({ layer, step: stepLabel(last), ...b }); }
  }
  const plots = section.plots;
  plots.push({
    id: "label-mi-hist",
    title: "MI between each neuron and the label, per layer",
    note: `${
      atStep(last).replace(/^./, (c) => c.toUpperCase())
    }; ${rows.length} neurons; ${BINS} bins over [${r4(lo)}, ${r4(hi)}] nats.` +
      missingNote(missing, "neurons"),
    spec: histogramGrid(data, layers, null, "label MI (nats)", "neurons"),
  });
  const numeric = steps.filter((s) => s !== null) as number[];
  if (numeric.length > 1) {
    const data: { layer: string; step: number; mean: number }[] = [];
    for (const layer of layers) {
      for (const s of numeric) {
        const v = finite(t.rows.filter((r) => r.layer === layer && stepOf(r) === s), "mi").values;
        if (v.length) data.push({ layer, step: s, mean: r4(v.reduce((a, b) => a + b, 0) / v.length) });
      }
    }
    plots.push({
      id: "label-mi-steps",
      title: "Mean label MI over training, per layer",
      note: `Mean over each layer's neurons, ${numeric.length} steps.`,
      spec: {
        $schema: SCHEMA,
        width: 520,
        height: 220,
        data: { values: data },
        mark: { type: "line", point: true, tooltip: true },
        encoding: {
          x: { field: "step", type: "quantitative" },
          y: { field: "mean", type: "quantitative", title: "label MI (nats), mean over neurons" },
          color: { field: "layer", type: "nominal", sort: layers },
        },
      },
    });
  }
  return section;
}

/** What the `label-mi` plugin declares for `report`. */
export const labelMiReport: PluginReport = {
  sections: [{ id: "label-mi", title: "Label MI", tables: ["label_mi"], build: labelMiSection }],
};
