/**
 * `fisher`: Fisher information from streamed per-sample gradients (`gradients/v1`), after Achille, Paolini &
 * Soatto, "Where is the information in a deep network?" (2019); definitions in docs/science.md section 2.
 *
 * - Diagonal: `F_jj = mean over rows of g_j^2`, over ALL rows (every `draw` of the true Fisher included), the
 *   Fisher of the mean loss. Squares of float32 gradients are exact in float64; they are summed in float64 in
 *   blocks of at most 256 rows, and the blocks are added with Neumaier-compensated summation (also on merge), so
 *   batch size and merging change results by less than 1e-13 relative. A non-finite gradient entry is left out
 *   of its own `F_jj` (whose mean is then over the remaining rows) and counted in `nonfinite`.
 * - Weighted rows (a `weight` column, e.g. one row per class weighted by p(y|x): the exact expectation over the
 *   model's labels): `F_jj = sum_r w_r g_rj^2 / sum_r w_r`; without the column every weight is 1.
 * - Standard errors (`trace_se`, with `inputs`): the rows of one `sample_id` are one cluster (`_clusters.ts`);
 *   `trace +- 1.96 trace_se` covers the population trace about 95% of the time (CLT over inputs).
 * - Weights term `||w*||^2 / (2 lambda^2)` (`weights_term`, also added into `info_weights`): from a `row_type =
 *   weights` row of the step (the parameter values; not a sample), else from schema metadata
 *   `infotap.weight_sq_norms` (a JSON object of squared norms per tensor); null without either or --prior-var.
 * - The kind is schema metadata `infotap.fisher`: `true` -> "true Fisher" (labels sampled from the model),
 *   `empirical` -> "empirical Fisher" (dataset labels); it is carried into every row and table metadata.
 * - Information in the weights (nats), the Fisher part of the closed form:
 *   `info_weights = 1/2 sum_j [log(1 + s_j) - s_j / (1 + s_j)]`, `s_j = lambda^2 F_jj / beta`, with
 *   `--prior-var` (lambda^2) and `--beta`. Both must be given together (each > 0); without them `info_weights`,
 *   `logdet` and `effective_dim` are null. Both are recorded in the table metadata.
 * - Low rank (`--fisher-rank ell`, default 64; 0 disables): a Frequent Directions sketch `B` (see
 *   `fd_sketch.ts`) of the gradient rows `G` (all parameter tensors concatenated in schema order), so that
 *   `B^T B / n` approximates `F = G^T G / n` with `0 <= x^T (F - B^T B / n) x <= Delta / n` for unit x.
 *   Rows holding a non-finite value are left out of the sketch (counted in `sketch_skipped`; n counts the rest).
 *   Table `fisher_spectrum`: the top `ell` eigenvalues of `B^T B / n` (`eigenvalue`, each a lower bound of the
 *   matching eigenvalue of F) and `error_bound = Delta / n`, so `eigenvalue <= lambda_i(F) <= eigenvalue +
 *   error_bound`. In the `fisher` total row, `logdet = sum_i log(1 + c mu_i)` and `effective_dim = sum_i c mu_i /
 *   (1 + c mu_i)` over the sketch's eigenvalues `mu_i`, `c = lambda^2 / beta`: both are lower bounds of the
 *   exact `log det(I + c F)` and `sum_j s_j / (1 + s_j)` over F's eigenvalues (exact when P <= ell, or n < 2 ell).
 *   Merging sketches is exact while neither side has shrunk; afterwards a merged sketch meets the same bound but
 *   is not bit-equal to a one-pass sketch. Memory: up to `2 ell P` float64 per step (a sketch over 4 GiB is
 *   refused with an error naming `--fisher-rank`); time: about `4 ell P` multiply-adds per row.
 *
 * Tables:
 * - `fisher`: `level` (parameter | layer | total), `parameter` (tensor name; layer = prefix before the last `.`;
 *   null on the total row), `numel`, `trace`, `trace_se`, `mean_diag`, `max_diag`, `info_weights`,
 *   `weights_term`, `logdet`, `effective_dim`, `samples` (rows), `inputs` (distinct sample_ids), `nonfinite`
 *   (entries left out), `kind`, `step` (with `--by-step`: one row set per training step, the trace-over-training
 *   curve).
 * - `fisher_diag` (with `--fisher-diag`): `parameter`, `index`, `value` (F_jj), `kind`, `step`.
 * - `fisher_spectrum` (unless `--fisher-rank 0`): `rank` (1-based), `eigenvalue`, `error_bound`, `samples`,
 *   `sketch_skipped`, `kind`, `step`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fisherPlugin } from "./fisher.ts";
 * const est = fisherPlugin.create({ "fisher-rank": 0, "fisher-diag": false }, { byStep: false, seed: 0 });
 * est.update({
 *   numRows: 2, step: null, file: "x", index: 0, metadata: new Map([["infotap.fisher", "true"]]),
 *   sampleId: new BigInt64Array([0n, 1n]),
 *   columns: [{ name: "fc.weight", width: 1, values: new Float32Array([1, 3]) }],
 * } as never);
 * const t = (await est.result()).fisher;
 * assert.ok(t.getChild("trace")!.get(0) === 5 && t.getChild("kind")!.get(0) === "true Fisher");
 * ```
 *
 * @module
 */
