/**
 * The step windows of a live run (see serve.ts for the protocol and files): every row goes to window
 * `floor(step / N)`, which has its own estimators (the estimator set of pipeline/core/estimator_set.ts).
 * Closing a window writes its part files and checkpoint (checkpoint.ts), prints its overview lines and merges
 * its estimators into the run totals, whose results equal those of `analyze --by-step` on the same rows.
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
import { type Estimators, EstimatorSet, type RunSettings } from "../core/estimator_set.ts";
import { textTable } from "../core/text_table.ts";
import type { OutputFormat } from "../core/write.ts";
import { type Checkpoint, type Progress, readWindow, writeProgress, writeWindow } from "./checkpoint.ts";

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
  /** The closed windows merged. */
  total: Estimators | null = null;
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
  /** Rows that came for a window already closed (not analysed). */
  lateRows = 0;

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
    this.total = set.create();
  }

  /** The window of a step. */
  windowOf(step: bigint | null): number {
    const every = this.cfg.every;
    if (every === 0 || step === null) return 0;
    return Math.floor(Number(step) / every);
  }

  /**
   * Folds a batch (its layers selected) into its windows, run by run of rows in one window; rows for a window
   * already closed are counted as late (in `producer.late_rows` too), not analysed.
   */
  async add(batch: Batch, producer: { late_rows: number }): Promise<void> {
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
      if (this.closedThrough !== null && k0 <= this.closedThrough) {
        producer.late_rows += part.numRows;
        this.lateRows += part.numRows;
        continue;
      }
      let ests = this.#open.get(k0);
      if (!ests) {
        ests = this.set!.create();
        this.#open.set(k0, ests);
      }
      this.#openRows.set(k0, (this.#openRows.get(k0) ?? 0) + part.numRows);
      await ests.update(part);
    }
    this.rows += n;
  }

  /** Closes every open window up to `through`, in order. */
  async closeThrough(through: number): Promise<void> {
    const ks = [...this.#open.keys()].filter((k) => k <= through).sort((a, b) => a - b);
    for (const k of ks) await this.#close(k);
    if (this.closedThrough === null || through > this.closedThrough) this.closedThrough = through;
  }

  /** Closes every open window (on stop). */
  async closeAll(): Promise<void> {
    const open = [...this.#open.keys()];
    if (open.length > 0) await this.closeThrough(Math.max(...open));
  }

  async #close(k: number): Promise<void> {
    const { out, format } = this.cfg;
    const ests = this.#open.get(k)!;
    const tables = await ests.tables();
    await writeWindow(out, format, k, tables, ests.states());
    this.total!.merge(ests);
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
    return this.total && this.rows > 0 ? await this.total.tables() : {};
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
      next_step: every > 0 && this.closedThrough !== null ? (this.closedThrough + 1) * every : null,
      rows: this.closedRows,
    };
  }

  /** Continues from a checkpoint: its estimators, layout and closed windows (merged into the totals). */
  async resume(cp: Checkpoint): Promise<void> {
    this.#use(new EstimatorSet(cp.plugins, cp.options, this.cfg.settings));
    this.layout = cp.layout;
    // Closed windows' states are only merged into the totals: restored on the host.
    const host = this.set!.onCpu();
    for (const k of cp.progress.windows) {
      this.total!.merge(host.restore(await readWindow(this.cfg.out, k, cp.plugins.length)));
    }
    this.closed = [...cp.progress.windows];
    this.closedThrough = cp.progress.closed_through;
    this.snapshots = cp.progress.windows.length;
    this.rows = this.closedRows = cp.progress.rows;
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
