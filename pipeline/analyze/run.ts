/**
 * One analysis run: inputs -> (first pass) -> estimators -> tables + `run.json`.
 *
 * Bounded memory: batches are read one at a time; only estimator states grow with the input's width, not its
 * length. On bad input the run stops at the first bad batch, the complete batches' results are still
 * returned (and written), and `complete` is false.
 *
 * @example
 * ```ts ignore
 * import { analyze } from "./run.ts";
 * const r = await analyze({ inputs: ["dump.arrows"], out: "results" });
 * console.log(r.complete, Object.keys(r.tables));
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
  type OptionValues,
  resolveOptions,
  type Scanner,
  type StateValue,
} from "../core/plugin.ts";
import { Progress } from "../core/progress.ts";
import { Registry } from "../core/registry.ts";
import { readInput, spillStdin } from "../../schemas/source.ts";
import { joinTables } from "../core/table.ts";
import { atomicWrite, type OutputFormat, writeTables } from "../core/write.ts";
import { versions } from "../core/version.ts";
import type { Layout } from "../../schemas/validate.ts";
import { builtinPlugins } from "../../plugins/mod.ts";
import { WorkerPool } from "./parallel.ts";
import { type NeuronSpec, originalNeuronIndices, parseNeuronSpec, selectNeurons } from "./neurons.ts";
import { BufferPool } from "./buffer_pool.ts";
import { decodeState } from "../core/state.ts";
import {
  adapterRecord,
  type BackendDecision,
  type BackendRequest,
  estimatorBackend,
  selectBackend,
} from "../../plugins/kernels/gpu/device.ts";

/** Inputs at least this large use worker threads by default (when the estimators allow it). */
const AUTO_THREADS_BYTES = 64 << 20;

/** Options of one run (the CLI maps its flags onto these). */
export interface AnalyzeOptions {
  /** Input paths, read in order; `-` is standard input. */
  inputs: string[];
  /** Estimator names; default: the plugins marked `byDefault` for the input's kind. */
  estimators?: string[];
  /** Plugin option values by flag name (defaults filled per plugin). */
  options?: OptionValues;
  /** Results per training step. */
  byStep?: boolean;
  /** Seed for every seeded choice. */
  seed?: number;
  /** Analyse only these tensor columns (layers). */
  layers?: string[];
  /** `--neurons SPEC`: analyse only these neurons of every layer (pipeline/analyze/neurons.ts). */
  neurons?: string;
  /** Output directory; nothing is written when absent. */
  out?: string;
  /** Output format (default parquet). */
  format?: OutputFormat;
  /** Plugins available (default: the built-ins). */
  registry?: Registry;
  /** Show a progress bar (default: when stderr is a terminal). */
  progress?: boolean;
  /** Worker threads for order-free estimators (0 or absent: 2+ when the input is at least 64 MiB). */
  threads?: number;
  /**
   * `auto` (default): WebGPU when a hardware adapter exists, never a fallback/software one; `cpu`; `webgpu`:
   * WebGPU or a `BackendError` (see plugins/kernels/gpu/device.ts). Estimators without a GPU path run on the CPU anyway.
   */
  backend?: BackendRequest;
  /** Let `backend: "webgpu"` use a software adapter (llvmpipe, ...); default: `INFOTAP_WEBGPU_ALLOW_SOFTWARE`. */
  allowSoftwareGpu?: boolean;
  /** Extra fields for run.json (e.g. the command line). */
  extra?: Record<string, unknown>;
}

/** Per-input statistics. */
export interface InputStats {
  path: string;
  bytes: number;
  batches: number;
  rows: number;
}

/** What a run produced. */
export interface AnalyzeResult {
  /** True when every input was read to its end without error. */
  complete: boolean;
  /** The one-line error that stopped the run early, if any. */
  error?: string;
  /** Result tables by name. */
  tables: Record<string, arrow.Table>;
  /** The run record written as `run.json`. */
  run: Record<string, unknown>;
}

/** Position reached before an error: batches of earlier inputs, and of input `input` before `batch`. */
interface StopAt {
  input: number;
  batch: number;
  error: string;
}

/** Keeps only the `--layers` columns of a batch (all when `layers` is undefined); unknown names are an error. */
export function selectLayers(batch: Batch, layers: string[] | undefined): Batch {
  if (!layers) return batch;
  const names = new Set(batch.columns.map((c) => c.name));
  for (const l of layers) {
    if (!names.has(l)) {
      throw new InputError(
        `Cannot select layer (--layers) as the stream has no such column (has: ${
          [...names].join(", ")
        }): current value is ${show(l)}`,
        {
          file: batch.file,
          batch: batch.index,
          column: l,
        },
      );
    }
  }
  return { ...batch, columns: batch.columns.filter((c) => layers.includes(c.name)) };
}

