/**
 * Model selection without labels (Bansal et al., docs/science.md section 1): ranks several runs' results
 * directories by the measures the estimator plugins declare (`report.rank`, `pipeline/core/report_contract.ts`;
 * built-ins: mean neuron entropy, mean pairwise neuron MI, mean label MI, the Fisher trace per layer, mean unique
 * information in the weights and in the function), per layer and over all rows, and sets each ranking beside
 * user-supplied metrics (e.g. accuracy, given for every run) with Kendall's tau-b across runs.
 *
 * Which direction is "better" depends on the memorization type for entropy and MI (heuristic: lower entropy,
 * higher MI; example-level: higher entropy, lower MI), so rank 1 is the highest value and the sign of tau is left
 * to the reader (a measure may declare `better`). Tables are read with `readResults` (final files, or the part
 * files of a live `serve` run); a table with a `step` column (`--by-step` runs) is read at its last step.
 * Per-layer means use the rows whose layer columns all name that layer (for MI: the pairs inside the layer).
 *
 * @example
 * ```ts ignore
 * import { compareRuns, formatComparison } from "./compare.ts";
 * const c = await compareRuns(["runs/a", "runs/b", "runs/c"], [
 *   { name: "accuracy", values: new Map([["runs/a", 0.9], ["runs/b", 0.8], ["runs/c", 0.7]]) },
 * ]);
 * console.log(formatComparison(c));
 * ```
 *
 * @module
 */
import { InputError, show } from "../../schemas/errors.ts";
import { readResults, type ResultDirectory, type ResultTable } from "./results.ts";
import { kendallTau } from "./kendall.ts";
import { type EstimatorPlugin, PluginError } from "../core/plugin.ts";
import type { RankMeasure } from "../core/report_contract.ts";
import { builtinPlugins } from "../../plugins/mod.ts";

/** A user-supplied metric per run directory. */
export interface Metric {
  name: string;
  values: Map<string, number>;
}

/** The measures of one run: each declared measure's mean by scope (`all` or a layer name). */
export interface RunMeasures {
  dir: string;
  /** Measure name and scope (e.g. `entropy:all`, `mi:fc1`) -> value. */
  values: Map<string, number>;
}

/** One measure's ranking: run directories from highest to lowest value, and tau against each metric. */
export interface Ranking {
  measure: string;
  order: string[];
  /** Metric name -> Kendall tau-b over the runs. */
  tau: Map<string, number>;
}

/** Result of {@linkcode compareRuns}. */
export interface Comparison {
  runs: RunMeasures[];
  metrics: Metric[];
  /** Measures present in every run, overall (`:all`) ones first. */
  measures: string[];
  rankings: Ranking[];
  /** The declarations the runs were measured by. */
  declared: RankMeasure[];
}

/** Row indices of the last step of a table (all rows when it has no `step` column or only null steps). */
function lastStepRows(t: ResultTable): number[] {
  const rows = Array.from({ length: t.rows.length }, (_, i) => i);
  if (!t.columns.includes("step")) return rows;
  let last: number | null = null;
  for (const r of t.rows) {
    const s = r.step === null ? null : Number(r.step);
    if (s !== null && (last === null || s > last)) last = s;
  }
  return last === null ? rows : rows.filter((i) => Number(t.rows[i].step) === last);
}

function need(t: ResultTable, cols: string[], path: string): void {
  for (const col of cols) {
    if (!t.columns.includes(col)) {
      throw new InputError(`Cannot compare runs as the table has no column '${col}': current value is ${show(path)}`, {
        file: path,
        column: col,
      });
    }
  }
}

/** The rank measures the plugins declare; a name declared twice is a {@linkcode PluginError}. */
export function rankMeasures(plugins: readonly EstimatorPlugin[]): RankMeasure[] {
  const owner = new Map<string, string>();
  for (const p of plugins) {
    for (const m of p.report?.rank ?? []) {
      if (owner.has(m.name)) {
        throw new PluginError(
          p.name,
          `Cannot rank by a measure as plugin '${owner.get(m.name)}' declares its name: current value is ${
            show(m.name)
          }`,
        );
      }
      owner.set(m.name, p.name);
    }
  }
  return plugins.flatMap((p) => p.report?.rank ?? []);
}

