/**
 * Memory before a run: each estimator states what it holds per result unit (`EstimatorPlugin.memory`); this
 * module adds them up for the way the run will hold its steps, compares the total with `--max-memory` (default
 * 75% of physical memory) and, when it does not fit, says by how much and which option would make it fit
 * (a halved `memoryOptions` value, fewer `--layers`, one thread, or step-sorted input for `--by-step`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatBytes, parseBytes } from "./memory.ts";
 * assert.equal(parseBytes("2GiB", "--max-memory"), 2 ** 31);
 * assert.equal(parseBytes("1.5G", "--max-memory"), 1.5e9);
 * assert.equal(formatBytes(302_000_000), "302 MB");
 * ```
 *
 * @module
 */
import { InputError, show } from "../../schemas/errors.ts";
import type { EstimatorSet } from "./estimator_set.ts";
import type { InputShape, OptionValues } from "./plugin.ts";

/** What the process holds besides the estimators: the runtime, WebAssembly modules, batches being read. */
export const BASE_BYTES = 300e6;
/** Result tables are held until written, and written a unit (step) at a time: one unit's in two more copies. */
const WRITE_COPIES = 2;

/** Parses `N`, `N[K|M|G|T][B]` (powers of 1000) or `N[Ki|Mi|Gi|Ti][B]` (powers of 1024) into bytes. */
export function parseBytes(value: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*(?:([kmgt])(i)?)?b?\s*$/i.exec(value);
  const n = m ? Number(m[1]) * (m[2] ? (m[3] ? 1024 : 1000) ** ("kmgt".indexOf(m[2].toLowerCase()) + 1) : 1) : NaN;
  if (!Number.isFinite(n) || n <= 0) {
    throw new InputError(
      `Cannot use ${flag} as it must be a size such as 8G, 512MiB or 2000000000: current value is ${show(value)}`,
    );
  }
  return n;
}

/** Bytes as people read them: `302 MB`, `18.1 GB`. */
export function formatBytes(n: number): string {
  const units = ["bytes", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

/** The default `--max-memory`: 75% of physical memory (8 GB when it cannot be read). */
export function defaultMaxMemory(): number {
  try {
    return Math.floor(0.75 * Deno.systemMemoryInfo().total);
  } catch {
    return 8e9;
  }
}

/** How a run holds its steps. */
export interface Holding {
  /** Steps whose estimator state is held at once (1 without `--by-step`, or finishing each step). */
  held: number;
  /** Result units whose tables are kept until the end (the number of steps, or 1). */
  units: number;
  /** Copies of the state (worker threads each hold their own). */
  copies: number;
  /** Steps are finished as they end: a finished step's state may linger until collected (one more step). */
  finishing?: boolean;
}

/** An estimate: the total, and one part per estimator (`mi 18.1 GB: 60 steps x 302 MB`). */
export interface MemoryEstimate {
  total: number;
  parts: { name: string; bytes: number; detail: string }[];
}

/** Adds up the estimators' memory for a way of holding steps (plugins that state none count as 0). */
export function estimateMemory(set: EstimatorSet, shape: InputShape, h: Holding): MemoryEstimate {
  const parts = set.memory(shape).map(({ name, use }) => {
    const state = (use?.state ?? 0) * (h.held + (h.finishing ? 1 : 0)) * h.copies;
    const results = (use?.results ?? 0) * (h.units + WRITE_COPIES);
    const work = (use?.work ?? 0) * h.copies;
    const copies = (h.held + (h.finishing ? 1 : 0)) * h.copies;
    const detail = use
      ? `${copies > 1 ? `${copies} x ` : ""}${formatBytes(use.state)} of state, ${
        use.work ? `${h.copies > 1 ? `${h.copies} x ` : ""}${formatBytes(use.work)} of working buffers, ` : ""
      }${h.units + WRITE_COPIES} x ${formatBytes(use.results)} of results`
      : "not stated";
    return { name, bytes: state + results + work, detail };
  });
  return { total: BASE_BYTES + parts.reduce((a, p) => a + p.bytes, 0), parts };
}

/** One way to make a run fit: the option to pass and the estimate with it. */
interface Suggestion {
  text: string;
  total: number;
}

/**
 * Throws a one-line {@linkcode InputError} when the estimate exceeds `budget`, naming the total, the largest
 * parts and the options that would make the run fit (`unsorted`: `--by-step` holds every step because the
 * input's steps are not sorted).
 */
export function checkMemory(
  set: EstimatorSet,
  shape: InputShape,
  h: Holding,
  budget: number,
  { unsorted = false }: { unsorted?: boolean } = {},
): void {
  const est = estimateMemory(set, shape, h);
  if (est.total <= budget) return;
  const tips: Suggestion[] = [];
  const fits = (s: EstimatorSet, sh: InputShape, hh: Holding) => estimateMemory(s, sh, hh).total;
  // Halve each option the plugins name until it fits (an option at 0 meaning "all", e.g. --mi-pair-sample,
  // from 2^20 down).
  set.plugins.forEach((p, i) => {
    for (const key of p.memoryOptions ?? []) {
      const spec = p.options[key];
      let v = set.options[i][key] as number | undefined;
      if (v === undefined) continue;
      if (v === 0 && spec.min === 0) v = 2 ** 21;
      const min = Math.max(1, spec.min ?? 1, spec.greaterThan !== undefined ? Math.floor(spec.greaterThan) + 1 : 1);
      while (v > min) {
        v = Math.max(min, Math.floor(v / 2));
        const options: OptionValues[] = set.options.map((o, j) => (j === i ? { ...o, [key]: v } : o));
        const total = fits(set.withOptions(options), shape, h);
        if (total <= budget) {
          tips.push({ text: `--${key} ${v}`, total });
          break;
        }
      }
    }
  });
  // Drop the widest layers until it fits.
  const tensors = [...shape.tensors];
  while (tensors.length > 1) {
    tensors.splice(tensors.indexOf(tensors.reduce((a, b) => (b.width > a.width ? b : a))), 1);
    const total = fits(set, { ...shape, tensors }, h);
    if (total <= budget) {
      tips.push({ text: `--layers ${tensors.map((t) => t.name).join(",")}`, total });
      break;
    }
  }
  if (h.copies > 1) {
    const total = fits(set, shape, { ...h, copies: 1 });
    if (total <= budget) tips.push({ text: "--threads 1", total });
  }
  if (unsorted && h.held > 1) {
    const total = fits(set, shape, { ...h, held: 1 });
    if (total <= budget) tips.push({ text: "input sorted by step (--by-step then holds one step at a time)", total });
  }
  const largest = [...est.parts].sort((a, b) => b.bytes - a.bytes).slice(0, 3).filter((p) => p.bytes > 0)
    .map((p) => `${p.name} ${formatBytes(p.bytes)}: ${p.detail}`);
  const tip = tips.length
    ? `; try ${tips.map((t) => `${t.text} (about ${formatBytes(t.total)})`).join(" or ")}`
    : `; no option found that fits: raise --max-memory`;
  throw new InputError(
    `Cannot analyze as the estimators would need about ${formatBytes(est.total)} (${
      largest.join("; ")
    }), more than --max-memory ${formatBytes(budget)}${tip}: current value is ${formatBytes(est.total)}`,
  );
}
