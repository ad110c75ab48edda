/**
 * The report's sections, from what the plugins declare (`EstimatorPlugin.report`, `pipeline/core/report_contract.ts`):
 * the shared layer summary over steps (the columns plugins add to `layer_summary`, with bootstrap intervals when
 * asked), then each plugin's sections in registration order, then a preview of every table that no section
 * declares. With several runs, each section's `overlay` draws them together (else `build` draws each run in turn).
 * The host names no estimator.
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
  ReportRun,
  ResultDirectory,
  ResultTable,
  SampleGroup,
  SectionContent,
} from "../core/report_contract.ts";
import { show } from "../../schemas/errors.ts";
import { builtinPlugins } from "../../plugins/mod.ts";
import * as kit from "../core/plot_kit.ts";

/** The per-layer table every estimator may add columns to (keys `layer`, `step`); the host draws it. */
export const LAYER_SUMMARY = "layer_summary";
/** Rows shown of a table that no plugin declares. */
export const PREVIEW_ROWS = 10;
/** Anchors of the page's own parts, which no plugin section may take. */
const RESERVED = ["run", "runs", "warnings", "metrics", "layer-summary", "summary", "tables"];
/** The context when none is given: 8 samples, no bootstrap, seed 0. */
export const DEFAULT_CONTEXT: ReportContext = { samples: 8, bootstrap: 0, seed: 0 };

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
  /** Warnings the page highlights (each a sentence). */
  warnings?: string[];
  /** A table no plugin declares: its first rows as they are. */
  preview?: { columns: string[]; rows: Cell[][] };
}

/** Bootstrap intervals of a declared layer-summary measure by `layer\0step`, from its `source` table. */
export function layerIntervals(
  results: ResultDirectory,
  m: LayerSummaryMeasure,
  context: ReportContext,
): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  const src = m.source, t = src && results.tables[src.table];
  if (!src || !t || context.bootstrap < 1) return out;
  const groups = new Map<string, kit.Row[]>();
  for (const r of t.rows) {
    const layer = r[src.layers[0]];
    if (!src.layers.every((c) => r[c] === layer)) continue;
    const key = `${layer}\u0000${kit.stepLabel(kit.stepOf(r))}`;
    let g = groups.get(key);
    if (!g) groups.set(key, g = []);
    g.push(r);
  }
  for (const [key, rows] of groups) {
    if (src.units.length === 1) {
      const v = kit.finite(rows, src.column).values;
      if (v.length > 1) out.set(key, kit.bootstrapMean(v, context.bootstrap, context.seed));
      continue;
    }
    const index = new Map<string, number>();
    const at = (c: Cell) => {
      const k = String(c);
      if (!index.has(k)) index.set(k, index.size);
      return index.get(k)!;
    };
    const pairs = rows.map((r) => ({ a: at(r[src.units[0]]), b: at(r[src.units[1]]), v: kit.num(r[src.column]) }));
    const n = index.size, mat = new Float64Array(n * n).fill(NaN);
    for (const p of pairs) if (p.v !== null) mat[p.a * n + p.b] = mat[p.b * n + p.a] = p.v;
    if (n > 2) out.set(key, kit.bootstrapPairMean(n, (i, j) => mat[i * n + j], context.bootstrap, context.seed));
  }
  return out;
}

/** The note on bootstrap intervals, or "" when there are none. */
function intervalNote(context: ReportContext, pairs: boolean): string {
  return context.bootstrap > 0
    ? ` Error bars: 95% percentile bootstrap interval of the mean (${context.bootstrap} resamples of the neurons${
      pairs ? ", pairs of distinct draws" : ""
    }, seed ${context.seed}).`
    : "";
}

