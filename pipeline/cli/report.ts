/**
 * `deno task report DIR... [options]`: one self-contained HTML page with plots of an infotap results directory, or
 * of several runs overlaid ({@linkcode renderReport}), drawn by the sections the built-in and `--plugin` estimators
 * declare; `--watch` serves a live page on a loopback address that re-draws itself as the results change
 * ({@linkcode serveReport}).
 *
 * Exit codes (pipeline/cli/_exit.ts): 0 written (or the live page stopped by SIGINT/SIGTERM); 1 bad input (missing
 * or empty directory, unreadable table or image stream, a metric missing for some runs); 2 bad usage (or a plugin
 * that fails to load or declares a taken section id); 70 internal error. Errors are one line on stderr.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { readResults } from "../report/results.ts";
import { renderReport, runNames } from "../report/report.ts";
import { serveReport } from "../report/live.ts";
import { show } from "../../schemas/errors.ts";
import { atomicWrite } from "../core/write.ts";
import { Registry } from "../core/registry.ts";
import { builtinPlugins } from "../../plugins/mod.ts";
import { parseMetrics, trimDir, UsageError } from "./_args.ts";
import { EXIT, EXIT_CODES_HELP, fail } from "./_exit.ts";

const HELP = `Usage: deno task report DIR... [options]
  Writes one self-contained HTML page (plots, run facts; opens offline) for an infotap results directory, or for
  several runs overlaid in one page (one colour per run).

Options:
  --out FILE.html          where to write the page (default: DIR/report.html; with several runs: report.html)
  --name NAME              the name of each run on the page, in the order of the DIRs (repeatable; default: the
                           directories' last parts)
  --metric NAME=DIR:VALUE  a metric of one run (e.g. accuracy), shown beside the measures; give it for every run
  --bootstrap N            95% bootstrap intervals of the layer means with N resamples (default 0: none)
  --seed N                 seed of the bootstrap and of the heatmaps' clustering tie-breaks (default 0)
  --images DUMP.arrows     an infotap stream holding the input pixels by sample_id, to show the most and
                           least informative samples (unique_information) as images
  --image-column NAME      the pixel column of --images (default: the first named input/image/pixel/x whose
                           width is h*h, h*h*2 or h*h*3, else the first such column)
  --samples N              most and least informative samples to show (default 8 each)
  --title TEXT             page title (default: 'infotap report: DIR')
  --plugin PATH            an estimator plugin module (local path) whose declared report sections draw its tables
                           (repeatable)
  --allow-remote-plugin    let --plugin load a URL (its code runs with this command's permissions)
  --watch                  serve a live page that re-draws itself when the results change (e.g. while
                           'deno task serve' writes them), until Ctrl-C; --out is rewritten at each update too
  --listen HOST:PORT       the live page's address, loopback only (default 127.0.0.1:7342; port 0: any)
  --help                   show this help

${EXIT_CODES_HELP}`;

/** An integer option within bounds, or a usage error. */
function integer(v: unknown, flag: string, lo: number, hi: number, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < lo || n > hi) {
    throw new UsageError(
      `Cannot use ${flag} as it must be an integer from ${lo} to ${hi}: current value is ${show(v)}`,
    );
  }
  return n;
}

