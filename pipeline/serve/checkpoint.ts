/**
 * Serve's files per closed window and its checkpoint (see serve.ts for the protocol): `DIR/<table>/part-<k>.parquet`
 * (and/or `.arrow`), `DIR/checkpoint/window-<k>.state` (the window's estimator states),
 * `DIR/checkpoint/open.state` (the open windows' states at the last flush) and `DIR/checkpoint/progress.json`
 * (windows closed so far, the last flush, `next_step`), each written atomically (fsynced, renamed); and reading
 * them back for `--resume`, checked against the run's options.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pad } from "./checkpoint.ts";
 * assert.ok(pad(3) === "00000003" && pad(-2) === "-00000002");
 * ```
 *
 * @module
 */
import type * as arrow from "apache-arrow";
import { InputError, show } from "../../schemas/errors.ts";
import type { Layout } from "../../schemas/validate.ts";
import { type EstimatorPlugin, type OptionValues, resolveOptions, type StateValue } from "../core/plugin.ts";
import type { Registry } from "../core/registry.ts";
import { toJson } from "../core/run_record.ts";
import { decodeState, encodeState } from "../core/state.ts";
import { atomicWrite, type OutputFormat, WriteGroup, writeTable } from "../core/write.ts";

/** Result table names (they become directory names). */
export const TABLE_NAME = /^[a-z][a-z0-9_]*$/;

/** A window number as file names carry it (8 digits, sign first). */
export function pad(k: number): string {
  return (k < 0 ? "-" : "") + String(Math.abs(k)).padStart(8, "0");
}

/** The progress record of `out/checkpoint/progress.json`. */
export interface Progress {
  version: 1;
  snapshot_every: number;
  estimators: string[];
  options: OptionValues[];
  layers: string[] | null;
  seed: number;
  layout: { kind: string; tensors: { name: string; width: number }[]; reserved: string[] } | null;
  windows: number[];
  closed_through: number | null;
  next_step: number | null;
  /** Rows of the closed windows. */
  rows: number;
  /** The last flush of the open windows (`checkpoint/open.state`), or null (older checkpoints lack it). */
  flushed?: Flushed | null;
}

/** A flush of the open windows, as `progress.json` records it. */
export interface Flushed {
  /** ISO time of the flush. */
  at: string;
  /** Rows in the open windows flushed. */
  rows: number;
  /** The highest step analysed when it was written (null without a step column). */
  through_step: number | null;
  /** The windows flushed. */
  windows: number[];
}

/** One open window as flushed: its rows and estimator states. */
export interface OpenWindow {
  window: number;
  rows: number;
  estimators: StateValue[];
}

const OPEN = "checkpoint/open.state";

/** Writes the open windows' states (`checkpoint/open.state`, atomically); `progress.json` names it afterwards. */
export async function writeOpenWindows(out: string, open: OpenWindow[]): Promise<void> {
  await Deno.mkdir(`${out}/checkpoint`, { recursive: true });
  await atomicWrite(`${out}/${OPEN}`, encodeState({ open: open as unknown as StateValue[] }));
}

/** Removes `checkpoint/open.state` (every window closed). */
export async function removeOpenWindows(out: string): Promise<void> {
  await Deno.remove(`${out}/${OPEN}`).catch(() => {});
}

/** The open windows of the last flush (one state per plugin in each). */
async function readOpenWindows(out: string, flushed: Flushed, plugins: number): Promise<OpenWindow[]> {
  const file = `${out}/${OPEN}`;
  let st: { open: OpenWindow[] };
  try {
    st = decodeState(await Deno.readFile(file)) as unknown as typeof st;
  } catch (e) {
    throw new InputError(`Cannot resume as ${(e as Error).message}`, { file });
  }
  const same = Array.isArray(st.open) && st.open.length === flushed.windows.length &&
    st.open.every((w, i) => w.window === flushed.windows[i] && w.estimators.length === plugins);
  if (!same) {
    throw new InputError(
      `Cannot resume as the flushed windows do not match progress.json: current value is ${show(flushed.windows)}`,
      { file },
    );
  }
  return st.open;
}

/**
 * Writes a closed window's part files (one per table) and its estimators' states, made durable together (a
 * {@linkcode WriteGroup}: their fsyncs overlap rather than hold the producers up one disk round trip after another).
 */
export async function writeWindow(
  out: string,
  format: OutputFormat,
  k: number,
  tables: Record<string, arrow.Table>,
  states: StateValue[],
): Promise<void> {
  const names = Object.keys(tables);
  for (const name of names) {
    if (!TABLE_NAME.test(name)) {
      throw new Error(`Cannot write table as its name is not ${TABLE_NAME}: current value is ${show(name)}`);
    }
  }
  await Promise.all([...names, "checkpoint"].map((d) => Deno.mkdir(`${out}/${d}`, { recursive: true })));
  const group = new WriteGroup();
  try {
    for (const name of names) await writeTable(`${out}/${name}/part-${pad(k)}`, tables[name], format, group);
    const state = encodeState({ window: k, estimators: states });
    await atomicWrite(`${out}/checkpoint/window-${pad(k)}.state`, state, group);
    await group.commit();
  } finally {
    await group.discard();
  }
}

