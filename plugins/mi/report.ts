/**
 * The mi plugin's part of the report and of `compare`: heatmaps of the MI between the neurons of each layer at the
 * last step, in one panel per layer (and per run when several are overlaid) with one shared colour scale, neurons
 * ordered by a seeded average-linkage clustering of the MI matrix (averaged over blocks of neurons for layers wider
 * than {@linkcode MI_MAX_SIDE}), the layer summary's mean MI over steps, and mean pairwise MI as a measure to rank
 * runs by. See docs/report.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { miReport } from "./report.ts";
 * const rows = [{ layer_a: "fc1", neuron_a: 0, layer_b: "fc1", neuron_b: 1, mi: 0.3, step: null }];
 * const table = { columns: Object.keys(rows[0]), rows, files: [], metadata: {} };
 * const context = { samples: 8, bootstrap: 0, seed: 0 };
 * const s = miReport.sections![0].build({ dir: "r", run: null, tables: { neuron_mi: table } }, context);
 * assert.deepEqual(s!.plots.map((p) => p.id), ["mi-heatmap"]);
 * ```
 *
 * @module
 */
import type {
  PluginReport,
  ReportContext,
  ReportRun,
  ResultDirectory,
  SectionContent,
} from "../../pipeline/core/report_contract.ts";
import * as kit from "../../pipeline/core/plot_kit.ts";

/** At most this many cells on a side of an MI heatmap (larger layers are averaged over blocks of neurons). */
export const MI_MAX_SIDE = 48;

/** One cell of a heatmap: positions `[a, a1) x [b, b1)` in the clustered order, the mean MI, the neurons. */
interface Cell {
  run: string;
  layer: string;
  a: number;
  a1: number;
  b: number;
  b1: number;
  mi: number;
  neurons_x: string;
  neurons_y: string;
}

/** Neuron ids as a short list for a tooltip. */
function idList(ids: number[]): string {
  return ids.length <= 6 ? ids.join(", ") : `${ids.slice(0, 5).join(", ")}, ... (${ids.length})`;
}

/**
 * The cells of one layer's heatmap: the neurons in clustered order (average linkage on `max MI - MI`; a pair
 * without a value counts as MI 0), then blocks of `g` neurons in that order for a wide layer.
 */
export function layerCells(
  rows: kit.Row[],
  seed: number,
  run = "",
): { cells: Cell[]; width: number; g: number; missing: number } {
  let width = 0;
  for (const r of rows) width = Math.max(width, Number(r.neuron_a) + 1, Number(r.neuron_b) + 1);
  const m = new Float64Array(width * width).fill(NaN);
  let missing = 0, max = 0;
  for (const r of rows) {
    const v = kit.num(r.mi);
    if (v === null) {
      missing++;
      continue;
    }
    const a = Number(r.neuron_a), b = Number(r.neuron_b);
    m[a * width + b] = m[b * width + a] = v;
    if (v > max) max = v;
  }
  const dist = new Float64Array(width * width);
  for (let i = 0; i < m.length; i++) dist[i] = max - (Number.isNaN(m[i]) ? 0 : m[i]);
  const { order } = kit.clusterOrder(dist, width, seed);
  const g = Math.ceil(width / MI_MAX_SIDE), side = Math.ceil(width / g);
  const layer = String(rows[0]?.layer_a ?? "");
  const cells: Cell[] = [];
  for (let x = 0; x < side; x++) {
    for (let y = 0; y < side; y++) {
      const xs = order.slice(x * g, (x + 1) * g), ys = order.slice(y * g, (y + 1) * g);
      let sum = 0, n = 0;
      for (const i of xs) {
        for (const j of ys) {
          const v = m[i * width + j];
          if (i === j || Number.isNaN(v)) continue;
          sum += v;
          n++;
        }
      }
      if (n === 0) continue;
      cells.push({
        run,
        layer,
        a: x * g,
        a1: Math.min(width, (x + 1) * g),
        b: y * g,
        b1: Math.min(width, (y + 1) * g),
        mi: kit.r4(sum / n),
        neurons_x: idList(xs),
        neurons_y: idList(ys),
      });
    }
  }
  return { cells, width, g, missing };
}

