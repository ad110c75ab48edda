/**
 * The step windows of a live run (see serve.ts for the protocol and files): every row goes to window
 * `floor(step / N)`, which has its own estimators (the estimator set of pipeline/core/estimator_set.ts).
 * Closing a window writes its part files and checkpoint (checkpoint.ts), prints its overview lines and keeps
 * its results for the run totals (step-local estimators: tables concatenated in step order; others: states
 * merged), whose tables equal those of `analyze --by-step` on the same rows. Every `--flush-every` seconds the
 * open windows' states are flushed to the checkpoint too.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Windows } from "./windows.ts";
 * import { Registry } from "../core/registry.ts";
 * import { cpuSettings } from "../core/estimator_set.ts";
 * import { builtinPlugins } from "../../plugins/mod.ts";
 * const windows = new Windows({
 *   out: await Deno.makeTempDir(), format: "arrow", every: 10, log: () => {}, registry: new Registry(builtinPlugins),
 *   requested: null, options: { range: [0, 1] }, settings: cpuSettings(true, 0), layers: undefined,
 * });
 * assert.ok(windows.windowOf(25n) === 2 && windows.windowOf(null) === 0);
 * ```
 *
 * @module
 */
import type * as arrow from "apache-arrow";
import { type Batch, sliceBatch } from "../../schemas/batch.ts";
import { InputError } from "../../schemas/errors.ts";
import { checkSameLayout, type Layout } from "../../schemas/validate.ts";
import type { EstimatorPlugin, OptionValues } from "../core/plugin.ts";
import type { Registry } from "../core/registry.ts";
import { type EstimatorRecord, type Estimators, EstimatorSet, type RunSettings } from "../core/estimator_set.ts";
import { FinishedResults } from "../core/step_chunks.ts";
import { textTable } from "../core/text_table.ts";
import type { OutputFormat } from "../core/write.ts";
import {
  type Checkpoint,
  type Flushed,
  type OpenWindow,
  type Progress,
  readWindow,
  removeOpenWindows,
  writeOpenWindows,
  writeProgress,
  writeWindow,
} from "./checkpoint.ts";

/** A batch refused for its steps (before the first open step, or too far after the highest so far). */
export class StepRefusal extends InputError {}

/** What the windows of a run share. */
export interface WindowsConfig {
  out: string;
  format: OutputFormat;
  /** Window width in steps (0: one window). */
  every: number;
  /** Where the overview lines go. */
  log: (line: string) => void;
  registry: Registry;
  requested: EstimatorPlugin[] | null;
  /** Plugin option values as given. */
  options: OptionValues;
  settings: RunSettings;
  /** `--layers` (recorded in the checkpoint). */
  layers: string[] | undefined;
}

/** The open windows' estimators, the closed ones' totals, and what the checkpoint records. */
export class Windows {
  /**
   * The estimators' plugins, options and contexts, chosen at the first batch (or from the checkpoint): the
   * windows' and the totals' (the totals only merge closed windows, but estimators that compute at the end,
   * such as KSG, then do it on the GPU).
   */
  set: EstimatorSet | null = null;
  /** The stream's layout (every producer's must match it). */
  layout: Layout | null = null;
  /** The closed windows merged (when the estimators are not step-local: see `closedResults`). */
  total: Estimators | null = null;
  /**
   * The closed windows' results, when every estimator is step-local (`EstimatorPlugin.stepLocal`): windows close
   * in step order, so their tables (computed anyway for the part files) are concatenated at the end instead of
   * merging their states; the run then holds no closed window's state.
   */
  closedResults: FinishedResults | null = null;
  #open = new Map<number, Estimators>();
  #openRows = new Map<number, number>();
  closedThrough: number | null = null;
  closed: number[] = [];
  /** Windows closed so far (their files, checkpoint and progress all written). */
  snapshots = 0;
  /** Rows analysed. */
  rows = 0;
  /** Rows of closed windows (the rows a resumed run starts from). */
  closedRows = 0;
  /** The highest step analysed (null before any row with a step). */
  maxStep: bigint | null = null;
  /** Where a resumed run starts (rows before it are in the checkpoint). */
  #resumedAt: bigint | null = null;
  /** The last flush of the open windows (null before one). */
  flushed: Flushed | null = null;
  /** Rows were analysed since the last flush. */
  #dirty = false;

