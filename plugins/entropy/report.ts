/**
 * The entropy plugin's part of the report and of `compare`: histograms of the neurons' entropies per layer and
 * step (a heatmap per layer beyond 6 steps), how much the numbers depend on the binning (a note, and a warning when
 * overlaid runs are binned differently), clipped and non-finite values as warnings, the layer summary's mean
 * entropy over steps, and mean entropy as a measure to rank runs by. See docs/report.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { entropyReport } from "./report.ts";
 * const rows = [0.5, 1, 2].map((entropy, neuron) => ({ layer: "fc1", neuron, entropy, step: null }));
 * const table = { columns: Object.keys(rows[0]), rows, files: [], metadata: {} };
 * const context = { samples: 8, bootstrap: 0, seed: 0 };
 * const s = entropyReport.sections![0].build({ dir: "r", run: null, tables: { neuron_entropy: table } }, context);
 * assert.deepEqual(s!.plots.map((p) => p.id), ["entropy-hist"]);
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
import * as kit from "../../pipeline/core/plot_kit.ts";

/** Entropy distributions are drawn as a grid of histograms up to this many steps, as a heatmap beyond. */
const GRID_STEPS = 6;

/** The binning of a table: bins per neuron and how the ranges were set (metadata, else the `bins` column). */
function binningOf(t: ResultTable): { bins: number | null; binning: string | null } {
  const bins = Number(t.metadata["infotap.bins"] ?? t.rows.find((r) => kit.num(r.bins) !== null)?.bins ?? NaN);
  return { bins: Number.isFinite(bins) ? bins : null, binning: t.metadata["infotap.binning"] ?? null };
}

/** How much a binned entropy depends on the binning, in numbers for this table's bins. */
function binningNote(t: ResultTable): string {
  const { bins, binning } = binningOf(t);
  if (bins === null) return "";
  return ` Binning: ${bins} bins${
    binning
      ? ` over ${binning === "global" ? "one range per layer" : "each neuron's own range"} (--binning ${binning})`
      : ""
  }. ` +
    `A binned entropy depends on it: it is at most log ${bins} = ${
      kit.r4(Math.log(bins))
    } nats, and for a continuous activation it grows by about log 2 = 0.693 nats each time the bins double (H is about h - log of the bin width); global ranges leave a neuron that spans a narrow part of its layer's range fewer bins than per-neuron ranges do. Compare entropies only between runs binned alike.`;
}

/** Warnings from the table's counts: values clipped into the edge bins, non-finite values excluded. */
function entropyWarnings(t: ResultTable): string[] {
  const out: string[] = [];
  for (
    const [col, what] of [
      ["clipped", "value(s) outside --range were clipped into the edge bins"],
      ["nonfinite", "non-finite value(s) (NaN, Inf) were excluded"],
    ] as const
  ) {
    if (!t.columns.includes(col)) continue;
    const hit = t.rows.filter((r) => (kit.num(r[col]) ?? 0) > 0);
    if (hit.length) {
      const total = hit.reduce((a, r) => a + kit.num(r[col])!, 0);
      out.push(`${total} ${what}, in ${hit.length} of ${t.rows.length} neuron rows (column ${col}).`);
    }
  }
  return out;
}

/** Entropy of each neuron: distributions per layer and step. */
function entropySection(results: ResultDirectory): SectionContent {
  const t = results.tables.neuron_entropy;
  const plots: ReportPlot[] = [];
  const steps = kit.stepsOf(t.rows);
  const { values, missing } = kit.finite(t.rows, "entropy");
  const [lo, hi] = kit.range(values);
  const layers = kit.layerOrder(results, t.rows.map((r) => String(r.layer)));
  const unit = kit.unitOf(t, "entropy", "nats");
  const section: SectionContent = {
    intro: "Entropy of each neuron's binned activations (table neuron_entropy; docs/science.md section 1)." +
      binningNote(t),
    plots,
    warnings: entropyWarnings(t),
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
      title: "Entropy of each neuron, per layer" + (steps.length > 1 ? " (columns) and training step (rows)" : ""),
      note: `Histogram of the neurons' entropies (${kit.BINS} bins over [${kit.r4(lo)}, ${
        kit.r4(hi)
      }] ${unit}). ${neuronsNote}`,
      spec: kit.histogramGrid(
        data,
        layers,
        steps.length > 1 ? steps.map(kit.stepLabel) : null,
        `entropy (${unit})`,
        "neurons",
      ),
    });
  } else {
    const columns = Math.min(layers.length, 2);
    plots.push({
      id: "entropy-heatmap",
      title: "Entropy of each neuron over training, per layer",
      note: `Each column is one step's histogram of the neurons' entropies (${kit.BINS} bins over [${kit.r4(lo)}, ${
        kit.r4(hi)
      }] ${unit}); colour: neurons in the bin. ${neuronsNote}`,
      spec: kit.fit(
        {
          $schema: kit.SCHEMA,
          data: { values: data.filter((d) => d.count > 0).map((d) => ({ ...d, step: Number(d.step) })) },
          facet: { field: "layer", type: "nominal", sort: layers, title: null },
          columns,
          spec: {
            width: 320,
            height: 160,
            mark: { type: "rect", tooltip: true },
            encoding: {
              x: { field: "step", type: "ordinal", title: "training step", axis: { labelOverlap: "parity" } },
              y: { field: "x0", type: "quantitative", title: `entropy (${unit})`, scale: { zero: false } },
              y2: { field: "x1" },
              color: { field: "count", type: "quantitative", title: "neurons", scale: { scheme: "viridis" } },
            },
          },
        },
        columns,
        0.5,
      ),
    });
  }
  return section;
}

