/**
 * One analysis run: inputs -> (first pass) -> estimators -> tables + `run.json`.
 *
 * Bounded memory: batches are read one at a time; estimator states grow with the input's width, and with
 * `--by-step` with its steps. Before the estimators run, their stated memory (`EstimatorPlugin.memory`) is
 * added up for the input's shape (the first pass counts rows, steps and labels) and a run over `maxMemory` is
 * refused with the option that would fit (pipeline/core/memory.ts). With `--by-step`, step-local estimators
 * over step-sorted input finish each step as the next begins (pipeline/core/step_chunks.ts): one step's state
 * at a time. On bad input the run stops at the first bad batch, the complete batches' results are still
 * returned (and written), and `complete` is false; an internal error writes them too, then is thrown. Nothing
 * is written when no input could be read at all (e.g. a missing file). The estimators' life cycle is the one of
 * pipeline/core/estimator_set.ts; large inputs go to worker threads (parallel.ts) when the estimators allow.
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
import type { EstimatorPlugin, OptionValues, Scanner, StateValue } from "../core/plugin.ts";
import { Progress } from "../core/progress.ts";
import { Registry } from "../core/registry.ts";
import { readInput, spillStdin } from "../../schemas/source.ts";
import { type OutputFormat, writeTables } from "../core/write.ts";
import type { Layout } from "../../schemas/validate.ts";
import { builtinPlugins } from "../../plugins/mod.ts";
import { WorkerPool } from "./parallel.ts";
import { BufferPool } from "./buffer_pool.ts";
import { decodeState } from "../core/state.ts";
import { type BackendRequest, openRunGpu, selectBackend } from "../core/backend.ts";
import { resolveThreads } from "../../plugins/kernels/threads.ts";
import { type Estimators, EstimatorSet, firstPassPlugin, type RunSettings } from "../core/estimator_set.ts";
import type { InputShape } from "../core/plugin.ts";
import {
  BASE_BYTES,
  checkMemory,
  defaultMaxMemory,
  estimateMemory,
  formatBytes,
  type Holding,
} from "../core/memory.ts";
import { StepChunks } from "../core/step_chunks.ts";
import { selectLayers } from "../core/select_layers.ts";
import { originalNeuronIndices, parseNeuronSpec, selectNeurons } from "./neurons.ts";
import { runRecord, writeRunRecord } from "../core/run_record.ts";

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
  /**
   * Threads (plugins/kernels/threads.ts: 0 or absent = the default). Order-free estimators run on a pool of worker
   * threads when this is given or the input is at least 64 MiB; the estimators get it as `context.threads`.
   */
  threads?: number;
  /**
   * `auto` (default): WebGPU when a hardware adapter exists, never a fallback/software one; `cpu`; `webgpu`:
   * WebGPU or a `BackendError` (see pipeline/core/backend.ts). Estimators without a GPU path run on the CPU anyway.
   */
  backend?: BackendRequest;
  /** Let `backend: "webgpu"` use a software adapter (llvmpipe, ...); default: `INFOTAP_WEBGPU_ALLOW_SOFTWARE`. */
  allowSoftwareGpu?: boolean;
  /** Extra fields for run.json (e.g. the command line). */
  extra?: Record<string, unknown>;
  /** Bytes the estimators may take (default: 75% of physical memory); a run estimated over it is refused. */
  maxMemory?: number;
  /**
   * Stops reading when aborted (the CLI's SIGINT/SIGTERM): the run then ends as on bad input, with the results
   * of the batches read so far (`complete: false`, the error naming the abort reason).
   */
  signal?: AbortSignal;
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
  /** False when nothing was written (no input could be read: nothing to record). */
  written: boolean;
  /** Result tables by name. */
  tables: Record<string, arrow.Table>;
  /** The run record written as `run.json`. */
  run: Record<string, unknown>;
  /** The estimators' warnings, each as `[plugin] warning` (the CLI prints them). */
  warnings: string[];
}

