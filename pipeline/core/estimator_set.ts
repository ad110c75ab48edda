/**
 * The one estimator life cycle, shared by `analyze`, `serve`'s windows and the analyze worker threads: choose
 * the plugins for a stream's kind, resolve their options, build each one's context ({@linkcode contextFor}),
 * then create or restore estimators, update them (a plugin's error becomes a `[plugin] ...` input error naming
 * file and batch), flush, join their result tables on the declared keys, take their summaries, dispose.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EstimatorSet } from "./estimator_set.ts";
 * import { Registry } from "./registry.ts";
 * import { builtinPlugins } from "../../plugins/mod.ts";
 * const run = {
 *   byStep: false,
 *   seed: 0,
 *   backend: { backend: "cpu" as const, reason: "asked", adapter: null },
 *   request: "cpu" as const,
 *   gpu: null,
 *   threads: 1,
 * };
 * const registry = new Registry(builtinPlugins);
 * const both = [registry.get("entropy"), registry.get("mi")];
 * const set = EstimatorSet.choose(registry, both, "activations/v1", { range: [0, 1] }, run);
 * assert.deepEqual(set.contexts.map((c) => (c.gpu ? "webgpu" : "cpu")), ["cpu", "cpu"]);
 * const estimators = set.create();
 * const tables = await estimators.tables(); // no rows yet: empty tables, joined on the declared keys
 * assert.ok("layer_summary" in tables);
 * estimators.dispose();
 * ```
 *
 * @module
 */
import type * as arrow from "apache-arrow";
import type { Batch, Kind } from "../../schemas/batch.ts";
import { InputError, show } from "../../schemas/errors.ts";
import {
  type Estimator,
  type EstimatorContext,
  type EstimatorPlugin,
  type EstimatorSummary,
  type InputShape,
  type MemoryUse,
  type OptionValues,
  PluginError,
  resolveOptions,
  type Results,
  type Scanner,
  type StateValue,
} from "./plugin.ts";
import type { Registry } from "./registry.ts";
import { joinTables } from "./table.ts";
import { type BackendDecision, type BackendRequest, estimatorGpu } from "./backend.ts";
import type { GpuContext } from "../../plugins/kernels/gpu/context.ts";

/** What every estimator of a run shares: `--by-step`, `--seed`, the backend the run chose, its threads. */
export interface RunSettings {
  byStep: boolean;
  seed: number;
  /** The backend the run chose (`selectBackend`). */
  backend: BackendDecision;
  /** The backend the user asked for (`--backend`). */
  request: BackendRequest;
  /** The run's GPU (`openRunGpu`: opened when the run chose WebGPU); null or absent: none. */
  gpu?: GpuContext | null;
  /** The run's threads (`resolveThreads(--threads)`, plugins/kernels/threads.ts); absent: the policy's default. */
  threads?: number;
  /** Where estimators' progress goes (`EstimatorContext.progress`, with the plugin's name); absent: nowhere. */
  progress?: (plugin: string, done: number, total: number, unit: string) => void;
}

/** The settings of a run on the CPU (no backend chosen) on one thread: what worker threads and tests use. */
export function cpuSettings(byStep: boolean, seed: number): RunSettings {
  const backend: BackendDecision = { backend: "cpu", reason: "host side", adapter: null };
  return { byStep, seed, backend, request: "cpu", gpu: null, threads: 1 };
}

/**
 * The context one plugin's estimators get: the run's settings and threads, the first pass's result, and the GPU:
 * the run's for a plugin with a GPU path when the run chose WebGPU (exact paths under `auto`, approximate ones
 * only when asked), else none. `cpu: true` keeps the estimator on the host (states restored to be merged).
 */
export function contextFor(
  plugin: EstimatorPlugin,
  options: OptionValues,
  run: RunSettings,
  { scan, cpu = false }: { scan?: StateValue; cpu?: boolean } = {},
): EstimatorContext {
  const gpu = cpu ? null : estimatorGpu(run.gpu ?? null, run.request, plugin.gpu?.(options));
  const context: EstimatorContext = { byStep: run.byStep, seed: run.seed, gpu, threads: run.threads };
  const report = run.progress;
  if (report) context.progress = (done, total, unit) => report(plugin.name, done, total, unit);
  return scan === undefined ? context : { ...context, scan };
}

