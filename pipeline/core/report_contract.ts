/**
 * The report part of the plugin contract (`EstimatorPlugin.report`): how `report` draws a plugin's tables and what
 * `compare` can rank runs by, declared by the plugin so that neither host names an estimator. A section's `build`
 * gets the results directory as read back (`readResults`) and returns plots (Vega-Lite specs); the shared plot
 * helpers are in `pipeline/core/plot_kit.ts`. See docs/report.md, "Sections declared by plugins".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkReport, type PluginReport } from "./report_contract.ts";
 * const report: PluginReport = {
 *   sections: [{
 *     id: "rows",
 *     title: "Rows",
 *     tables: ["row_count"],
 *     build: (results) => ({ intro: `${results.tables.row_count.rows[0].rows} rows.`, plots: [] }),
 *   }],
 *   rank: [{ name: "rows", table: "row_count", column: "rows", layers: [], over: "batches", unit: "rows" }],
 * };
 * const said: string[] = [];
 * checkReport(report, (m) => said.push(m));
 * checkReport({ sections: [{ id: "Rows" }] } as never, (m) => said.push(m));
 * assert.deepEqual(said.length, 1);
 * assert.match(said[0], /report\.sections\[0\]\.id is invalid/);
 * ```
 *
 * @module
 */
import { show } from "../../schemas/errors.ts";

/** One cell read back: bigints become numbers (strings when beyond 2^53), dates and the rest as Arrow gives them. */
export type Cell = number | string | boolean | null;

/** One result table read back. */
export interface ResultTable {
  /** Column names in schema order. */
  columns: string[];
  /** Rows as objects keyed by column name. */
  rows: Record<string, Cell>[];
  /** Files it was read from, relative to the directory. */
  files: string[];
  /** Schema metadata. */
  metadata: Record<string, string>;
}

/** A results directory read back. */
export interface ResultDirectory {
  /** The directory as given. */
  dir: string;
  /** `run.json`, or null when absent (e.g. a live run still going). */
  run: Record<string, unknown> | null;
  /** Tables by name. */
  tables: Record<string, ResultTable>;
}

/** One run of a page that shows several: its name (e.g. the directory's last part) and its results. */
export interface ReportRun {
  name: string;
  results: ResultDirectory;
}

/** One plot: a Vega-Lite spec with a title and a note (what was drawn, what was reduced or left out). */
export interface ReportPlot {
  /** Unique in the page (the element is `plot-<id>`). */
  id: string;
  title: string;
  note: string;
  spec: Record<string, unknown>;
}

/** A list of samples (rows keyed by `sample_id`), drawn with their input images when `report --images` is given. */
export interface SampleGroup {
  title: string;
  /** Each sample's id, its caption lines (`[label, value]`), and whether the input flags it (e.g. a flipped label). */
  samples: { id: string; lines: [string, Cell][]; flagged?: boolean }[];
}

/** What a section's `build` returns. */
export interface SectionContent {
  /** One paragraph under the section's title. */
  intro: string;
  plots: ReportPlot[];
  /** The tables it drew, when not all of the section's `tables`. */
  tables?: string[];
  /** Samples shown below the plots. */
  samples?: SampleGroup[];
  /** One-line warnings the page highlights (e.g. values clipped, non-finite values, ties), as sentences. */
  warnings?: string[];
}

/** What the host passes to `build` besides the results. */
export interface ReportContext {
  /** `report --samples`: how many samples a sample group holds at most. */
  samples: number;
  /** `report --bootstrap`: resamples of a bootstrap interval of a mean (0: no intervals). */
  bootstrap: number;
  /** `report --seed`: the seed of every seeded choice (bootstrap draws, tie-breaking in clustering). */
  seed: number;
}

/** One section of the page: the plots of one table or a group of tables. */
export interface ReportSection {
  /** The section's anchor (`[a-z][a-z0-9-]*`), unique in the page. */
  id: string;
  /** Its heading (and the navigation link). */
  title: string;
  /** The tables it reads: `build` runs when at least one of them has rows. */
  tables: string[];
  /** True when its content may list samples (`report --images` then has something to draw). */
  samples?: boolean;
  /** The section, or null when there is nothing to show. */
  build(results: ResultDirectory, context: ReportContext): SectionContent | null;
  /**
   * The section for a page of several runs, overlaid (each run named; colours by run), or null when there is
   * nothing to show. Without it, the page shows `build`'s plots for each run in turn.
   */
  overlay?(runs: ReportRun[], context: ReportContext): SectionContent | null;
}

/**
 * A column the plugin adds to the shared per-layer table `layer_summary` (keys `layer`, `step`): with two steps or
 * more, the host draws it per layer over steps, in the section "Layer summary over training".
 */
export interface LayerSummaryMeasure {
  /** The column, a mean over the layer's neurons or pairs. */
  column: string;
  /** Short name in the plot's title, e.g. `entropy`. */
  label: string;
  /** Axis title with the unit, e.g. `mean entropy (nats)`. */
  axis: string;
  /** What the mean is over, e.g. `neurons`, `pairs of neurons`. */
  over: string;
  /** Columns drawn as a band around the line. */
  band?: { lo: string; hi: string; label: string };
  /**
   * Where the mean comes from, for bootstrap intervals (`report --bootstrap`): `table.column` with the layer in the
   * `layers` columns and the neuron in the `units` columns (one each for a mean over neurons, two for a mean over
   * pairs of neurons, which resamples neurons).
   */
  source?: { table: string; column: string; layers: string[]; units: string[] };
}