/** Position reached before an error: batches of earlier inputs, and of input `input` before `batch`. */
interface StopAt {
  input: number;
  batch: number;
  error: string;
}

/** What a pass over the inputs ends with: the worker threads' states (when it used them), and the error that stopped it. */
interface PassEnd {
  states: StateValue[][] | null;
  failure: unknown;
}

/** Runs the analysis. Bad input does not throw: it ends the run early with `complete: false` and `error`. */
export async function analyze(opts: AnalyzeOptions): Promise<AnalyzeResult> {
  const t0 = performance.now();
  if (opts.inputs.length === 0) throw new InputError("Cannot analyze as no input was given: current value is []");
  if (opts.inputs.filter((p) => p === "-").length > 1) {
    throw new InputError("Cannot read standard input twice: current value is " + show(opts.inputs));
  }
  const registry = opts.registry ?? new Registry(builtinPlugins);
  const requested = opts.estimators?.length ? opts.estimators.map((n) => registry.get(n)) : null;
  const request = opts.backend ?? "auto";
  const backend = await selectBackend(request, { allowSoftware: opts.allowSoftwareGpu });
  const settings: RunSettings = {
    ...{ byStep: opts.byStep ?? false, seed: opts.seed ?? 0, backend, request },
    ...{ gpu: await openRunGpu(backend), threads: resolveThreads(opts.threads) },
  };
  // Stdin is spilled to a file when some candidate estimator needs a first pass.
  const needsScan = firstPassPlugin(registry, requested, opts.options ?? {}, settings) !== null;
  const run = new Analysis(opts, registry, requested, settings, needsScan);
  settings.progress = (name, done, total, unit) => run.progress.work(name, done, total, unit);
  let error: string | undefined, internal: unknown = null;
  try {
    await run.passes();
  } catch (e) {
    if (!(e instanceof InputError) && !(e instanceof Error && e.name === "PluginError")) internal = e;
    error = relabel(e, run.spilled ?? "", "-");
  }
  if (internal === null) return await run.finish(error, t0);
  // An internal error: the results of the batches before it are written (complete: false), then it is thrown.
  await run.finish(`internal error: ${error}`, t0).catch(() => {});
  throw internal;
}

/** What the first pass saw: rows, distinct steps and whether they came sorted, distinct labels. */
class InputCounts {
  rows = 0;
  steps = new Set<bigint>();
  sorted = true;
  labels = new Set<number>();
  #last: bigint | null = null;

  observe(batch: Batch): void {
    const n = batch.numRows, s = batch.step, y = batch.label;
    this.rows += n;
    if (s) {
      for (let i = 0; i < n; i++) {
        const v = s[i];
        if (v !== this.#last) {
          if (this.#last !== null && v < this.#last) this.sorted = false;
          this.steps.add(v);
          this.#last = v;
        }
      }
    }
    if (y && this.labels.size < 1 << 20) { for (let i = 0; i < n; i++) this.labels.add(y[i]); }
  }
}

/** The state of one run between its passes. */
class Analysis {
  readonly stats: InputStats[];
  readonly paths: string[];
  spilled: string | null = null;
  progress = new Progress("analyze", 0, false);
  readonly timings: Record<string, number> = {};
  /** Worker threads allowed (`--threads`, or by input size) and used. */
  threads = 1;
  threadsUsed = 1;
  stopAt: StopAt | null = null;
  kind: Kind | null = null;
  layout: Layout | null = null;
  set: EstimatorSet | null = null;
  scans: (StateValue | undefined)[] = [];
  estimators: Estimators | StepChunks | null = null;
  /** What the first pass counted (null without one). */
  counts: InputCounts | null = null;
  /** `maxMemory`. */
  readonly maxMemory: number;
  /** How the estimators hold their steps (see `#plan`). */
  holding = "";
  // Body buffers handed back by worker threads are read into again (no fresh-memory page faults).
  readonly buffers = new BufferPool();
  /** `--neurons`: the parsed selection and each layer's chosen neurons. */
  readonly neurons;