/**
 * The result tables of several estimators, joined by name: a table that two plugins write is joined on the keys
 * the plugins declare (`tables: {name: {keys}}`); without keys that is an error.
 */
export async function resultTables(
  plugins: EstimatorPlugin[],
  estimators: Estimator[],
): Promise<Record<string, arrow.Table>> {
  const tables: Record<string, arrow.Table> = {};
  for (let i = 0; i < estimators.length; i++) {
    const p = plugins[i];
    await estimators[i].flush?.();
    const res = await estimators[i].result();
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
  }
  return tables;
}

/** Reads every input in order, yielding batches until `stopAt` (exclusive) or the first error. */
async function* readAll(
  paths: string[],
  labels: string[],
  stats: InputStats[],
  layers: string[] | undefined,
  neurons: { spec: NeuronSpec | null; chosen: Map<string, Int32Array> },
  progress: Progress,
  stopAt: StopAt | null,
  alloc: (n: number) => Uint8Array,
): AsyncGenerator<{ batch: Batch; layout: Layout }> {
  let expected: Layout | undefined;
  for (let i = 0; i < paths.length; i++) {
    if (stopAt && i > stopAt.input) return;
    const st = stats[i];
    for await (const { batch, layout } of readInput(paths[i], { expected, onBytes: (n) => progress.bytes(n), alloc })) {
      if (stopAt && i === stopAt.input && batch.index >= stopAt.batch) return;
      expected ??= layout;
      const b = selectNeurons(selectLayers({ ...batch, file: labels[i] }, layers), neurons.spec, neurons.chosen);
      st.batches = Math.max(st.batches, batch.index + 1);
      yield { batch: b, layout };
      progress.rows(batch.numRows);
    }
    if (stopAt && i === stopAt.input) return;
  }
}

function relabel(e: unknown, path: string, label: string): string {
  const msg = e instanceof Error ? e.message : String(e);
  return path === label ? msg : msg.replaceAll(`'${path}'`, `'${label}'`);
}

