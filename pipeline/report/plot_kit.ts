/**
 * Helpers for the report's plots, shared by the host and the plugins' sections (`plugins/<estimator>/report.ts`):
 * steps and layers of a table, finite values, equal-width histograms, a faceted histogram spec. Data are reduced
 * before they enter a spec (histograms binned, numbers rounded to 4 significant digits) so that the page stays small
 * whatever the size of the run. It imports no part of the report host. See docs/report.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { finite, histogram, stepsOf } from "./plot_kit.ts";
 * const rows = [{ x: 1, step: 2 }, { x: NaN, step: 1 }, { x: 3, step: null }];
 * assert.deepEqual(stepsOf(rows), [null, 1, 2]);
 * assert.deepEqual(finite(rows, "x"), { values: [1, 3], missing: 1 });
 * assert.deepEqual(histogram([1, 2, 3], 1, 3, 2).map((b) => b.count), [1, 2]);
 * ```
 *
 * @module
 */
import type { Cell, ResultDirectory } from "../core/report_contract.ts";

export { clusterOrder } from "./cluster.ts";
export { bootstrapMean, bootstrapPairMean } from "./bootstrap.ts";

/** Histogram bins of one distribution. */
export const BINS = 30;
/** The Vega-Lite schema of every spec. */
export const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";

/** One row of a table read back. */
export type Row = Record<string, Cell>;

/** Rounds to 4 significant digits (the page shows no more; it keeps the embedded JSON small). */
export function r4(x: number): number {
  return Number.isFinite(x) ? Number(x.toPrecision(4)) : x;
}

/** The cell as a finite number, else null. */
export function num(v: Cell | undefined): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** The row's step, or null when it has none. */
export function stepOf(r: Row): number | null {
  return typeof r.step === "number" ? r.step : null;
}

/** Distinct steps, ascending; `[null]` when the table has no steps. */
export function stepsOf(rows: Row[]): (number | null)[] {
  const s = new Set<number>();
  let hasNull = false;
  for (const r of rows) {
    const st = stepOf(r);
    if (st === null) hasNull = true;
    else s.add(st);
  }
  const out: (number | null)[] = [...s].sort((a, b) => a - b);
  if (hasNull) out.unshift(null);
  return out;
}

/** The step as a label: its number, or "all" for rows without a step. */
export function stepLabel(s: number | null): string {
  return s === null ? "all" : String(s);
}

/** "step 300", or "no steps" for a table without steps (all rows together). */
export function atStep(s: number | null): string {
  return s === null ? "no steps" : `step ${s}`;
}

/** Up to `k` steps evenly spaced, always with the first and the last. */
export function someSteps<T>(steps: T[], k: number): T[] {
  if (steps.length <= k) return steps;
  const out: T[] = [];
  for (let i = 0; i < k; i++) out.push(steps[Math.round((i * (steps.length - 1)) / (k - 1))]);
  return [...new Set(out)];
}

/** Layer names in run.json's order, then in order of first appearance. */
export function layerOrder(results: ResultDirectory, names: Iterable<string>): string[] {
  const seen = new Set<string>();
  for (const n of names) seen.add(n);
  const known = ((results.run?.layers as { name: string }[] | undefined) ?? []).map((l) => l.name);
  return [...known.filter((n) => seen.has(n)), ...[...seen].filter((n) => !known.includes(n))];
}

/** One histogram bin: [x0, x1) and its count. */
export interface Binned {
  x0: number;
  x1: number;
  count: number;
}

/** A bin of one layer's (or one group's) histogram at one step, as `histogramGrid` draws it. */
export type LayerBins = Binned & { layer: string; step: string };

/** Equal-width histogram over [lo, hi] (one bin when lo == hi). */
export function histogram(values: number[], lo: number, hi: number, nb = BINS): Binned[] {
  if (!(hi > lo)) {
    const w = Math.abs(lo) > 0 ? Math.abs(lo) * 0.01 : 0.01;
    return [{ x0: r4(lo - w), x1: r4(lo + w), count: values.length }];
  }
  const counts = new Array(nb).fill(0);
  const w = (hi - lo) / nb;
  for (const v of values) counts[Math.min(nb - 1, Math.max(0, Math.floor((v - lo) / w)))]++;
  return counts.map((count, i) => ({ x0: r4(lo + i * w), x1: r4(lo + (i + 1) * w), count }));
}

/** The smallest and largest value (Infinity, -Infinity when empty). */
export function range(values: number[]): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** Finite values of `field` in `rows`, and how many were not finite (null, NaN, Inf). */
export function finite(rows: Row[], field: string): { values: number[]; missing: number } {
  const values: number[] = [];
  let missing = 0;
  for (const r of rows) {
    const v = num(r[field]);
    if (v === null) missing++;
    else values.push(v);
  }
  return { values, missing };
}

/** " N what without a finite value are not drawn." when N > 0, else "". */
export function missingNote(missing: number, what: string): string {
  return missing > 0 ? ` ${missing} ${what} without a finite value are not drawn.` : "";
}