/**
 * A measure `compare` can rank runs by: the mean of `column` over the finite rows of `table` at its last step,
 * over all rows (`<name>:all`) and per layer (`<name>:<layer>`, over the rows whose `layers` columns all hold
 * that layer).
 */
export interface RankMeasure {
  /** `[a-z][a-z0-9_-]*`, unique among the plugins. */
  name: string;
  table: string;
  column: string;
  /** Columns naming the layer of a row (none: only `<name>:all`). */
  layers: string[];
  /** Only the rows whose columns hold these values (e.g. `{ level: "layer" }`). */
  where?: Record<string, string>;
  /** What the mean is over, e.g. `neurons`. */
  over: string;
  unit: string;
  /** Which end is better where the science says so; omitted where it depends on the run (e.g. entropy, MI). */
  better?: "higher" | "lower";
}

/** Everything a plugin declares for `report` and `compare`. */
export interface PluginReport {
  /**
   * The estimator's summary in run.json (`estimators[].summary`, without `warnings`) as one sentence, and the
   * warnings it implies (e.g. clipped values); the page shows the facts as `key value` pairs without it.
   */
  describe?(summary: Record<string, unknown>): { text: string; warnings?: string[] };
  layerSummary?: LayerSummaryMeasure[];
  /** Its sections, in reading order. */
  sections?: ReportSection[];
  rank?: RankMeasure[];
}

const ID = /^[a-z][a-z0-9-]*$/;
const RANK_NAME = /^[a-z][a-z0-9_-]*$/;
type Check = (v: unknown) => boolean;
const text: Check = (v) => typeof v === "string" && v.length > 0;
const texts: Check = (v) => Array.isArray(v) && v.every(text);
const optional = (c: Check): Check => (v) => v === undefined || c(v);
const FIELDS: Record<Exclude<keyof PluginReport, "describe">, [Record<string, Check>, string]> = {
  layerSummary: [
    {
      column: text,
      label: text,
      axis: text,
      over: text,
      band: optional((b) =>
        typeof b === "object" && b !== null && ["lo", "hi", "label"].every((k) => text(b[k as never]))
      ),
      source: optional((x) => {
        const o = x as Record<string, unknown> | null;
        return typeof o === "object" && o !== null && text(o.table) && text(o.column) && texts(o.layers) &&
          texts(o.units) && (o.layers as string[]).length === (o.units as string[]).length &&
          [1, 2].includes((o.units as string[]).length);
      }),
    },
    "column, label, axis, over (strings), an optional band {lo, hi, label} and an optional source {table, column, layers, units}",
  ],
  sections: [{
    id: (v) => typeof v === "string" && ID.test(v),
    title: text,
    tables: (v) => texts(v) && (v as string[]).length > 0,
    samples: optional((v) => typeof v === "boolean"),
    build: (v) => typeof v === "function",
    overlay: optional((v) => typeof v === "function"),
  }, `id (${ID}), title, tables (a non-empty list), a build function and an optional overlay function`],
  rank: [
    {
      name: (v) => typeof v === "string" && RANK_NAME.test(v),
      table: text,
      column: text,
      layers: texts,
      where: optional((v) =>
        typeof v === "object" && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === "string")
      ),
      over: text,
      unit: text,
      better: optional((v) => v === "higher" || v === "lower"),
    },
    `name (${RANK_NAME}), table, column, layers (a list), an optional where (column: value), over, unit and an optional better (higher or lower)`,
  ],
};

/** Checks a plugin's `report` declaration; calls `fail` with a one-line message at the first fault. */
export function checkReport(report: PluginReport, fail: (message: string) => void): void {
  if (typeof report !== "object" || report === null) {
    return fail(`Cannot register plugin as 'report' must be an object: current value is ${show(report)}`);
  }
  for (const [key, value] of Object.entries(report)) {
    if (key === "describe") {
      if (typeof value !== "function") {
        return fail(`Cannot register plugin as report.describe must be a function: current value is ${show(value)}`);
      }
      continue;
    }
    const spec = FIELDS[key as Exclude<keyof PluginReport, "describe">];
    if (!spec) return fail(`Cannot register plugin as report.${key} is unknown: current value is ${show(value)}`);
    if (!Array.isArray(value)) {
      return fail(`Cannot register plugin as report.${key} must be a list: current value is ${show(value)}`);
    }
    for (let i = 0; i < value.length; i++) {
      const item = value[i] as Record<string, unknown>;
      const bad = Object.entries(spec[0]).find(([k, ok]) => !ok(item?.[k]));
      if (bad) {
        return fail(
          `Cannot register plugin as report.${key}[${i}].${bad[0]} is invalid (each needs ${
            spec[1]
          }): current value is ${show(item?.[bad[0]])}`,
        );
      }
    }
  }
}
