/**
 * `deno task analyze [options] <input...>`: the command-line front end of {@linkcode analyze}.
 *
 * Exit codes (pipeline/cli/_exit.ts): 0 complete; 1 bad input (results of the complete batches are written,
 * `complete: false`); 2 bad usage (flags, option values, plugins, `--backend`); 70 internal error; 130
 * interrupted (SIGINT/SIGTERM: the results of the batches read are written, `complete: false`). Errors are
 * one line on stderr, never a stack trace (set `INFOTAP_DEBUG=1` for one).
 *
 * @module
 */
import type * as arrow from "apache-arrow";
import { analyze } from "../analyze/run.ts";
import type { Registry } from "../core/registry.ts";
import { show } from "../../schemas/errors.ts";
import { VERSION } from "../core/version.ts";
import { overviewTable } from "../core/estimator_set.ts";
import { textTable } from "../core/text_table.ts";
import {
  BACKEND_FLAG,
  type CoreFlag,
  list,
  parseBackend,
  parseCommandLine,
  parseFormat,
  PLUGIN_FLAGS,
  pluginHelp,
  UsageError,
} from "./_args.ts";
import { EXIT, EXIT_CODES_HELP, fail } from "./_exit.ts";
import { Signals } from "./_signals.ts";
import { parseBytes } from "../core/memory.ts";
import { MAX_THREADS } from "../../plugins/kernels/threads.ts";

const CORE: Record<string, CoreFlag> = {
  estimators: { type: "string", arg: "A,B", help: "estimators to run (default: the defaults for the input's kind)" },
  out: { type: "string", arg: "DIR", help: "output directory, created if missing (default: infotap-results)" },
  format: {
    type: "string",
    arg: "F",
    help: "parquet | arrow | csv | both (parquet,arrow) | a list, e.g. parquet,csv (default: parquet, zstd)",
  },
  "by-step": { type: "boolean", help: "one row set per training step (needs a 'step' column)" },
  layers: { type: "string", arg: "A,B", help: "analyse only these layers (tensor columns)" },
  neurons: {
    type: "string",
    arg: "SPEC",
    help: "analyse only these neurons of every layer, e.g. 0:64 (indices i and ranges a:b, comma-separated)",
  },
  seed: { type: "string", arg: "N", help: "seed for every seeded choice (default: 0)" },
  threads: {
    type: "string",
    arg: "N",
    help:
      "threads for every parallel path (default 0: INFOTAP_THREADS, else the cores, at most 8); order-free estimators use a worker pool when it is given or the input is >= 64 MiB",
  },
  backend: BACKEND_FLAG,
  "max-memory": {
    type: "string",
    arg: "SIZE",
    help: "refuse a run whose estimators would need more (e.g. 8G, 512MiB; default: 75% of physical memory)",
  },
  ...PLUGIN_FLAGS,
  quiet: { type: "boolean", help: "no progress bar and no summary on stdout" },
  help: { type: "boolean", help: "show this help" },
  version: { type: "boolean", help: "print the version" },
};

function helpText(registry: Registry): string {
  const lines = [
    `infotap ${VERSION}: where is the information in a neural network (entropy, MI, Fisher, unique information)`,
    "",
    "Usage: deno task analyze [options] <input...>",
    "  <input>: Arrow IPC stream (.arrows) or file (.arrow) in wire format v1 (schemas/README.md); '-' for stdin.",
    "",
    "Options:",
  ];
  const row = (flag: string, help: string) => lines.push(`  ${flag.padEnd(28)} ${help}`);
  for (const [k, v] of Object.entries(CORE)) row(`--${k}${v.arg ? ` ${v.arg}` : ""}`, v.help);
  pluginHelp(registry, row, lines);
  lines.push("", "Outputs: DIR/<table>.parquet (or .arrow) per result table, and DIR/run.json.", "", EXIT_CODES_HELP);
  return lines.join("\n");
}

