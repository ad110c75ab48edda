/**
 * Grouping rows by training step, for estimators that report per step (`--by-step`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stepRuns } from "./steps.ts";
 * const batch = { numRows: 3, step: new BigInt64Array([5n, 5n, 6n]), file: "x", index: 0 };
 * assert.ok(JSON.stringify(stepRuns(batch as never, true).map((r) => [r.r0, r.r1, String(r.step)])) === '[[0,2,"5"],[2,3,"6"]]');
 * ```
 *
 * @module
 */
import type { Batch } from "../../schemas/batch.ts";
import { InputError } from "../../schemas/errors.ts";

/** A run of consecutive rows sharing one step (`step` null when not grouping by step). */
export interface StepRun {
  r0: number;
  r1: number;
  step: bigint | null;
}

/**
 * Splits a batch into runs of equal `step`. Without `byStep`, one run of all rows with step null.
 * With `byStep` and no `step` column, an {@linkcode InputError} naming the file and batch.
 */
export function stepRuns(batch: Batch, byStep: boolean): StepRun[] {
  if (!byStep) return [{ r0: 0, r1: batch.numRows, step: null }];
  const s = batch.step;
  if (!s) {
    throw new InputError(
      "Cannot group by step (--by-step) as the stream has no 'step' column: current value is missing",
      {
        file: batch.file,
        batch: batch.index,
        column: "step",
      },
    );
  }
  const runs: StepRun[] = [];
  let r0 = 0;
  for (let r = 1; r <= batch.numRows; r++) {
    if (r === batch.numRows || s[r] !== s[r0]) {
      runs.push({ r0, r1: r, step: s[r0] });
      r0 = r;
    }
  }
  return runs;
}

/** The key a step is stored under in estimator states (`"all"` when not grouping by step). */
export function stepKey(step: bigint | null): string {
  return step === null ? "all" : step.toString();
}

/** Inverse of {@linkcode stepKey}. */
export function stepFromKey(key: string): bigint | null {
  return key === "all" ? null : BigInt(key);
}

/** Sorts step keys numerically (`all` first). */
export function sortStepKeys(keys: Iterable<string>): string[] {
  return [...keys].sort((a, b) => {
    if (a === b) return 0;
    if (a === "all") return -1;
    if (b === "all") return 1;
    const x = BigInt(a), y = BigInt(b);
    return x < y ? -1 : 1;
  });
}