/** The declared `layer_summary` columns per layer over steps, for one run or several (coloured by run). */
function layerSummarySection(
  runs: ReportRun[],
  measures: LayerSummaryMeasure[],
  context: ReportContext,
): Section | null {
  const multi = runs.length > 1;
  const with_ = runs.filter((r) => r.results.tables[LAYER_SUMMARY]?.rows.length);
  if (with_.length === 0) return null;
  const maxSteps = Math.max(
    ...with_.map((r) => kit.stepsOf(r.results.tables[LAYER_SUMMARY].rows).filter((s) => s !== null).length),
  );
  if (!multi && maxSteps < 2) return null;
  const layers = kit.layerOrder(
    with_[0].results,
    with_.flatMap((r) => r.results.tables[LAYER_SUMMARY].rows.map((x) => String(x.layer))),
  );
  const names = runs.map((r) => r.name);
  const plots: ReportPlot[] = [];
  for (const m of measures) {
    const field = m.column, p10 = m.band?.lo, p90 = m.band?.hi;
    const data: Record<string, unknown>[] = [];
    for (const { name, results } of with_) {
      const t = results.tables[LAYER_SUMMARY];
      if (!t.columns.includes(field)) continue;
      const ci = layerIntervals(results, m, context);
      const last = kit.lastStep(t.rows).step;
      for (const r of t.rows) {
        const v = kit.num(r[field]);
        // One run: the steps; several runs over one step each: the last step.
        if (v === null || (multi ? maxSteps < 2 && kit.stepOf(r) !== last : kit.stepOf(r) === null)) continue;
        const c = ci.get(`${r.layer}\u0000${kit.stepLabel(kit.stepOf(r))}`);
        data.push({
          run: name,
          layer: String(r.layer),
          step: kit.stepOf(r),
          value: kit.r4(v),
          ...(!multi && p10 && p90 && kit.num(r[p10]) !== null && kit.num(r[p90]) !== null
            ? { lo: kit.r4(kit.num(r[p10])!), hi: kit.r4(kit.num(r[p90])!) }
            : {}),
          ...(c && Number.isFinite(c[0]) ? { ci_lo: kit.r4(c[0]), ci_hi: kit.r4(c[1]) } : {}),
        });
      }
    }
    if (data.length === 0) continue;
    const y = { field: "value", type: "quantitative", title: m.axis, scale: { zero: false } };
    const hasCi = data.some((d) => "ci_lo" in d);
    const ci = (color: Record<string, unknown>, x: Record<string, unknown>) => ({
      mark: { type: "errorbar", ticks: true },
      encoding: { x, y: { field: "ci_lo", type: "quantitative", title: m.axis }, y2: { field: "ci_hi" }, color },
    });
    let spec: Record<string, unknown>;
    let note: string;
    if (!multi) {
      const color = { field: "layer", type: "nominal", sort: layers, scale: { scheme: "tableau10" } };
      const x = kit.STEP_X;
      const layer: Record<string, unknown>[] = [];
      const band = p10 && data.some((d) => "lo" in d);
      if (band) {
        layer.push({
          mark: { type: "area", opacity: 0.15 },
          encoding: { x, y: { field: "lo", type: "quantitative", title: m.axis }, y2: { field: "hi" }, color },
        });
      }
      layer.push({ mark: { type: "line", point: true, tooltip: true }, encoding: { x, y, color } });
      if (hasCi) layer.push(ci(color, x));
      spec = kit.fit({ $schema: kit.SCHEMA, width: 520, height: 240, data: { values: data }, layer });
      note =
        `Line: mean over the layer's ${m.over}${
          band ? `; band: ${m.band!.label}` : ""
        }. ${maxSteps} steps, ${layers.length} layer(s).` +
        intervalNote(context, (m.source?.units.length ?? 1) > 1);
    } else {
      const color = kit.runColor(names);
      const over = maxSteps >= 2;
      const x = over
        ? kit.STEP_X
        : { field: "run", type: "nominal", sort: names, title: null, axis: { labelAngle: 0 } };
      const layer: Record<string, unknown>[] = [
        {
          mark: { type: over ? "line" : "point", point: over, tooltip: true, size: over ? undefined : 80 },
          encoding: { x, y, color },
        },
      ];
      if (hasCi) layer.push(ci(color, x));
      spec = kit.panels(data, "layer", layers, { layer });
      note =
        `Mean over the layer's ${m.over}, ${over ? "over training steps" : "at each run's last step"}; colour: run.` +
        intervalNote(context, (m.source?.units.length ?? 1) > 1);
    }
    plots.push({
      id: `summary-${field}`,
      title: `${m.label} ${multi ? "per run" : "over training"} (${LAYER_SUMMARY}.${field})`,
      note,
      spec,
    });
  }
  if (plots.length === 0) return null;
  return {
    id: "summary",
    title: multi ? "Layer summary, runs overlaid" : "Layer summary over training",
    intro: `Per-layer summaries${multi ? ` of ${with_.length} run(s)` : " by training step"} (table ${LAYER_SUMMARY}).`,
    plots,
    tables: [LAYER_SUMMARY],
  };
}

