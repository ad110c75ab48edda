/**
 * The label-mi plugin's part of the report and of `compare`: histograms per layer of the MI between each neuron and
 * the class label at the last step and, with two steps or more, the mean per layer over steps (bootstrap intervals
 * under `report --bootstrap`); several runs overlaid; mean label MI as a measure to rank runs by. See
 * docs/report.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { labelMiReport } from "./report.ts";
 * const rows = [0.1, 0.4].flatMap((mi, neuron) => [0, 5].map((step) => ({ layer: "fc1", neuron, mi, step })));
 * const table = { columns: Object.keys(rows[0]), rows, files: [], metadata: {} };
 * const context = { samples: 8, bootstrap: 0, seed: 0 };
 * const s = labelMiReport.sections![0].build({ dir: "r", run: null, tables: { label_mi: table } }, context);
 * assert.deepEqual(s!.plots.map((p) => p.id), ["label-mi-hist", "label-mi-steps"]);
 * ```
 *
 * @module
 */
import type {
  PluginReport,
  ReportContext,
  ReportRun,
  ResultDirectory,
  ResultTable,
  SectionContent,
} from "../../pipeline/core/report_contract.ts";
import * as kit from "../../pipeline/report/plot_kit.ts";

/** Mean label MI per layer and step of one run, with a bootstrap interval over the neurons when asked. */
function meansOverSteps(t: ResultTable, layers: string[], run: string, context: ReportContext) {
  const numeric = kit.stepsOf(t.rows).filter((s) => s !== null) as number[];
  const data: { run: string; layer: string; step: number; mean: number; ci_lo?: number; ci_hi?: number }[] = [];
  for (const layer of layers) {
    for (const s of numeric) {
      const v = kit.finite(t.rows.filter((r) => r.layer === layer && kit.stepOf(r) === s), "mi").values;
      if (!v.length) continue;
      const ci = context.bootstrap > 0 && v.length > 1 ? kit.bootstrapMean(v, context.bootstrap, context.seed) : null;
      data.push({
        run,
        layer,
        step: s,
        mean: kit.r4(v.reduce((a, b) => a + b, 0) / v.length),
        ...(ci ? { ci_lo: kit.r4(ci[0]), ci_hi: kit.r4(ci[1]) } : {}),
      });
    }
  }
  return { data, steps: numeric.length };
}

/** Line (and error bars) of the mean per layer over steps; colour by `color`, facet by layer when `facet`. */
function meanSpec(
  data: Record<string, unknown>[],
  color: Record<string, unknown>,
  unit: string,
  facet: string[] | null,
) {
  const x = kit.STEP_X;
  const y = {
    field: "mean",
    type: "quantitative",
    title: `label MI (${unit}), mean over neurons`,
    scale: { zero: false },
  };
  const layer: Record<string, unknown>[] = [{
    mark: { type: "line", point: true, tooltip: true },
    encoding: { x, y, color },
  }];
  if (data.some((d) => "ci_lo" in d)) {
    layer.push({
      mark: { type: "errorbar", ticks: true },
      encoding: { x, y: { field: "ci_lo", type: "quantitative", title: y.title }, y2: { field: "ci_hi" }, color },
    });
  }
  if (!facet) return kit.fit({ $schema: kit.SCHEMA, width: 520, height: 240, data: { values: data }, layer });
  return kit.panels(data, "layer", facet, { layer });
}

const ciNote = (c: ReportContext) =>
  c.bootstrap > 0
    ? ` Error bars: 95% percentile bootstrap interval of the mean (${c.bootstrap} resamples of the neurons, seed ${c.seed}).`
    : "";

/** Warnings from the table: non-finite values excluded. */
function labelMiWarnings(t: ResultTable): string[] {
  const hit = t.columns.includes("nonfinite") ? t.rows.filter((r) => (kit.num(r.nonfinite) ?? 0) > 0) : [];
  return hit.length
    ? [
      `${
        hit.reduce((a, r) => a + kit.num(r.nonfinite)!, 0)
      } non-finite value(s) were excluded, in ${hit.length} neuron rows (column nonfinite).`,
    ]
    : [];
}