const tooltipBin = (title: string) => [
  { field: "x0", type: "quantitative", title: `${title} from` },
  { field: "x1", type: "quantitative", title: "to" },
  { field: "count", type: "quantitative", title: "count" },
];

/**
 * Marks a spec to fill the page's width: the page sets the width of a single view, or of each cell of a faceted
 * one (`columns` cells a row), from the width it has, and the height from `aspect` (height / width) when given.
 * It re-draws when the window is resized. `max` caps the width of a view or cell (px).
 */
export function fit<T extends Record<string, unknown>>(spec: T, columns = 1, aspect?: number, max?: number): T {
  return { ...spec, usermeta: { fit: { columns, ...(aspect ? { aspect } : {}), ...(max ? { max } : {}) } } };
}

/** The x encoding of training steps (integer ticks). */
export const STEP_X: Record<string, unknown> = {
  field: "step",
  type: "quantitative",
  title: "training step",
  axis: { tickMinStep: 1 },
};

/**
 * One panel per value of `field` (e.g. a layer), three to a row, each with its own y scale, as wide as the page
 * allows; `spec` is the panel's view (mark and encoding, or layers).
 */
export function panels(
  values: unknown[],
  field: string,
  sort: string[],
  spec: Record<string, unknown>,
  aspect = 0.6,
): Record<string, unknown> {
  const columns = Math.min(sort.length, 3);
  return fit(
    {
      $schema: SCHEMA,
      data: { values },
      facet: { field, type: "nominal", sort, title: null },
      columns,
      spec: { width: 300, height: 200, ...spec },
      resolve: { scale: { y: "independent" } },
    },
    columns,
    aspect,
  );
}

/** Colours of ordered steps: distinct hues in order (viridis without its palest end). */
export function stepColor(steps: string[], title = "step"): Record<string, unknown> {
  return {
    field: "step",
    type: "ordinal",
    sort: steps,
    title,
    scale: { scheme: { name: "viridis", extent: [0, 0.85] } },
  };
}

/** Colours of runs (a categorical palette), in the page's run order. */
export function runColor(runs: string[]): Record<string, unknown> {
  return { field: "run", type: "nominal", sort: runs, title: "run", scale: { scheme: "tableau10" } };
}

/**
 * A log scale whose ticks are clean: powers of ten (with 2 and 5 between when the data span less than two
 * decades), all written alike (`0.01`, `1`, `100` within 1e-3..1e4, else `1e-8`, `1e+2`).
 */
export function logScale(values: number[]): { scale: Record<string, unknown>; axis: Record<string, unknown> } {
  const pos = values.filter((v) => v > 0 && Number.isFinite(v));
  const [lo, hi] = pos.length ? range(pos) : [1, 10];
  const a = Math.floor(Math.log10(lo)), b = Math.max(a + 1, Math.ceil(Math.log10(hi)));
  const ticks: number[] = [];
  const step = Math.max(1, Math.ceil((b - a) / 10));
  for (let e = a; e <= b; e += step) {
    ticks.push(Number(`1e${e}`));
    if (b - a < 2 && e < b) ticks.push(Number(`2e${e}`), Number(`5e${e}`));
  }
  const plain = a >= -3 && b <= 4;
  return {
    scale: { type: "log", domain: [Number(`1e${a}`), Number(`1e${b}`)], nice: false },
    axis: { values: ticks, format: plain ? "~g" : ".0e" },
  };
}

/** The unit of a column from the table's metadata (`infotap.units.<column>`, else `infotap.units`), or `fallback`. */
export function unitOf(t: { metadata: Record<string, string> } | undefined, column: string, fallback: string): string {
  return t?.metadata[`infotap.units.${column}`] ?? t?.metadata["infotap.units"] ?? fallback;
}

/** Rows of the table's last step (all rows when it has no steps). */
export function lastStep(rows: Row[]): { rows: Row[]; step: number | null } {
  const steps = stepsOf(rows);
  const step = steps[steps.length - 1] ?? null;
  return { rows: rows.filter((r) => stepOf(r) === step), step };
}

/**
 * Equal-width bins in log10 of the positive values, with the edges as values (`x0`, `x1`) for a log axis; the
 * number of values that are zero, negative or not finite is `left`.
 */
export function logHistogram(values: number[], lo: number, hi: number, nb = BINS): { bins: Binned[]; left: number } {
  const pos = values.filter((v) => v > 0 && Number.isFinite(v));
  const bins = histogram(pos.map(Math.log10), Math.log10(lo), Math.log10(hi), nb).map((b) => ({
    x0: r4(10 ** b.x0),
    x1: r4(10 ** b.x1),
    count: b.count,
  }));
  return { bins, left: values.length - pos.length };
}

/** One bin of a distribution drawn as a line per run (`share`: the fraction of the run's values in the bin). */
export interface RunBin {
  run: string;
  group: string;
  x0: number;
  x1: number;
  share: number;
}