import { type Batch, ROW_WEIGHTS } from "../../schemas/batch.ts";
import { InputError, show } from "../../schemas/errors.ts";
import {
  definePlugin,
  type Estimator,
  type EstimatorContext,
  type EstimatorPlugin,
  type OptionValues,
  type Results,
  type StateValue,
} from "../../pipeline/core/plugin.ts";
import { sortStepKeys, stepFromKey, stepKey, stepRuns } from "../../pipeline/core/steps.ts";
import { tableFromColumns } from "../../pipeline/core/table.ts";
import { FISHER_KEY } from "../../schemas/validate.ts";
import { FdSketch, type FdState } from "./fd_sketch.ts";
import { type ClusterState, TraceClusters } from "./_clusters.ts";
import { GpuSquareSums } from "./gpu_square_sums.ts";
import type { GpuContext } from "../kernels/gpu/context.ts";
import { fisherReport } from "./report.ts";

/** Schema metadata key: squared norms of the weights w* per parameter tensor, a JSON object (one set per stream). */
export const WEIGHT_SQ_NORMS_KEY = "infotap.weight_sq_norms";

/** Output names of the two kinds of Fisher. */
export const FISHER_KINDS: Record<string, string> = { true: "true Fisher", empirical: "empirical Fisher" };

/** Rows per plain-summed block before the compensated add (bounds the block's relative error by 256 eps). */
const BLOCK_ROWS = 256;

/** Largest sketch buffer allowed (bytes); beyond it the run stops with a clear error instead of running out of memory. */
const MAX_SKETCH_BYTES = 4 * 2 ** 30;

interface ParamAcc {
  sum: Float64Array;
  comp: Float64Array;
  nonfinite: Float64Array;
  /** Weight of the entries left out (non-finite), once a weighted batch was seen; else `nonfinite` is it. */
  nfw: Float64Array | null;
}

interface StepAcc {
  rows: number;
  /** Total row weight (rows when unweighted), Neumaier-compensated: `wsum + wcomp`. */
  wsum: number;
  wcomp: number;
  params: Map<string, ParamAcc>;
  sketch: FdSketch | null;
  skipped: number;
  /** Per-input sums for the traces' standard errors (groups: tensors, layers, total). */
  clusters: TraceClusters;
  /** Squared norm of w* per tensor, from a `weights` row of this step; null when none came. */
  wsq: Float64Array | null;
}

interface FisherState {
  kind: string | null;
  params: { name: string; width: number }[];
  metaRaw?: string | null;
  weighted?: boolean;
  steps: Record<string, {
    rows: number;
    wsum?: number;
    wcomp?: number;
    skipped: number;
    params: {
      name: string;
      sum: Float64Array;
      comp: Float64Array;
      nonfinite: Float64Array;
      nfw?: Float64Array | null;
    }[];
    sketch: FdState | null;
    clusters?: ClusterState;
    wsq?: Float64Array | null;
  }>;
}

/** Neumaier (Kahan-Babuska) compensated add of `x` into `(s[j], c[j])`. */
function addComp(s: Float64Array, c: Float64Array, j: number, x: number): void {
  const a = s[j], t = a + x;
  c[j] += Math.abs(a) >= Math.abs(x) ? (a - t) + x : (x - t) + a;
  s[j] = t;
}

/** The same for a step's scalar weight sum. */
function addWeight(acc: StepAcc, x: number): void {
  const a = acc.wsum, t = a + x;
  acc.wcomp += Math.abs(a) >= Math.abs(x) ? (a - t) + x : (x - t) + a;
  acc.wsum = t;
}

/** Squared norms per tensor of the row `r` of a `weights` row (w*), in float64; non-finite values are an error. */
function weightSqNorms(batch: Batch, r: number): Float64Array {
  return Float64Array.from(batch.columns, (col) => {
    let q = 0;
    for (let j = r * col.width; j < (r + 1) * col.width; j++) {
      const x = col.values[j];
      if (!Number.isFinite(x)) {
        throw new InputError(
          `Cannot take the weights w* from a 'weights' row as they must be finite: current value is ${x} at index ${
            j - r * col.width
          }`,
          { file: batch.file, batch: batch.index, column: col.name },
        );
      }
      q += x * x;
    }
    return q;
  });
}

/** Parses schema metadata `infotap.weight_sq_norms`: one finite squared norm >= 0 for every tensor, no other name. */
function parseSqNorms(raw: string, params: { name: string }[], where: { file?: string; batch?: number }): Float64Array {
  const fail = (why: string, v: unknown): never => {
    throw new InputError(
      `Cannot read schema metadata '${WEIGHT_SQ_NORMS_KEY}' as ${why}: current value is ${show(v)}`,
      {
        ...where,
        column: WEIGHT_SQ_NORMS_KEY,
      },
    );
  };
  let o: unknown;
  try {
    o = JSON.parse(raw);
  } catch {
    fail("it must be a JSON object {tensor: squared norm}", raw);
  }
  if (typeof o !== "object" || o === null || Array.isArray(o)) {
    fail("it must be a JSON object {tensor: squared norm}", raw);
  }
  const m = o as Record<string, unknown>;
  for (const k of Object.keys(m)) if (!params.some((p) => p.name === k)) fail("it names an unknown tensor", k);
  return Float64Array.from(params, (p) => {
    const v = m[p.name];
    if (typeof v !== "number" || !(v >= 0 && v < Infinity)) fail(`tensor '${p.name}' needs a finite number >= 0`, v);
    return v as number;
  });
}

