/**
 * `deno task analyze [options] <input...>`: the command-line front end of {@linkcode analyze}.
 *
 * Exit codes: 0 complete; 1 bad input (results of the complete batches are written, `complete: false`);
 * 2 bad usage; 70 internal error. Errors are one line on stderr, never a stack trace (set
 * `INFOTAP_DEBUG=1` for one).
 *
 * @module
 */
import type * as arrow from "apache-arrow";
import { analyze } from "../analyze/run.ts";
import type { Registry } from "../core/registry.ts";
import { PluginError } from "../core/plugin.ts";
import { InputError, show } from "../../schemas/errors.ts";
import { VERSION } from "../core/version.ts";
import {
  BACKEND_FLAG,
  type CoreFlag,
  list,
  parseBackend,
  parseCommandLine,
  parseFormat,
  pluginHelp,
  UsageError,
} from "./_args.ts";
import { BackendError } from "../../plugins/kernels/gpu/device.ts";

const CORE: Record<string, CoreFlag> = {
  estimators: { type: "string", arg: "A,B", help: "estimators to run (default: the defaults for the input's kind)" },
  out: { type: "string", arg: "DIR", help: "output directory, created if missing (default: infotap-results)" },
  format: { type: "string", arg: "F", help: "parquet | arrow | both (default: parquet; parquet is zstd-compressed)" },
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
    help: "worker threads for order-free estimators (default 0: auto, several when the input is >= 64 MiB)",
  },
  backend: BACKEND_FLAG,
  plugin: { type: "string", multiple: true, arg: "PATH", help: "load an estimator plugin module (repeatable)" },
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
  lines.push("", "Outputs: DIR/<table>.parquet (or .arrow) per result table, and DIR/run.json.");
  return lines.join("\n");
}

/** Parses argv and runs; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    const parsed = await parseCommandLine(argv, CORE, true);
    const { registry, options, estimators } = parsed;
    const v = parsed.values;
    if (v.help) {
      console.log(helpText(registry));
      return 0;
    }
    if (v.version) {
      console.log(VERSION);
      return 0;
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
    if (!Number.isInteger(threads) || threads < 0 || threads > 64) {
      throw new UsageError(
        `Cannot use --threads as it must be an integer from 0 to 64: current value is ${show(v.threads)}`,
      );
    }
    const backend = parseBackend(v.backend);
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
      extra: { argv },
    });
    if (!quiet) printSummary(result.tables, out, result.run);
    for (const e of result.run.estimators as { name: string; summary: Record<string, number> | null }[]) {
      const nf = e.summary?.nonfinite ?? 0, cl = e.summary?.clipped ?? 0;
      // an estimator's own warning lines (run.json keeps them in its summary)
      const own = (e.summary as { warnings?: unknown } | null)?.warnings;
      for (const w of Array.isArray(own) ? own : []) console.error(`infotap: warning: [${e.name}] ${w}`);
      if (nf > 0) {
        console.error(
          `infotap: warning: [${e.name}] ${nf} non-finite value(s) (NaN/Inf) were excluded and counted (column 'nonfinite')`,
        );
      }
      if (cl > 0) {
        console.error(
          `infotap: warning: [${e.name}] ${cl} value(s) outside --range were clipped into the edge bins (column 'clipped')`,
        );
      }
    }
    if (!result.complete) {
      console.error(`infotap: error: ${result.error}`);
      console.error(`infotap: results of the batches read before the error are in ${out} (run.json: complete false)`);
      return 1;
    }
    return 0;
  } catch (e) {
    if (Deno.env.get("INFOTAP_DEBUG")) console.error(e);
    if (e instanceof UsageError) {
      console.error(`infotap: ${e.message}`);
      return 2;
    }
    if (e instanceof InputError) {
      console.error(`infotap: error: ${e.message}`);
      return 1;
    }
    if (e instanceof BackendError) {
      console.error(`infotap: error: ${e.message}`);
      return 2;
    }
    if (e instanceof PluginError) {
      console.error(`infotap: ${e.message}`);
      return 2;
    }
    console.error(`infotap: internal error: ${(e as Error)?.message ?? String(e)} (INFOTAP_DEBUG=1 shows the stack)`);
    return 70;
  }
}

function fmt(x: unknown): string {
  if (typeof x === "number") return Number.isInteger(x) ? String(x) : x.toFixed(4);
  if (x === null || x === undefined) return "-";
  return String(x);
}

/** Prints `layer_summary` (or table sizes) as an aligned text table on stdout. */
function printSummary(tables: Record<string, arrow.Table>, out: string, run: Record<string, unknown>): void {
  const t = tables.layer_summary;
  if (t && t.numRows > 0) {
    const names = t.schema.fields.map((f) => f.name).filter((n) =>
      !(n === "step" && t.getChild("step")!.nullCount === t.numRows)
    );
    const rows = [
      names,
      ...Array.from({ length: Math.min(t.numRows, 40) }, (_, i) => names.map((n) => fmt(t.getChild(n)!.get(i)))),
    ];
    const widths = names.map((_, j) => Math.max(...rows.map((r) => r[j].length)));
    for (const r of rows) console.log(r.map((c, j) => c.padStart(widths[j])).join("  "));
    if (t.numRows > 40) console.log(`... ${t.numRows - 40} more rows`);
  }
  const files = (run.files as string[] | undefined) ?? [];
  const timing = run.timings as Record<string, number>;
  console.log(`wrote ${files.length} table file(s) and run.json to ${out} in ${timing.total_s.toFixed(2)} s`);
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
