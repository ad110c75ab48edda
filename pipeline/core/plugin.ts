/**
 * The estimator plugin contract: a tiny typed object (`name`, options, inputs, `create`), validated at
 * registration, whose estimators are `update` + `merge` + `state` + `result`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { definePlugin, type Estimator } from "./plugin.ts";
 * import { tableFromColumns } from "./table.ts";
 * const counter = (n = 0): Estimator => ({
 *   update(batch) { n += batch.numRows; },
 *   merge(other) { n += (other.state() as { n: number }).n; },
 *   state: () => ({ n }),
 *   result: () => ({ row_count: tableFromColumns([{ name: "rows", type: "int64", values: [n] }]) }),
 * });
 * const rows = definePlugin({
 *   name: "row-count",
 *   description: "Counts rows.",
 *   inputs: ["activations/v1"],
 *   options: {},
 *   orderFree: true,
 *   create: () => counter(),
 *   restore: (state) => counter((state as { n: number }).n),
 * });
 * assert.ok(rows.name === "row-count");
 * ```
 *
 * @module
 */
import type * as arrow from "apache-arrow";
import type { Batch, Kind } from "../../schemas/batch.ts";
import { KINDS } from "../../schemas/batch.ts";
import { show } from "../../schemas/errors.ts";
import type { GpuContext } from "../../plugins/kernels/gpu/context.ts";
import { checkReport, type PluginReport } from "./report_contract.ts";

/** The typed arrays a state may hold (the state codec, `pipeline/core/state.ts`, stores each kind). */
export type StateArray =
  | Float64Array
  | Float32Array
  | Int32Array
  | Uint32Array
  | Int8Array
  | Uint8Array
  | BigInt64Array;

/** A serializable estimator state: JSON values and typed arrays, nested (see `pipeline/core/state.ts`). */
export type StateValue =
  | null
  | boolean
  | number
  | string
  | StateArray
  | StateValue[]
  | { [key: string]: StateValue };

/** The declared type of an option; the CLI parses `--name value` accordingly. */
export type OptionType = "integer" | "number" | "string" | "boolean" | "range";

/** One option of a plugin; becomes the CLI flag `--<key>`. */
export interface OptionSpec {
  type: OptionType;
  description: string;
  /** Default value; options without one are optional (undefined) unless `required`. */
  default?: number | string | boolean | [number, number];
  /** For `string`: the allowed values. */
  choices?: readonly string[];
  /** For numbers: inclusive minimum. */
  min?: number;
  /** For numbers: exclusive minimum (e.g. `> 0`). */
  greaterThan?: number;
  /** The option must be given (only when the plugin runs). */
  required?: boolean;
}

/** Parsed option values, keyed as declared. */
export type OptionValues = Record<string, number | string | boolean | [number, number] | undefined>;

/** What the pipeline passes to `create` besides the plugin's own options. */
export interface EstimatorContext {
  /** `--by-step`: results per training step (the `step` column is then required). */
  byStep: boolean;
  /** `--seed`: for every seeded choice (reservoirs, projections). */
  seed: number;
  /** The result of the plugin's first pass (`scan`), when it asked for one. */
  scan?: StateValue;
  /**
   * The GPU this estimator runs on: set when the run chose WebGPU (`--backend`, pipeline/core/backend.ts) and the
   * plugin's GPU path qualifies (`gpu()`); null or absent: the CPU. Never set for worker threads (not serializable).
   */
  gpu?: GpuContext | null;
  /**
   * The most threads the estimator may use, its own included (`--threads`; absent: the default of the one thread
   * policy, plugins/kernels/threads.ts). 1 inside analyze's worker pool. Results must not depend on it.
   */
  threads?: number;
  /**
   * Reports long work, mainly while `result()` computes (a terminal shows it): `done` of `total` `unit`s (e.g.
   * pairs, or the factorisation's work). Call it as often as convenient (the host throttles); absent: nobody
   * listens.
   */
  progress?: (done: number, total: number, unit: string) => void;
}

/** A first pass over the whole input (e.g. the global `[min, max]` for binning). */
export interface Scanner {
  update(batch: Batch): void;
  /** The value handed to `create` as `context.scan`. */
  result(): StateValue;
}

/** Named result tables. `keys` lists the columns that identify a row when two estimators fill one table. */
export type Results = Record<string, arrow.Table>;