/** Layer name of a parameter tensor: the prefix before the last `.` (the whole name when it has none). */
export function layerOf(parameter: string): string {
  const i = parameter.lastIndexOf(".");
  return i > 0 ? parameter.slice(0, i) : parameter;
}

class FisherEstimator implements Estimator {
  readonly rank: number;
  readonly diag: boolean;
  readonly priorVar: number | undefined;
  readonly beta: number | undefined;
  readonly byStep: boolean;
  kind: string | null = null;
  params: { name: string; width: number }[] = [];
  /** Layer names and the layer index of each tensor (the standard errors' groups: tensors, layers, total). */
  layers: string[] = [];
  #layerIdx = new Int32Array(0);
  /** Squared norms of w* from schema metadata (every step without a `weights` row), and its raw text. */
  metaWsq: Float64Array | null = null;
  #metaRaw: string | null = null;
  /** A batch with a `weight` column was seen. */
  weighted = false;
  steps = new Map<string, StepAcc>();
  #scratch = new Float64Array(0);
  #rowQ = new Float64Array(0);
  /** WebGPU path (`context.gpu`): the diagonal's sums of squares accumulate on the GPU. */
  readonly gpu: GpuContext | null;
  #sums: GpuSquareSums | null = null;

  constructor(options: OptionValues, context: EstimatorContext) {
    this.gpu = context.gpu ?? null;
    this.rank = (options["fisher-rank"] as number | undefined) ?? 64;
    this.diag = (options["fisher-diag"] as boolean | undefined) ?? false;
    this.priorVar = options["prior-var"] as number | undefined;
    this.beta = options.beta as number | undefined;
    this.byStep = context.byStep;
  }

  get dim(): number {
    return this.params.reduce((a, p) => a + p.width, 0);
  }

