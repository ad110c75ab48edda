/**
 * The report's sections, from what the plugins declare (`EstimatorPlugin.report`, `pipeline/core/report_contract.ts`):
 * the shared layer summary over steps (the columns plugins add to `layer_summary`), then each plugin's sections in
 * registration order, then a preview of every table that no section declares. The host names no estimator.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildSections } from "./_sections.ts";
 * const table = (rows: Record<string, number | string>[]) => ({ columns: Object.keys(rows[0]), rows, files: [], metadata: {} });
 * const sections = buildSections({
 *   dir: "r",
 *   run: null,
 *   tables: { neuron_entropy: table([{ layer: "fc1", neuron: 0, entropy: 1 }]), mine: table([{ x: 1 }]) },
 * });
 * assert.deepEqual(sections.map((s) => s.id), ["entropy", "table-mine"]);
 * ```
 *
 * @module
 */
import { type EstimatorPlugin, PluginError } from "../core/plugin.ts";
import type {
  Cell,
  LayerSummaryMeasure,
  ReportContext,
  ReportPlot,
  ResultDirectory,
  ResultTable,
  SampleGroup,
} from "../core/report_contract.ts";
import { show } from "../../schemas/errors.ts";
import { builtinPlugins } from "../../plugins/mod.ts";
import { layerOrder, num, r4, SCHEMA, stepOf, stepsOf } from "./plot_kit.ts";

/** The per-layer table every estimator may add columns to (keys `layer`, `step`); the host draws it. */
export const LAYER_SUMMARY = "layer_summary";
/** Rows shown of a table that no plugin declares. */
export const PREVIEW_ROWS = 10;
/** Anchors of the page's own parts, which no plugin section may take. */
const RESERVED = ["run", "layer-summary", "summary", "tables"];

/** One section of the page. */
export interface Section {
  id: string;
  title: string;
  intro: string;
  plots: ReportPlot[];
  /** Tables it plotted. */
  tables: string[];
  /** Samples shown below the plots. */
  samples?: SampleGroup[];
  /** A table no plugin declares: its first rows as they are. */
  preview?: { columns: string[]; rows: Cell[][] };
}

/** The declared `layer_summary` columns per layer over steps (band: the declared columns, when present). */
function layerSummarySection(results: ResultDirectory, measures: LayerSummaryMeasure[]): Section | null {
  const t = results.tables[LAYER_SUMMARY];
  if (!t?.rows.length) return null;
  const steps = stepsOf(t.rows).filter((s) => s !== null);
  if (steps.length < 2) return null;
  const layers = layerOrder(results, t.rows.map((r) => String(r.layer)));
  const plots: ReportPlot[] = [];
  for (const m of measures) {
    const field = m.column, p10 = m.band?.lo, p90 = m.band?.hi;
    if (!t.columns.includes(field)) continue;
    const data = t.rows.filter((r) => stepOf(r) !== null && num(r[field]) !== null).map((r) => ({
      layer: String(r.layer),
      step: stepOf(r),
      value: r4(num(r[field])!),
      ...(p10 && p90 && num(r[p10]) !== null && num(r[p90]) !== null
        ? { lo: r4(num(r[p10])!), hi: r4(num(r[p90])!) }
        : {}),
    }));
    if (data.length === 0) continue;
    const color = { field: "layer", type: "nominal", sort: layers };
    const layer: Record<string, unknown>[] = [];
    if (p10 && data.some((d) => "lo" in d)) {
      layer.push({
        mark: { type: "area", opacity: 0.2 },
        encoding: { y: { field: "lo", type: "quantitative" }, y2: { field: "hi" }, color },
      });
    }
    layer.push({
      mark: { type: "line", point: true, tooltip: true },
      encoding: { y: { field: "value", type: "quantitative", title: m.axis, scale: { zero: false } }, color },
    });
    plots.push({
      id: `summary-${field}`,
      title: `${m.label} over training (${LAYER_SUMMARY}.${field})`,
      note: `Line: mean over the layer's ${m.over}${
        layer.length > 1 ? `; band: ${m.band!.label}` : ""
      }. ${steps.length} steps, ${layers.length} layer(s).`,
      spec: {
        $schema: SCHEMA,
        width: 520,
        height: 220,
        data: { values: data },
        encoding: { x: { field: "step", type: "quantitative", title: "step" } },
        layer,
      },
    });
  }
  if (plots.length === 0) return null;
  return {
    id: "summary",
    title: "Layer summary over training",
    intro: `Per-layer summaries by training step (table ${LAYER_SUMMARY}).`,
    plots,
    tables: [LAYER_SUMMARY],
  };
}

/** A table that no plugin declares: its size and first rows, so that it does not vanish from the page. */
function previewSection(name: string, t: ResultTable): Section {
  const rows = t.rows.slice(0, PREVIEW_ROWS);
  return {
    id: `table-${name}`,
    title: `Table ${name}`,
    intro: `${t.rows.length} row(s), ${t.columns.length} column(s). No report section of the estimators loaded ` +
      `declares this table (if a plugin of yours wrote it, pass its module with --plugin)${
        rows.length
          ? `; ${rows.length < t.rows.length ? `its first ${rows.length} rows` : "its rows"} as they are:`
          : "."
      }`,
    plots: [],
    tables: [],
    preview: { columns: t.columns, rows: rows.map((r) => t.columns.map((c) => r[c] ?? null)) },
  };
}

/**
 * Every section that the directory's tables allow, in reading order: the layer summary, the sections the
 * `plugins` declare (built-ins by default), then a preview of each table none of them declares.
 * A section id or plot id taken twice is a {@linkcode PluginError}.
 */
export function buildSections(
  results: ResultDirectory,
  plugins: readonly EstimatorPlugin[] = builtinPlugins,
  context: ReportContext = { samples: 8 },
): Section[] {
  const out: Section[] = [];
  const summary = layerSummarySection(results, plugins.flatMap((p) => p.report?.layerSummary ?? []));
  const owners = new Map((summary?.plots ?? []).map((plot) => [`plot-${plot.id}`, "the page"]));
  if (summary) out.push(summary);
  const declared = new Set([LAYER_SUMMARY]);
  const take = (plugin: string, what: string, id: string) => {
    const owner = owners.get(id) ?? (RESERVED.includes(id) || id.startsWith("table-") ? "the page" : undefined);
    if (owner) {
      throw new PluginError(plugin, `Cannot draw ${what} as its id is taken by ${owner}: current value is ${show(id)}`);
    }
    owners.set(id, `plugin '${plugin}'`);
  };
  for (const p of plugins) {
    for (const s of p.report?.sections ?? []) {
      take(p.name, "report section", s.id);
      for (const t of s.tables) declared.add(t);
      if (!s.tables.some((t) => results.tables[t]?.rows.length)) continue;
      const c = s.build(results, context);
      if (!c) continue;
      for (const plot of c.plots) take(p.name, "plot", `plot-${plot.id}`);
      out.push({
        id: s.id,
        title: s.title,
        intro: c.intro,
        plots: c.plots,
        tables: c.tables ?? s.tables,
        ...(c.samples ? { samples: c.samples } : {}),
      });
    }
  }
  for (const [name, t] of Object.entries(results.tables)) if (!declared.has(name)) out.push(previewSection(name, t));
  return out;
}