/**
 * The first plugin that would need a first pass: among the requested ones, or every default one when none
 * were requested (the stream's kind is not known yet). A default plugin whose options do not resolve is
 * skipped (it is checked if it ever runs); a requested one throws.
 */
export function firstPassPlugin(
  registry: Registry,
  requested: EstimatorPlugin[] | null,
  given: OptionValues,
  run: RunSettings,
): EstimatorPlugin | null {
  for (const p of requested ?? registry.all().filter((p) => p.byDefault)) {
    let o: OptionValues;
    try {
      o = resolveOptions(p, given);
    } catch (e) {
      if (requested) throw e;
      continue;
    }
    if (p.scan?.(o, contextFor(p, o, run))) return p;
  }
  return null;
}

/** A set as plain data, for a worker thread to make the same set ({@linkcode EstimatorSet.fromPlan}). */
export interface SetPlan {
  names: string[];
  options: OptionValues[];
  byStep: boolean;
  seed: number;
  scans: (StateValue | undefined)[];
}

/** What run.json records of one estimator. */
export interface EstimatorRecord {
  name: string;
  options: OptionValues;
  backend: string;
  summary: Record<string, unknown> | null;
}

/** The plugins chosen for a stream with their resolved options and contexts: everything that makes estimators. */
export class EstimatorSet {
  /** One context per plugin ({@linkcode contextFor}). */
  readonly contexts: EstimatorContext[];

  /**
   * A set of plugins whose options are resolved already. `scans` are the first pass's results (per plugin);
   * `cpu` keeps every estimator on the host.
   */
  constructor(
    readonly plugins: EstimatorPlugin[],
    readonly options: OptionValues[],
    readonly run: RunSettings,
    readonly scans: (StateValue | undefined)[] = [],
    readonly cpu = false,
  ) {
    this.contexts = plugins.map((p, i) => contextFor(p, options[i], run, { scan: scans[i], cpu }));
  }

  /** The given plugins with their options resolved from `given` (errors are `[plugin] ...` PluginErrors). */
  static of(plugins: EstimatorPlugin[], given: OptionValues, run: RunSettings): EstimatorSet {
    return new EstimatorSet(plugins, plugins.map((p) => resolveOptions(p, given)), run);
  }

  /** The requested plugins (each must read `kind`), or the default ones for `kind`; see `Registry.choose`. */
  static choose(
    registry: Registry,
    requested: EstimatorPlugin[] | null,
    kind: Kind,
    given: OptionValues,
    run: RunSettings,
  ): EstimatorSet {
    return EstimatorSet.of(registry.choose(requested, kind), given, run);
  }

  /** The set a worker thread makes from {@linkcode EstimatorSet.plan}: on the CPU. */
  static fromPlan(registry: Registry, plan: SetPlan): EstimatorSet {
    const plugins = plan.names.map((n) => registry.get(n));
    return new EstimatorSet(plugins, plan.options, cpuSettings(plan.byStep, plan.seed), plan.scans, true);
  }

  /** This set as plain data (for worker threads). */
  plan(): SetPlan {
    const { byStep, seed } = this.run;
    return { names: this.plugins.map((p) => p.name), options: this.options, byStep, seed, scans: this.scans };
  }

  /** The same set with the first pass's results. */
  withScans(scans: (StateValue | undefined)[]): EstimatorSet {
    return new EstimatorSet(this.plugins, this.options, this.run, scans, this.cpu);
  }

  /** The same plugins with other option values (already resolved), e.g. to estimate their memory. */
  withOptions(options: OptionValues[]): EstimatorSet {
    return new EstimatorSet(this.plugins, options, this.run, this.scans, this.cpu);
  }