/** A faceted heatmap spec: one panel per layer (columns) and per run (rows, when `runs` are given). */
function heatmapSpec(cells: Cell[], layers: string[], runs: string[] | null, unit: string): Record<string, unknown> {
  const axis = (title: string) => ({
    field: title === "x" ? "a" : "b",
    type: "quantitative",
    title: "neuron (clustered order)",
    scale: { nice: false, zero: true, ...(title === "y" ? { reverse: true } : {}) },
    axis: { grid: false, tickMinStep: 1 },
  });
  const columns = runs ? layers.length : Math.min(layers.length, 3);
  return kit.fit(
    {
      $schema: kit.SCHEMA,
      data: { values: cells },
      facet: runs
        ? {
          row: { field: "run", type: "nominal", sort: runs, title: null },
          column: { field: "layer", type: "nominal", sort: layers, title: null },
        }
        : { field: "layer", type: "nominal", sort: layers, title: null },
      ...(runs ? {} : { columns }),
      spec: {
        width: 280,
        height: 280,
        mark: { type: "rect", tooltip: true },
        encoding: {
          x: axis("x"),
          x2: { field: "a1" },
          y: axis("y"),
          y2: { field: "b1" },
          color: { field: "mi", type: "quantitative", title: `MI (${unit})`, scale: { scheme: "viridis", zero: true } },
          tooltip: [
            { field: "layer" },
            ...(runs ? [{ field: "run" }] : []),
            { field: "neurons_x", title: "neurons (x)" },
            { field: "neurons_y", title: "neurons (y)" },
            { field: "mi", title: `MI (${unit})` },
          ],
        },
      },
      resolve: { scale: { x: "independent", y: "independent" } },
    },
    columns,
    1,
    440,
  );
}

/** What the heatmaps' note says about the order and the blocks. */
function orderNote(seed: number, blocks: string[]): string {
  return `Neurons are ordered by average-linkage (UPGMA) hierarchical clustering of the distance max MI - MI within the layer (leaves in dendrogram order; ties broken by a permutation seeded with ${seed}, --seed); one colour scale for all panels.` +
    (blocks.length ? ` Averaged over blocks of neurons in that order: ${blocks.join(", ")}.` : "");
}

/** Warnings from the table: pairs with many tied samples (KSG), pairs without a value. */
function miWarnings(rows: kit.Row[], columns: string[]): string[] {
  const out: string[] = [];
  if (columns.includes("ties")) {
    const tied = rows.filter((r) => (kit.num(r.ties) ?? 0) > 0.01);
    if (tied.length) {
      const max = Math.max(...tied.map((r) => kit.num(r.ties)!));
      out.push(
        `${tied.length} of ${rows.length} pairs have more than 1% of their samples tied (up to ${
          (100 * max).toFixed(1)
        }%): KSG is biased there (column ties; --ksg-jitter).`,
      );
    }
  }
  const missing = rows.filter((r) => kit.num(r.mi) === null).length;
  if (missing) out.push(`${missing} of ${rows.length} pairs have no finite MI (not drawn).`);
  return out;
}

/** MI between neurons of the same layer at the last step, as clustered heatmaps with one colour scale. */
function miSection(results: ResultDirectory, context: ReportContext): SectionContent | null {
  const t = results.tables.neuron_mi;
  const steps = kit.stepsOf(t.rows);
  const { rows, step: last } = kit.lastStep(t.rows);
  const within = rows.filter((r) => r.layer_a === r.layer_b);
  const cross = rows.length - within.length;
  const layers = kit.layerOrder(results, within.map((r) => String(r.layer_a)));
  const cells: Cell[] = [], notes: string[] = [], blocks: string[] = [];
  const est = rows.find((r) => r.estimator)?.estimator;
  for (const layer of layers) {
    const c = layerCells(within.filter((r) => r.layer_a === layer), context.seed);
    if (c.cells.length === 0) continue;
    cells.push(...c.cells);
    notes.push(`${layer}: ${c.width} neurons`);
    if (c.g > 1) blocks.push(`${layer} ${c.g} x ${c.g} neurons a cell`);
  }
  if (cells.length === 0) return null;
  const unit = kit.unitOf(t, "mi", "nats");
  return {
    intro:
      `Pairwise MI of the neurons within each layer (table neuron_mi${
        est ? `, ${est} estimator` : ""
      }) at the last step${
        steps.length > 1
          ? ` (${kit.stepLabel(last)} of ${steps.length} steps; the mean over steps is in the layer summary)`
          : ""
      }.` + (cross > 0 ? ` ${cross} pairs across layers are not drawn.` : ""),
    plots: [{
      id: "mi-heatmap",
      title: "MI between the neurons of each layer",
      note: `${notes.join("; ")}; ${kit.atStep(last)}. ${orderNote(context.seed, blocks)}`,
      spec: heatmapSpec(cells, [...new Set(cells.map((c) => c.layer))], null, unit),
    }],
    warnings: miWarnings(rows, t.columns),
  };
}