/** MI between each neuron and the label: histogram per layer at the last step, and the mean over steps. */
function labelMiSection(results: ResultDirectory, context: ReportContext): SectionContent {
  const t = results.tables.label_mi;
  const { rows, step: last } = kit.lastStep(t.rows);
  const layers = kit.layerOrder(results, t.rows.map((r) => String(r.layer)));
  const { values, missing } = kit.finite(rows, "mi");
  const [lo, hi] = kit.range(values);
  const unit = kit.unitOf(t, "mi", "nats");
  const section: SectionContent = {
    intro: "MI between each neuron and the class label (table label_mi).",
    plots: [],
    warnings: labelMiWarnings(t),
  };
  if (values.length === 0) {
    section.intro += ` None of its ${rows.length} rows (${kit.atStep(last)}) has a finite MI: nothing to plot.`;
    return section;
  }
  const data = kit.layerBins(rows, layers, "mi", last, lo, hi);
  section.plots.push({
    id: "label-mi-hist",
    title: "MI between each neuron and the label, per layer",
    note: `${
      kit.atStep(last).replace(/^./, (c) => c.toUpperCase())
    }; ${rows.length} neurons; ${kit.BINS} bins over [${kit.r4(lo)}, ${kit.r4(hi)}] ${unit}.` +
      kit.missingNote(missing, "neurons"),
    spec: kit.histogramGrid(data, layers, null, `label MI (${unit})`, "neurons"),
  });
  const means = meansOverSteps(t, layers, results.dir, context);
  if (means.steps > 1) {
    section.plots.push({
      id: "label-mi-steps",
      title: "Mean label MI over training, per layer",
      note: `Mean over each layer's neurons, ${means.steps} steps.${ciNote(context)}`,
      spec: meanSpec(
        means.data,
        { field: "layer", type: "nominal", sort: layers, scale: { scheme: "tableau10" } },
        unit,
        null,
      ),
    });
  }
  return section;
}

/** Several runs: the distributions at each run's last step, and the means over steps, one colour per run. */
function labelMiOverlay(runs: ReportRun[], context: ReportContext): SectionContent | null {
  const last = runs.map(({ name, results }) => ({ name, results, ...kit.lastStep(results.tables.label_mi.rows) }));
  const all = last.flatMap((r) => kit.finite(r.rows, "mi").values);
  if (all.length === 0) return null;
  const layers = kit.layerOrder(runs[0].results, last.flatMap((r) => r.rows.map((x) => String(x.layer))));
  const names = runs.map((r) => r.name);
  const bins = kit.layerShares(last, layers, "mi");
  const unit = kit.unitOf(runs[0].results.tables.label_mi, "mi", "nats");
  const plots = [{
    id: "label-mi-hist",
    title: "MI between each neuron and the label, per layer, runs overlaid",
    note:
      `Outlined histograms at each run's last step (${kit.BINS} bins over each layer's range of label MI (${unit}) in all runs, shared by the runs): the share of the layer's neurons in each bin.`,
    spec: kit.overlayHistograms(bins, names, layers, `label MI (${unit})`, null),
  }];
  const means = runs.map((r) => meansOverSteps(r.results.tables.label_mi, layers, r.name, context));
  if (means.some((m) => m.steps > 1)) {
    plots.push({
      id: "label-mi-steps",
      title: "Mean label MI over training, per layer, runs overlaid",
      note: `Mean over each layer's neurons; colour: run.${ciNote(context)}`,
      spec: meanSpec(means.flatMap((m) => m.data), kit.runColor(names), unit, layers),
    });
  }
  return {
    intro: "MI between each neuron and the class label (table label_mi), runs overlaid.",
    plots,
    warnings: last.flatMap((r) => labelMiWarnings(r.results.tables.label_mi).map((w) => `${r.name}: ${w}`)),
  };
}

/** What the `label-mi` plugin declares for `report` and `compare`. */
export const labelMiReport: PluginReport = {
  sections: [{
    id: "label-mi",
    title: "Label MI",
    tables: ["label_mi"],
    build: labelMiSection,
    overlay: labelMiOverlay,
  }],
  rank: [{ name: "label-mi", table: "label_mi", column: "mi", layers: ["layer"], over: "neurons", unit: "nats" }],
};