  #setKind(kind: string | null | undefined, where: { file?: string; batch?: number }): void {
    const name = kind === undefined || kind === null ? undefined : FISHER_KINDS[kind];
    if (name === undefined) {
      throw new InputError(
        `Cannot compute the Fisher information as schema metadata '${FISHER_KEY}' must be 'true' or 'empirical' (true vs empirical Fisher): current value is ${
          kind === undefined || kind === null ? "missing" : show(kind)
        }`,
        { ...where, column: FISHER_KEY },
      );
    }
    if (this.kind !== null && this.kind !== kind) {
      throw new InputError(
        `Cannot mix ${FISHER_KINDS[this.kind]} and ${name} gradients in one estimate: current value is ${show(kind)}`,
        { ...where, column: FISHER_KEY },
      );
    }
    this.kind = kind as string;
  }

  #setParams(cols: { name: string; width: number }[], where: { file?: string; batch?: number }): void {
    if (this.params.length === 0) {
      this.params = cols.map((c) => ({ name: c.name, width: c.width }));
      this.layers = [...new Set(this.params.map((p) => layerOf(p.name)))];
      this.#layerIdx = Int32Array.from(this.params, (p) => this.layers.indexOf(layerOf(p.name)));
      return;
    }
    const same = cols.length === this.params.length &&
      cols.every((c, i) => c.name === this.params[i].name && c.width === this.params[i].width);
    if (!same) {
      throw new InputError(
        `Cannot accumulate the Fisher information as the parameter tensors changed (expected ${
          this.params.map((p) => `${p.name}[${p.width}]`).join(", ")
        }): current value is ${cols.map((p) => `${p.name}[${p.width}]`).join(", ")}`,
        where,
      );
    }
  }

  #acc(key: string): StepAcc {
    let s = this.steps.get(key);
    if (!s) {
      const params = new Map<string, ParamAcc>();
      for (const p of this.params) {
        params.set(p.name, {
          sum: new Float64Array(p.width),
          comp: new Float64Array(p.width),
          nonfinite: new Float64Array(p.width),
          nfw: this.weighted ? new Float64Array(p.width) : null,
        });
      }
      const bytes = 2 * this.rank * this.dim * 8;
      if (bytes > MAX_SKETCH_BYTES) {
        throw new Error(
          `Cannot keep a Frequent Directions sketch as its buffer (2 x ell x P float64) would take ${
            (bytes / 2 ** 30).toFixed(1)
          } GiB (pass --fisher-rank 0 or a smaller rank): current value is ell = ${this.rank}, P = ${this.dim}`,
        );
      }
      s = {
        rows: 0,
        wsum: 0,
        wcomp: 0,
        params,
        sketch: this.rank > 0 ? new FdSketch(this.rank, this.dim) : null,
        skipped: 0,
        clusters: new TraceClusters(this.params.length + this.layers.length + 1),
        wsq: null,
      };
      this.steps.set(key, s);
    }
    return s;
  }

  update(batch: Batch): void | Promise<void> {
    const where = { file: batch.file, batch: batch.index };
    this.#setKind(batch.metadata?.get(FISHER_KEY), where);
    this.#setParams(batch.columns, where);
    this.#setMetaNorms(batch.metadata?.get(WEIGHT_SQ_NORMS_KEY), where);
    if (batch.weight && !this.weighted) this.#startWeighted();
    // Weighted rows and `weights` rows take the CPU path (the GPU kernel sums unweighted squares).
    if (this.gpu && !batch.weight && !batch.rowType) return this.#updateGpu(batch);
    for (const run of stepRuns(batch, this.byStep)) {
      const acc = this.#acc(stepKey(run.step));
      for (const [r0, r1] of this.#gradientRuns(batch, run.r0, run.r1, acc)) {
        acc.rows += r1 - r0;
        this.#addWeights(acc, batch.weight ?? null, r0, r1);
        const q = this.#rowNorms(r1 - r0);
        batch.columns.forEach((col, t) => {
          const a = acc.params.get(col.name)!;
          const rowQ = q.subarray(t * (r1 - r0), (t + 1) * (r1 - r0));
          this.#diag(col.values, col.width, r0, r1, a, batch.weight ?? null, rowQ);
        });
        this.#cluster(batch, r0, r1, acc, q);
        if (acc.sketch) this.#sketch(batch, r0, r1, acc);
      }
    }
  }

  /** Checks and keeps the squared norms of w* from schema metadata (one set for the whole run). */
  #setMetaNorms(raw: string | undefined, where: { file?: string; batch?: number }): void {
    if (raw === undefined || raw === this.#metaRaw) return;
    const wsq = parseSqNorms(raw, this.params, where);
    if (this.metaWsq && !wsq.every((x, i) => x === this.metaWsq![i])) {
      throw new InputError(
        `Cannot take two different sets of '${WEIGHT_SQ_NORMS_KEY}' in one run (send 'weights' rows per step instead): current value is ${
          show(raw)
        }`,
        { ...where, column: WEIGHT_SQ_NORMS_KEY },
      );
    }
    this.metaWsq = wsq;
    this.#metaRaw = raw;
  }

  /** From the first weighted batch on, entries left out are tracked by weight as well as by count. */
  #startWeighted(): void {
    this.weighted = true;
    for (const acc of this.steps.values()) {
      for (const a of acc.params.values()) a.nfw ??= Float64Array.from(a.nonfinite);
    }
  }

  /**
   * The runs of gradient rows in rows `[r0, r1)`; `weights` rows between them give the step's w* (squared
   * norms per tensor; several per step must agree).
   */
  #gradientRuns(batch: Batch, r0: number, r1: number, acc: StepAcc): [number, number][] {
    const rt = batch.rowType;
    if (!rt) return [[r0, r1]];
    const out: [number, number][] = [];
    let a = r0;
    for (let r = r0; r < r1; r++) {
      if (rt[r] !== ROW_WEIGHTS) continue;
      if (r > a) out.push([a, r]);
      a = r + 1;
      this.#setWeights(acc, weightSqNorms(batch, r), { file: batch.file, batch: batch.index });
    }
    if (r1 > a) out.push([a, r1]);
    return out;
  }

  #setWeights(acc: StepAcc, wsq: Float64Array, where: { file?: string; batch?: number }): void {
    if (acc.wsq && !wsq.every((x, i) => x === acc.wsq![i])) {
      throw new InputError(
        `Cannot take two different weights w* for one step (one 'weights' row per step): current value is ${
          show(this.params.map((p, i) => `${p.name}: ${wsq[i]}`).join(", "))
        }`,
        { ...where, column: "row_type" },
      );
    }
    acc.wsq = wsq;
  }

  #addWeights(acc: StepAcc, w: Float64Array | null, r0: number, r1: number): void {
    if (!w) addWeight(acc, r1 - r0);
    else for (let r = r0; r < r1; r++) addWeight(acc, w[r]);
  }

  /** Scratch for the rows' squared norms, tensor-major: `[tensor][row]`. */
  #rowNorms(rows: number): Float64Array {
    const need = rows * this.params.length;
    if (this.#rowQ.length < need) this.#rowQ = new Float64Array(need);
    return this.#rowQ.subarray(0, need);
  }

  /** Adds the rows' squared norms (per tensor, layer and in total) to their inputs' clusters. */
  #cluster(batch: Batch, r0: number, r1: number, acc: StepAcc, q: Float64Array): void {
    const n = r1 - r0, P = this.params.length, L = this.layers.length, c = acc.clusters;
    const ql = new Float64Array(L);
    for (let r = r0; r < r1; r++) {
      const slot = c.slot(batch.sampleId[r]);
      const w = batch.weight ? batch.weight[r] : 1;
      ql.fill(0);
      let total = 0;
      for (let t = 0; t < P; t++) {
        const x = q[t * n + r - r0];
        c.add(slot, t, x, w);
        ql[this.#layerIdx[t]] += x;
        total += x;
      }
      for (let l = 0; l < L; l++) c.add(slot, P + l, ql[l], w);
      c.add(slot, P + L, total, w);
    }
  }

  /** The WebGPU path: diagonal sums on the GPU (float-float, see gpu/square_sums.ts), the sketch on the CPU. */
  async #updateGpu(batch: Batch): Promise<void> {
    const runs = stepRuns(batch, this.byStep).map((r) => ({ key: stepKey(r.step), r0: r.r0, r1: r.r1 }));
    for (const run of runs) {
      const acc = this.#acc(run.key);
      acc.rows += run.r1 - run.r0;
      addWeight(acc, run.r1 - run.r0);
      // The standard errors need each row's squared norms: summed here on the CPU.
      const n = run.r1 - run.r0, q = this.#rowNorms(n);
      batch.columns.forEach((col, t) => {
        for (let r = run.r0; r < run.r1; r++) {
          let x = 0;
          for (let j = r * col.width; j < (r + 1) * col.width; j++) x += col.values[j] * col.values[j];
          q[t * n + r - run.r0] = x;
        }
      });
      this.#cluster(batch, run.r0, run.r1, acc, q);
      if (acc.sketch) this.#sketch(batch, run.r0, run.r1, acc);
    }
    this.#sums ??= GpuSquareSums.open(this.gpu!, this.dim, (key, sums, nonfinite) => {
      const acc = this.#acc(key);
      let at = 0;
      for (const p of this.params) {
        const a = acc.params.get(p.name)!;
        for (let j = 0; j < p.width; j++, at++) {
          addComp(a.sum, a.comp, j, sums[at]);
          a.nonfinite[j] += nonfinite[at];
          if (a.nfw) a.nfw[j] += nonfinite[at];
        }
      }
    });
    await this.#sums.update(batch, runs);
  }

  /** Reads GPU-held sums back into the host totals (no-op on the CPU path). */
  async flush(): Promise<void> {
    await this.#sums?.flush();
  }

  /** Frees the GPU buffers (results and state read back first). */
  dispose(): void {
    this.#sums?.destroy();
    this.#sums = null;
  }

  #checkFlushed(what: string): void {
    if (this.#sums?.pending) {
      throw new Error(`Cannot ${what} as GPU sums are not read back (await flush() first): current value is pending`);
    }
  }

  /**
   * Sums of `w_r g_rj^2` over rows `[r0, r1)` into `a` (`w_r = 1` without weights: `1 * x` is exact, so unweighted
   * sums are the plain sums of squares); each row's squared norm into `rowQ[r - r0]`. Entries left out (non-finite)
   * are counted, and their weight goes to `nfw` once that is kept.
   */
  #diag(
    v: Float32Array,
    width: number,
    r0: number,
    r1: number,
    a: ParamAcc,
    w: Float64Array | null,
    rowQ: Float64Array,
  ): void {
    if (this.#scratch.length < width) this.#scratch = new Float64Array(width);
    const s = this.#scratch;
    for (let b0 = r0; b0 < r1; b0 += BLOCK_ROWS) {
      const b1 = Math.min(r1, b0 + BLOCK_ROWS);
      s.fill(0, 0, width);
      for (let r = b0; r < b1; r++) {
        const o = r * width, wr = w ? w[r] : 1;
        let q = 0;
        for (let j = 0; j < width; j++) {
          const x = v[o + j];
          const x2 = x * x;
          s[j] += wr * x2;
          q += x2;
        }
        rowQ[r - r0] = q;
      }
      for (let j = 0; j < width; j++) {
        let x = s[j];
        if (!(x - x === 0)) {
          // A NaN or infinite entry in this block: redo this coordinate, leaving those entries out.
          x = 0;
          for (let r = b0; r < b1; r++) {
            const g = v[r * width + j], wr = w ? w[r] : 1;
            if (Number.isFinite(g)) x += wr * (g * g);
            else {
              a.nonfinite[j]++;
              if (a.nfw) a.nfw[j] += wr;
            }
          }
        }
        addComp(a.sum, a.comp, j, x);
      }
    }
  }

  /** Appends rows `[r0, r1)` to the sketch (weighted rows scaled by sqrt(w), counted with weight w). */
  #sketch(batch: Batch, r0: number, r1: number, acc: StepAcc): void {
    const sk = acc.sketch!, w = batch.weight;
    for (let r = r0; r < r1; r++) {
      if (w && w[r] === 0) continue;
      const row = sk.slot();
      let at = 0, bad = 0;
      for (const col of batch.columns) {
        const cw = col.width;
        const src = col.values.subarray(r * cw, (r + 1) * cw);
        row.set(src, at);
        for (let j = 0; j < cw; j++) bad += src[j] - src[j];
        at += cw;
      }
      if (bad !== 0) acc.skipped++;
      else if (!w) sk.commit();
      else {
        const f = Math.sqrt(w[r]);
        for (let j = 0; j < at; j++) row[j] *= f;
        sk.commit(w[r]);
      }
    }
  }

  merge(other: Estimator): void {
    const o = other as FisherEstimator;
    if (!(o instanceof FisherEstimator) || o.rank !== this.rank) {
      throw new Error("Cannot merge fisher estimators with different --fisher-rank: current value is incompatible");
    }
    o.#checkFlushed("merge a fisher estimator");
    if (o.kind !== null) this.#setKind(o.kind, {});
    if (o.params.length) this.#setParams(o.params, {});
    if (o.#metaRaw !== null) this.#setMetaNorms(o.#metaRaw, {});
    if (o.weighted && !this.weighted) this.#startWeighted();
    for (const [key, s] of o.steps) {
      const mine = this.#acc(key);
      mine.rows += s.rows;
      addWeight(mine, s.wsum);
      mine.wcomp += s.wcomp;
      mine.skipped += s.skipped;
      for (const [name, a] of s.params) {
        const m = mine.params.get(name)!;
        for (let j = 0; j < a.sum.length; j++) {
          addComp(m.sum, m.comp, j, a.sum[j]);
          m.comp[j] += a.comp[j];
          m.nonfinite[j] += a.nonfinite[j];
          if (m.nfw) m.nfw[j] += a.nfw ? a.nfw[j] : a.nonfinite[j];
        }
      }
      if (s.sketch && mine.sketch) mine.sketch.merge(s.sketch);
      mine.clusters.merge(s.clusters);
      if (s.wsq) this.#setWeights(mine, s.wsq, {});
    }
  }

  state(): StateValue {
    this.#checkFlushed("snapshot the fisher estimator");
    const steps: FisherState["steps"] = {};
    for (const [key, s] of this.steps) {
      steps[key] = {
        rows: s.rows,
        wsum: s.wsum,
        wcomp: s.wcomp,
        skipped: s.skipped,
        params: [...s.params].map(([name, a]) => ({ name, ...a })),
        sketch: s.sketch ? s.sketch.state() : null,
        clusters: s.clusters.state(),
        wsq: s.wsq,
      };
    }
    return {
      kind: this.kind,
      params: this.params,
      metaRaw: this.#metaRaw,
      weighted: this.weighted,
      steps,
    } as unknown as StateValue;
  }

  /** Continues from {@linkcode state}; states written before the standard errors and weights restore with none. */
  load(state: FisherState): this {
    this.kind = state.kind;
    if (state.params.length) this.#setParams(state.params, {});
    if (state.metaRaw) this.#setMetaNorms(state.metaRaw, {});
    this.weighted = state.weighted ?? false;
    for (const [key, s] of Object.entries(state.steps)) {
      const params = new Map<string, ParamAcc>();
      for (const p of s.params) {
        params.set(p.name, { sum: p.sum, comp: p.comp, nonfinite: p.nonfinite, nfw: p.nfw ?? null });
      }
      this.steps.set(key, {
        rows: s.rows,
        wsum: s.wsum ?? s.rows,
        wcomp: s.wcomp ?? 0,
        skipped: s.skipped,
        params,
        sketch: s.sketch ? FdSketch.from(s.sketch) : null,
        clusters: s.clusters
          ? TraceClusters.from(s.clusters)
          : new TraceClusters(this.params.length + this.layers.length + 1),
        wsq: s.wsq ?? null,
      });
    }
    return this;
  }

  /** `lambda^2 / beta`, or null when the prior is not given. */
  get #c(): number | null {
    return this.priorVar !== undefined && this.beta !== undefined ? this.priorVar / this.beta : null;
  }

  result(): Results | Promise<Results> {
    if (this.#sums?.pending) return this.flush().then(() => this.#tables());
    return this.#tables();
  }

  #tables(): Results {
    const kindName = this.kind === null ? null : FISHER_KINDS[this.kind];
    const c = this.#c;
    const t = {
      level: [] as string[],
      parameter: [] as (string | null)[],
      numel: [] as number[],
      trace: [] as (number | null)[],
      trace_se: [] as (number | null)[],
      mean_diag: [] as (number | null)[],
      max_diag: [] as (number | null)[],
      info_weights: [] as (number | null)[],
      weights_term: [] as (number | null)[],
      logdet: [] as (number | null)[],
      effective_dim: [] as (number | null)[],
      samples: [] as number[],
      inputs: [] as number[],
      nonfinite: [] as number[],
      kind: [] as (string | null)[],
      step: [] as (bigint | null)[],
    };
    const d = {
      parameter: [] as string[],
      index: [] as number[],
      value: [] as (number | null)[],
      kind: [] as (string | null)[],
      step: [] as (bigint | null)[],
    };
    const sp = {
      rank: [] as number[],
      eigenvalue: [] as number[],
      error_bound: [] as number[],
      samples: [] as number[],
      sketch_skipped: [] as number[],
      kind: [] as (string | null)[],
      step: [] as (bigint | null)[],
    };
    const nn = (x: number) => (Number.isNaN(x) ? null : x);
    for (const key of sortStepKeys(this.steps.keys())) {
      const s = this.steps.get(key)!;
      const step = stepFromKey(key);
      type Agg = { numel: number; trace: number; max: number; info: number; nonfinite: number; wsq: number };
      const layers = new Map<string, Agg>();
      const total: Agg = { numel: 0, trace: 0, max: -Infinity, info: 0, nonfinite: 0, wsq: 0 };
      // Squared norms of w*: this step's `weights` row, else the stream's metadata, else none.
      const wsq = s.wsq ?? this.metaWsq;
      const P = this.params.length;
      const push = (level: string, name: string | null, g: Agg, group: number) => {
        const { inputs, se } = s.clusters.standardError(group);
        const term = c === null || wsq === null ? null : g.wsq / (2 * this.priorVar!);
        t.level.push(level);
        t.parameter.push(name);
        t.numel.push(g.numel);
        t.trace.push(nn(g.trace));
        t.trace_se.push(nn(se));
        t.mean_diag.push(nn(g.trace / g.numel));
        t.max_diag.push(g.max === -Infinity ? null : nn(g.max));
        t.info_weights.push(c === null ? null : nn(g.info + (term ?? 0)));
        t.weights_term.push(term);
        t.logdet.push(null);
        t.effective_dim.push(null);
        t.samples.push(s.rows);
        t.inputs.push(inputs);
        t.nonfinite.push(g.nonfinite);
        t.kind.push(kindName);
        t.step.push(step);
      };
      const weight = s.wsum + s.wcomp;
      this.params.forEach((p, pi) => {
        const a = s.params.get(p.name)!;
        const g: Agg = { numel: p.width, trace: 0, max: -Infinity, info: 0, nonfinite: 0, wsq: wsq ? wsq[pi] : 0 };
        for (let j = 0; j < p.width; j++) {
          const f = (a.sum[j] + a.comp[j]) / (weight - (a.nfw ?? a.nonfinite)[j]);
          g.trace += f;
          if (f > g.max) g.max = f;
          if (c !== null) {
            const sj = c * f;
            g.info += 0.5 * (Math.log1p(sj) - sj / (1 + sj));
          }
          g.nonfinite += a.nonfinite[j];
          if (this.diag) {
            d.parameter.push(p.name);
            d.index.push(j);
            d.value.push(nn(f));
            d.kind.push(kindName);
            d.step.push(step);
          }
        }
        push("parameter", p.name, g, pi);
        const ln = layerOf(p.name);
        const l = layers.get(ln) ?? { numel: 0, trace: 0, max: -Infinity, info: 0, nonfinite: 0, wsq: 0 };
        for (const agg of [l, total]) {
          agg.numel += g.numel;
          agg.trace += g.trace;
          agg.max = Math.max(agg.max, g.max);
          agg.info += g.info;
          agg.nonfinite += g.nonfinite;
          agg.wsq += g.wsq;
        }
        layers.set(ln, l);
      });
      for (const [ln, l] of layers) push("layer", ln, l, P + this.layers.indexOf(ln));
      push("total", null, total, P + this.layers.length);
      if (s.sketch) {
        const n = s.sketch.n;
        const mu = s.sketch.eigenvalues().values.map((x) => x / n);
        const bound = s.sketch.delta / n;
        if (c !== null && n > 0) {
          let logdet = 0, eff = 0;
          for (const m of mu) {
            logdet += Math.log1p(c * m);
            eff += (c * m) / (1 + c * m);
          }
          t.logdet[t.logdet.length - 1] = logdet;
          t.effective_dim[t.effective_dim.length - 1] = eff;
        }
        for (let i = 0; i < Math.min(this.rank, mu.length); i++) {
          sp.rank.push(i + 1);
          sp.eigenvalue.push(mu[i]);
          sp.error_bound.push(bound);
          sp.samples.push(this.weighted ? s.rows - s.skipped : n);
          sp.sketch_skipped.push(s.skipped);
          sp.kind.push(kindName);
          sp.step.push(step);
        }
      }
    }
    const meta: Record<string, string> = {
      "infotap.estimator": "fisher",
      "infotap.fisher": kindName ?? "unknown",
      "infotap.units": "trace/diag: squared gradient units, mean over rows; info_weights/logdet: nats",
      "infotap.fisher_rank": String(this.rank),
    };
    if (this.priorVar !== undefined) meta["infotap.prior_var"] = String(this.priorVar);
    if (this.beta !== undefined) meta["infotap.beta"] = String(this.beta);
    meta["infotap.trace_se"] =
      "standard error over inputs (the rows of one sample_id are one cluster); trace +- 1.96 trace_se covers the population trace ~95% of the time";
    if (this.weighted) {
      meta["infotap.row_weights"] = "weighted mean over rows (weight column, e.g. p(y|x): exact expectation)";
    }
    if (this.metaWsq) meta["infotap.weights"] = "squared norms of w* from schema metadata infotap.weight_sq_norms";
    const out: Record<string, ReturnType<typeof tableFromColumns>> = {
      fisher: tableFromColumns([
        { name: "level", type: "utf8", values: t.level },
        { name: "parameter", type: "utf8", values: t.parameter },
        { name: "numel", type: "int64", values: t.numel },
        { name: "trace", type: "float64", values: t.trace },
        { name: "trace_se", type: "float64", values: t.trace_se },
        { name: "mean_diag", type: "float64", values: t.mean_diag },
        { name: "max_diag", type: "float64", values: t.max_diag },
        { name: "info_weights", type: "float64", values: t.info_weights },
        { name: "weights_term", type: "float64", values: t.weights_term },
        { name: "logdet", type: "float64", values: t.logdet },
        { name: "effective_dim", type: "float64", values: t.effective_dim },
        { name: "samples", type: "int64", values: t.samples },
        { name: "inputs", type: "int64", values: t.inputs },
        { name: "nonfinite", type: "int64", values: t.nonfinite },
        { name: "kind", type: "utf8", values: t.kind },
        { name: "step", type: "int64", values: t.step },
      ], meta),
    };
    if (this.diag) {
      out.fisher_diag = tableFromColumns([
        { name: "parameter", type: "utf8", values: d.parameter },
        { name: "index", type: "int32", values: d.index },
        { name: "value", type: "float64", values: d.value },
        { name: "kind", type: "utf8", values: d.kind },
        { name: "step", type: "int64", values: d.step },
      ], meta);
    }
    if (this.rank > 0) {
      out.fisher_spectrum = tableFromColumns([
        { name: "rank", type: "int32", values: sp.rank },
        { name: "eigenvalue", type: "float64", values: sp.eigenvalue },
        { name: "error_bound", type: "float64", values: sp.error_bound },
        { name: "samples", type: "int64", values: sp.samples },
        { name: "sketch_skipped", type: "int64", values: sp.sketch_skipped },
        { name: "kind", type: "utf8", values: sp.kind },
        { name: "step", type: "int64", values: sp.step },
      ], {
        ...meta,
        "infotap.bound":
          "Frequent Directions: eigenvalue <= lambda_i(F) <= eigenvalue + error_bound, error_bound = (sum of shrink thresholds)/n <= ||G - G_k||_F^2/((ell - k) n) for every k < ell",
      });
    }
    return out;
  }

  summary() {
    const all = this.steps.get("all");
    return {
      kind: this.kind === null ? null : FISHER_KINDS[this.kind],
      prior_var: this.priorVar ?? null,
      beta: this.beta ?? null,
      fisher_rank: this.rank,
      steps: this.steps.size,
      rows: all ? all.rows : [...this.steps.values()].reduce((a, s) => a + s.rows, 0),
    };
  }
}

