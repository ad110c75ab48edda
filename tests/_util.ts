/**
 * Test helpers: seeded random numbers, synthetic batches, table comparison.
 *
 * @module
 */
import type * as arrow from "apache-arrow";
import type { Batch, Kind } from "../schemas/batch.ts";
import { type BatchInput, makeRecordBatch } from "../pipeline/producers/produce.ts";
import { decodeBatch, validateSchema } from "../schemas/validate.ts";

/** A small seeded PRNG (mulberry32) with a Gaussian draw. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Standard normal (Box-Muller). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** Decodes a producer-side batch the way the pipeline would (validated). */
export function toBatch(input: BatchInput, file = "test", index = 0): Batch {
  const rb = makeRecordBatch(input);
  return decodeBatch(rb, validateSchema(rb.schema, file, index), file, index);
}

/** Activation batches: `layers` maps name to row-major values of `rows x width`. */
export function activationBatch(
  rows: number,
  layers: Record<string, { width: number; values: Float32Array }>,
  extra: Partial<BatchInput> = {},
  firstId = 0,
): Batch {
  return toBatch({
    kind: "activations/v1" as Kind,
    sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(firstId + i)),
    tensors: Object.entries(layers).map(([name, l]) => ({ name, width: l.width, values: l.values })),
    ...extra,
  });
}

/**
 * Gradient batches (`gradients/v1`): `params` maps tensor name to row-major values of `rows x width`;
 * `extra.fisher` defaults to `true` (labels sampled from the model).
 */
export function gradientBatch(
  rows: number,
  params: Record<string, { width: number; values: Float32Array }>,
  extra: Partial<BatchInput> = {},
  firstId = 0,
): Batch {
  return toBatch({
    kind: "gradients/v1" as Kind,
    sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(firstId + i)),
    tensors: Object.entries(params).map(([name, p]) => ({ name, width: p.width, values: p.values })),
    fisher: "true",
    ...extra,
  });
}

/** Table rows as plain objects (bigints as strings), for deep comparison. */
export function rowsOf(t: arrow.Table): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (let i = 0; i < t.numRows; i++) {
    const r: Record<string, unknown> = {};
    for (const f of t.schema.fields) {
      const v = t.getChild(f.name)!.get(i);
      r[f.name] = typeof v === "bigint" ? v.toString() : v;
    }
    out.push(r);
  }
  return out;
}

/**
 * Asserts two tables have the same schema names and rows; numbers equal within `rtol` relative (or `atol`
 * absolute), everything else exactly.
 */
export function assertTablesClose(a: arrow.Table, b: arrow.Table, rtol = 1e-12, atol = 1e-12, label = ""): void {
  const na = a.schema.fields.map((f) => f.name).join(","), nb = b.schema.fields.map((f) => f.name).join(",");
  if (na !== nb) throw new Error(`${label}: columns differ: ${na} vs ${nb}`);
  if (a.numRows !== b.numRows) throw new Error(`${label}: rows differ: ${a.numRows} vs ${b.numRows}`);
  const ra = rowsOf(a), rb = rowsOf(b);
  for (let i = 0; i < ra.length; i++) {
    for (const k of Object.keys(ra[i])) {
      const x = ra[i][k], y = rb[i][k];
      if (typeof x === "number" && typeof y === "number") {
        if (Number.isNaN(x) && Number.isNaN(y)) continue;
        if (Math.abs(x - y) > atol + rtol * Math.max(Math.abs(x), Math.abs(y))) {
          throw new Error(`${label}: row ${i} column ${k}: ${x} vs ${y}`);
        }
      } else if (x !== y) throw new Error(`${label}: row ${i} column ${k}: ${x} vs ${y}`);
    }
  }
}

import type { Estimator, EstimatorContext, EstimatorPlugin, OptionValues, Results } from "../pipeline/core/plugin.ts";
import { resolveOptions } from "../pipeline/core/plugin.ts";

/** Resolves options, runs the plugin's first pass (if any) over all batches, and returns options + context. */
export function prepare(
  plugin: EstimatorPlugin,
  given: OptionValues,
  batches: Batch[],
  ctx: Partial<EstimatorContext> = {},
): { options: OptionValues; context: EstimatorContext } {
  const options = resolveOptions(plugin, given);
  const context: EstimatorContext = { byStep: false, seed: 0, ...ctx };
  const scanner = plugin.scan?.(options, context);
  if (scanner) {
    for (const b of batches) scanner.update(b);
    context.scan = scanner.result();
  }
  return { options, context };
}

/** Creates an estimator (after the first pass) and feeds it every batch. */
export async function runPlugin(
  plugin: EstimatorPlugin,
  given: OptionValues,
  batches: Batch[],
  ctx: Partial<EstimatorContext> = {},
): Promise<{ estimator: Estimator; results: Results }> {
  const { options, context } = prepare(plugin, given, batches, ctx);
  const estimator = plugin.create(options, context);
  for (const b of batches) await estimator.update(b);
  return { estimator, results: await estimator.result() };
}

/** Rows of a `jacobians/v1` batch, given as plain arrays (target null = missing, allowed on test rows). */
export interface JacobianRows {
  sampleId: (number | bigint)[];
  /** Per row; default all "train". */
  split?: ("train" | "test")[];
  output: number[];
  f0: number[];
  target: (number | null)[];
  /** Parameter-tensor columns: row-major `rows x width`. */
  tensors: Record<string, { width: number; values: Float32Array; metadata?: Record<string, string> }>;
  step?: (number | bigint)[];
}

/** A validated `jacobians/v1` batch from plain arrays (through the producer and the decoder). */
export function jacobianBatch(rows: JacobianRows, file = "test", index = 0): Batch {
  const n = rows.sampleId.length;
  return toBatch(
    {
      kind: "jacobians/v1" as Kind,
      sampleId: BigInt64Array.from(rows.sampleId, (v) => BigInt(v)),
      split: rows.split ?? new Array(n).fill("train"),
      output: Int32Array.from(rows.output),
      f0: Float32Array.from(rows.f0),
      target: Float32Array.from(rows.target, (v) => (v === null ? NaN : v)),
      step: rows.step ? BigInt64Array.from(rows.step, (v) => BigInt(v)) : undefined,
      tensors: Object.entries(rows.tensors).map(([name, t]) => ({ name, ...t })),
    },
    file,
    index,
  );
}

/**
 * Whether this machine has the C compiler `scripts/build_native.sh` uses (`$CC`, else `cc`): where it does, `npm
 * install` builds the native kernels (plugins/kernels/native/), and CI's tests require them.
 */
export function hasCompiler(): boolean {
  try {
    const cc = Deno.env.get("CC") || "cc";
    return new Deno.Command(cc, { args: ["--version"], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/** Every pair `a < b` of `N` neurons, as `[a0, b0, a1, b1, ...]` in order of `a`, then `b`. */
export function allPairs(N: number): Int32Array {
  const out = new Int32Array(N * (N - 1));
  for (let a = 0, p = 0; a < N; a++) for (let b = a + 1; b < N; b++, p += 2) (out[p] = a), (out[p + 1] = b);
  return out;
}
