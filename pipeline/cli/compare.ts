/**
 * `deno task compare DIR... [--metric NAME=DIR:VALUE]... [--plugin PATH]...`: ranks results directories by the
 * measures the estimators declare (built-ins: mean neuron entropy, mean pairwise MI; per layer and overall) and
 * prints the rankings beside the metrics the user supplies, with Kendall's tau-b (see {@linkcode compareRuns}).
 *
 * Exit codes (pipeline/cli/_exit.ts): 0 done; 1 bad input (missing directory or tables); 2 bad usage (or a plugin
 * that fails to load); 70 internal error. Errors are one line on stderr, prefixed `compare:`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { compareRuns, formatComparison, type Metric } from "../report/compare.ts";
import { show } from "../../schemas/errors.ts";
import { UsageError } from "./_args.ts";
import { EXIT, EXIT_CODES_HELP, fail } from "./_exit.ts";
import { Registry } from "../core/registry.ts";
import { builtinPlugins } from "../../plugins/mod.ts";

const HELP = `Usage: deno task compare [--metric NAME=DIR:VALUE]... DIR DIR...

Ranks results directories (written by 'deno task analyze') by the measures their estimators declare (built-ins:
mean neuron entropy and mean pairwise MI of the entropy and mi estimators), per layer and over all neurons, and
sets each ranking beside the metrics given with --metric (repeatable; e.g. --metric accuracy=runs/a:0.91), with
Kendall's tau-b across runs.

Options:
  --metric NAME=DIR:VALUE   a metric value of one run (repeat per run and per metric)
  --plugin PATH             an estimator plugin module whose declared measures are ranked too (repeatable)
  --help                    show this help

${EXIT_CODES_HELP}`;

/** Parses one `--metric NAME=DIR:VALUE`. */
export function parseMetric(s: string): { name: string; dir: string; value: number } {
  const eq = s.indexOf("="), colon = s.lastIndexOf(":");
  if (eq <= 0 || colon < eq + 2 || colon === s.length - 1) {
    throw new UsageError(`Cannot parse --metric as it must be NAME=DIR:VALUE: current value is ${show(s)}`);
  }
  const value = Number(s.slice(colon + 1));
  if (!Number.isFinite(value)) {
    throw new UsageError(`Cannot parse --metric as its VALUE is not a finite number: current value is ${show(s)}`);
  }
  return { name: s.slice(0, eq), dir: trimDir(s.slice(eq + 1, colon)), value };
}

const trimDir = (d: string) => (d.length > 1 ? d.replace(/\/+$/, "") : d);

/** Parses argv and runs; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: {
        metric: { type: "string", multiple: true },
        plugin: { type: "string", multiple: true },
        help: { type: "boolean" },
      },
      allowPositionals: true,
    }));
  } catch (e) {
    return fail(new UsageError(`${e instanceof Error ? e.message : e}\n\n${HELP}`), "compare");
  }
  if (values.help) {
    console.log(HELP);
    return EXIT.ok;
  }
  try {
    const dirs = positionals.map(trimDir);
    const metrics = new Map<string, Metric>();
    for (const s of values.metric ?? []) {
      const m = parseMetric(s);
      const metric = metrics.get(m.name) ?? { name: m.name, values: new Map() };
      if (metric.values.has(m.dir)) {
        throw new UsageError(
          `Cannot use --metric as ${m.name} is given twice for one run: current value is ${show(s)}`,
        );
      }
      metric.values.set(m.dir, m.value);
      metrics.set(m.name, metric);
    }
    const registry = new Registry(builtinPlugins);
    for (const path of values.plugin ?? []) await registry.load(path);
    console.log(formatComparison(await compareRuns(dirs, [...metrics.values()], registry.all())));
    return EXIT.ok;
  } catch (e) {
    return fail(e, "compare");
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
