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

/** Histograms of one field per layer (columns) and, optionally, per step (rows). */
export function histogramGrid(
  data: LayerBins[],
  layers: string[],
  steps: string[] | null,
  xTitle: string,
  yTitle: string,
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
  return {
    $schema: SCHEMA,
    data: { values: data },
    ...facet,
    spec: {
      width: layers.length > 3 ? 150 : 220,
      height: steps ? 70 : 140,
      mark: { type: "bar", tooltip: true },
      encoding: {
        x: { field: "x0", type: "quantitative", bin: { binned: true }, title: xTitle },
        x2: { field: "x1" },
        y: { field: "count", type: "quantitative", title: yTitle },
        tooltip: tooltipBin(xTitle),
      },
    },
    resolve: { scale: { y: "independent" } },
  };
}

/** A line chart with points and tooltips, 520 px wide, of `values` with the given encoding. */
export function lineChart(values: unknown[], encoding: Record<string, unknown>, height = 220): Record<string, unknown> {
  return {
    $schema: SCHEMA,
    width: 520,
    height,
    data: { values },
    mark: { type: "line", point: true, tooltip: true },
    encoding,
  };
}