  constructor(
    readonly opts: AnalyzeOptions,
    readonly registry: Registry,
    readonly requested: EstimatorPlugin[] | null,
    readonly settings: RunSettings,
    readonly needsScan: boolean,
  ) {
    this.stats = opts.inputs.map((path) => ({ path, bytes: 0, batches: 0, rows: 0 }));
    this.paths = [...opts.inputs];
    this.maxMemory = opts.maxMemory ?? defaultMaxMemory();
    this.neurons = { spec: opts.neurons ? parseNeuronSpec(opts.neurons) : null, chosen: new Map<string, Int32Array>() };
  }

  /** The first pass (when needed), then the estimators' pass; throws the error that ends the run early. */
  async passes(): Promise<void> {
    try {
      await this.#open();
      if (this.needsScan) await this.#firstPass();
      await this.#estimatePass();
    } finally {
      if (this.spilled) await Deno.remove(this.spilled).catch(() => {});
    }
  }

  /** Throws when the run was interrupted (`AnalyzeOptions.signal`). */
  #checkAbort(): void {
    const signal = this.opts.signal;
    if (!signal?.aborted) return;
    const rows = this.stats.reduce((a, s) => a + s.rows, 0);
    throw new InputError(
      `Cannot finish the analysis as it was interrupted (${
        signal.reason ?? "aborted"
      }): current value is ${rows} rows read`,
    );
  }