/** Parses argv, writes the page (or serves it live); returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | string[] | undefined>, positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: {
        out: { type: "string" },
        name: { type: "string", multiple: true },
        metric: { type: "string", multiple: true },
        bootstrap: { type: "string" },
        seed: { type: "string" },
        images: { type: "string" },
        "image-column": { type: "string" },
        samples: { type: "string" },
        title: { type: "string" },
        plugin: { type: "string", multiple: true },
        "allow-remote-plugin": { type: "boolean" },
        watch: { type: "boolean" },
        listen: { type: "string" },
        help: { type: "boolean" },
      },
      allowPositionals: true,
    }));
  } catch (e) {
    return fail(new UsageError(`${(e as Error).message} (see --help)`));
  }
  if (values.help) {
    console.log(HELP);
    return EXIT.ok;
  }
  let extremes: number, bootstrap: number, seed: number, metrics;
  const dirs = positionals.map((d) => trimDir(d) || "/");
  const names = (values.name as string[] | undefined) ?? runNames(dirs);
  try {
    if (dirs.length === 0) {
      throw new UsageError(
        `Cannot make a report as it needs a results directory: current value is ${show(positionals)}`,
      );
    }
    if (names.length !== dirs.length || new Set(names).size !== names.length) {
      throw new UsageError(
        `Cannot name the runs as --name must be given once for each DIR, each name different: current value is ${
          show(names)
        }`,
      );
    }
    extremes = integer(values.samples, "--samples", 1, 100, 8);
    bootstrap = integer(values.bootstrap, "--bootstrap", 0, 100_000, 0);
    seed = integer(values.seed, "--seed", 0, 2 ** 32 - 1, 0);
    metrics = parseMetrics((values.metric as string[] | undefined) ?? []);
  } catch (e) {
    return fail(new UsageError(`${(e as Error).message} (see --help)`));
  }
  const registry = new Registry(builtinPlugins);
  try {
    // A plugin that fails to load is a PluginError (exit 2), before any results are read.
    const allowUrl = Boolean(values["allow-remote-plugin"]);
    for (const path of (values.plugin as string[] | undefined) ?? []) await registry.load(path, { allowUrl });
  } catch (e) {
    return fail(e);
  }
  const plugins = registry.all();
  const out = (values.out as string | undefined) ?? (dirs.length > 1 ? "report.html" : `${dirs[0]}/report.html`);
  const page = {
    images: values.images as string | undefined,
    imageColumn: values["image-column"] as string | undefined,
    extremes,
    title: values.title as string | undefined,
    plugins,
    metrics,
    bootstrap,
    seed,
  };
  try {
    if (values.watch) {
      return await watch(dirs, names, page, values.listen as string | undefined, values.out as string | undefined);
    }
    const runs = [];
    for (let i = 0; i < dirs.length; i++) runs.push({ name: names[i], results: await readResults(dirs[i]) });
    const withSamples = plugins.flatMap((p) => p.report?.sections ?? []).filter((s) => s.samples).flatMap((s) =>
      s.tables
    );
    if (values.images !== undefined && !runs.some((r) => withSamples.some((t) => r.results.tables[t]?.rows.length))) {
      console.error(
        `infotap: warning: --images is not used as ${
          withSamples.length
            ? `${dirs.join(", ")} has no ${withSamples.join(" or ")} table`
            : "no section of the estimators shows samples"
        }`,
      );
    }
    const html = await renderReport(runs.length > 1 ? runs : runs[0].results, page);
    const parent = out.includes("/") ? out.slice(0, out.lastIndexOf("/")) : "";
    if (parent) await Deno.mkdir(parent, { recursive: true });
    await atomicWrite(out, html);
    const tables = [...new Set(runs.flatMap((r) => Object.keys(r.results.tables)))];
    console.log(
      `wrote ${out} (${(html.length / 1024).toFixed(0)} KiB; ${runs.length > 1 ? `${runs.length} runs; ` : ""}tables: ${
        tables.join(", ") || "none"
      }${runs.some((r) => !r.results.run) ? "; no run.json" : ""})`,
    );
    return EXIT.ok;
  } catch (e) {
    return fail(e);
  }
}

/** `--watch`: serves the live page until SIGINT or SIGTERM. */
async function watch(
  dirs: string[],
  names: string[],
  page: Omit<Parameters<typeof serveReport>[0], "dirs">,
  listen: string | undefined,
  out: string | undefined,
): Promise<number> {
  const live = await serveReport({ ...page, dirs, names, listen, out, log: (line) => console.log(line) });
  console.log(`infotap report: live page at ${live.url} (watching ${dirs.join(", ")}; Ctrl-C stops)`);
  const { promise, resolve } = Promise.withResolvers<void>();
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, () => resolve());
  await promise;
  await live.stop();
  return EXIT.ok;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