  /** The same set on the host only (for states restored to be merged). */
  onCpu(): EstimatorSet {
    return new EstimatorSet(this.plugins, this.options, this.run, this.scans, true);
  }

  /** Each plugin's first-pass scanner, or null for plugins that need none. */
  scanners(): (Scanner | null)[] {
    return this.plugins.map((p, i) => p.scan?.(this.options[i], this.contexts[i]) ?? null);
  }

  /** Combines the first-pass results of several threads (per plugin; undefined where `scanners()` gave null). */
  mergeScans(parts: StateValue[][], scanning: boolean[]): (StateValue | undefined)[] {
    return this.plugins.map((p, i) =>
      scanning[i] ? parts.map((w) => w[i]).reduce((a, b) => p.mergeScans!(a, b)) : undefined
    );
  }

  /** True when results do not depend on batch order for every plugin (batches may go to several threads). */
  orderFree(): boolean {
    return this.plugins.every((p, i) =>
      typeof p.orderFree === "function" ? p.orderFree(this.options[i]) : p.orderFree === true
    );
  }

  /** True when some estimator runs on WebGPU (the estimators then share one device, fed by one thread). */
  onGpu(): boolean {
    return this.contexts.some((c) => c.gpu);
  }

  /** The module URLs of the user plugins in the set (worker threads load them). */
  modules(registry: Registry): string[] {
    return this.plugins.map((p) => registry.moduleOf(p.name)).filter((m): m is string => m !== null);
  }

  /** Fresh estimators. */
  create(): Estimators {
    return new Estimators(this, this.plugins.map((p, i) => p.create(this.options[i], this.contexts[i])));
  }

  /** Estimators continuing from `states` (one per plugin, as {@linkcode Estimators.states} gave them). */
  restore(states: StateValue[]): Estimators {
    return new Estimators(this, this.plugins.map((p, i) => p.restore(states[i], this.options[i], this.contexts[i])));
  }

  /** Each plugin's memory per result unit for this input (`null` for a plugin that does not state it). */
  memory(shape: InputShape): { name: string; use: MemoryUse | null }[] {
    return this.plugins.map((p, i) => ({ name: p.name, use: p.memory?.(this.options[i], shape) ?? null }));
  }

  /** True when every plugin's results are per step and step-local (steps may be finished one by one). */
  stepLocal(): boolean {
    return this.plugins.every((p, i) =>
      typeof p.stepLocal === "function" ? p.stepLocal(this.options[i]) : p.stepLocal === true
    );
  }

  /**
   * Combines per-plugin summaries of estimators over disjoint rows (`Estimators.rawSummaries`); a plugin
   * without `mergeSummaries` can only combine null summaries.
   */
  mergeSummaries(a: (EstimatorSummary | null)[], b: (EstimatorSummary | null)[]): (EstimatorSummary | null)[] {
    return this.plugins.map((p, i) => {
      if (a[i] === null || b[i] === null) return a[i] ?? b[i];
      if (!p.mergeSummaries) {
        throw new PluginError(
          p.name,
          "Cannot combine the summaries of steps finished apart as the plugin declares stepLocal without mergeSummaries: current value is none",
        );
      }
      return p.mergeSummaries(a[i]!, b[i]!);
    });
  }

  /** Joins per-plugin results (`Estimators.results`) into tables by name (see {@linkcode Estimators.tables}). */
  join(results: Results[]): Record<string, arrow.Table> {
    const tables: Record<string, arrow.Table> = {};
    results.forEach((res, i) => {
      const p = this.plugins[i];
      for (const [name, t] of Object.entries(res)) {
        const prev = tables[name];
        if (!prev) tables[name] = t;
        else {
          const keys = p.tables?.[name]?.keys;
          if (!keys) {
            throw new Error(
              `[${p.name}] Cannot add table '${name}' as another estimator wrote it and no join keys are declared: current value is ${
                show(name)
              }`,
            );
          }
          tables[name] = joinTables(prev, t, keys);
        }
      }
    });
    return tables;
  }