/** What an estimator reports besides its tables (see {@linkcode Estimator.summary}). */
export interface EstimatorSummary {
  /** Facts recorded in run.json as `estimators[].summary` (JSON values), e.g. counts of excluded values. */
  [fact: string]: unknown;
  /**
   * One-line warnings for the user; the CLI prints each as `infotap: warning: [plugin] <warning>`. They are not
   * recorded in run.json (the facts they come from are).
   */
  warnings?: string[];
}

/** A result table a plugin declares. */
export interface TableSpec {
  /** The columns that identify a row when two plugins fill this table (the pipeline joins on them). */
  keys?: string[];
  /** The one-row-per-layer overview: `analyze` prints it after a run, `serve` after each window. */
  overview?: boolean;
}

/** The input as a plugin's memory estimate sees it (known before the estimators run). */
export interface InputShape {
  kind: Kind;
  /** The analysed tensor columns (after `--layers`) and their widths. */
  tensors: { name: string; width: number }[];
  /**
   * Rows of one result unit (a step with `byStep`, else the input): counted by a first pass, else estimated from
   * the input's size (null: unknown, e.g. stdin).
   */
  rows: number | null;
  /** Distinct labels, when a first pass counted them (null: unknown). */
  labels: number | null;
}

/**
 * A plugin's memory for one result unit (one step with `byStep`, else the whole run), in bytes: what its
 * estimator holds while rows come (`state`, with its peak while the result is computed) and what the result
 * tables of that unit take (`results`, kept until they are written); `work`, buffers an estimator holds once
 * whatever the steps (a block of coded rows, a kernel's copy of it), counted once a copy of the estimators.
 */
export interface MemoryUse {
  state: number;
  results: number;
  work?: number;
}

/** How to skip a plugin's first pass, for `serve` to say when it refuses the plugin (a live stream is read once). */
export interface LiveHint {
  /** The option that makes the first pass unnecessary (e.g. `range`). */
  option: string;
  /** How to pass it, e.g. `--range LO,HI (with --binning global)`. */
  usage: string;
}

/** A running estimator: River's `update` + `merge`, DataSketches' serializable state. */
export interface Estimator {
  /** Folds one batch in. May be async (e.g. a worker or GPU round trip). */
  update(batch: Batch): void | Promise<void>;
  /** Folds in another estimator of the same plugin, options and scan (as if its batches came after ours). */
  merge(other: Estimator): void;
  /** A serializable snapshot; `plugin.restore(state)` continues from it. */
  state(): StateValue;
  /**
   * Brings results held on a device (GPU) back into the host-side state. Estimators that keep device state
   * implement it; the pipeline awaits it before `state()` and `result()`, and `state()`/`merge` of such an
   * estimator throw while device results are pending.
   */
  flush?(): Promise<void>;
  /** The result tables. */
  result(): Results | Promise<Results>;
  /**
   * Facts for run.json and warnings for the user (e.g. how many non-finite values were excluded), or null. The
   * pipeline takes it after `result()`.
   */
  summary?(): EstimatorSummary | null;
  /**
   * Frees what the estimator holds outside the JavaScript heap (GPU buffers). The pipeline calls it once the
   * estimator's results and state are taken (end of a run, a closed live window); the estimator is not used again.
   */
  dispose?(): void;
}

