/**
 * `run.json`, the record of one run, built one way for `analyze` and `serve`: whether it completed, what was
 * read, the estimators with their options, backends and summaries, the options, the backend decision, the
 * tables, versions and times. Each host adds its own fields (`head`, `source`, `options`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runRecord, toJson } from "./run_record.ts";
 * const run = runRecord({
 *   error: null, kind: "activations/v1", layout: null, layers: undefined, estimators: [],
 *   options: { byStep: false, seed: 0, format: "parquet" },
 *   backend: { backend: "cpu", reason: "asked", adapter: null }, request: "cpu", tables: {},
 *   started: new Date(0).toISOString(),
 * });
 * assert.ok(run.complete === true && run.backend === "cpu");
 * assert.ok(toJson({ n: 1n }) === '{\n  "n": "1"\n}\n');
 * ```
 *
 * @module
 */
import type * as arrow from "apache-arrow";
import type { Kind } from "../../schemas/batch.ts";
import type { Layout } from "../../schemas/validate.ts";
import { adapterRecord, type BackendDecision, type BackendRequest } from "./backend.ts";
import type { EstimatorRecord } from "./estimator_set.ts";
import type { OutputFormat } from "./write.ts";
import { versions } from "./version.ts";
import { atomicWrite } from "./write.ts";

/** What a host knows of its run when it ends. */
export interface RunFacts {
  /** Fields the record starts with (analyze: `threads`; serve: `mode`). */
  head?: Record<string, unknown>;
  /** The error that ended the run early, or null when it completed. */
  error: string | null;
  kind: Kind | null;
  /** Fields after `kind`: what was read (analyze: `inputs`; serve: rows, windows, producers). */
  source?: Record<string, unknown>;
  /** The layout of the stream (its layers), when one was read. */
  layout: Layout | null;
  /** `--layers`. */
  layers: string[] | undefined;
  estimators: EstimatorRecord[];
  /** The estimators' warnings (`[plugin] warning`), recorded for readers of the run (e.g. the report). */
  warnings?: string[];
  /** The options every run has, and the host's own (recorded after them). */
  options: { byStep: boolean; seed: number; format: OutputFormat; more?: Record<string, unknown> };
  backend: BackendDecision;
  request: BackendRequest;
  tables: Record<string, arrow.Table>;
  /** ISO time the run started. */
  started: string;
  /** Extra fields from the caller (e.g. the command line). */
  extra?: Record<string, unknown>;
}

/** The run record, without `files`, `timings` and `finished` (see {@linkcode writeRunRecord}). */
export function runRecord(f: RunFacts): Record<string, unknown> {
  return {
    ...f.head,
    complete: f.error === null,
    error: f.error,
    kind: f.kind,
    ...f.source,
    layers: f.layout?.tensors.filter((t) => !f.layers || f.layers.includes(t.name)) ?? [],
    estimators: f.estimators,
    warnings: f.warnings ?? [],
    options: {
      by_step: f.options.byStep,
      seed: f.options.seed,
      layers: f.layers ?? null,
      format: f.options.format,
      ...f.options.more,
    },
    backend: f.backend.backend,
    backend_request: f.request,
    backend_reason: f.backend.reason,
    adapter: adapterRecord(f.backend),
    tables: Object.fromEntries(Object.entries(f.tables).map(([n, t]) => [n, { rows: t.numRows }])),
    versions: versions(),
    started: f.started,
    ...f.extra,
  };
}

/** JSON as infotap writes it: two-space indents, bigints as strings, a final newline. */
export function toJson(x: unknown): string {
  return JSON.stringify(x, (_k, v) => (typeof v === "bigint" ? v.toString() : v), 2) + "\n";
}

/**
 * Completes a record with the files written (paths relative to `out`, when given), the timings and the finish
 * time, and writes it as `out/run.json` when `out` is given.
 */
export async function writeRunRecord(
  run: Record<string, unknown>,
  { out, files, timings }: { out?: string; files?: string[]; timings: Record<string, number> },
): Promise<Record<string, unknown>> {
  if (out !== undefined && files !== undefined) run.files = files.map((f) => f.slice(out.length + 1));
  run.timings = timings;
  run.finished = new Date().toISOString();
  if (out !== undefined) await atomicWrite(`${out}/run.json`, toJson(run));
  return run;
}