/** A table that no plugin declares: its size and first rows, so that it does not vanish from the page. */
function previewSection(name: string, t: ResultTable, run?: string): Section {
  const rows = t.rows.slice(0, PREVIEW_ROWS);
  return {
    id: `table-${name}`,
    title: `Table ${name}`,
    intro:
      `${
        run ? `Run ${run}: ` : ""
      }${t.rows.length} row(s), ${t.columns.length} column(s). No report section of the estimators loaded ` +
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

/** Several runs drawn by `build`, one after the other (a section that declares no overlay). */
function eachRun(
  build: (r: ResultDirectory, c: ReportContext) => SectionContent | null,
  runs: ReportRun[],
  context: ReportContext,
): SectionContent | null {
  const parts = runs.map((r, k) => ({ r, k, c: build(r.results, context) })).filter((p) => p.c);
  if (parts.length === 0) return null;
  return {
    intro: `${parts[0].c!.intro} Drawn for each run in turn (this section declares no overlay).`,
    plots: parts.flatMap(({ r, k, c }) =>
      c!.plots.map((p) => ({ ...p, id: `r${k}-${p.id}`, title: `${r.name}: ${p.title}` }))
    ),
    tables: [...new Set(parts.flatMap(({ c }) => c!.tables ?? []))],
    warnings: parts.flatMap(({ r, c }) => (c!.warnings ?? []).map((w) => `${r.name}: ${w}`)),
  };
}

/**
 * Every section that the tables allow, in reading order: the layer summary, the sections the `plugins` declare
 * (built-ins by default), then a preview of each table none of them declares. `input` is one results directory,
 * or several named runs (drawn overlaid). A section id or plot id taken twice is a {@linkcode PluginError}.
 */
export function buildSections(
  input: ResultDirectory | ReportRun[],
  plugins: readonly EstimatorPlugin[] = builtinPlugins,
  context: ReportContext = DEFAULT_CONTEXT,
): Section[] {
  const runs = Array.isArray(input) ? input : [{ name: input.dir, results: input }];
  const multi = runs.length > 1;
  const out: Section[] = [];
  const summary = layerSummarySection(runs, plugins.flatMap((p) => p.report?.layerSummary ?? []), context);
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
      const have = runs.filter((r) => s.tables.some((t) => r.results.tables[t]?.rows.length));
      if (have.length === 0) continue;
      const c = !multi
        ? s.build(have[0].results, context)
        : s.overlay
        ? s.overlay(have, context)
        : eachRun(s.build, have, context);
      if (!c) continue;
      for (const plot of c.plots) take(p.name, "plot", `plot-${plot.id}`);
      out.push({
        id: s.id,
        title: s.title,
        intro: c.intro,
        plots: c.plots,
        tables: c.tables ?? s.tables,
        ...(c.samples ? { samples: c.samples } : {}),
        ...(c.warnings?.length ? { warnings: c.warnings } : {}),
      });
    }
  }
  const previewed = new Set<string>();
  for (const { name: run, results } of runs) {
    for (const [name, t] of Object.entries(results.tables)) {
      if (declared.has(name) || previewed.has(name)) continue;
      previewed.add(name);
      out.push(previewSection(name, t, multi ? run : undefined));
    }
  }
  return out;
}