/** The `fisher` estimator plugin. */
export const fisherPlugin: EstimatorPlugin = definePlugin({
  name: "fisher",
  description:
    "Fisher information from per-sample gradients: diagonal, trace per tensor/layer, information in the weights, " +
    "Frequent Directions spectrum (docs/science.md section 2).",
  inputs: ["gradients/v1"],
  byDefault: true,
  tables: { fisher: {}, fisher_diag: {}, fisher_spectrum: {} },
  report: fisherReport,
  // Diagonal-only runs are order-free (compensated float64 sums); Frequent Directions merges meet the same
  // error bound but are not equal to one pass, so sketching runs on one thread.
  orderFree: (o) => o["fisher-rank"] === 0,
  stepLocal: true,
  mergeSummaries: (a, b) => ({
    ...a,
    kind: a.kind ?? b.kind,
    steps: (a.steps as number) + (b.steps as number),
    rows: (a.rows as number) + (b.rows as number),
  }),
  // Per step: compensated float64 sums and counts per parameter, and the sketch's 2 ell P float64.
  memory: (o, shape) => {
    const p = shape.tensors.reduce((a, t) => a + t.width, 0), rank = o["fisher-rank"] as number;
    return {
      state: 24 * p + 16 * rank * p,
      results: (2 * shape.tensors.length + 1) * 150 + rank * 70 + (o["fisher-diag"] ? p * 50 : 0),
    };
  },
  memoryOptions: ["fisher-rank"],
  // The diagonal's sums on the GPU are float-float, within 1.5e-8 relative (gpu/square_sums.ts).
  gpu: () => "approximate",
  options: {
    "prior-var": {
      type: "number",
      greaterThan: 0,
      description: "lambda^2, variance of the Gaussian prior N(0, lambda^2 I) for info_weights/logdet (with --beta)",
    },
    beta: {
      type: "number",
      greaterThan: 0,
      description: "beta, the weight of the KL term for info_weights/logdet (with --prior-var)",
    },
    "fisher-rank": {
      type: "integer",
      default: 64,
      min: 0,
      description: "ell, directions of the Frequent Directions sketch of F (0: no sketch, no fisher_spectrum)",
    },
    "fisher-diag": { type: "boolean", default: false, description: "also write the full diagonal (fisher_diag)" },
  },
  validate(o) {
    if ((o["prior-var"] === undefined) !== (o.beta === undefined)) {
      throw new Error(
        `Cannot compute info_weights as --prior-var and --beta go together: current value is ${
          o["prior-var"] === undefined
            ? `--beta ${o.beta} without --prior-var`
            : `--prior-var ${o["prior-var"]} without --beta`
        }`,
      );
    }
  },
  create(options, context) {
    return new FisherEstimator(options, context);
  },
  restore(state, options, context) {
    return new FisherEstimator(options, context).load(state as unknown as FisherState);
  },
});