/** Runs the analysis. Bad input does not throw: it ends the run early with `complete: false` and `error`. */
export async function analyze(opts: AnalyzeOptions): Promise<AnalyzeResult> {
  const t0 = performance.now();
  const registry = opts.registry ?? new Registry(builtinPlugins);
  const format = opts.format ?? "parquet";
  const byStep = opts.byStep ?? false;
  const seed = opts.seed ?? 0;
  if (opts.inputs.length === 0) throw new InputError("Cannot analyze as no input was given: current value is []");
  if (opts.inputs.filter((p) => p === "-").length > 1) {
    throw new InputError("Cannot read standard input twice: current value is " + show(opts.inputs));
  }
  const requested = opts.estimators?.length ? opts.estimators.map((n) => registry.get(n)) : null;
  const neurons = { spec: opts.neurons ? parseNeuronSpec(opts.neurons) : null, chosen: new Map<string, Int32Array>() };
  const decision: BackendDecision = await selectBackend(opts.backend ?? "auto", {
    allowSoftware: opts.allowSoftwareGpu,
  });
  const context: EstimatorContext = { byStep, seed, backend: decision.backend };
  const stats: InputStats[] = opts.inputs.map((path) => ({ path, bytes: 0, batches: 0, rows: 0 }));
  const resolve = (p: EstimatorPlugin) => resolveOptions(p, opts.options ?? {});

  // Spill stdin to a file when some candidate estimator needs a first pass.
  const candidates = requested ?? registry.all().filter((p) => p.byDefault);
  const needsScan = candidates.some((p) => {
    let o: OptionValues;
    try {
      o = resolve(p);
    } catch (e) {
      // A default estimator for another kind may lack a required option; it is checked if it ever runs.
      if (requested) throw e;
      return false;
    }
    return p.scan?.(o, context);
  });
  const paths = [...opts.inputs];
  let spilled: string | null = null;
  let progress = new Progress("analyze", 0, false);
  let stopAt: StopAt | null = null;
  let kind: Kind | null = null;
  let firstLayout: Layout | null = null;
  const timings: Record<string, number> = {};
  let plugins: EstimatorPlugin[] = [];
  let optionsByPlugin: OptionValues[] = [];
  let estimators: Estimator[] = [];
  let scans: (StateValue | undefined)[] = [];
  const run: Record<string, unknown> = { threads: 1 };
  // Body buffers handed back by worker threads are read into again (no fresh-memory page faults).
  const buffers = new BufferPool();
  const alloc = (n: number) => buffers.take(n);
  let estimatorBackends: string[] = [];
  const choose = (layout: Layout) => {
    kind = layout.kind;
    firstLayout = layout;
    plugins = registry.choose(requested, layout.kind);
    optionsByPlugin = plugins.map(resolve);
  };
  try {
    try {
      if (needsScan && paths.includes("-")) {
        spilled = await spillStdin();
        paths[paths.indexOf("-")] = spilled;
      }
      for (let i = 0; i < paths.length; i++) {
        if (paths[i] !== "-") {
          try {
            stats[i].bytes = (await Deno.stat(paths[i])).size;
          } catch { /* reported when opened */ }
        }
      }
      const totalBytes = stats.reduce((a, st) => a + st.bytes, 0);
      progress = new Progress(needsScan ? "2 passes" : "1 pass", totalBytes * (needsScan ? 2 : 1), opts.progress);
      // Pass 1: scanners (only when an estimator needs one).
      const auto = stats.reduce((a, st) => a + st.bytes, 0) >= AUTO_THREADS_BYTES
        ? Math.min(4, navigator.hardwareConcurrency ?? 1)
        : 1;
      const threads = opts.threads && opts.threads > 0 ? opts.threads : auto;
      const modules = () => plugins.map((p) => registry.moduleOf(p.name)).filter((m): m is string => m !== null);
      if (needsScan) {
        const ts = performance.now();
        let scanners: (Scanner | null)[] = [];
        let pool: WorkerPool | null = null;
        let failure: unknown = null;
        try {
          for await (
            const { batch, layout } of readAll(paths, opts.inputs, stats, opts.layers, neurons, progress, null, alloc)
          ) {
            if (!kind) {
              choose(layout);
              scanners = plugins.map((p, i) => p.scan?.(optionsByPlugin[i], context) ?? null);
              const scanning = plugins.filter((_, i) => scanners[i]);
              if (threads > 1 && scanning.every((p) => p.mergeScans)) {
                pool = await WorkerPool.start(threads, {
                  mode: "scan",
                  modules: modules(),
                  plugins: scanning.map((p) => ({
                    name: p.name,
                    options: optionsByPlugin[plugins.indexOf(p)],
                    context,
                  })),
                });
                pool.onBuffer = (b) => buffers.give(b);
                run.threads = threads;
              }
            }
            if (pool) await pool.send(batch);
            else for (const s of scanners) s?.update(batch);
          }
        } catch (e) {
          failure = e;
        }
        if (pool) {
          try {
            const states = await pool.finish();
            let k = 0;
            scans = plugins.map((p, i) => {
              if (!scanners[i]) return undefined;
              const parts = states.map((w) => decodeState(w[k]));
              k++;
              return parts.reduce((a, b) => p.mergeScans!(a, b));
            });
            failure ??= pool.error;
          } finally {
            pool.close();
          }
        } else scans = scanners.map((s) => s?.result());
        if (failure) {
          if (!(failure instanceof InputError) || !kind) throw failure;
          const w = failure.where;
          const input = Math.max(0, opts.inputs.indexOf(w.file ?? ""));
          stopAt = { input, batch: w.batch ?? 0, error: failure.message };
        }
        timings.scan_s = (performance.now() - ts) / 1000;
      }
      // Pass 2: estimators (on worker threads when every estimator is order-free and the input is large).
      const te = performance.now();
      for (const st of stats) st.rows = 0;
      let pool: WorkerPool | null = null;
      let failure: unknown = null;
      try {
        for await (
          const { batch, layout } of readAll(paths, opts.inputs, stats, opts.layers, neurons, progress, stopAt, alloc)
        ) {
          if (!kind) choose(layout);
          if (estimators.length === 0 && !pool) {
            // WebGPU for the plugins with a GPU path: exact ones under auto, approximate ones only when asked.
            const contexts = plugins.map((p, i) => {
              const backend = estimatorBackend(decision.backend, opts.backend ?? "auto", p.gpu?.(optionsByPlugin[i]));
              return { ...context, backend, scan: scans[i] };
            });
            estimatorBackends = contexts.map((c) => c.backend);
            const orderFree = plugins.every((p, i) =>
              typeof p.orderFree === "function" ? p.orderFree(optionsByPlugin[i]) : p.orderFree === true
            );
            // On WebGPU the estimators share one device: one thread feeds it.
            if (threads > 1 && orderFree && !contexts.some((c) => c.backend === "webgpu")) {
              pool = await WorkerPool.start(threads, {
                mode: "estimate",
                modules: modules(),
                plugins: plugins.map((p, i) => ({ name: p.name, options: optionsByPlugin[i], context: contexts[i] })),
              });
              pool.onBuffer = (b) => buffers.give(b);
              run.threads = threads;
            } else estimators = plugins.map((p, i) => p.create(optionsByPlugin[i], contexts[i]));
          }
          const at = Math.max(0, opts.inputs.indexOf(batch.file)), rows = batch.numRows;
          if (pool) await pool.send(batch);
          else {
            for (let i = 0; i < estimators.length; i++) {
              try {
                await estimators[i].update(batch);
              } catch (e) {
                if (e instanceof InputError) throw e;
                throw new InputError(`[${plugins[i].name}] ${(e as Error).message}`, {
                  file: batch.file,
                  batch: batch.index,
                });
              }
            }
          }
          stats[at].rows += rows;
        }
      } catch (e) {
        failure = e;
      }
      if (pool) {
        try {
          // The workers' estimators, restored from their states and merged: results of every batch sent.
          const states = await pool.finish();
          estimators = plugins.map((p, i) => {
            const parts = states.map((w) =>
              p.restore(decodeState(w[i]), optionsByPlugin[i], { ...context, backend: "cpu", scan: scans[i] })
            );
            for (const other of parts.slice(1)) parts[0].merge(other);
            return parts[0];
          });
          failure ??= pool.error;
        } finally {
          pool.close();
        }
      }
      if (failure) throw failure;
      timings.estimate_s = (performance.now() - te) / 1000;
      if (stopAt) throw new InputError(stopAt.error);
      if (stats.every((s) => s.rows === 0)) {
        throw new InputError(
          `Cannot analyze as the input holds no rows: current value is 0 rows in ${stats.length} input(s)`,
          {
            file: opts.inputs.join(", "),
          },
        );
      }
    } finally {
      progress.stop();
      if (spilled) await Deno.remove(spilled).catch(() => {});
    }
  } catch (e) {
    if (!(e instanceof InputError) && !(e instanceof Error && e.name === "PluginError")) throw e;
    const message = relabel(e, spilled ?? "", "-");
    return await finish(message);
  }
  return await finish(undefined);

  async function finish(error: string | undefined): Promise<AnalyzeResult> {
    const tables: Record<string, arrow.Table> = {};
    const summaries: Record<string, unknown>[] = [];
    const rows = stats.reduce((a, s) => a + s.rows, 0);
    const tr = performance.now();
    if (rows > 0) {
      Object.assign(tables, await resultTables(plugins, estimators));
      if (neurons.spec) Object.assign(tables, originalNeuronIndices(tables, neurons.chosen));
      for (let i = 0; i < estimators.length; i++) {
        estimators[i].dispose?.();
        summaries.push({
          name: plugins[i].name,
          options: optionsByPlugin[i],
          backend: estimatorBackends[i] ?? "cpu",
          summary: (estimators[i] as Estimator & { summary?: () => unknown }).summary?.() ?? null,
        });
      }
    }
    timings.result_s = (performance.now() - tr) / 1000;
    Object.assign(run, {
      complete: error === undefined,
      error: error ?? null,
      kind,
      inputs: stats,
      layers: (firstLayout as Layout | null)?.tensors.filter((t) => !opts.layers || opts.layers.includes(t.name)) ?? [],
      estimators: summaries,
      options: {
        by_step: byStep,
        seed,
        layers: opts.layers ?? null,
        ...(neurons.spec ? { neurons: neurons.spec.text } : {}),
        format,
      },
      backend: context.backend,
      backend_request: opts.backend ?? "auto",
      backend_reason: decision.reason,
      adapter: adapterRecord(decision),
      tables: Object.fromEntries(Object.entries(tables).map(([n, t]) => [n, { rows: t.numRows }])),
      ...(neurons.spec ? { neurons: Object.fromEntries([...neurons.chosen].map(([l, idx]) => [l, [...idx]])) } : {}),
      versions: versions(),
      started: new Date(Date.now() - (performance.now() - t0)).toISOString(),
      ...opts.extra,
    });
    if (opts.out) {
      const tw = performance.now();
      const files = await writeTables(opts.out, tables, format);
      timings.write_s = (performance.now() - tw) / 1000;
      run.files = files.map((f) => f.slice(opts.out!.length + 1));
    }
    timings.total_s = (performance.now() - t0) / 1000;
    run.timings = timings;
    run.finished = new Date().toISOString();
    if (opts.out) {
      await atomicWrite(
        `${opts.out}/run.json`,
        JSON.stringify(run, (_k, v) => (typeof v === "bigint" ? v.toString() : v), 2) + "\n",
      );
    }
    return { complete: error === undefined, error, tables, run };
  }
}