/** Writes `progress.json` (after the window's files: it names only windows whose files are complete). */
export async function writeProgress(out: string, progress: Progress): Promise<void> {
  await atomicWrite(`${out}/checkpoint/progress.json`, toJson(progress));
}

/** What `--resume` must match: the run's options as given now. */
export interface ResumeCheck {
  every: number;
  layers: string[] | undefined;
  seed: number;
  registry: Registry;
  requested: EstimatorPlugin[] | null;
  options: OptionValues;
}

/** A checkpoint read back: its progress record, with the plugins and options it names. */
export interface Checkpoint {
  progress: Progress;
  plugins: EstimatorPlugin[];
  options: OptionValues[];
  /** The stream's layout as recorded (null when no batch had come). */
  layout: Layout | null;
  /** The open windows of the last flush (empty when none). */
  open: OpenWindow[];
}

/**
 * Reads `out/checkpoint/progress.json` and checks it against the run's options (each mismatch is an
 * InputError naming the file); null when there is no checkpoint yet.
 */
export async function readCheckpoint(out: string, now: ResumeCheck): Promise<Checkpoint | null> {
  const file = `${out}/checkpoint/progress.json`;
  let progress: Progress;
  try {
    progress = JSON.parse(await Deno.readTextFile(file));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new InputError(
      `Cannot resume as the checkpoint is unreadable: current value is ${show((e as Error).message)}`,
      { file },
    );
  }
  const mismatch = (what: string, was: unknown, is: unknown) => {
    throw new InputError(
      `Cannot resume as ${what} differs from the checkpoint's (${JSON.stringify(was)}): current value is ${
        JSON.stringify(is)
      }`,
      { file },
    );
  };
  if (progress.version !== 1) mismatch("the checkpoint version", 1, progress.version);
  if (progress.snapshot_every !== now.every) mismatch("--snapshot-every", progress.snapshot_every, now.every);
  if (JSON.stringify(progress.layers) !== JSON.stringify(now.layers ?? null)) {
    mismatch("--layers", progress.layers, now.layers ?? null);
  }
  if (progress.seed !== now.seed) mismatch("--seed", progress.seed, now.seed);
  const plugins = progress.estimators.map((n) => {
    try {
      return now.registry.get(n);
    } catch (e) {
      throw new InputError(`Cannot resume as ${(e as Error).message}`, { file });
    }
  });
  if (now.requested && now.requested.map((p) => p.name).join() !== plugins.map((p) => p.name).join()) {
    mismatch("--estimators", progress.estimators, now.requested.map((p) => p.name));
  }
  const options = plugins.map((p) => resolveOptions(p, now.options));
  if (JSON.stringify(options) !== JSON.stringify(progress.options)) {
    mismatch("the estimator options", progress.options, options);
  }
  const layout: Layout | null = progress.layout
    ? {
      kind: progress.layout.kind as Layout["kind"],
      tensors: progress.layout.tensors,
      reserved: progress.layout.reserved,
      metadata: new Map(),
    }
    : null;
  const open = progress.flushed ? await readOpenWindows(out, progress.flushed, plugins.length) : [];
  return { progress, plugins, options, layout, open };
}

/** The estimator states of closed window `k` (one per plugin). */
export async function readWindow(out: string, k: number, plugins: number): Promise<StateValue[]> {
  const file = `${out}/checkpoint/window-${pad(k)}.state`;
  let st: { window: number; estimators: StateValue[] };
  try {
    st = decodeState(await Deno.readFile(file)) as typeof st;
  } catch (e) {
    throw new InputError(`Cannot resume as ${(e as Error).message}`, { file });
  }
  if (st.window !== k || st.estimators.length !== plugins) {
    throw new InputError(`Cannot resume as a window state does not match progress.json: current value is ${k}`, {
      file,
    });
  }
  return st.estimators;
}

/** Removes part files of windows after `closedThrough`: written before a crash, they will be written again. */
export async function removeStaleParts(out: string, closedThrough: number | null): Promise<void> {
  for await (const d of Deno.readDir(out)) {
    if (!d.isDirectory || !TABLE_NAME.test(d.name)) continue;
    for await (const f of Deno.readDir(`${out}/${d.name}`)) {
      const m = /^part-(-?\d+)\.(parquet|arrow|csv)$/.exec(f.name);
      if (m && (closedThrough === null || Number(m[1]) > closedThrough)) {
        await Deno.remove(`${out}/${d.name}/${f.name}`);
      }
    }
  }
}