/** Histograms of `column` per layer of `rows` (one step, `step`), bins of equal width over [lo, hi] for all layers. */
export function layerBins(
  rows: Row[],
  layers: string[],
  column: string,
  step: number | null,
  lo: number,
  hi: number,
): LayerBins[] {
  return layers.flatMap((layer) => {
    const v = finite(rows.filter((r) => r.layer === layer), column).values;
    return v.length ? histogram(v, lo, hi).map((b) => ({ layer, step: stepLabel(step), ...b })) : [];
  });
}

/**
 * The distribution of `column` per layer of each run's rows (`runs[i].rows`, e.g. each run's last step), as the
 * share of the layer's rows per bin, with bins shared by the runs: equal width over the layer's range in all runs.
 */
export function layerShares(runs: { name: string; rows: Row[] }[], layers: string[], column: string): RunBin[] {
  const values = (rows: Row[], layer: string) => finite(rows.filter((x) => x.layer === layer), column).values;
  const out: RunBin[] = [];
  for (const layer of layers) {
    const [lo, hi] = range(runs.flatMap((r) => values(r.rows, layer)));
    for (const r of runs) {
      const v = values(r.rows, layer);
      if (!v.length) continue;
      for (const b of histogram(v, lo, hi)) {
        out.push({ run: r.name, group: layer, x0: b.x0, x1: b.x1, share: r4(b.count / v.length) });
      }
    }
  }
  return out;
}

/**
 * Distributions of several runs overlaid: one outlined histogram (a step line of the share of values per bin)
 * per run, one panel per group (e.g. layer), bins shared by the runs of a group.
 */
export function overlayHistograms(
  data: RunBin[],
  runs: string[],
  groups: string[],
  xTitle: string,
  log: { scale: Record<string, unknown>; axis: Record<string, unknown> } | null,
): Record<string, unknown> {
  // A step line through each bin's left edge, closed by the last bin's right edge.
  const pts: Record<string, unknown>[] = [];
  for (const run of runs) {
    for (const g of groups) {
      const bins = data.filter((d) => d.run === run && d.group === g);
      for (const b of bins) pts.push({ run, group: g, x: b.x0, share: b.share });
      if (bins.length) pts.push({ run, group: g, x: bins[bins.length - 1].x1, share: bins[bins.length - 1].share });
    }
  }
  const columns = Math.min(groups.length, 3);
  return fit(
    {
      $schema: SCHEMA,
      data: { values: pts },
      facet: { field: "group", type: "nominal", sort: groups, title: null },
      columns,
      spec: {
        width: 300,
        height: 160,
        mark: { type: "line", interpolate: "step-after", tooltip: true },
        encoding: {
          x: { field: "x", type: "quantitative", title: xTitle, ...(log ?? { scale: { zero: false } }) },
          y: { field: "share", type: "quantitative", title: "share of values", axis: { format: "~%" } },
          color: runColor(runs),
        },
      },
      resolve: { scale: { x: "independent", y: "independent" } },
    },
    columns,
    0.55,
  );
}

/** Histograms of one field per layer (columns) and, optionally, per step (rows). */
export function histogramGrid(
  data: LayerBins[],
  layers: string[],
  steps: string[] | null,
  xTitle: string,
  yTitle: string,
  log: { scale: Record<string, unknown>; axis: Record<string, unknown> } | null = null,
): Record<string, unknown> {
  // One row of steps: wrap the layers, 4 per row; several steps: a grid, layers as columns, steps as rows.
  const facet: Record<string, unknown> = steps
    ? {
      facet: {
        column: { field: "layer", type: "nominal", sort: layers, title: null },
        row: { field: "step", type: "ordinal", sort: steps, title: "step" },
      },
    }
    : { facet: { field: "layer", type: "nominal", sort: layers, title: null }, columns: 4 };
  const columns = steps ? layers.length : Math.min(layers.length, 4);
  return fit(
    {
      $schema: SCHEMA,
      data: { values: data },
      ...facet,
      spec: {
        width: layers.length > 3 ? 150 : 220,
        height: steps ? 70 : 140,
        mark: { type: "bar", tooltip: true },
        encoding: {
          x: { field: "x0", type: "quantitative", bin: { binned: true }, title: xTitle, ...(log ?? {}) },
          x2: { field: "x1" },
          y: { field: "count", type: "quantitative", title: yTitle },
          tooltip: tooltipBin(xTitle),
        },
      },
      resolve: { scale: { y: "independent" } },
    },
    columns,
    steps ? 0.3 : 0.55,
  );
}

/** A line chart with points and tooltips, as wide as the page, of `values` with the given encoding. */
export function lineChart(values: unknown[], encoding: Record<string, unknown>, height = 240): Record<string, unknown> {
  return fit({
    $schema: SCHEMA,
    width: 520,
    height,
    data: { values },
    mark: { type: "line", point: true, tooltip: true },
    encoding,
  });
}
