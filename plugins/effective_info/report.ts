/**
 * The effective-info plugin's part of the report: per layer, the lower and upper bound on I(x; z) against the
 * ceiling log N (over steps with two steps or more, else at the one step), and histograms per layer of the
 * per-neuron upper bounds at the last step; several runs overlaid (one colour per run). See docs/report.md and
 * docs/effective_info.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { effectiveInfoReport } from "./report.ts";
 * const rows = [0, 1].map((neuron) => ({ level: "neuron", layer: "fc1", neuron, lower: 0.1, upper: 0.3, log_n: 2, kl_bias: 0.01, step: null }));
 * rows.push({ level: "layer", layer: "fc1", neuron: null as never, lower: 0.5, upper: 1, log_n: 2, kl_bias: 0.02, step: null });
 * const table = { columns: Object.keys(rows[0]), rows, files: [], metadata: {} };
 * const context = { samples: 8, bootstrap: 0, seed: 0 };
 * const s = effectiveInfoReport.sections![0].build({ dir: "r", run: null, tables: { effective_info: table } }, context);
 * assert.deepEqual(s!.plots.map((p) => p.id), ["effective-info-layers", "effective-info-neurons"]);
 * ```
 *
 * @module
 */
import type {
  PluginReport,
  ReportPlot,
  ReportRun,
  ResultDirectory,
  ResultTable,
  SectionContent,
} from "../../pipeline/core/report_contract.ts";
import * as kit from "../../pipeline/report/plot_kit.ts";

/** The bounds in the order of their line styles. */
const BOUNDS = ["upper", "lower", "log N"];

/** The y axis of the bounds. */
const Y = { field: "nats", type: "quantitative", title: "I(x; z) (nats)" };

/** Per layer and step: the lower and upper bound and log N, as points (`run` names the run on a page of several). */
function boundRows(t: ResultTable, run = "") {
  return t.rows.filter((r) => r.level === "layer").flatMap((r) =>
    (["lower", "upper", "log_n"] as const).filter((k) => kit.num(r[k]) !== null).map((k) => ({
      run,
      layer: String(r.layer),
      step: kit.stepOf(r),
      bound: k === "log_n" ? "log N" : k,
      nats: kit.r4(kit.num(r[k])!),
    }))
  );
}

/** The largest finite-draws bias of a table (column kl_bias), 0 when none. */
function maxBias(t: ResultTable): number {
  return Math.max(0, ...kit.finite(t.rows, "kl_bias").values);
}

/** Bounds per layer (over steps, or at the one step) and per-neuron upper bounds. */
function effectiveInfoSection(results: ResultDirectory): SectionContent | null {
  const t = results.tables.effective_info;
  const layers = kit.layerOrder(results, t.rows.map((r) => String(r.layer)));
  const steps = kit.stepsOf(t.rows);
  const last = steps[steps.length - 1];
  const bias = maxBias(t);
  const section: SectionContent = {
    intro: "Effective information I(x; z) in the activations under weight noise (docs/effective_info.md): the " +
      "Bhattacharyya lower and KL upper bound of the mixture over inputs, nats, at most log N (table effective_info)." +
      (bias > 0.1
        ? ` Finite draws inflate the bounds: kl_bias reaches ${kit.r4(bias)} nats (more draws lower it).`
        : ""),
    plots: [],
  };
  const bounds = boundRows(t);
  const numeric = steps.filter((s) => s !== null) as number[];
  if (bounds.length && numeric.length > 1) {
    section.plots.push({
      id: "effective-info-layers",
      title: "Effective information per layer over training",
      note: `Lower (Bhattacharyya) and upper (KL) bound and the ceiling log N, ${numeric.length} steps.`,
      spec: kit.lineChart(bounds.filter((b) => b.step !== null), {
        x: kit.STEP_X,
        y: Y,
        color: { field: "layer", type: "nominal", sort: layers, scale: { scheme: "tableau10" } },
        strokeDash: { field: "bound", type: "nominal", sort: BOUNDS },
      }, 260),
    });
  } else if (bounds.length) {
    section.plots.push({
      id: "effective-info-layers",
      title: "Effective information per layer",
      note: `Lower (Bhattacharyya) and upper (KL) bound and the ceiling log N, ${kit.atStep(last)}.`,
      spec: kit.fit({
        $schema: kit.SCHEMA,
        width: 520,
        height: 220,
        data: { values: bounds.filter((b) => b.step === last) },
        mark: { type: "point", filled: true, size: 80, tooltip: true },
        encoding: {
          x: { field: "layer", type: "nominal", sort: layers, axis: { labelAngle: 0 } },
          y: Y,
          shape: { field: "bound", type: "nominal", sort: BOUNDS },
          color: { field: "bound", type: "nominal", sort: BOUNDS },
        },
      }),
    });
  }
  const neurons = t.rows.filter((r) => r.level === "neuron" && kit.stepOf(r) === last);
  const { values, missing } = kit.finite(neurons, "upper");
  if (values.length) {
    const [lo, hi] = kit.range(values);
    const data = kit.layerBins(neurons, layers, "upper", last, lo, hi);
    section.plots.push({
      id: "effective-info-neurons",
      title: "Effective information of each neuron (upper bound), per layer",
      note: `${kit.atStep(last).replace(/^./, (c) => c.toUpperCase())}; ${neurons.length} neurons.` +
        kit.missingNote(missing, "neurons"),
      spec: kit.histogramGrid(data, layers, null, "I(x; z_j) upper bound (nats)", "neurons"),
    });
  }
  return section.plots.length ? section : null;
}

