/**
 * `deno task report DIR [--out FILE.html] [--images DUMP.arrows] [--image-column NAME] [--plugin PATH]...`: one
 * self-contained HTML page with plots of an infotap results directory ({@linkcode renderReport}), drawn by the
 * sections the built-in and `--plugin` estimators declare.
 *
 * Exit codes (pipeline/cli/_exit.ts): 0 written; 1 bad input (missing or empty directory, unreadable table or
 * image stream); 2 bad usage (or a plugin that fails to load or declares a taken section id); 70 internal error.
 * Errors are one line on stderr.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { readResults } from "../report/results.ts";
import { renderReport } from "../report/report.ts";
import { show } from "../../schemas/errors.ts";
import { atomicWrite } from "../core/write.ts";
import { Registry } from "../core/registry.ts";
import { builtinPlugins } from "../../plugins/mod.ts";
import { UsageError } from "./_args.ts";
import { EXIT, EXIT_CODES_HELP, fail } from "./_exit.ts";

const HELP = `Usage: deno task report DIR [options]
  Writes one self-contained HTML page (plots, run facts; opens offline) for an infotap results directory.

Options:
  --out FILE.html          where to write the page (default: DIR/report.html)
  --images DUMP.arrows     an infotap stream holding the input pixels by sample_id, to show the most and
                           least informative samples (unique_information) as images
  --image-column NAME      the pixel column of --images (default: the first named input/image/pixel/x whose
                           width is h*h, h*h*2 or h*h*3, else the first such column)
  --samples N              most and least informative samples to show (default 8 each)
  --title TEXT             page title (default: 'infotap report: DIR')
  --plugin PATH            an estimator plugin module whose declared report sections draw its tables (repeatable)
  --help                   show this help

${EXIT_CODES_HELP}`;

/** Parses argv, writes the page; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | string[] | undefined>, positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: {
        out: { type: "string" },
        images: { type: "string" },
        "image-column": { type: "string" },
        samples: { type: "string" },
        title: { type: "string" },
        plugin: { type: "string", multiple: true },
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
  if (positionals.length !== 1) {
    return fail(
      new UsageError(
        `Cannot make a report as it needs exactly one results directory: current value is ${
          show(positionals)
        } (see --help)`,
      ),
    );
  }
  const extremes = values.samples === undefined ? 8 : Number(values.samples);
  if (!Number.isInteger(extremes) || extremes < 1 || extremes > 100) {
    return fail(
      new UsageError(
        `Cannot use --samples as it must be an integer from 1 to 100: current value is ${show(values.samples)}`,
      ),
    );
  }
  const dir = positionals[0].replace(/\/+$/, "") || "/";
  const out = (values.out as string | undefined) ?? `${dir}/report.html`;
  try {
    // A plugin that fails to load is a PluginError (exit 2), before any results are read.
    const registry = new Registry(builtinPlugins);
    for (const path of (values.plugin as string[] | undefined) ?? []) await registry.load(path);
    const results = await readResults(dir);
    const plugins = registry.all();
    const withSamples = plugins.flatMap((p) => p.report?.sections ?? []).filter((s) => s.samples).flatMap((s) =>
      s.tables
    );
    if (values.images !== undefined && !withSamples.some((t) => results.tables[t]?.rows.length)) {
      console.error(
        `infotap: warning: --images is not used as ${
          withSamples.length
            ? `${dir} has no ${withSamples.join(" or ")} table`
            : "no section of the estimators shows samples"
        }`,
      );
    }
    const html = await renderReport(results, {
      images: values.images as string | undefined,
      imageColumn: values["image-column"] as string | undefined,
      extremes,
      title: values.title as string | undefined,
      plugins,
    });
    const parent = out.includes("/") ? out.slice(0, out.lastIndexOf("/")) : "";
    if (parent) await Deno.mkdir(parent, { recursive: true });
    await atomicWrite(out, html);
    const tables = Object.keys(results.tables);
    console.log(
      `wrote ${out} (${(html.length / 1024).toFixed(0)} KiB; tables: ${tables.join(", ") || "none"}${
        results.run ? "" : "; no run.json"
      })`,
    );
    return EXIT.ok;
  } catch (e) {
    return fail(e);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
