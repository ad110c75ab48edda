/**
 * The entropy plugin's part of the report and of `compare`: histograms of the neurons' entropies per layer and
 * step (a heatmap per layer beyond 6 steps), the layer summary's mean entropy over steps, and mean entropy as a
 * measure to rank runs by. See docs/report.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { entropyReport } from "./report.ts";
 * const rows = [0.5, 1, 2].map((entropy, neuron) => ({ layer: "fc1", neuron, entropy, step: null }));
 * const table = { columns: Object.keys(rows[0]), rows, files: [], metadata: {} };
 * const s = entropyReport.sections![0].build({ dir: "r", run: null, tables: { neuron_entropy: table } }, { samples: 8 });
 * assert.deepEqual(s!.plots.map((p) => p.id), ["entropy-hist"]);
 * ```
 *
 * @module
 */
import type { PluginReport, ReportPlot, ResultDirectory, SectionContent } from "../../pipeline/core/report_contract.ts";
import * as kit from "../../pipeline/report/plot_kit.ts";

/** Entropy distributions are drawn as a grid of histograms up to this many steps, as a heatmap beyond. */
const GRID_STEPS = 6;

/** Entropy of each neuron: distributions per layer and step. */
function entropySection(results: ResultDirectory): SectionContent {
  const t = results.tables.neuron_entropy;
  const plots: ReportPlot[] = [];
  const steps = kit.stepsOf(t.rows);
  const { values, missing } = kit.finite(t.rows, "entropy");
  const [lo, hi] = kit.range(values);
  const layers = kit.layerOrder(results, t.rows.map((r) => String(r.layer)));
  const section = {
    intro: "Entropy of each neuron's binned activations (table neuron_entropy; docs/science.md section 1).",
    plots,
  };
  if (values.length === 0) {
    section.intro += ` None of its ${t.rows.length} rows has a finite entropy: nothing to plot.`;
    return section;
  }
  const groups = new Map<string, number[]>();
  for (const r of t.rows) {
    const v = kit.num(r.entropy);
    if (v === null) continue;
    const k = `${r.layer}\u0000${kit.stepLabel(kit.stepOf(r))}`;
    let g = groups.get(k);
    if (!g) groups.set(k, g = []);
    g.push(v);
  }
  const data: kit.LayerBins[] = [];
  for (const layer of layers) {
    for (const s of steps) {
      const g = groups.get(`${layer}\u0000${kit.stepLabel(s)}`);
      if (!g) continue;
      for (const b of kit.histogram(g, lo, hi)) data.push({ layer, step: kit.stepLabel(s), ...b });
    }
  }
  const neuronsNote = `${t.rows.length} neuron rows over ${layers.length} layer(s) and ${steps.length} step(s).` +
    kit.missingNote(missing, "rows");
  if (steps.length <= GRID_STEPS) {
    plots.push({
      id: "entropy-hist",
      title: "Entropy of each neuron, per layer" + (steps.length > 1 ? " and step" : ""),
      note: `Histogram of the neurons' entropies (${kit.BINS} bins over [${kit.r4(lo)}, ${
        kit.r4(hi)
      }] nats). ${neuronsNote}`,
      spec: kit.histogramGrid(
        data,
        layers,
        steps.length > 1 ? steps.map(kit.stepLabel) : null,
        "entropy (nats)",
        "neurons",
      ),
    });
  } else {
    plots.push({
      id: "entropy-heatmap",
      title: "Entropy of each neuron over training, per layer",
      note: `Each column is one step's histogram of the neurons' entropies (${kit.BINS} bins over [${kit.r4(lo)}, ${
        kit.r4(hi)
      }] nats); colour: neurons in the bin. ${neuronsNote}`,
      spec: {
        $schema: kit.SCHEMA,
        data: { values: data.filter((d) => d.count > 0).map((d) => ({ ...d, step: Number(d.step) })) },
        facet: { field: "layer", type: "nominal", sort: layers, title: null },
        columns: 2,
        spec: {
          width: 320,
          height: 160,
          mark: { type: "rect", tooltip: true },
          encoding: {
            x: { field: "step", type: "ordinal", title: "step", axis: { labelOverlap: "parity" } },
            y: { field: "x0", type: "quantitative", title: "entropy (nats)", scale: { zero: false } },
            y2: { field: "x1" },
            color: { field: "count", type: "quantitative", title: "neurons", scale: { scheme: "viridis" } },
          },
        },
      },
    });
  }
  return section;
}

/** What the `entropy` plugin declares for `report` and `compare`. */
export const entropyReport: PluginReport = {
  layerSummary: [{
    column: "entropy_mean",
    label: "entropy",
    axis: "mean entropy (nats)",
    over: "neurons",
    band: { lo: "entropy_p10", hi: "entropy_p90", label: "10th to 90th percentile" },
  }],
  sections: [{ id: "entropy", title: "Neuron entropy", tables: ["neuron_entropy"], build: entropySection }],
  rank: [{
    name: "entropy",
    table: "neuron_entropy",
    column: "entropy",
    layers: ["layer"],
    over: "neurons",
    unit: "nats",
  }],
};
