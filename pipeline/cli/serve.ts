/**
 * `deno task serve --listen HOST:PORT --out DIR [options]`: the command-line front end of
 * {@linkcode serve} (live analysis of training runs; protocol, files and lifecycle are documented there).
 *
 * Runs until SIGINT or SIGTERM, then finishes the batches being analysed, writes the final tables and
 * `run.json`, and exits 0. Signals are watched from the first line (one during start-up stops the server as soon
 * as it is up); later SIGINTs/SIGTERMs while finishing are acknowledged on stderr and do not interrupt the
 * writes (SIGKILL aborts; `--resume` then continues from the last flush, at most `--flush-every` seconds old). Exit codes (pipeline/cli/_exit.ts): 0 stopped cleanly; 1 bad input (e.g. an
 * estimator needing a first pass without the option that skips it, a checkpoint that does not match, an address
 * in use); 2 bad usage (flags, option values, plugins, `--backend`); 70 internal error.
 *
 * @example
 * ```ts ignore
 * // deno task serve --listen 127.0.0.1:7341 --out live --range -5,5 --snapshot-every 10
 * import { main } from "./serve.ts";
 * Deno.exit(await main(["--out", "live", "--range", "-5,5", "--snapshot-every", "10"]));
 * ```
 *
 * @module
 */
import { serve, SERVE_DEFAULTS, type ServeHandle } from "../serve/serve.ts";
import { Signals } from "./_signals.ts";
import { serveReport } from "../report/live.ts";
import type { Registry } from "../core/registry.ts";
import { InputError, show } from "../../schemas/errors.ts";
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
import { VERSION } from "../core/version.ts";

const CORE: Record<string, CoreFlag> = {
  listen: { type: "string", arg: "HOST:PORT", help: "TCP address for producers (default 127.0.0.1:7341; port 0: any)" },
  ws: { type: "string", arg: "HOST:PORT", help: "also accept WebSocket producers on this address" },
  out: { type: "string", arg: "DIR", help: "output directory (default: infotap-live)" },
  resume: { type: "string", arg: "DIR", help: "continue the run in DIR from its last checkpoint (sets --out DIR)" },
  token: { type: "string", arg: "T", help: "token producers must present (required off loopback; or INFOTAP_TOKEN)" },
  "snapshot-every": {
    type: "string",
    arg: "N",
    help: "close a window and write a snapshot every N steps (0: on stop)",
  },
  "max-batch-bytes": { type: "string", arg: "N", help: "refuse record batches larger than N bytes (default 256 MiB)" },
  "max-buffered-bytes": {
    type: "string",
    arg: "N",
    help: "bytes all producers' batches may hold at once; producers wait for room (default 1 GiB)",
  },
  "flush-every": {
    type: "string",
    arg: "S",
    help: `write the open windows to DIR/checkpoint every S seconds (default ${SERVE_DEFAULTS.flushEvery}; 0: never)`,
  },
  "max-producers": {
    type: "string",
    arg: "N",
    help: `producers connected at once; more are refused (default ${SERVE_DEFAULTS.maxProducers})`,
  },
  "producer-timeout": {
    type: "string",
    arg: "S",
    help:
      `disconnect a producer that completes no batch for S seconds (default ${SERVE_DEFAULTS.producerTimeout}; 0: never)`,
  },
  "max-step-jump": {
    type: "string",
    arg: "N",
    help:
      `refuse a batch whose step is over N after the highest so far (default ${SERVE_DEFAULTS.maxStepJump}; 0: any)`,
  },
  estimators: { type: "string", arg: "A,B", help: "estimators to run (default: the defaults for the input's kind)" },
  format: {
    type: "string",
    arg: "F",
    help: "parquet | arrow | csv | both (parquet,arrow) | a list, e.g. parquet,csv (default: parquet)",
  },
  "by-step": { type: "boolean", help: "results per step without --snapshot-every (implied with it)" },
  layers: { type: "string", arg: "A,B", help: "analyse only these layers (tensor columns)" },
  seed: { type: "string", arg: "N", help: "seed for every seeded choice (default: 0)" },
  backend: BACKEND_FLAG,
  ...PLUGIN_FLAGS,
  report: {
    type: "string",
    arg: "HOST:PORT",
    help: "also serve a live report page there (loopback only, e.g. 127.0.0.1:7342; port 0: any)",
  },
  quiet: { type: "boolean", help: "print no snapshot tables" },
  help: { type: "boolean", help: "show this help" },
  version: { type: "boolean", help: "print the version" },
};

