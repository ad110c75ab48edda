/**
 * `--by-step` with bounded memory: estimators of step-local plugins (`EstimatorPlugin.stepLocal`) fed in step
 * order are finished in chunks of whole steps: when a new step begins and the chunk holds enough steps, the
 * chunk's result tables are taken (kept per plugin), its estimators are disposed and fresh ones take the next
 * steps. At the end the chunks' tables are concatenated per plugin, then joined as `Estimators.tables` joins
 * them, and the summaries combined (`mergeSummaries`): the same tables as one set of estimators over all steps.
 *
 * Steps must not go back to a finished chunk: a row of a step before the last finished one is an InputError
 * (the input's steps are not sorted). Steps that go back within the open chunk are fine, but stop the
 * finishing; `maxHeld` then bounds the steps held (an InputError past it, before memory runs out).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StepChunks } from "./step_chunks.ts";
 * import { cpuSettings, EstimatorSet } from "./estimator_set.ts";
 * import { Registry } from "./registry.ts";
 * import { builtinPlugins } from "../../plugins/mod.ts";
 * const set = EstimatorSet.of([new Registry(builtinPlugins).get("entropy")], { range: [0, 1] }, cpuSettings(true, 0));
 * const chunks = new StepChunks(set, { steps: 1, maxHeld: 10 });
 * for (const step of [0n, 1n, 2n]) {
 *   const values = new Float32Array([0.1, 0.9]);
 *   await chunks.update({ numRows: 2, step: new BigInt64Array([step, step]), columns: [{ name: "fc1", width: 1, values }] } as never);
 * }
 * assert.equal(chunks.finished, 2); // steps 0 and 1 finished while step 2 came
 * assert.equal((await chunks.tables()).neuron_entropy.numRows, 3);
 * chunks.dispose();
 * ```
 *
 * @module
 */
import type * as arrow from "apache-arrow";
import { type Batch, sliceBatch } from "../../schemas/batch.ts";
import { InputError } from "../../schemas/errors.ts";
import type { EstimatorSummary, Results } from "./plugin.ts";
import { type EstimatorRecord, type Estimators, type EstimatorSet, summaryRecords } from "./estimator_set.ts";
import { stepRuns } from "./steps.ts";
import { concatTables } from "./table.ts";

/** When chunks finish. */
export interface ChunkPolicy {
  /** Steps a chunk holds before it is finished at the next new step (1: every step as it ends). */
  steps: number;
  /** Steps held at most when the input's steps go back (not sorted): past it, an InputError. */
  maxHeld: number;
  /** Said in that InputError: why the steps are bounded (e.g. the memory they would take). */
  why?: string;
}

/**
 * The results of estimators finished apart (chunks of steps, serve's closed windows), in step order: their
 * tables concatenated per plugin, then joined; their summaries combined (`mergeSummaries`).
 */
export class FinishedResults {
  #done: Results[][] = [];
  #told: (EstimatorSummary | null)[] | null = null;

  constructor(readonly set: EstimatorSet) {}

  /** How many were added. */
  get count(): number {
    return this.#done.length;
  }

  /** Adds one finished estimator set's results and summaries (`Estimators.results`, `rawSummaries`). */
  add(results: Results[], told: (EstimatorSummary | null)[]): void {
    this.#done.push(results);
    this.#told = this.#told === null ? told : this.set.mergeSummaries(this.#told, told);
  }