/** An estimator plugin. */
export interface EstimatorPlugin {
  /** Lower-case name used in `--estimators` (`[a-z][a-z0-9-]*`). */
  name: string;
  /** One line for `--help`. */
  description: string;
  /** Which wire-format kinds it consumes. */
  inputs: readonly Kind[];
  /** Its options, keyed by CLI flag (without `--`). */
  options: Record<string, OptionSpec>;
  /** Runs by default on its input kind when `--estimators` is not given. */
  byDefault?: boolean;
  /** Table names this plugin writes, with the key columns of each shared table (joined across plugins). */
  tables?: Record<string, TableSpec>;
  /** A first pass it needs, or null when the options make it unnecessary (e.g. `--range` given). */
  scan?(options: OptionValues, context: EstimatorContext): Scanner | null;
  /** With `scan`: the option that skips the first pass, which `serve` names when it refuses the plugin. */
  liveHint?: LiveHint;
  /**
   * The memory of one result unit for these options and this input (see {@linkcode MemoryUse}): `analyze`
   * adds them up before the run and refuses one that would exceed `--max-memory`, naming the option that fits.
   */
  memory?(options: OptionValues, shape: InputShape): MemoryUse;
  /** Integer options that shrink the memory when made smaller (suggested, halved, when a run would not fit). */
  memoryOptions?: string[];
  /**
   * True (or true for these options) when, with `byStep`, every result row belongs to one step and depends on that step's rows only, with
   * rows ordered by step: a run over step-sorted input may then finish steps as they end (fresh estimators,
   * tables concatenated in step order, summaries combined with `mergeSummaries`) and hold one step at a time.
   */
  stepLocal?: boolean | ((options: OptionValues) => boolean);
  /**
   * Combines the summaries of estimators over disjoint rows (steps finished apart), as one estimator over all
   * of them would report it; without it only a null summary can be combined.
   */
  mergeSummaries?(a: EstimatorSummary, b: EstimatorSummary): EstimatorSummary;
  /** Combines two first-pass results (lets the pipeline run the first pass on several threads). */
  mergeScans?(a: StateValue, b: StateValue): StateValue;
  /**
   * True (or true for these options) when results do not depend on the order of batches, up to float
   * rounding (e.g. histograms: integer counts). The pipeline may then split batches across worker threads and
   * merge the estimators (`--threads`).
   */
  orderFree?: boolean | ((options: OptionValues) => boolean);
  /**
   * Whether these options have a WebGPU path, and how close it is to the CPU: `"exact"` (results bit-equal,
   * e.g. integer counts: used under `--backend auto` and `webgpu`), `"approximate"` (within a documented float
   * tolerance: used only under an explicit `--backend webgpu`, so `auto` never changes results), or null.
   * The estimator then gets the run's GPU as `context.gpu`.
   */
  gpu?(options: OptionValues): "exact" | "approximate" | null;
  /** Checks options that depend on each other; throws an Error whose message the registry prefixes. */
  validate?(options: OptionValues): void;
  /** A fresh estimator. */
  create(options: OptionValues, context: EstimatorContext): Estimator;
  /** An estimator continuing from `state()` of one created with the same options and context. */
  restore(state: StateValue, options: OptionValues, context: EstimatorContext): Estimator;
  /** How `report` draws its tables and what `compare` ranks runs by (`report_contract.ts`). */
  report?: PluginReport;
}

const NAME = /^[a-z][a-z0-9-]*$/;
const OPTION = /^[a-z][a-z0-9-]*$/;
const TYPES: readonly OptionType[] = ["integer", "number", "string", "boolean", "range"];

/** An error in a plugin's definition or use, prefixed with the plugin's name (`[name] ...`; none when it is unknown). */
export class PluginError extends Error {
  constructor(plugin: string | null, message: string) {
    super(plugin === null ? message : `[${plugin}] ${message}`);
    this.name = "PluginError";
  }
}

/**
 * Validates a plugin definition and returns it (typed). Errors are prefixed with the plugin's name.
 */
export function definePlugin<P extends EstimatorPlugin>(plugin: P): P {
  const label = typeof plugin?.name === "string" ? plugin.name : "<unnamed plugin>";
  const fail = (msg: string): never => {
    throw new PluginError(label, msg);
  };
  if (typeof plugin !== "object" || plugin === null) {
    fail(`Cannot register plugin as it is not an object: current value is ${show(plugin)}`);
  }
  if (typeof plugin.name !== "string" || !NAME.test(plugin.name)) {
    fail(`Cannot register plugin as its name must match ${NAME}: current value is ${show(plugin.name)}`);
  }
  if (typeof plugin.description !== "string" || plugin.description.length === 0) {
    fail(`Cannot register plugin as it has no description: current value is ${show(plugin.description)}`);
  }
  if (!Array.isArray(plugin.inputs) || plugin.inputs.length === 0) {
    fail(
      `Cannot register plugin as 'inputs' must list kinds (${KINDS.join(", ")}): current value is ${
        show(plugin.inputs)
      }`,
    );
  }
  for (const k of plugin.inputs) {
    if (!KINDS.includes(k)) fail(`Cannot register plugin as an input kind is unknown: current value is ${show(k)}`);
  }
  if (typeof plugin.options !== "object" || plugin.options === null) {
    fail(`Cannot register plugin as 'options' must be an object: current value is ${show(plugin.options)}`);
  }
  for (const [key, spec] of Object.entries(plugin.options)) {
    if (!OPTION.test(key)) {
      fail(`Cannot register option as its name must match ${OPTION}: current value is ${show(key)}`);
    }
    if (!spec || !TYPES.includes(spec.type)) {
      fail(
        `Cannot register option '${key}' as its type must be one of ${TYPES.join(", ")}: current value is ${
          show(spec?.type)
        }`,
      );
    }
    if (typeof spec.description !== "string" || !spec.description) {
      fail(`Cannot register option '${key}' as it has no description: current value is ${show(spec.description)}`);
    }
    if (spec.default !== undefined) {
      try {
        checkOptionValue(key, spec, spec.default);
      } catch (e) {
        fail(`Cannot register option '${key}' as its default is invalid: ${(e as Error).message}`);
      }
    }
  }
  if (plugin.liveHint && !Object.hasOwn(plugin.options, plugin.liveHint.option)) {
    fail(
      `Cannot register plugin as its liveHint names an option it does not declare: current value is ${
        show(plugin.liveHint.option)
      }`,
    );
  }
  for (const key of plugin.memoryOptions ?? []) {
    if (plugin.options[key]?.type !== "integer") {
      fail(`Cannot register plugin as memoryOptions names no integer option of it: current value is ${show(key)}`);
    }
  }
  for (const fn of ["memory", "mergeSummaries"] as const) {
    if (plugin[fn] !== undefined && typeof plugin[fn] !== "function") {
      fail(`Cannot register plugin as '${fn}' is not a function: current value is ${show(typeof plugin[fn])}`);
    }
  }
  if (plugin.report !== undefined) checkReport(plugin.report, fail);
  for (const fn of ["create", "restore"] as const) {
    if (typeof plugin[fn] !== "function") {
      fail(`Cannot register plugin as '${fn}' is not a function: current value is ${show(typeof plugin[fn])}`);
    }
  }
  return plugin;
}