function helpText(registry: Registry): string {
  const lines = [
    `infotap ${VERSION} serve: live analysis of training runs`,
    "",
    "Usage: deno task serve [options]",
    "  Producers connect over TCP, send 'INFOTAP1 <token>\\n' (optional without --token), then one Arrow IPC",
    "  stream in wire format v1 (schemas/README.md). Stop with Ctrl-C (SIGINT) or SIGTERM.",
    ...liveHints(registry),
    "",
    "Options:",
  ];
  const row = (flag: string, help: string) => lines.push(`  ${flag.padEnd(28)} ${help}`);
  for (const [k, v] of Object.entries(CORE)) row(`--${k}${v.arg ? ` ${v.arg}` : ""}`, v.help);
  pluginHelp(registry, row, lines);
  lines.push(
    "",
    "Outputs: DIR/<table>/part-<window>.parquet per snapshot (readable while running), DIR/checkpoint/,",
    "and on stop DIR/<table>.parquet (all windows) and DIR/run.json.",
    "",
    EXIT_CODES_HELP,
  );
  return lines.join("\n");
}

/** What the default estimators with a first pass need on a live stream (their `liveHint`). */
function liveHints(registry: Registry): string[] {
  return registry.all().filter((p) => p.byDefault && p.liveHint).map((p) =>
    `  Live streams have no first pass: ${p.name} needs ${p.liveHint!.usage}.`
  );
}

function integer(v: unknown, flag: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`Cannot use ${flag} as it must be an integer >= ${min}: current value is ${show(v)}`);
  }
  return n;
}

function seconds(v: unknown, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = String(v).trim() === "" ? NaN : Number(v);
  if (!Number.isFinite(n) || n < 0) {
    throw new UsageError(`Cannot use ${flag} as it must be a number of seconds >= 0: current value is ${show(v)}`);
  }
  return n;
}

/** Parses argv, serves until SIGINT/SIGTERM; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let server: ServeHandle | null = null;
  const signals = new Signals(
    () =>
      server === null
        ? "stopping once start-up is done"
        : `finishing, ${server.left} table${server.left === 1 ? "" : "s"} left`,
    "infotap serve",
  );
  try {
    const parsed = await parseCommandLine(argv, CORE, false);
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
    const format = parseFormat(v.format);
    if (v.resume !== undefined && v.out !== undefined && v.resume !== v.out) {
      throw new UsageError(
        `Cannot use --out with --resume as the run continues in the --resume directory: current value is ${
          show(v.out)
        }`,
      );
    }
    const quiet = Boolean(v.quiet);
    const out = (v.resume ?? v.out ?? "infotap-live") as string;
    server = await serve({
      listen: v.listen as string | undefined,
      ws: v.ws as string | undefined,
      out,
      resume: v.resume !== undefined,
      token: (v.token as string | undefined) ?? Deno.env.get("INFOTAP_TOKEN") ?? undefined,
      estimators,
      options,
      byStep: Boolean(v["by-step"]),
      seed: integer(v.seed, "--seed", -Number.MAX_SAFE_INTEGER) ?? 0,
      layers: list(v.layers),
      format,
      backend: parseBackend(v.backend),
      snapshotEvery: integer(v["snapshot-every"], "--snapshot-every", 0),
      maxBatchBytes: integer(v["max-batch-bytes"], "--max-batch-bytes", 1024),
      maxBufferedBytes: integer(v["max-buffered-bytes"], "--max-buffered-bytes", 1),
      flushEvery: seconds(v["flush-every"], "--flush-every"),
      maxProducers: integer(v["max-producers"], "--max-producers", 1),
      producerTimeout: seconds(v["producer-timeout"], "--producer-timeout"),
      maxStepJump: integer(v["max-step-jump"], "--max-step-jump", 0),
      registry,
      log: (line) => {
        if (!quiet || line.startsWith("infotap serve:")) console.log(line);
      },
      extra: { argv: argv.map((a, i) => (argv[i - 1] === "--token" || a.startsWith("--token=") ? "***" : a)) },
    });
    const live = v.report === undefined ? null : await serveReport({
      dirs: [out],
      listen: v.report as string,
      plugins: registry.all(),
      seed: Math.abs(integer(v.seed, "--seed", -Number.MAX_SAFE_INTEGER) ?? 0) >>> 0,
    });
    if (live) console.log(`infotap serve: live report at ${live.url} (updates as windows close)`);
    const sig = await signals.first;
    console.log(`infotap serve: ${sig}: finishing the batches in progress and writing the final results`);
    const run = await server.stop();
    for (const w of server.warnings) console.error(`infotap: warning: ${w}`);
    if (live) {
      // The final tables and run.json, for pages still open; they poll once a second.
      await live.refresh();
      await new Promise((r) => setTimeout(r, 2500));
      await live.stop();
    }
    const lost = run.lost_partial_batches as number;
    console.log(
      `infotap serve: wrote ${
        (run.files as string[]).length
      } table file(s), ${run.snapshots} snapshot(s) and run.json to ${out}; ${run.rows} rows${
        lost ? `, ${lost} partial batch(es) lost (see run.json)` : ""
      }`,
    );
    return EXIT.ok;
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse || e instanceof Deno.errors.PermissionDenied) {
      return fail(new InputError(`Cannot listen as ${e.message}: current value is ${show(argv.join(" "))}`));
    }
    return fail(e);
  } finally {
    signals.dispose();
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