/** Several runs: each layer's distribution of neuron entropies at each run's last step, one line per run. */
function entropyOverlay(runs: ReportRun[]): SectionContent | null {
  const last = runs.map(({ name, results }) => ({
    name,
    results,
    ...kit.lastStep(results.tables.neuron_entropy.rows),
  }));
  const all = last.flatMap((r) => kit.finite(r.rows, "entropy").values);
  if (all.length === 0) return null;
  const layers = kit.layerOrder(runs[0].results, last.flatMap((r) => r.rows.map((x) => String(x.layer))));
  const data = kit.layerShares(last, layers, "entropy");
  const binnings = last.map((r) => ({ name: r.name, ...binningOf(r.results.tables.neuron_entropy) }));
  const kinds = new Set(binnings.map((b) => `${b.bins}/${b.binning}`));
  const warnings = last.flatMap((r) => entropyWarnings(r.results.tables.neuron_entropy).map((w) => `${r.name}: ${w}`));
  if (kinds.size > 1) {
    const bins = binnings.map((b) => b.bins).filter((b): b is number => b !== null);
    const spread = bins.length > 1 ? Math.log(Math.max(...bins) / Math.min(...bins)) : 0;
    warnings.unshift(
      `The runs are binned differently (${
        binnings.map((b) => `${b.name}: ${b.bins} bins, ${b.binning ?? "?"}`).join("; ")
      }): their entropies are not comparable${
        spread > 0
          ? ` (bins alone shift them by up to about log ${Math.max(...bins)}/${Math.min(...bins)} = ${
            kit.r4(spread)
          } nats)`
          : ""
      }.`,
    );
  }
  const unit = kit.unitOf(runs[0].results.tables.neuron_entropy, "entropy", "nats");
  return {
    intro:
      `Entropy of each neuron's binned activations (table neuron_entropy) at each run's last step, runs overlaid.` +
      binningNote(runs[0].results.tables.neuron_entropy),
    plots: [{
      id: "entropy-hist",
      title: "Entropy of each neuron, per layer, runs overlaid",
      note:
        `Outlined histograms (${kit.BINS} bins over each layer's range of entropies (${unit}) in all runs, shared by the runs): the share of the layer's neurons in each bin.`,
      spec: kit.overlayHistograms(data, runs.map((r) => r.name), layers, `entropy (${unit})`, null),
    }],
    warnings,
  };
}

/** What the `entropy` plugin declares for `report` and `compare`. */
export const entropyReport: PluginReport = {
  describe(s) {
    // No warnings here: the section warns from the table's counts, per neuron row.
    const nonfinite = Number(s.nonfinite ?? 0), clipped = Number(s.clipped ?? 0);
    return {
      text: nonfinite || clipped
        ? `${nonfinite} non-finite value(s) excluded, ${clipped} value(s) clipped into the edge bins.`
        : "No value was non-finite or clipped.",
    };
  },
  layerSummary: [{
    column: "entropy_mean",
    label: "entropy",
    axis: "mean entropy (nats)",
    over: "neurons",
    band: { lo: "entropy_p10", hi: "entropy_p90", label: "10th to 90th percentile" },
    source: { table: "neuron_entropy", column: "entropy", layers: ["layer"], units: ["neuron"] },
  }],
  sections: [{
    id: "entropy",
    title: "Neuron entropy",
    tables: ["neuron_entropy"],
    build: entropySection,
    overlay: entropyOverlay,
  }],
  rank: [{
    name: "entropy",
    table: "neuron_entropy",
    column: "entropy",
    layers: ["layer"],
    over: "neurons",
    unit: "nats",
  }],
};
