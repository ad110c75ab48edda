/**
 * `deno task compare DIR... [--metric NAME=DIR:VALUE]... [--plugin PATH]...`: ranks results directories by the
 * measures the estimators declare (built-ins: entropy, pairwise MI, label MI, Fisher trace, unique information; per
 * layer and overall) and prints the rankings beside the metrics the user supplies (one value per run), with
 * Kendall's tau-b (see {@linkcode compareRuns}).
 *
 * Exit codes (pipeline/cli/_exit.ts): 0 done; 1 bad input (missing directory or tables); 2 bad usage (or a plugin
 * that fails to load); 70 internal error. Errors are one line on stderr, prefixed `compare:`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { compareRuns, formatComparison } from "../report/compare.ts";
import { parseMetrics, trimDir, UsageError } from "./_args.ts";
import { EXIT, EXIT_CODES_HELP, fail } from "./_exit.ts";
import { Registry } from "../core/registry.ts";
import { builtinPlugins } from "../../plugins/mod.ts";

const HELP = `Usage: deno task compare [--metric NAME=DIR:VALUE]... DIR DIR...

Ranks results directories (written by 'deno task analyze') by the measures their estimators declare (built-ins:
mean neuron entropy, mean pairwise MI, mean label MI, Fisher trace per layer, mean unique information in the
weights and in the function), per layer and overall, and sets each ranking beside the metrics given with --metric
(e.g. --metric accuracy=runs/a:0.91, one for every run), with Kendall's tau-b across runs.

Options:
  --metric NAME=DIR:VALUE   a metric value of one run (repeat for every run, and per metric)
  --plugin PATH             an estimator plugin module (local path) whose declared measures are ranked too
                            (repeatable)
  --allow-remote-plugin     let --plugin load a URL (its code runs with this command's permissions)
  --help                    show this help

${EXIT_CODES_HELP}`;

/** Parses argv and runs; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: {
        metric: { type: "string", multiple: true },
        plugin: { type: "string", multiple: true },
        "allow-remote-plugin": { type: "boolean" },
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
    const metrics = parseMetrics(values.metric ?? []);
    const registry = new Registry(builtinPlugins);
    for (const path of values.plugin ?? []) {
      await registry.load(path, { allowUrl: Boolean(values["allow-remote-plugin"]) });
    }
    console.log(formatComparison(await compareRuns(dirs, metrics, registry.all())));
    return EXIT.ok;
  } catch (e) {
    return fail(e, "compare");
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