/** "a", "a or b", "a, b or c". */
function orList(items: string[]): string {
  return items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} or ${items[items.length - 1]}`;
}

/** The tables the measures read, each once. */
const tablesOf = (measures: RankMeasure[]) => orList([...new Set(measures.map((m) => m.table))]);

/**
 * Each declared measure's mean, per layer and overall, of results already read (`readResults`); the keys are
 * `<name>:all` and `<name>:<layer>`. A measure whose table is absent has no key.
 */
export function measuresOf(results: ResultDirectory, declared: RankMeasure[]): Map<string, number> {
  const { tables, dir } = results;
  const values = new Map<string, number>();
  const acc = new Map<string, [number, number]>();
  const add = (key: string, v: number) => {
    const a = acc.get(key) ?? [0, 0];
    a[0] += v;
    a[1]++;
    acc.set(key, a);
  };
  for (const m of declared) {
    const t = tables[m.table];
    if (!t) continue;
    const where = Object.entries(m.where ?? {});
    need(t, [...m.layers, m.column, ...where.map(([c]) => c)], `${dir}/${m.table}`);
    for (const i of lastStepRows(t)) {
      const r = t.rows[i], v = r[m.column];
      if (typeof v !== "number" || !Number.isFinite(v) || !where.every(([c, x]) => r[c] === x)) continue;
      add(`${m.name}:all`, v);
      const layer = r[m.layers[0]];
      if (m.layers.length && m.layers.every((c) => r[c] === layer)) add(`${m.name}:${layer}`, v);
    }
  }
  for (const [k, [s, n]] of acc) values.set(k, s / n);
  return values;
}

/**
 * Each declared measure's mean, per layer and overall, of one results directory (read with `readResults`), by the
 * `plugins`' declarations (default: the built-ins).
 */
export async function runMeasures(
  dir: string,
  plugins: readonly EstimatorPlugin[] = builtinPlugins,
): Promise<RunMeasures> {
  const declared = rankMeasures(plugins);
  const results = await readResults(dir);
  if (!declared.some((m) => results.tables[m.table])) {
    throw new InputError(
      `Cannot compare runs as the directory holds no ${
        tablesOf(declared)
      } table (.parquet, .arrow or .csv): current value is ${show(dir)}`,
      { file: dir },
    );
  }
  return { dir, values: measuresOf(results, declared) };
}

/**
 * Checks that each metric names only compared runs and has a value for every one of them (Kendall's tau over a
 * subset of the runs would silently compare other things); throws {@linkcode InputError} otherwise.
 */
export function checkMetrics(metrics: Metric[], dirs: string[]): void {
  for (const m of metrics) {
    for (const d of m.values.keys()) {
      if (!dirs.includes(d)) {
        throw new InputError(
          `Cannot use metric '${m.name}' as its directory is not among the compared runs (${
            dirs.join(", ")
          }): current value is ${show(d)}`,
        );
      }
    }
    const missing = dirs.filter((d) => !m.values.has(d));
    if (missing.length) {
      throw new InputError(
        `Cannot use metric '${m.name}' as it has no value for ${missing.length} of the ${dirs.length} runs (give --metric ${m.name}=DIR:VALUE for each run): current value is missing for ${
          show(missing)
        }`,
      );
    }
  }
}

/**
 * Ranks the runs by every measure they all share and correlates each ranking with each metric; the measures are
 * those the `plugins` declare (default: the built-ins).
 */
export async function compareRuns(
  dirs: string[],
  metrics: Metric[] = [],
  plugins: readonly EstimatorPlugin[] = builtinPlugins,
): Promise<Comparison> {
  if (dirs.length < 2) {
    throw new InputError(
      `Cannot compare runs as at least 2 results directories are needed: current value is ${dirs.length}`,
    );
  }
  checkMetrics(metrics, dirs);
  const declared = rankMeasures(plugins);
  const runs = await Promise.all(dirs.map((d) => runMeasures(d, plugins)));
  const shared = [...runs[0].values.keys()].filter((k) => runs.every((r) => r.values.has(k)));
  if (shared.length === 0) {
    throw new InputError(
      `Cannot compare runs as they share no measure (each needs ${tablesOf(declared)}): current value is ${
        runs.map((r) => `${r.dir}: ${[...r.values.keys()].join(",") || "none"}`).join("; ")
      }`,
    );
  }
  const order = (k: string) => (k.endsWith(":all") ? 0 : 1);
  const measures = shared.sort((a, b) => order(a) - order(b) || a.localeCompare(b));
  const rankings = measures.map((measure) => {
    const sorted = [...runs].sort((a, b) => b.values.get(measure)! - a.values.get(measure)!);
    const tau = new Map<string, number>();
    for (const m of metrics) {
      tau.set(m.name, kendallTau(runs.map((r) => r.values.get(measure)!), runs.map((r) => m.values.get(r.dir)!)));
    }
    return { measure, order: sorted.map((r) => r.dir), tau };
  });
  return { runs, metrics, measures, rankings, declared };
}

/** The comparison as Markdown tables: values with ranks (1 = highest), then Kendall tau per measure and metric. */
export function formatComparison(c: Comparison): string {
  const rank = (measure: string, dir: string) => c.rankings.find((r) => r.measure === measure)!.order.indexOf(dir) + 1;
  const head = ["run", ...c.metrics.map((m) => m.name), ...c.measures.map((m) => `${m} (rank)`)];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  for (const r of c.runs) {
    const cells = [
      r.dir,
      ...c.metrics.map((m) => (m.values.has(r.dir) ? String(m.values.get(r.dir)) : "-")),
      ...c.measures.map((m) => `${r.values.get(m)!.toFixed(4)} (${rank(m, r.dir)})`),
    ];
    lines.push(`| ${cells.join(" | ")} |`);
  }
  if (c.metrics.length) {
    lines.push("", `| measure | ${c.metrics.map((m) => `tau vs ${m.name}`).join(" | ")} |`);
    lines.push(`|---|${c.metrics.map(() => "---").join("|")}|`);
    for (const r of c.rankings) {
      lines.push(`| ${r.measure} | ${c.metrics.map((m) => r.tau.get(m.name)!.toFixed(3)).join(" | ")} |`);
    }
  }
  lines.push("", "Rank 1 = highest. Kendall tau-b across runs. Each measure at the last step:");
  for (const m of usedMeasures(c)) lines.push(`- ${describeMeasure(m)}`);
  return lines.join("\n");
}

/** The declared measures that the comparison ranks by, in declaration order. */
export function usedMeasures(c: Comparison): RankMeasure[] {
  const names = new Set(c.measures.map((k) => k.slice(0, k.indexOf(":"))));
  return c.declared.filter((m) => names.has(m.name));
}

/** One line on what a measure is: `mi: mean of neuron_mi.mi over pairs (nats); higher is better`. */
export function describeMeasure(m: RankMeasure): string {
  const where = Object.entries(m.where ?? {}).map(([k, v]) => `${k} = ${v}`).join(", ");
  return `${m.name}: mean of ${m.table}.${m.column} over ${m.over}${where ? ` (rows with ${where})` : ""} (${m.unit})${
    m.better ? `; ${m.better} is better` : ""
  }`;
}