/** Checks a value against its spec; throws a plain Error with a one-line message. */
export function checkOptionValue(key: string, spec: OptionSpec, value: unknown): void {
  const bad = (why: string) => {
    throw new Error(`Cannot use --${key} as ${why}: current value is ${show(value)}`);
  };
  switch (spec.type) {
    case "boolean":
      if (typeof value !== "boolean") bad("it must be true or false");
      return;
    case "string":
      if (typeof value !== "string") bad("it must be a string");
      if (spec.choices && !spec.choices.includes(value as string)) bad(`it must be one of ${spec.choices.join(", ")}`);
      return;
    case "range": {
      const r = value as [number, number];
      if (!Array.isArray(r) || r.length !== 2 || !r.every(Number.isFinite) || !(r[0] < r[1])) {
        bad("it must be LO,HI with finite LO < HI");
      }
      return;
    }
    default: {
      const n = value as number;
      if (typeof n !== "number" || !Number.isFinite(n)) bad("it must be a finite number");
      if (spec.type === "integer" && !Number.isInteger(n)) bad("it must be an integer");
      if (spec.min !== undefined && n < spec.min) bad(`it must be >= ${spec.min}`);
      if (spec.greaterThan !== undefined && !(n > spec.greaterThan)) bad(`it must be > ${spec.greaterThan}`);
    }
  }
}

/** Parses a CLI string for an option of the given spec (booleans come parsed). */
export function parseOptionValue(
  key: string,
  spec: OptionSpec,
  raw: string | boolean,
): number | string | boolean | [number, number] {
  let v: number | string | boolean | [number, number];
  if (spec.type === "boolean") v = typeof raw === "boolean" ? raw : raw === "true";
  else if (spec.type === "string") v = String(raw);
  else if (spec.type === "range") {
    v = String(raw).split(",").map((s) => (s.trim() === "" ? NaN : Number(s))) as [number, number];
  } else v = String(raw).trim() === "" ? NaN : Number(raw);
  checkOptionValue(key, spec, v);
  return v;
}

/** Fills defaults and checks every value (and `required`); errors are prefixed with the plugin's name. */
export function resolveOptions(plugin: EstimatorPlugin, given: OptionValues): OptionValues {
  const out: OptionValues = {};
  for (const [key, spec] of Object.entries(plugin.options)) {
    const v = given[key] ?? spec.default;
    if (v === undefined) {
      if (spec.required) {
        throw new PluginError(
          plugin.name,
          `Cannot run as --${key} is required (${spec.description}): current value is missing`,
        );
      }
      continue;
    }
    try {
      checkOptionValue(key, spec, v);
    } catch (e) {
      throw new PluginError(plugin.name, (e as Error).message);
    }
    out[key] = v;
  }
  if (plugin.validate) {
    try {
      plugin.validate(out);
    } catch (e) {
      throw new PluginError(plugin.name, (e as Error).message);
    }
  }
  return out;
}