  /** Spills stdin when it must be read twice, sizes the inputs, starts the progress bar, decides the threads. */
  async #open(): Promise<void> {
    const { paths, stats, opts } = this;
    if (this.needsScan && paths.includes("-")) {
      const ts = performance.now();
      this.progress = new Progress("reading stdin", 0, opts.progress);
      this.spilled = await spillStdin((n) => this.progress.bytes(n), opts.signal);
      paths[paths.indexOf("-")] = this.spilled;
      this.timings.spill_s = (performance.now() - ts) / 1000;
    }
    for (let i = 0; i < paths.length; i++) {
      if (paths[i] !== "-") {
        try {
          stats[i].bytes = (await Deno.stat(paths[i])).size;
        } catch { /* reported when opened */ }
      }
    }
    const totalBytes = stats.reduce((a, st) => a + st.bytes, 0);
    const passes = this.needsScan ? 2 : 1;
    this.progress.stop();
    this.progress = new Progress(passes === 2 ? "pass 1/2" : "reading", totalBytes * passes, opts.progress);
    const pool = (opts.threads ?? 0) > 0 || totalBytes >= AUTO_THREADS_BYTES;
    this.threads = pool ? this.settings.threads! : 1;
  }

  /** The estimators for the stream's kind, chosen at its first batch. */
  #choose(layout: Layout): EstimatorSet {
    this.kind = layout.kind;
    this.layout = layout;
    return this.set = EstimatorSet.choose(
      this.registry,
      this.requested,
      layout.kind,
      this.opts.options ?? {},
      this.settings,
    );
  }

  /** Pass 1: the scanners, on worker threads when their results merge. An input error keeps the batches before it. */
  async #firstPass(): Promise<void> {
    const ts = performance.now();
    let scanners: (Scanner | null)[] = [];
    const counts = this.counts = new InputCounts();
    const { states, failure } = await this.#pass(null, async (layout) => {
      const set = this.#choose(layout);
      scanners = set.scanners();
      const mergeable = set.plugins.every((p, i) => !scanners[i] || p.mergeScans);
      // Before anything big is allocated: the estimators' memory for one step (a lower bound of the run's).
      checkMemory(set, this.#shape(layout, null), { held: 1, units: 1, copies: 1 }, this.maxMemory);
      return this.threads > 1 && mergeable ? await this.#pool("scan", set) : null;
    }, (batch) => {
      for (const s of scanners) s?.update(batch);
    }, (batch) => counts.observe(batch));
    const scanning = scanners.map((s) => s !== null);
    this.scans = states ? this.set!.mergeScans(states, scanning) : scanners.map((s) => s?.result());
    if (failure) {
      if (!(failure instanceof InputError) || !this.kind) throw failure;
      const w = failure.where;
      const input = Math.max(0, this.opts.inputs.indexOf(w.file ?? ""));
      this.stopAt = { input, batch: w.batch ?? 0, error: failure.message };
    }
    this.timings.scan_s = (performance.now() - ts) / 1000;
  }

  /**
   * Pass 2: the estimators, on worker threads when every one is order-free, none is on the GPU (one thread
   * feeds the device) and there are threads to use; their states are then restored and merged here.
   */
  async #estimatePass(): Promise<void> {
    const te = performance.now();
    for (const st of this.stats) st.rows = 0;
    if (this.needsScan) {
      const total = this.stats.reduce((a, st) => a + st.bytes, 0);
      this.progress.pass("pass 2/2", 2 * total, total);
    }
    const { states, failure } = await this.#pass(this.stopAt, async (layout) => {
      const set = (this.set ?? this.#choose(layout)).withScans(this.scans);
      this.set = set;
      const plan = this.#plan(set, layout);
      if (plan.chunks) {
        this.estimators = new StepChunks(set, plan.chunks);
        return null;
      }
      if (plan.copies > 1) return await this.#pool("estimate", set);
      this.estimators = set.create();
      return null;
    }, (batch) => this.estimators!.update(batch));
    if (states) {
      const parts = states.map((w) => this.set!.restore(w));
      for (const other of parts.slice(1)) parts[0].merge(other);
      this.estimators = parts[0];
    }
    if (failure) throw failure;
    this.timings.estimate_s = (performance.now() - te) / 1000;
    if (this.stopAt) throw new InputError(this.stopAt.error);
    if (this.stats.every((s) => s.rows === 0)) {
      throw new InputError(
        `Cannot analyze as the input holds no rows: current value is 0 rows in ${this.stats.length} input(s)`,
        { file: this.opts.inputs.join(", ") },
      );
    }
  }

  /** The input's shape for the memory estimates: its layers, rows of one result unit, labels. */
  #shape(layout: Layout, counts: InputCounts | null): InputShape {
    const tensors = layout.tensors.filter((t) => !this.opts.layers || this.opts.layers.includes(t.name));
    let rows: number | null;
    if (counts) rows = this.settings.byStep ? Math.ceil(counts.rows / Math.max(1, counts.steps.size)) : counts.rows;
    else {
      // No first pass: the rows the inputs' sizes allow (an upper bound of one step's); unknown for stdin.
      const rowBytes = layout.tensors.reduce((a, t) => a + 4 * t.width, 0) + 24;
      rows = this.paths.includes("-") ? null : Math.ceil(this.stats.reduce((a, s) => a + s.bytes, 0) / rowBytes);
    }
    return { kind: layout.kind, tensors, rows, labels: counts && counts.labels.size > 0 ? counts.labels.size : null };
  }

  /**
   * How the estimators hold their steps, checked against `maxMemory` (an InputError naming the option that
   * fits when not): `--by-step` over step-sorted input with step-local estimators finishes each step as the next
   * begins (on this thread; an explicit `--threads N` keeps a pool of N workers holding every step when that
   * fits); without a first pass the steps are finished in chunks that fit. Otherwise worker threads (each holding
   * its own state) when allowed and they fit; automatic threads are given up when only one fits.
   */
  #plan(set: EstimatorSet, layout: Layout): { copies: number; chunks?: ConstructorParameters<typeof StepChunks>[1] } {
    const counts = this.counts, byStep = this.settings.byStep;
    const shape = this.#shape(layout, counts);
    const budget = this.maxMemory;
    const record = (how: string, h: Holding) => {
      this.holding = `${how}: about ${formatBytes(estimateMemory(set, shape, h).total)}`;
    };
    // Threads asked for (--threads N) on order-free estimators: a worker pool holding every step, when it fits.
    const threaded = this.threads > 1 && set.orderFree() && !set.onGpu();
    const asked = threaded && (this.opts.threads ?? 0) > 0;
    if (byStep && set.stepLocal() && asked) {
      const h = {
        held: Math.max(1, counts?.steps.size ?? 1),
        units: Math.max(1, counts?.steps.size ?? 1),
        copies: this.threads,
      };
      if (estimateMemory(set, shape, h).total <= budget) {
        record(`every step on ${this.threads} threads (--threads)`, h);
        return { copies: this.threads };
      }
    }
    if (byStep && set.stepLocal()) {
      if (counts?.sorted) {
        const h = { held: 1, units: Math.max(1, counts.steps.size), copies: 1, finishing: true };
        checkMemory(set, shape, h, budget);
        record("one step at a time (steps sorted)", h);
        return { copies: 1, chunks: { steps: 1, maxHeld: Infinity } };
      }
      if (!counts) {
        // Steps unknown: chunks of as many steps as half the budget holds (all of a small run's steps).
        const h = { held: 1, units: 1, copies: 1, finishing: true };
        checkMemory(set, shape, h, budget);
        const one = estimateMemory(set, shape, h).total - BASE_BYTES;
        const maxHeld = one > 0 ? Math.max(1, Math.floor((budget - BASE_BYTES) / one)) : Infinity;
        record(`chunks of steps (at most ${maxHeld} held)`, h);
        return {
          copies: 1,
          chunks: {
            steps: Math.max(1, Math.floor(maxHeld / 2)),
            maxHeld,
            why: `${maxHeld} steps of about ${formatBytes(one)} fit in --max-memory ${formatBytes(budget)}`,
          },
        };
      }
    }
    const steps = byStep ? Math.max(1, counts?.steps.size ?? 1) : 1;
    let h: Holding = { held: steps, units: steps, copies: threaded ? this.threads : 1 };
    const auto = !(this.opts.threads && this.opts.threads > 0);
    if (h.copies > 1 && auto && estimateMemory(set, shape, h).total > budget) h = { ...h, copies: 1 };
    checkMemory(set, shape, h, budget, { unsorted: byStep && counts !== null && !counts.sorted });
    record(byStep ? `every step (${counts?.sorted === false ? "steps not sorted" : "not step-local"})` : "one", h);
    return { copies: h.copies };
  }

  /**
   * Reads the inputs once (up to `stopAt`): at the first batch `start` decides on worker threads, then every
   * batch goes to them or to `local` (and to `observe`, on this thread). Returns the threads' states and the
   * error that stopped the pass.
   */
  async #pass(
    stopAt: StopAt | null,
    start: (layout: Layout) => Promise<WorkerPool | null>,
    local: (batch: Batch) => void | Promise<void>,
    observe?: (batch: Batch) => void,
  ): Promise<PassEnd> {
    let pool: WorkerPool | null = null, started = false, failure: unknown = null;
    try {
      for await (const { batch, layout } of this.#batches(stopAt)) {
        if (!started) {
          started = true;
          pool = await start(layout);
        }
        observe?.(batch);
        const at = Math.max(0, this.opts.inputs.indexOf(batch.file)), rows = batch.numRows;
        if (pool) await pool.send(batch);
        else await local(batch);
        this.stats[at].rows += rows;
      }
    } catch (e) {
      failure = e;
    }
    if (!pool) return { states: null, failure };
    try {
      const states = (await pool.finish()).map((w) => w.map(decodeState));
      return { states, failure: failure ?? pool.error };
    } finally {
      pool.close();
    }
  }

  /** Worker threads running the set's scanners or estimators. */
  async #pool(mode: "scan" | "estimate", set: EstimatorSet): Promise<WorkerPool> {
    const pool = await WorkerPool.start(this.threads, { mode, modules: set.modules(this.registry), plan: set.plan() });
    pool.onBuffer = (b) => this.buffers.give(b);
    this.threadsUsed = this.threads;
    return pool;
  }

  /** Reads every input in order, yielding batches until `stopAt` (exclusive) or the first error. */
  async *#batches(stopAt: StopAt | null): AsyncGenerator<{ batch: Batch; layout: Layout }> {
    const { paths, stats, opts, progress } = this;
    const alloc = (n: number) => this.buffers.take(n);
    let expected: Layout | undefined;
    for (let i = 0; i < paths.length; i++) {
      if (stopAt && i > stopAt.input) return;
      const st = stats[i];
      for await (
        const { batch, layout } of readInput(paths[i], {
          expected,
          onBytes: (n) => progress.bytes(n),
          alloc,
        })
      ) {
        if (stopAt && i === stopAt.input && batch.index >= stopAt.batch) return;
        this.#checkAbort();
        expected ??= layout;
        const b = selectNeurons(
          selectLayers({ ...batch, file: opts.inputs[i] }, opts.layers),
          this.neurons.spec,
          this.neurons.chosen,
        );
        st.batches = Math.max(st.batches, batch.index + 1);
        yield { batch: b, layout };
        progress.rows(batch.numRows);
      }
      if (stopAt && i === stopAt.input) return;
    }
  }

  /** The result tables, the files and `run.json` (whatever the batches read before an error gave). */
  async finish(error: string | undefined, t0: number): Promise<AnalyzeResult> {
    const { opts, timings, estimators } = this;
    const format = opts.format ?? "parquet";
    let tables: Record<string, arrow.Table> = {};
    let summaries: ReturnType<Estimators["summaries"]> = { records: [], warnings: [] };
    const tr = performance.now();
    let failure: unknown = null;
    try {
      if (estimators && this.stats.some((s) => s.rows > 0)) {
        this.progress.phase("results");
        tables = await estimators.tables();
        summaries = estimators.summaries();
        if (this.neurons.spec) tables = originalNeuronIndices(tables, this.neurons.chosen);
      }
    } catch (e) {
      // An internal error while the results are computed: run.json still says so (no tables), then it is thrown.
      failure = e;
      tables = {};
      error = `internal error: ${(e as Error)?.message ?? e}`;
    } finally {
      this.progress.stop();
    }
    try {
      estimators?.dispose();
    } catch { /* the error above is the one to report */ }
    timings.result_s = (performance.now() - tr) / 1000;
    // Each estimator's result time (steps finished as they end count theirs too).
    if (estimators) Object.assign(timings, estimators.timings);
    const spec = this.neurons.spec;
    const run = runRecord({
      head: {
        threads: this.threadsUsed,
        ...(spec ? { neurons: Object.fromEntries([...this.neurons.chosen].map(([l, idx]) => [l, [...idx]])) } : {}),
      },
      error: error ?? null,
      kind: this.kind,
      source: { inputs: this.stats },
      layout: this.layout,
      layers: opts.layers,
      estimators: summaries.records,
      warnings: summaries.warnings,
      options: {
        byStep: this.settings.byStep,
        seed: this.settings.seed,
        format,
        ...(spec ? { more: { neurons: spec.text } } : {}),
      },
      backend: this.settings.backend,
      request: this.settings.request,
      tables,
      started: new Date(Date.now() - (performance.now() - t0)).toISOString(),
      extra: opts.extra,
    });
    let files: string[] | undefined;
    // Nothing read (no input could be opened): nothing to record, no output directory.
    const write = opts.out && (error === undefined || this.kind !== null) ? opts.out : undefined;
    if (write) {
      const tw = performance.now();
      files = await writeTables(write, tables, format);
      timings.write_s = (performance.now() - tw) / 1000;
    }
    timings.total_s = (performance.now() - t0) / 1000;
    await writeRunRecord(run, { out: write, files, timings });
    if (failure !== null) throw failure;
    return { complete: error === undefined, error, tables, run, warnings: summaries.warnings, written: !!write };
  }
}

function relabel(e: unknown, path: string, label: string): string {
  const msg = e instanceof Error ? e.message : String(e);
  return path === label ? msg : msg.replaceAll(`'${path}'`, `'${label}'`);
}