/** Several runs: one row of heatmaps per run (each run clustered on its own), one colour scale for all. */
function miOverlay(runs: ReportRun[], context: ReportContext): SectionContent | null {
  const cells: Cell[] = [], blocks: string[] = [], warnings: string[] = [];
  let layers: string[] = [];
  for (const { name, results } of runs) {
    const t = results.tables.neuron_mi;
    if (!t?.rows.length) continue;
    const { rows } = kit.lastStep(t.rows);
    const within = rows.filter((r) => r.layer_a === r.layer_b);
    const ls = kit.layerOrder(results, within.map((r) => String(r.layer_a)));
    layers = [...layers, ...ls.filter((l) => !layers.includes(l))];
    for (const layer of ls) {
      const c = layerCells(within.filter((r) => r.layer_a === layer), context.seed, name);
      cells.push(...c.cells);
      if (c.g > 1 && !blocks.includes(`${layer} ${c.g} x ${c.g} neurons a cell`)) {
        blocks.push(`${layer} ${c.g} x ${c.g} neurons a cell`);
      }
    }
    warnings.push(...miWarnings(rows, t.columns).map((w) => `${name}: ${w}`));
  }
  if (cells.length === 0) return null;
  const names = runs.map((r) => r.name).filter((n) => cells.some((c) => c.run === n));
  return {
    intro:
      `Pairwise MI within each layer (table neuron_mi) at each run's last step: one row per run, one colour scale for all runs.`,
    plots: [{
      id: "mi-heatmap",
      title: "MI between the neurons of each layer, per run",
      note: `Each run's neurons are clustered on their own (neuron positions do not correspond across runs). ${
        orderNote(context.seed, blocks)
      }`,
      spec: heatmapSpec(cells, layers, names, kit.unitOf(runs[0].results.tables.neuron_mi, "mi", "nats")),
    }],
    warnings,
  };
}

/** What the `mi` plugin declares for `report` and `compare`. */
export const miReport: PluginReport = {
  describe(s) {
    const parts: string[] = [], warnings: string[] = [];
    const ties = s.ties as { pairs_above_1pct?: number; pairs?: number; max_fraction?: number } | undefined;
    if (ties) {
      parts.push(`${ties.pairs_above_1pct} of ${ties.pairs} pairs have more than 1% tied samples`);
      if (ties.pairs_above_1pct) warnings.push(`KSG is biased on ${ties.pairs_above_1pct} pair(s) with tied samples.`);
    }
    if (s.gpu_fallback) parts.push(`GPU fallback: ${s.gpu_fallback}`);
    for (const [k, v] of Object.entries(s)) {
      if (k !== "ties" && k !== "gpu_fallback") parts.push(`${k} ${JSON.stringify(v)}`);
    }
    return { text: parts.length ? `${parts.join("; ")}.` : "", warnings };
  },
  layerSummary: [{
    column: "mi_mean",
    label: "mi",
    axis: "mean MI (nats)",
    over: "pairs of neurons",
    source: { table: "neuron_mi", column: "mi", layers: ["layer_a", "layer_b"], units: ["neuron_a", "neuron_b"] },
  }],
  sections: [{
    id: "mi",
    title: "Mutual information between neurons",
    tables: ["neuron_mi"],
    build: miSection,
    overlay: miOverlay,
  }],
  rank: [{ name: "mi", table: "neuron_mi", column: "mi", layers: ["layer_a", "layer_b"], over: "pairs", unit: "nats" }],
};