  /** The table the hosts print (a plugin's `overview` table), when the set wrote it. */
  overview(tables: Record<string, arrow.Table>): arrow.Table | undefined {
    return overviewTable(this.plugins, tables);
  }
}

/** The first `overview` table the plugins declare that is among `tables`. */
export function overviewTable(
  plugins: EstimatorPlugin[],
  tables: Record<string, arrow.Table>,
): arrow.Table | undefined {
  for (const p of plugins) {
    for (const [name, spec] of Object.entries(p.tables ?? {})) if (spec.overview && tables[name]) return tables[name];
  }
  return undefined;
}

/** One estimator per plugin of a set, fed and finished together. */
export class Estimators {
  /** Seconds each plugin's results took so far, as run.json's `timings` name them (`result_<plugin>_s`). */
  readonly timings: Record<string, number> = {};

  constructor(readonly set: EstimatorSet, readonly list: Estimator[]) {}

  /** Folds a batch into every estimator; a plugin's error becomes an InputError naming it, the file and batch. */
  async update(batch: Batch): Promise<void> {
    for (let i = 0; i < this.list.length; i++) {
      try {
        await this.list[i].update(batch);
      } catch (e) {
        if (e instanceof InputError) throw e;
        throw new InputError(`[${this.set.plugins[i].name}] ${(e as Error).message}`, {
          file: batch.file,
          batch: batch.index,
        });
      }
    }
  }

  /** Folds in other estimators of the same set (as if their batches came after ours). */
  merge(other: Estimators): void {
    for (let i = 0; i < this.list.length; i++) this.list[i].merge(other.list[i]);
  }

  /** Brings results held on a device back into host-side state. */
  async flush(): Promise<void> {
    for (const e of this.list) await e.flush?.();
  }

  /** The estimators' states (after {@linkcode Estimators.flush} when they hold device results). */
  states(): StateValue[] {
    return this.list.map((e) => e.state());
  }

  /** Each estimator's result tables, flushed first (one `Results` per plugin). */
  async results(): Promise<Results[]> {
    const out: Results[] = [];
    for (let i = 0; i < this.list.length; i++) {
      const e = this.list[i], t0 = performance.now(), key = `result_${this.set.plugins[i].name}_s`;
      await e.flush?.();
      out.push(await e.result());
      this.timings[key] = (this.timings[key] ?? 0) + (performance.now() - t0) / 1000;
    }
    return out;
  }

  /**
   * The result tables, flushed first, joined by name: a table that two plugins write is joined on the keys the
   * plugins declare (`tables: {name: {keys}}`); without keys that is an error.
   */
  async tables(): Promise<Record<string, arrow.Table>> {
    return this.set.join(await this.results());
  }

  /** Each estimator's own summary (null when it has none). */
  rawSummaries(): (EstimatorSummary | null)[] {
    return this.list.map((e) => e.summary?.() ?? null);
  }

  /** What run.json records of each estimator, and their warnings (each as `[plugin] warning`). */
  summaries(told: (EstimatorSummary | null)[] = this.rawSummaries()): {
    records: EstimatorRecord[];
    warnings: string[];
  } {
    return summaryRecords(this.set, told);
  }

  /** Frees what the estimators hold outside the JavaScript heap; they are not used again. */
  dispose(): void {
    for (const e of this.list) e.dispose?.();
  }
}

/** run.json's estimator records and the warnings, from each plugin's summary (null: none). */
export function summaryRecords(
  set: EstimatorSet,
  told: (EstimatorSummary | null)[],
): { records: EstimatorRecord[]; warnings: string[] } {
  const records: EstimatorRecord[] = [], warnings: string[] = [];
  set.plugins.forEach((p, i) => {
    const { warnings: lines = [], ...facts } = told[i] ?? {};
    const summary = told[i] === null ? null : facts;
    records.push({ name: p.name, options: set.options[i], backend: set.contexts[i].gpu ? "webgpu" : "cpu", summary });
    for (const line of lines) warnings.push(`[${p.name}] ${line}`);
  });
  return { records, warnings };
}
