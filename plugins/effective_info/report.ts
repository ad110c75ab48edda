/**
 * The effective-info plugin's part of the report: per layer, the lower and upper bound on I(x; z) against the
 * ceiling log N (over steps with two steps or more, else at the one step), and histograms per layer of the
 * per-neuron upper bounds at the last step. See docs/report.md and docs/effective_info.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { effectiveInfoReport } from "./report.ts";
 * const rows = [0, 1].map((neuron) => ({ level: "neuron", layer: "fc1", neuron, lower: 0.1, upper: 0.3, log_n: 2, kl_bias: 0.01, step: null }));
 * rows.push({ level: "layer", layer: "fc1", neuron: null as never, lower: 0.5, upper: 1, log_n: 2, kl_bias: 0.02, step: null });
 * const table = { columns: Object.keys(rows[0]), rows, files: [], metadata: {} };
 * const s = effectiveInfoReport.sections![0].build({ dir: "r", run: null, tables: { effective_info: table } }, { samples: 8 });
 * assert.deepEqual(s!.plots.map((p) => p.id), ["effective-info-layers", "effective-info-neurons"]);
 * ```
 *
 * @module
 */
import type { PluginReport, ResultDirectory, SectionContent } from "../../pipeline/core/report_contract.ts";
import * as kit from "../../pipeline/report/plot_kit.ts";

/** Bounds per layer (over steps, or at the one step) and per-neuron upper bounds. */
function effectiveInfoSection(results: ResultDirectory): SectionContent | null {
  const t = results.tables.effective_info;
  const layerRows = t.rows.filter((r) => r.level === "layer");
  const layers = kit.layerOrder(results, t.rows.map((r) => String(r.layer)));
  const steps = kit.stepsOf(t.rows);
  const last = steps[steps.length - 1];
  const maxBias = Math.max(0, ...kit.finite(t.rows, "kl_bias").values);
  const section: SectionContent = {
    intro: "Effective information I(x; z) in the activations under weight noise (docs/effective_info.md): the " +
      "Bhattacharyya lower and KL upper bound of the mixture over inputs, nats, at most log N (table effective_info)." +
      (maxBias > 0.1
        ? ` Finite draws inflate the bounds: kl_bias reaches ${kit.r4(maxBias)} nats (more draws lower it).`
        : ""),
    plots: [],
  };
  const bounds = layerRows.flatMap((r) =>
    (["lower", "upper", "log_n"] as const).filter((k) => kit.num(r[k]) !== null).map((k) => ({
      layer: String(r.layer),
      step: kit.stepOf(r),
      bound: k === "log_n" ? "log N" : k,
      nats: kit.r4(kit.num(r[k])!),
    }))
  );
  const numeric = steps.filter((s) => s !== null) as number[];
  if (bounds.length && numeric.length > 1) {
    section.plots.push({
      id: "effective-info-layers",
      title: "Effective information per layer over training",
      note: `Lower (Bhattacharyya) and upper (KL) bound and the ceiling log N, ${numeric.length} steps.`,
      spec: {
        ...kit.lineChart(bounds.filter((b) => b.step !== null), {
          x: { field: "step", type: "quantitative" },
          y: { field: "nats", type: "quantitative", title: "I(x; z) (nats)" },
          color: { field: "layer", type: "nominal", sort: layers },
          strokeDash: { field: "bound", type: "nominal", sort: ["upper", "lower", "log N"] },
        }, 260),
      },
    });
  } else if (bounds.length) {
    section.plots.push({
      id: "effective-info-layers",
      title: "Effective information per layer",
      note: `Lower (Bhattacharyya) and upper (KL) bound and the ceiling log N, ${kit.atStep(last)}.`,
      spec: {
        $schema: kit.SCHEMA,
        width: Math.min(520, 60 * layers.length + 80),
        height: 220,
        data: { values: bounds.filter((b) => b.step === last) },
        mark: { type: "point", filled: true, size: 80, tooltip: true },
        encoding: {
          x: { field: "layer", type: "nominal", sort: layers },
          y: { field: "nats", type: "quantitative", title: "I(x; z) (nats)" },
          shape: { field: "bound", type: "nominal", sort: ["upper", "lower", "log N"] },
          color: { field: "bound", type: "nominal", sort: ["upper", "lower", "log N"] },
        },
      },
    });
  }
  const neurons = t.rows.filter((r) => r.level === "neuron" && kit.stepOf(r) === last);
  const { values, missing } = kit.finite(neurons, "upper");
  if (values.length) {
    const [lo, hi] = kit.range(values);
    const data: kit.LayerBins[] = [];
    for (const layer of layers) {
      const v = kit.finite(neurons.filter((r) => r.layer === layer), "upper").values;
      if (v.length) { for (const b of kit.histogram(v, lo, hi)) data.push({ layer, step: kit.stepLabel(last), ...b }); }
    }
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

/** What the `effective-info` plugin declares for `report` and `compare`. */
export const effectiveInfoReport: PluginReport = {
  sections: [{
    id: "effective-info",
    title: "Effective information",
    tables: ["effective_info"],
    build: effectiveInfoSection,
  }],
};