  /** The tables of everything added (then of `open`, when given): concatenated per plugin, then joined. */
  tables(open?: Results[]): Record<string, arrow.Table> {
    const chunks = open ? [...this.#done, open] : this.#done;
    const perPlugin: Results[] = this.set.plugins.map((_, i) => {
      const names = new Set(chunks.flatMap((c) => Object.keys(c[i])));
      return Object.fromEntries(
        [...names].map((n) => [n, concatTables(chunks.map((c) => c[i][n]).filter((t) => t !== undefined))]),
      );
    });
    return this.set.join(perPlugin);
  }

  /** What run.json records of each estimator, over everything added (and `open`'s summaries, when given). */
  summaries(open?: (EstimatorSummary | null)[]): { records: EstimatorRecord[]; warnings: string[] } {
    const told = open === undefined
      ? this.#told ?? this.set.plugins.map(() => null)
      : this.#told === null
      ? open
      : this.set.mergeSummaries(this.#told, open);
    return summaryRecords(this.set, told);
  }
}

/** Estimators over step-sorted batches, finished a chunk of steps at a time (see the module). */
export class StepChunks {
  #current: Estimators;
  #held = new Set<bigint>();
  #done: FinishedResults;
  #maxStep: bigint | null = null;
  /** Steps up to this one are finished (null: none yet). */
  finishedThrough: bigint | null = null;
  /** Steps finished so far. */
  finished = 0;
  /** False once a step came after a higher one. */
  sorted = true;
  /** Seconds each plugin's results took, over every chunk (see `Estimators.timings`). */
  readonly timings: Record<string, number> = {};

  constructor(readonly set: EstimatorSet, readonly policy: ChunkPolicy) {
    this.#current = set.create();
    this.#done = new FinishedResults(set);
  }

  /** Folds a batch in, finishing the open chunk first when a new step begins and the chunk is full. */
  async update(batch: Batch): Promise<void> {
    const runs = stepRuns(batch, true);
    for (const run of runs) {
      const step = run.step!;
      if (this.finishedThrough !== null && step <= this.finishedThrough) {
        throw new InputError(
          `Cannot analyze --by-step as step ${step} comes after step ${this.finishedThrough} was finished (the input's steps are not sorted; ${
            this.policy.why ?? "steps are finished as they end"
          }): current value is ${step}`,
          { file: batch.file, batch: batch.index, column: "step" },
        );
      }
      if (this.#maxStep !== null && step < this.#maxStep) this.sorted = false;
      const fresh = this.#maxStep === null || step > this.#maxStep;
      if (fresh && this.sorted && this.#held.size >= this.policy.steps) await this.#finish();
      if (!this.#held.has(step)) {
        if (this.#held.size >= this.policy.maxHeld) {
          throw new InputError(
            `Cannot analyze --by-step as more than ${this.policy.maxHeld} steps would be held at once (the input's steps are not sorted; ${
              this.policy.why ?? "memory is bounded"
            }): current value is ${this.#held.size + 1} steps`,
            { file: batch.file, batch: batch.index, column: "step" },
          );
        }
        this.#held.add(step);
      }
      await this.#current.update(runs.length === 1 ? batch : sliceBatch(batch, run.r0, run.r1));
      if (fresh) this.#maxStep = step;
    }
  }

  /** Takes the open chunk's tables and summaries, frees its estimators, opens the next chunk. */
  async #finish(): Promise<void> {
    if (this.#held.size === 0) return;
    this.#done.add(await this.#results(), this.#current.rawSummaries());
    this.#current.dispose();
    this.#current = this.set.create();
    this.finished += this.#held.size;
    this.#held.clear();
    this.finishedThrough = this.#maxStep;
  }

  /** The open chunk's results, its result times added up. */
  async #results(): Promise<Results[]> {
    const before = { ...this.#current.timings };
    const out = await this.#current.results();
    for (const [k, v] of Object.entries(this.#current.timings)) {
      this.timings[k] = (this.timings[k] ?? 0) + v - (before[k] ?? 0);
    }
    return out;
  }

  /** The tables of every step: each plugin's chunks concatenated in step order, then joined. */
  async tables(): Promise<Record<string, arrow.Table>> {
    const open = this.#held.size > 0 || this.#done.count === 0;
    return this.#done.tables(open ? await this.#results() : undefined);
  }

  /** What run.json records of each estimator, over every chunk. */
  summaries(): { records: EstimatorRecord[]; warnings: string[] } {
    const open = this.#held.size > 0 || this.#done.count === 0;
    return this.#done.summaries(open ? this.#current.rawSummaries() : undefined);
  }

  /** Frees the open chunk's estimators. */
  dispose(): void {
    this.#current.dispose();
  }
}
