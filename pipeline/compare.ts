/**
 * Model selection without labels (Bansal et al., ../shared/SCIENCE.md section 1): ranks several runs' results
 * directories by their diversity measures, the mean neuron entropy (`neuron_entropy` table) and the mean pairwise
 * neuron MI (`neuron_mi` table), per layer and over all neurons / pairs, and sets each ranking beside
 * user-supplied metrics (e.g. accuracy) with Kendall's tau-b across runs.
 *
 * Which direction is "better" depends on the memorization type (heuristic: lower entropy, higher MI;
 * example-level: higher entropy, lower MI), so both rankings are printed and the sign of tau is left to the
 * reader. A table with a `step` column (`--by-step` runs) is read at its last step. Per-layer MI uses the pairs
 * inside that layer; the overall MI uses every pair of the table.
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
import * as arrow from "apache-arrow";
import * as pq from "parquet-wasm";
import { InputError, show } from "./errors.ts";
import { kendallTau } from "./kendall.ts";

/** A user-supplied metric per run directory. */
export interface Metric {
  name: string;
  values: Map<string, number>;
}

/** The diversity measures of one run: `entropy` / `mi` means by scope (`all` or a layer name). */
export interface RunMeasures {
  dir: string;
  /** Measure name (e.g. `entropy:all`, `mi:fc1`) -> value (nats). */
  values: Map<string, number>;
}

/** One measure's ranking: run directories from highest to lowest value, and tau against each metric. */
export interface Ranking {
  measure: string;
  order: string[];
  /** Metric name -> Kendall tau-b over the runs that have the metric. */
  tau: Map<string, number>;
}

/** Result of {@linkcode compareRuns}. */
export interface Comparison {
  runs: RunMeasures[];
  metrics: Metric[];
  /** Measures present in every run, overall (`:all`) ones first. */
  measures: string[];
  rankings: Ranking[];
}

/** Reads `<dir>/<name>.parquet` or `<dir>/<name>.arrow`; null when neither exists. */
export async function readResultTable(dir: string, name: string): Promise<arrow.Table | null> {
  for (const ext of ["parquet", "arrow"]) {
    const path = `${dir}/${name}.${ext}`;
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    try {
      return ext === "parquet" ? arrow.tableFromIPC(pq.readParquet(bytes).intoIPCStream()) : arrow.tableFromIPC(bytes);
    } catch (e) {
      throw new InputError(
        `Cannot read result table as it is not valid ${ext} (${e instanceof Error ? e.message : e}): current value is ${
          show(path)
        }`,
        { file: path },
      );
    }
  }
  return null;
}

/** Rows of the last step of a table (all rows when it has no `step` column or only null steps). */
function lastStepRows(t: arrow.Table): number[] {
  const step = t.getChild("step");
  const rows = Array.from({ length: t.numRows }, (_, i) => i);
  if (!step) return rows;
  let last: bigint | null = null;
  for (const i of rows) {
    const s = step.get(i) as bigint | null;
    if (s !== null && (last === null || s > last)) last = s;
  }
  return last === null ? rows : rows.filter((i) => step.get(i) === last);
}

function need(t: arrow.Table, col: string, path: string): arrow.Vector {
  const v = t.getChild(col);
  if (!v) {
    throw new InputError(`Cannot compare runs as the table has no column '${col}': current value is ${show(path)}`, {
      file: path,
      column: col,
    });
  }
  return v;
}

/** Mean entropy and mean MI, per layer and overall, of one results directory. */
export async function runMeasures(dir: string): Promise<RunMeasures> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch {
    throw new InputError(`Cannot compare runs as the results directory does not exist: current value is ${show(dir)}`, {
      file: dir,
    });
  }
  if (!info.isDirectory) {
    throw new InputError(`Cannot compare runs as the path is not a directory: current value is ${show(dir)}`, {
      file: dir,
    });
  }
  const values = new Map<string, number>();
  const add = (acc: Map<string, [number, number]>, key: string, v: number) => {
    const a = acc.get(key) ?? [0, 0];
    a[0] += v;
    a[1]++;
    acc.set(key, a);
  };
  const ent = await readResultTable(dir, "neuron_entropy");
  if (ent) {
    const path = `${dir}/neuron_entropy`, layer = need(ent, "layer", path), h = need(ent, "entropy", path);
    const acc = new Map<string, [number, number]>();
    for (const i of lastStepRows(ent)) {
      const v = h.get(i) as number | null;
      if (v === null || !Number.isFinite(v)) continue;
      add(acc, "entropy:all", v);
      add(acc, `entropy:${layer.get(i)}`, v);
    }
    for (const [k, [s, n]] of acc) values.set(k, s / n);
  }
  const mi = await readResultTable(dir, "neuron_mi");
  if (mi) {
    const path = `${dir}/neuron_mi`;
    const la = need(mi, "layer_a", path), lb = need(mi, "layer_b", path), m = need(mi, "mi", path);
    const acc = new Map<string, [number, number]>();
    for (const i of lastStepRows(mi)) {
      const v = m.get(i) as number | null;
      if (v === null || !Number.isFinite(v)) continue;
      add(acc, "mi:all", v);
      if (la.get(i) === lb.get(i)) add(acc, `mi:${la.get(i)}`, v);
    }
    for (const [k, [s, n]] of acc) values.set(k, s / n);
  }
  if (!ent && !mi) {
    throw new InputError(
      `Cannot compare runs as the directory holds no neuron_entropy or neuron_mi table (.parquet or .arrow): current value is ${
        show(dir)
      }`,
      { file: dir },
    );
  }
  return { dir, values };
}

/** Ranks the runs by every measure they all share and correlates each ranking with each metric. */
export async function compareRuns(dirs: string[], metrics: Metric[] = []): Promise<Comparison> {
  if (dirs.length < 2) {
    throw new InputError(
      `Cannot compare runs as at least 2 results directories are needed: current value is ${dirs.length}`,
    );
  }
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
  }
  const runs = await Promise.all(dirs.map(runMeasures));
  const shared = [...runs[0].values.keys()].filter((k) => runs.every((r) => r.values.has(k)));
  if (shared.length === 0) {
    throw new InputError(
      `Cannot compare runs as they share no diversity measure (each needs neuron_entropy or neuron_mi): current value is ${
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
      const with_ = runs.filter((r) => m.values.has(r.dir));
      tau.set(m.name, kendallTau(with_.map((r) => r.values.get(measure)!), with_.map((r) => m.values.get(r.dir)!)));
    }
    return { measure, order: sorted.map((r) => r.dir), tau };
  });
  return { runs, metrics, measures, rankings };
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
  lines.push(
    "",
    "entropy/mi: mean over neurons / pairs of the last step (nats); rank 1 = highest. Kendall tau-b across runs.",
  );
  return lines.join("\n");
}
