/**
 * Command-line parsing shared by `analyze` (pipeline/cli/analyze.ts) and `serve` (pipeline/cli/serve.ts): user
 * plugins first (their options become flags), then core flags and every plugin's options, typed and checked.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Registry } from "../core/registry.ts";
import { builtinPlugins } from "../../plugins/mod.ts";
import { type OptionValues, parseOptionValue, PluginError } from "../core/plugin.ts";
import { show } from "../../schemas/errors.ts";
import { fileFormats, type OutputFormat } from "../core/write.ts";
import { type BackendRequest, BACKENDS } from "../core/backend.ts";

/** A usage error (exit code 2). */
export class UsageError extends Error {}

/** A core flag of a command. */
export interface CoreFlag {
  type: "string" | "boolean";
  multiple?: boolean;
  arg?: string;
  help: string;
}

/** What {@linkcode parseCommandLine} returns. */
export interface ParsedCommandLine {
  registry: Registry;
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  /** Plugin option values given on the command line, parsed and checked. */
  options: OptionValues;
  /** Estimator names of `--estimators`, each checked to exist. */
  estimators: string[] | undefined;
}

/** Splits a comma-separated flag value (`a,b`) into trimmed, non-empty items. */
export function list(s: unknown): string[] | undefined {
  return typeof s === "string" ? s.split(",").map((x) => x.trim()).filter(Boolean) : undefined;
}

/**
 * Loads `--plugin` modules, parses `argv` against `core` and every plugin's options, and checks option values
 * and estimator names. Throws {@linkcode UsageError} or {@linkcode PluginError} with one-line messages.
 */
export async function parseCommandLine(
  argv: string[],
  core: Record<string, CoreFlag>,
  allowPositionals: boolean,
): Promise<ParsedCommandLine> {
  const registry = new Registry(builtinPlugins);
  const allowUrl = argv.includes("--allow-remote-plugin");
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const path = a === "--plugin" ? argv[++i] : a.startsWith("--plugin=") ? a.slice(9) : null;
    if (path === null) continue;
    try {
      await registry.load(path ?? "", { allowUrl });
    } catch (e) {
      throw e instanceof PluginError ? e : new UsageError((e as Error).message);
    }
  }
  const config: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {};
  for (const [k, v] of Object.entries(core)) config[k] = { type: v.type, ...(v.multiple ? { multiple: true } : {}) };
  for (const p of registry.all()) {
    for (const [k, spec] of Object.entries(p.options)) {
      config[k] = { type: spec.type === "boolean" ? "boolean" : "string" };
    }
  }
  // `--range -3,3`: a value that starts with '-' and a digit is a value, not a flag.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].startsWith("--") ? argv[i].slice(2) : "";
    if (config[key]?.type === "string" && /^-[\d.]/.test(argv[i + 1] ?? "")) args.push(`${argv[i]}=${argv[++i]}`);
    else args.push(argv[i]);
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options: config, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError(`${(e as Error).message.split("\n")[0]} (see --help)`);
  }
  const values = parsed.values as ParsedCommandLine["values"];
  const options: OptionValues = {};
  for (const p of registry.all()) {
    for (const [k, spec] of Object.entries(p.options)) {
      const raw = values[k];
      if (raw === undefined) continue;
      try {
        options[k] = parseOptionValue(k, spec, raw as string | boolean);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    }
  }
  const estimators = list(values.estimators);
  for (const name of estimators ?? []) {
    try {
      registry.get(name);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  return { registry, values, positionals: parsed.positionals, options, estimators };
}

/** Checks `--format`. */
export function parseFormat(v: unknown): OutputFormat {
  const format = (v as string | undefined) ?? "parquet";
  if (!fileFormats(format)) {
    throw new UsageError(
      `Cannot use --format as it must be parquet, arrow, csv, both (parquet and arrow) or a list such as parquet,csv: current value is ${
        show(format)
      }`,
    );
  }
  return format as OutputFormat;
}

/** The help lines of every plugin's options (same layout in both commands). */
export function pluginHelp(registry: Registry, row: (flag: string, help: string) => void, lines: string[]): void {
  for (const p of registry.all()) {
    lines.push("", `Estimator '${p.name}' (${p.inputs.join(", ")}${p.byDefault ? ", default" : ""}): ${p.description}`);
    for (const [k, spec] of Object.entries(p.options)) {
      const arg = spec.type === "boolean"
        ? ""
        : spec.type === "range"
        ? " LO,HI"
        : spec.choices
        ? ` ${spec.choices.join("|")}`
        : " N";
      const def = spec.default !== undefined ? ` (default: ${spec.default})` : spec.required ? " (required)" : "";
      row(`--${k}${arg}`, `${spec.description}${def}`);
    }
  }
}

/** `--plugin` and `--allow-remote-plugin`, shared by every command that loads plugins. */
export const PLUGIN_FLAGS: Record<string, CoreFlag> = {
  plugin: {
    type: "string",
    multiple: true,
    arg: "PATH",
    help: "load an estimator plugin module from a local path (repeatable)",
  },
  "allow-remote-plugin": {
    type: "boolean",
    help: "let --plugin load a URL (https:, data:, npm:, ...): its code runs with this command's permissions",
  },
};

/** The `--backend` flag, shared by analyze and serve. */
export const BACKEND_FLAG: CoreFlag = {
  type: "string",
  arg: "B",
  help: "auto | cpu | webgpu (default auto: WebGPU only on a hardware adapter, never a software one; " +
    "INFOTAP_WEBGPU_ALLOW_SOFTWARE=1 lets webgpu use one)",
};

/** Parses `--backend` (default `auto`). */
export function parseBackend(value: unknown): BackendRequest {
  const backend = (value as string | undefined) ?? "auto";
  if (!(BACKENDS as readonly string[]).includes(backend)) {
    throw new UsageError(
      `Cannot use --backend as it must be one of ${BACKENDS.join(", ")}: current value is ${show(backend)}`,
    );
  }
  return backend as BackendRequest;
}

/** A directory as given, without trailing slashes (`runs/a/` and `runs/a` name one run). */
export const trimDir = (d: string): string => (d.length > 1 ? d.replace(/\/+$/, "") : d);

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

/** Every `--metric`, grouped by name (a run given twice for one metric is an error). */
export function parseMetrics(args: string[]): { name: string; values: Map<string, number> }[] {
  const metrics = new Map<string, { name: string; values: Map<string, number> }>();
  for (const s of args) {
    const m = parseMetric(s);
    const metric = metrics.get(m.name) ?? { name: m.name, values: new Map() };
    if (metric.values.has(m.dir)) {
      throw new UsageError(`Cannot use --metric as ${m.name} is given twice for one run: current value is ${show(s)}`);
    }
    metric.values.set(m.dir, m.value);
    metrics.set(m.name, metric);
  }
  return [...metrics.values()];
}