/** Parses argv and runs; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  // SIGINT/SIGTERM from the first line: reading stops, the results of the batches read are written
  // (complete: false) and the temporary copy of stdin is removed; later signals do not interrupt that.
  const stop = new AbortController();
  const signals = new Signals(() => "finishing, writing the results of the batches read");
  signals.first.then((s) => stop.abort(s));
  try {
    const parsed = await parseCommandLine(argv, CORE, true);
    const { registry, options, estimators } = parsed;
    const v = parsed.values;
    if (v.help) {
      console.log(helpText(registry));
      return EXIT.ok;
    }
    if (v.version) {
      console.log(VERSION);
      return EXIT.ok;
    }
    if (parsed.positionals.length === 0) {
      throw new UsageError("Cannot analyze as no input was given: current value is none (see --help)");
    }
    const format = parseFormat(v.format);
    const seed = v.seed === undefined ? 0 : Number(v.seed);
    if (!Number.isSafeInteger(seed)) {
      throw new UsageError(`Cannot use --seed as it must be an integer: current value is ${show(v.seed)}`);
    }
    const threads = v.threads === undefined ? 0 : Number(v.threads);
    if (!Number.isInteger(threads) || threads < 0 || threads > MAX_THREADS) {
      throw new UsageError(
        `Cannot use --threads as it must be an integer from 0 to ${MAX_THREADS}: current value is ${show(v.threads)}`,
      );
    }
    const backend = parseBackend(v.backend);
    let maxMemory: number | undefined;
    try {
      maxMemory = v["max-memory"] === undefined ? undefined : parseBytes(String(v["max-memory"]), "--max-memory");
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const out = (v.out as string | undefined) ?? "infotap-results";
    const quiet = Boolean(v.quiet);
    const result = await analyze({
      inputs: parsed.positionals,
      estimators,
      options,
      byStep: Boolean(v["by-step"]),
      seed,
      threads,
      backend,
      layers: list(v.layers),
      neurons: v.neurons as string | undefined,
      out,
      format,
      registry,
      progress: quiet ? false : undefined,
      maxMemory,
      signal: stop.signal,
      extra: { argv },
    });
    if (!quiet && result.written) printSummary(result.tables, out, result.run, registry);
    for (const w of result.warnings) console.error(`infotap: warning: ${w}`);
    if (!result.complete) {
      console.error(`infotap: error: ${result.error}`);
      const rows = (result.run.inputs as { rows: number }[] | undefined)?.reduce((a, i) => a + i.rows, 0) ?? 0;
      if (result.written && rows > 0) {
        console.error(`infotap: results of the batches read before the error are in ${out} (run.json: complete false)`);
      } else if (result.written) {
        console.error(`infotap: nothing was analysed; ${out}/run.json says why (complete false)`);
      }
      return signals.received ? EXIT.interrupted : EXIT.input;
    }
    return EXIT.ok;
  } catch (e) {
    return fail(e);
  } finally {
    signals.dispose();
  }
}

/** Prints the estimators' overview table (e.g. per-layer summaries), or nothing, and where the files went. */
function printSummary(
  tables: Record<string, arrow.Table>,
  out: string,
  run: Record<string, unknown>,
  registry: Registry,
): void {
  const plugins = (run.estimators as { name: string }[]).map((e) => registry.get(e.name));
  const t = overviewTable(plugins, tables);
  if (t && t.numRows > 0) {
    const names = t.schema.fields.map((f) => f.name).filter((n) =>
      !(n === "step" && t.getChild("step")!.nullCount === t.numRows)
    );
    const rows = Array.from({ length: Math.min(t.numRows, 40) }, (_, i) => i);
    for (const line of textTable(t, names, rows)) console.log(line);
    if (t.numRows > 40) console.log(`... ${t.numRows - 40} more rows`);
  }
  const files = (run.files as string[] | undefined) ?? [];
  const timing = run.timings as Record<string, number>;
  console.log(`wrote ${files.length} table file(s) and run.json to ${out} in ${timing.total_s.toFixed(2)} s`);
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