/** Several runs: the bounds per layer (one panel each) over steps or at the last step, and the neurons' upper bounds. */
function effectiveInfoOverlay(runs: ReportRun[]): SectionContent | null {
  const names = runs.map((r) => r.name);
  const tables = runs.map((r) => ({ name: r.name, t: r.results.tables.effective_info }));
  const layers = kit.layerOrder(runs[0].results, tables.flatMap(({ t }) => t.rows.map((r) => String(r.layer))));
  const plots: ReportPlot[] = [];
  const bounds = tables.flatMap(({ name, t }) => boundRows(t, name));
  const over = new Set(bounds.map((b) => b.step).filter((s) => s !== null)).size > 1;
  // With one step per run, each run's last step; over steps, every step.
  const lasts = tables.map(({ name, t }) => ({ name, ...kit.lastStep(t.rows) }));
  const data = over
    ? bounds.filter((b) => b.step !== null)
    : bounds.filter((b) => b.step === lasts.find((l) => l.name === b.run)!.step);
  if (data.length) {
    plots.push({
      id: "effective-info-layers",
      title: `Effective information per layer${over ? " over training" : ""}, runs overlaid`,
      note: "Lower (Bhattacharyya) and upper (KL) bound and the ceiling log N; one panel per layer; colour: run.",
      spec: kit.panels(data, "layer", layers, {
        mark: over ? { type: "line", point: true, tooltip: true } : { type: "point", filled: true, tooltip: true },
        encoding: {
          x: over ? kit.STEP_X : { field: "run", type: "nominal", sort: names, title: null, axis: { labelAngle: 0 } },
          y: Y,
          color: kit.runColor(names),
          ...(over ? { strokeDash: { field: "bound", type: "nominal", sort: BOUNDS } } : {}),
          shape: { field: "bound", type: "nominal", sort: BOUNDS },
        },
      }),
    });
  }
  const neurons = lasts.map((l) => ({ name: l.name, rows: l.rows.filter((r) => r.level === "neuron") }));
  const bins = kit.layerShares(neurons, layers, "upper");
  if (bins.length) {
    plots.push({
      id: "effective-info-neurons",
      title: "Effective information of each neuron (upper bound), per layer, runs overlaid",
      note:
        `Outlined histograms at each run's last step (${kit.BINS} bins over each layer's range in all runs): the share of the layer's neurons in each bin.`,
      spec: kit.overlayHistograms(bins, names, layers, "I(x; z_j) upper bound (nats)", null),
    });
  }
  if (plots.length === 0) return null;
  const biased = tables.filter(({ t }) => maxBias(t) > 0.1);
  return {
    intro: "Effective information I(x; z) in the activations under weight noise (docs/effective_info.md), runs " +
      "overlaid: the Bhattacharyya lower and KL upper bound of the mixture over inputs, nats, at most log N.",
    plots,
    warnings: biased.map(({ name, t }) =>
      `${name}: finite draws inflate the bounds: kl_bias reaches ${kit.r4(maxBias(t))} nats (more draws lower it).`
    ),
  };
}

/** What the `effective-info` plugin declares for `report` and `compare`. */
export const effectiveInfoReport: PluginReport = {
  sections: [{
    id: "effective-info",
    title: "Effective information",
    tables: ["effective_info"],
    build: effectiveInfoSection,
    overlay: effectiveInfoOverlay,
  }],
};