  constructor(readonly cfg: WindowsConfig) {}

  /** Takes a producer's layout: the first one chooses the estimators, later ones must match it. */
  admit(layout: Layout, file: string, index: number): void {
    if (!this.layout) {
      if (!this.set) {
        this.#use(
          EstimatorSet.choose(this.cfg.registry, this.cfg.requested, layout.kind, this.cfg.options, this.cfg.settings),
        );
      }
      this.layout = layout;
    } else checkSameLayout(this.layout, layout, file, index);
  }

  #use(set: EstimatorSet): void {
    this.set = set;
    if (set.stepLocal()) this.closedResults = new FinishedResults(set);
    else this.total = set.create();
  }

  /** The window of a step. */
  windowOf(step: bigint | null): number {
    const every = this.cfg.every;
    if (every === 0 || step === null) return 0;
    return Math.floor(Number(step) / every);
  }

  /**
   * Checks a batch's steps before anything of it is analysed: steps before {@linkcode Windows.floor} (a closed
   * window, or rows a resumed run already holds) and steps more than `maxJump` after the highest so far (0: no
   * limit) refuse the whole batch with a {@linkcode StepRefusal}. Returns the batch's lowest and highest step
   * (null without a `step` column).
   */
  checkSteps(batch: Batch, maxJump: number): { lo: bigint; hi: bigint } | null {
    const s = batch.step, n = batch.numRows;
    if (!s || n === 0) return null;
    let lo = s[0], hi = s[0];
    for (let i = 1; i < n; i++) {
      if (s[i] < lo) lo = s[i];
      if (s[i] > hi) hi = s[i];
    }
    const where = { file: batch.file, batch: batch.index, column: "step" };
    if (this.floor !== null && lo < this.floor) {
      throw new StepRefusal(
        `Cannot analyse batch as its step ${lo} comes before step ${this.floor}, the first step still open (earlier steps are in closed windows or the checkpoint; a resumed producer replays from next_step): current value is ${lo}`,
        where,
      );
    }
    const ref = this.maxStep ?? this.floor;
    if (maxJump > 0 && ref !== null && hi - ref > BigInt(maxJump)) {
      throw new StepRefusal(
        `Cannot analyse batch as its step ${hi} is more than ${maxJump} steps after step ${ref}, the highest so far (--max-step-jump): current value is ${hi}`,
        where,
      );
    }
    return { lo, hi };
  }

  /** Folds a batch (its layers selected, its steps checked) into its windows, run by run of rows in one window. */
  async add(batch: Batch): Promise<void> {
    const every = this.cfg.every;
    if (every > 0 && !batch.step) {
      throw new InputError(
        `Cannot snapshot every ${every} steps (--snapshot-every) as the stream has no 'step' column: current value is missing`,
        { file: batch.file, batch: batch.index, column: "step" },
      );
    }
    const n = batch.numRows;
    let r0 = 0;
    for (let r = 1; r <= n; r++) {
      const k0 = this.windowOf(batch.step ? batch.step[r0] : null);
      if (r < n && this.windowOf(batch.step ? batch.step[r] : null) === k0) continue;
      const part = r0 === 0 && r === n ? batch : sliceBatch(batch, r0, r);
      r0 = r;
      let ests = this.#open.get(k0);
      if (!ests) {
        ests = this.set!.create();
        this.#open.set(k0, ests);
      }
      this.#openRows.set(k0, (this.#openRows.get(k0) ?? 0) + part.numRows);
      this.#dirty = true;
      await ests.update(part);
    }
    this.rows += n;
    const s = batch.step;
    if (s) { for (let i = 0; i < n; i++) if (this.maxStep === null || s[i] > this.maxStep) this.maxStep = s[i]; }
  }

  /** Closes every open window up to `through`, in order. */
  async closeThrough(through: number): Promise<void> {
    const ks = [...this.#open.keys()].filter((k) => k <= through).sort((a, b) => a - b);
    for (const k of ks) await this.#close(k);
    if (this.closedThrough === null || through > this.closedThrough) this.closedThrough = through;
  }

  /** Closes every open window (on stop); `onClosed` is called after each. */
  async closeAll(onClosed: () => void = () => {}): Promise<void> {
    for (const k of [...this.#open.keys()].sort((a, b) => a - b)) {
      await this.#close(k);
      onClosed();
    }
  }

  /** Steps before this one are refused: their windows are closed, or a resumed run holds them already. */
  get floor(): bigint | null {
    const { every } = this.cfg;
    const closed = every > 0 && this.closedThrough !== null ? BigInt(this.closedThrough + 1) * BigInt(every) : null;
    if (closed === null) return this.#resumedAt;
    return this.#resumedAt === null || closed > this.#resumedAt ? closed : this.#resumedAt;
  }

  /** Windows open now. */
  get openCount(): number {
    return this.#open.size;
  }

  /** Result files a closed window writes (the tables the estimators declare, per format). */
  tablesPerWindow(): number {
    const names = new Set(this.set?.plugins.flatMap((p) => Object.keys(p.tables ?? {})) ?? []);
    return Math.max(1, names.size) * (this.cfg.format === "both" ? 2 : 1);
  }

  /**
   * Writes the open windows' estimator states (`checkpoint/open.state`), then `progress.json` naming the flush:
   * a kill after it loses only the rows that come later. Nothing is written when no row came since the last
   * flush. Returns true when it wrote.
   */
  async flush(): Promise<boolean> {
    if (!this.#dirty || this.#open.size === 0) return false;
    const open: OpenWindow[] = [];
    for (const k of [...this.#open.keys()].sort((a, b) => a - b)) {
      const ests = this.#open.get(k)!;
      await ests.flush();
      open.push({ window: k, rows: this.#openRows.get(k) ?? 0, estimators: ests.states() });
    }
    await writeOpenWindows(this.cfg.out, open);
    this.flushed = {
      at: new Date().toISOString(),
      rows: open.reduce((a, w) => a + w.rows, 0),
      through_step: this.maxStep === null ? null : Number(this.maxStep),
      windows: open.map((w) => w.window),
    };
    this.#dirty = false;
    await writeProgress(this.cfg.out, this.progress());
    return true;
  }

  /** Every window is closed (the run stopped): the flushed open windows are not needed any more. */
  async finished(): Promise<void> {
    if (this.#open.size > 0) return;
    this.flushed = null;
    await removeOpenWindows(this.cfg.out);
    if (this.set) await writeProgress(this.cfg.out, this.progress());
  }

  /**
   * The first step a resumed run takes (producers replay from it): after the closed windows, and after the
   * highest step of the last flush; null when neither says (no step column, or nothing yet).
   */
  nextStep(): number | null {
    const every = this.cfg.every;
    const closed = every > 0 && this.closedThrough !== null ? (this.closedThrough + 1) * every : null;
    const flushed = this.flushed?.through_step != null ? this.flushed.through_step + 1 : null;
    if (closed === null) return flushed;
    return flushed === null ? closed : Math.max(closed, flushed);
  }

  async #close(k: number): Promise<void> {
    const { out, format } = this.cfg;
    const ests = this.#open.get(k)!;
    const results = await ests.results();
    const tables = this.set!.join(results);
    await writeWindow(out, format, k, tables, ests.states());
    if (this.closedResults) this.closedResults.add(results, ests.rawSummaries());
    else this.total!.merge(ests);
    ests.dispose();
    this.#open.delete(k);
    this.closedRows += this.#openRows.get(k) ?? 0;
    this.#openRows.delete(k);
    this.closed.push(k);
    if (this.closedThrough === null || k > this.closedThrough) this.closedThrough = k;
    await writeProgress(out, this.progress());
    // Counted once its files, checkpoint and progress are all written (ServeHandle.snapshots promises that).
    this.snapshots++;
    this.#print(k, tables);
  }

  /** The run totals' tables (none before any row). */
  async totals(): Promise<Record<string, arrow.Table>> {
    if (this.rows === 0) return {};
    if (this.closedResults) return this.closedResults.tables();
    return this.total ? await this.total.tables() : {};
  }

  /** What run.json records of each estimator over the closed windows, and their warnings. */
  summaries(): { records: EstimatorRecord[]; warnings: string[] } {
    return this.closedResults?.summaries() ?? this.total?.summaries() ?? { records: [], warnings: [] };
  }

  /** Frees the totals (the run is over). */
  dispose(): void {
    this.total?.dispose();
  }

  /** What `progress.json` records now. */
  progress(): Progress {
    const { every, layers, settings } = this.cfg;
    return {
      version: 1,
      snapshot_every: every,
      estimators: this.set?.plugins.map((p) => p.name) ?? [],
      options: this.set?.options ?? [],
      layers: layers ?? null,
      seed: settings.seed,
      layout: this.layout
        ? { kind: this.layout.kind, tensors: this.layout.tensors, reserved: this.layout.reserved }
        : null,
      windows: this.closed,
      closed_through: this.closedThrough,
      next_step: this.nextStep(),
      rows: this.closedRows,
      flushed: this.flushed,
    };
  }

  /** Continues from a checkpoint: its estimators, layout and closed windows (merged into the totals). */
  async resume(cp: Checkpoint): Promise<void> {
    this.#use(new EstimatorSet(cp.plugins, cp.options, this.cfg.settings));
    this.layout = cp.layout;
    // Closed windows' states are restored on the host, then merged into the totals or finished.
    const host = this.set!.onCpu();
    for (const k of cp.progress.windows) {
      const ests = host.restore(await readWindow(this.cfg.out, k, cp.plugins.length));
      if (this.closedResults) {
        this.closedResults.add(await ests.results(), ests.rawSummaries());
        ests.dispose();
      } else this.total!.merge(ests);
    }
    this.closed = [...cp.progress.windows];
    this.closedThrough = cp.progress.closed_through;
    this.snapshots = cp.progress.windows.length;
    this.rows = this.closedRows = cp.progress.rows;
    // The open windows as last flushed (those closed since are in the closed ones).
    this.flushed = cp.progress.flushed ?? null;
    for (const w of cp.open) {
      if (this.closed.includes(w.window)) continue;
      this.#open.set(w.window, this.set!.restore(w.estimators));
      this.#openRows.set(w.window, w.rows);
      this.rows += w.rows;
    }
    const next = this.nextStep();
    if (next !== null) this.#resumedAt = BigInt(next);
    if (this.flushed?.through_step != null) this.maxStep = BigInt(this.flushed.through_step);
  }

  /** Prints the window's overview table (per-layer summaries) at its last step, or its tables' sizes. */
  #print(k: number, tables: Record<string, arrow.Table>): void {
    const { every, log } = this.cfg;
    const t = this.set!.overview(tables);
    const head = every > 0
      ? `snapshot ${this.snapshots}: steps ${k * every}..${(k + 1) * every - 1}`
      : `snapshot ${this.snapshots}`;
    if (!t || t.numRows === 0) {
      log(`${head}: ${Object.entries(tables).map(([n, x]) => `${n} ${x.numRows} rows`).join(", ")}`);
      return;
    }
    const stepCol = t.getChild("step");
    let last: bigint | null = null;
    for (let i = 0; i < t.numRows; i++) {
      const s = stepCol?.get(i) as bigint | null;
      if (s !== null && s !== undefined && (last === null || s > last)) last = s;
    }
    const names = t.schema.fields.map((f) => f.name).filter((n) => n !== "step");
    const rows = [...Array(t.numRows).keys()].filter((i) => last === null || stepCol?.get(i) === last);
    log(`${head}${last !== null ? ` (layers at step ${last})` : ""}`);
    for (const line of textTable(t, names, rows, { indent: "  ", firstLeft: true })) log(line);
  }
}
