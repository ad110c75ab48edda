/**
 * `unique-info`: per-sample smooth unique information (SI) of every training sample, in the weights and in the
 * function, from `jacobians/v1` streams (docs/science.md section 3; Harutyunyan et al., ICLR 2021).
 *
 * Conventions (docs/science.md section 3, followed exactly): the network is linearised at its initial weights `w0`,
 * `f(x; w) = f0(x) + J(x)(w - w0)`, MSE with the sum-of-losses convention and ridge `lambda` toward `w0`, converged
 * (`t = infinity`). With `Theta = J J^T` (nk x nk: n train samples, k outputs each, sample-major, outputs
 * in order), `M = (Theta + lambda I)^-1` and `a = M (Y - f0)`:
 * - `si_weights` = `||w - w_{-i}||^2 = a_i^T M_ii^-1 (M - lambda M^2)_ii M_ii^-1 a_i` (official `weights-plain`);
 * - `si_function` = mean over test samples x of `sum_c (f_c(x; w) - f_c(x; w_{-i}))^2`, with
 *   `f(x; w) - f(x; w_{-i}) = K_test M[:, i] M_ii^-1 a_i` and `K_test = J_test J^T` (official `predictions`);
 *   null when the stream has no test rows. No 1/2 or sigma factors.
 * Every sample comes from one float64 Cholesky factorisation of `Theta + lambda I` (`--si-lambda`, > 0, required).
 * Finite training time (`--si-t T`, with `--si-lr` for T discrete steps; `--si-lambda` may then be 0): one
 * eigendecomposition of `Theta` and per-sample spectral deletions (`finite_time.ts`, docs/unique_info.md); optional
 * tables `unique_information_summary` (`--si-summary`) and `si_change_vectors` (`--si-change-vectors N`): `extras.ts`.
 *
 * Streaming: train and test rows are kept (float32, concatenated over the tensor columns: `rows x P x 4` bytes,
 * e.g. 5,000 rows x 20,000 parameters = 400 MB; use `--si-sketch-dim` to bound P) and the kernels `Theta` and
 * `K_test` are built incrementally in float64 (`8 (nk)^2` and `8 (n_test k)(nk)` bytes): each batch's new train rows
 * against every earlier train row, earlier test rows against the new train rows, and new test rows against every
 * train row. The rows must be kept because a later row needs its products with all earlier ones; `merge` likewise
 * computes the cross terms between the two estimators' rows. Each kernel entry is one float64 dot product summed
 * in a fixed order, so one pass, any batching and any merge give the same bits. After the stream the kernel is
 * reordered by (sample_id, output), so the result does not depend on arrival order either.
 *
 * One linearisation point: a stream whose `step` column holds several steps is refused (`--by-step` does not
 * apply). Sample ids of train and test rows are separate namespaces; rows of one sample may come in any order and
 * in any batches, but every sample needs exactly one row for each output 0..k-1 (k = the largest train output + 1).
 *
 * Large models: `--si-sketch-dim m` projects every column with the seeded Rademacher sketch of
 * `schemas/sketch.ts` (seed `--seed`); columns sketched by the producer (field metadata `infotap.sketch.seed`)
 * are used as they are.
 *
 * Memory: rows `4 P (nk + n_test k)` bytes, kernels `8 (nk)(nk + n_test k)` (plus up to 56% growth slack), and
 * after the stream three more `8 (nk)^2` arrays (the factor, `L^-T` and `M`): about 1.5 GB for nk = 5,000,
 * P = 20,000. Linear algebra: `plugins/kernels/linalg/` (float64 throughout; WebAssembly SIMD products; rows and
 * kernels live in `SharedArrayBuffer`s so that worker threads, `context.threads` of them, use them in place).
 *
 * Accuracy: `(M - lambda M^2)_ii` is formed as written; its relative rounding error grows like
 * `1e-16 * lambda * ||M||_2 / (M - lambda M^2)_ii`, i.e. when `lambda` dominates the kernel.
 *
 * WebGPU (`--backend webgpu` only: the path is "approximate"): rows stay on the GPU and every product, the
 * inversion (blocked symmetric sweep) and the per-sample terms run there in float32 (compensated Gram products,
 * iterative refinement of `a`), see `plugins/unique_info/gpu_kernel.ts`; only the per-sample values come back. Same table,
 * same errors; `state()` is the CPU path's state (its float64 kernels are computed from the rows then). Relative
 * error against this float64 path: ~1e-5 for a well-conditioned `Theta + lambda I`, growing with its condition
 * number (docs/bench/webgpu_si.md).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { uniqueInfoPlugin } from "./unique_info.ts";
 * const est = uniqueInfoPlugin.create({ "si-lambda": 1 }, { byStep: false, seed: 0 });
 * est.update({
 *   kind: "jacobians/v1", file: "x", index: 0, numRows: 2, sampleId: new BigInt64Array([0n, 1n]),
 *   step: null, split: new Uint8Array([0, 0]), output: new Int32Array([0, 0]), f0: new Float32Array(2),
 *   target: new Float32Array([1, 1]),
 *   columns: [{ name: "w", width: 2, values: new Float32Array([1, 0, 0, 1]), metadata: new Map() }],
 * } as never);
 * const t = (await est.result()).unique_information;
 * // Theta = I, M = I/2, a = (1/2, 1/2): w = (1/2, 1/2), w_{-0} = (0, 1/2), so ||w - w_{-0}||^2 = 1/4
 * assert.ok(Math.abs((t.getChild("si_weights")!.get(0) as number) - 0.25) < 1e-15);
 * ```
 *
 * @module
 */
import type { Batch } from "../../schemas/batch.ts";
import { SPLIT_TRAIN } from "../../schemas/batch.ts";
import { InputError, show } from "../../schemas/errors.ts";
import {
  block,
  choleskyInPlace,
  choleskySolve,
  gemm,
  gram,
  inverseFromCholesky,
  type Matrix,
  matrix,
  NotPositiveDefiniteError,
  sharedF64,
  transpose,
} from "../kernels/linalg/mod.ts";
import type { GpuContext } from "../kernels/gpu/context.ts";
import { resolveThreads } from "../kernels/threads.ts";
import {
  definePlugin,
  type Estimator,
  type EstimatorContext,
  type EstimatorPlugin,
  type OptionValues,
  type Results,
  type StateValue,
} from "../../pipeline/core/plugin.ts";
import { sketchJacobian } from "../../schemas/sketch.ts";
import { tableFromColumns } from "../../pipeline/core/table.ts";
import { SKETCH_SEED_KEY } from "../../schemas/validate.ts";
import { GpuSiKernel } from "./gpu_kernel.ts";
import { uniqueInfoReport } from "./report.ts";
import { type FiniteRoute, finiteTimeSi, type TrainingTime } from "./finite_time.ts";
import { changeVectorsTable, summaryTable } from "./extras.ts";

/** Per-sample results of a solve; `dual(i)` = `alpha - beta_{-i}` (padded) in row coordinates, for change vectors. */
interface Solved {
  si: Float64Array;
  fsi: Float64Array;
  dual?: (i: number) => Float64Array;
  route?: string;
  /** Degree of the Chebyshev series of the chebyshev route. */
  degree?: number;
}

/** Checks the options that depend on each other (the plugin's `validate`, also run by the constructor). */
function validateOptions(options: OptionValues): void {
  const t = options["si-t"] as number | undefined, lr = options["si-lr"] as number | undefined;
  const lambda = options["si-lambda"] as number;
  if (lr !== undefined && t === undefined) {
    throw new Error(`Cannot use --si-lr as it needs --si-t (the number of steps): current value is ${lr}`);
  }
  if (lr !== undefined && !Number.isInteger(t)) {
    throw new Error(`Cannot use --si-t as it must be a whole number of steps with --si-lr: current value is ${t}`);
  }
  if (t === undefined && !(lambda > 0)) {
    throw new Error(
      `Cannot use --si-lambda as it must be > 0 without --si-t (training to convergence): current value is ${lambda}`,
    );
  }
}

/** The one-line error of a failed factorisation of `Theta + lambda I` (other errors pass through). */
function factorError(e: unknown, lambda: number): unknown {
  return e instanceof NotPositiveDefiniteError
    ? new Error(`Cannot factorise Theta + lambda I (lambda ${lambda}): ${e.message}`)
    : e;
}

/**
 * F-SI of every train sample from `Q = K_test M` (`T x N`, `N = n k`) and `b_i = M_ii^-1 a_i`: the mean over the
 * `nTest` test samples of `sum over test rows t of (Q[t, i] . b_i)^2`, into `out`.
 */
function functionSi(
  q: ArrayLike<number>,
  b: Float64Array,
  n: number,
  k: number,
  T: number,
  nTest: number,
  out: Float64Array,
): void {
  const N = n * k;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let t = 0; t < T; t++) {
      let d = 0;
      for (let c = 0; c < k; c++) d += q[t * N + i * k + c] * b[i * k + c];
      s += d * d;
    }
    out[i] = s / nTest;
  }
}

/** A growable row-major float64 matrix (capacity grows by 1.25x, bounding the slack to 56% of the memory). */
class Grow {
  data: Float64Array = new Float64Array(0);
  rows = 0;
  cols = 0;
  rowCap = 0;
  colCap = 0;
  /** Ensures room for `rows x cols`, keeping the contents. */
  ensure(rows: number, cols: number): void {
    if (rows > this.rowCap || cols > this.colCap) {
      const rc = rows > this.rowCap ? Math.max(rows, Math.ceil(1.25 * this.rowCap), 16) : this.rowCap;
      const cc = cols > this.colCap ? Math.max(cols, Math.ceil(1.25 * this.colCap), 16) : this.colCap;
      const d = sharedF64(rc * cc); // shared memory: worker threads write kernel entries in place
      for (let i = 0; i < this.rows; i++) {
        d.set(this.data.subarray(i * this.colCap, i * this.colCap + this.cols), i * cc);
      }
      this.data = d;
      this.rowCap = rc;
      this.colCap = cc;
    }
    this.rows = rows;
    this.cols = cols;
  }
  /** Rows `i0..`, columns `j0..` as a view (within the capacity). */
  block(i0: number, j0: number, rows: number, cols: number): Matrix {
    return block(matrix(this.data, this.rowCap, this.colCap), i0, j0, rows, cols);
  }
  /** The `rows x cols` contents, compact. */
  compact(): Float64Array {
    const out = new Float64Array(this.rows * this.cols);
    for (let i = 0; i < this.rows; i++) {
      out.set(this.data.subarray(i * this.colCap, i * this.colCap + this.cols), i * this.cols);
    }
    return out;
  }
  static from(data: Float64Array, rows: number, cols: number): Grow {
    const g = new Grow();
    g.ensure(rows, cols);
    for (let i = 0; i < rows; i++) g.data.set(data.subarray(i * cols, (i + 1) * cols), i * g.colCap);
    return g;
  }
}

/** Rows of one split, in arrival order ("slots"). */
class RowSet {
  rows: Float32Array[] = [];
  ids: bigint[] = [];
  outputs: number[] = [];
  f0: number[] = [];
  target: number[] = [];
  files: number[] = [];
  batches: number[] = [];
  /** The row's `flag` (0 when the batch has none). */
  flags: number[] = [];
}

/** Samples of one split sorted by id, and the slot of each (sample, output) position. */
interface Samples {
  ids: bigint[];
  slots: Int32Array;
}

interface Layout {
  names: string[];
  widths: number[];
  /** Seed per column when pre-sketched by the producer, else null. */
  sketched: (string | null)[];
}

class UniqueInfoEstimator implements Estimator {
  readonly lambda: number;
  readonly sketchDim: number | undefined;
  readonly seed: number;
  layout: Layout | null = null;
  width = 0;
  step: bigint | null = null;
  files: string[] = [];
  train = new RowSet();
  test = new RowSet();
  /** Lower triangle of Theta in slot order (train x train). */
  theta = new Grow();
  /** K_test in slot order (test x train). */
  ktest = new Grow();
  keys = new Set<string>();
  /** Whether any input batch had a `flag` column (the table then has one). */
  flagged = false;
  /** WebGPU path (`context.gpu`): rows and kernels live on the GPU, float32 (plugins/unique_info/gpu_kernel.ts). */
  readonly gpu: GpuContext | null;
  /** Threads of the CPU path's products (`context.threads`). */
  readonly threads: number;
  /** Where the factorisation reports its progress (`EstimatorContext.progress`). */
  readonly progress: EstimatorContext["progress"];
  #kernel: GpuSiKernel | null = null;
  /** Train and test rows uploaded to the GPU so far. */
  #upTrain = 0;
  #upTest = 0;
  /** Seconds per stage of the last GPU result (benchmarks). */
  gpuTimes: Record<string, number> = {};
  /** Finite training time (`--si-t`, `--si-lr`), or null for t = infinity (docs/unique_info.md). */
  readonly tt: TrainingTime | null;
  readonly route: "auto" | FiniteRoute;
  readonly changeVectors: number;
  readonly summaryView: boolean;

  constructor(options: OptionValues, context: EstimatorContext) {
    this.lambda = options["si-lambda"] as number;
    this.sketchDim = options["si-sketch-dim"] as number | undefined;
    this.seed = context.seed;
    const t = options["si-t"] as number | undefined, lr = options["si-lr"] as number | undefined;
    validateOptions(options);
    this.tt = t === undefined ? null : { t, lr, lambda: this.lambda };
    this.route = (options["si-finite-route"] as "auto" | FiniteRoute | undefined) ?? "auto";
    this.changeVectors = (options["si-change-vectors"] as number | undefined) ?? 0;
    this.summaryView = (options["si-summary"] as boolean | undefined) ?? false;
    // finite training time runs on the float64 CPU path under every backend
    this.gpu = this.tt === null ? context.gpu ?? null : null;
    this.threads = resolveThreads(context.threads);
    this.progress = context.progress;
  }

  #file(name: string): number {
    let i = this.files.indexOf(name);
    if (i < 0) i = this.files.push(name) - 1;
    return i;
  }

  /** Checks the batch's column layout and returns its rows' Jacobians, concatenated over columns (and sketched). */
  #rowsOf(batch: Batch): Float32Array[] {
    const where = (column: string) => ({ file: batch.file, batch: batch.index, column });
    const cols = batch.columns.map((c) => {
      const seedMeta = c.metadata?.get(SKETCH_SEED_KEY) ?? null;
      let bad = 0;
      for (let i = 0; i < c.values.length; i++) if (!Number.isFinite(c.values[i])) bad++;
      if (bad > 0) {
        throw new InputError(
          `Cannot use the Jacobian as it has non-finite values (${bad} of ${c.values.length}): current value is ${bad}`,
          where(c.name),
        );
      }
      if (seedMeta !== null) {
        if (this.sketchDim !== undefined && (Number(seedMeta) !== this.seed || c.width !== this.sketchDim)) {
          throw new InputError(
            `Cannot use --si-sketch-dim ${this.sketchDim} with --seed ${this.seed} as the column was sketched by the producer with another seed or dimension (width ${c.width}): current value is seed ${seedMeta}`,
            where(c.name),
          );
        }
        return { name: c.name, width: c.width, values: c.values, sketched: seedMeta };
      }
      if (this.sketchDim === undefined) return { name: c.name, width: c.width, values: c.values, sketched: null };
      const values = sketchJacobian(c.values, c.width, this.sketchDim, this.seed, c.name);
      return { name: c.name, width: this.sketchDim, values, sketched: String(this.seed) };
    });
    if (cols.length === 0) {
      throw new InputError("Cannot use the batch as it has no Jacobian columns: current value is 0 columns", {
        file: batch.file,
        batch: batch.index,
      });
    }
    const layout: Layout = {
      names: cols.map((c) => c.name),
      widths: cols.map((c) => c.width),
      sketched: cols.map((c) => c.sketched),
    };
    this.#checkLayout(layout, { file: batch.file, batch: batch.index });
    // one shared buffer per batch (worker threads read the rows in place)
    const buf = new SharedArrayBuffer(Math.max(4, batch.numRows * this.width * 4));
    const out: Float32Array[] = [];
    for (let r = 0; r < batch.numRows; r++) {
      const row = new Float32Array(buf, r * this.width * 4, this.width);
      let at = 0;
      for (const c of cols) {
        row.set(c.values.subarray(r * c.width, (r + 1) * c.width), at);
        at += c.width;
      }
      out.push(row);
    }
    return out;
  }

  #checkLayout(layout: Layout, where: { file?: string; batch?: number }): void {
    if (this.layout === null) {
      this.layout = layout;
      this.width = layout.widths.reduce((a, b) => a + b, 0);
      return;
    }
    const a = JSON.stringify(this.layout), b = JSON.stringify(layout);
    if (a !== b) {
      throw new InputError(
        `Cannot combine Jacobian columns of different layouts (expected ${a}): current value is ${b}`,
        where,
      );
    }
  }

  #checkStep(step: bigint | null, where: { file?: string; batch?: number; column?: string }): void {
    if (step === null) return;
    if (this.step === null) this.step = step;
    else if (this.step !== step) {
      throw new InputError(
        `Cannot mix training steps as unique information is taken at one linearisation point (step ${this.step}): current value is ${step}`,
        where,
      );
    }
  }

  update(batch: Batch): void | Promise<void> {
    if (batch.numRows === 0) return;
    if (!batch.split || !batch.output || !batch.f0 || !batch.target) {
      throw new InputError(
        `Cannot use the batch as it is not a jacobians/v1 batch (no split/output/f0/target): current value is ${
          show(batch.kind)
        }`,
        { file: batch.file, batch: batch.index },
      );
    }
    const at = (column: string) => ({ file: batch.file, batch: batch.index, column });
    if (batch.step) { for (let r = 0; r < batch.numRows; r++) this.#checkStep(batch.step[r], at("step")); }
    const rows = this.#rowsOf(batch);
    const file = this.#file(batch.file);
    const s0 = this.train.rows.length, t0 = this.test.rows.length;
    for (let r = 0; r < batch.numRows; r++) {
      const train = batch.split[r] === SPLIT_TRAIN;
      const id = batch.sampleId[r], out = batch.output[r];
      if (!(out >= 0)) {
        throw new InputError(
          `Cannot use row ${r} (sample_id ${id}) as its output index must be >= 0: current value is ${out}`,
          at("output"),
        );
      }
      if (!Number.isFinite(batch.f0[r])) {
        throw new InputError(
          `Cannot use row ${r} (sample_id ${id}) as f0 must be finite: current value is ${batch.f0[r]}`,
          at("f0"),
        );
      }
      if (train && !Number.isFinite(batch.target[r])) {
        throw new InputError(
          `Cannot use row ${r} (sample_id ${id}) as a train row needs a finite target: current value is ${
            batch.target[r]
          }`,
          at("target"),
        );
      }
      const key = `${train ? "train" : "test"}:${id}:${out}`;
      if (this.keys.has(key)) {
        throw new InputError(
          `Cannot use row ${r} as sample_id ${id} (${
            train ? "train" : "test"
          }) already has a row for this output: current value is ${out}`,
          at("output"),
        );
      }
      this.keys.add(key);
      const set = train ? this.train : this.test;
      set.rows.push(rows[r]);
      set.ids.push(id);
      set.outputs.push(out);
      set.f0.push(batch.f0[r]);
      set.target.push(batch.target[r]);
      set.files.push(file);
      set.batches.push(batch.index);
      set.flags.push(batch.flag ? batch.flag[r] : 0);
    }
    if (batch.flag) this.flagged = true;
    if (this.gpu) return this.#sync();
    this.#extend(s0, t0);
  }

  /** Uploads the rows not yet on the GPU and starts their products (WebGPU path). */
  async #sync(): Promise<void> {
    const W = this.width;
    const ns = this.train.rows.length, nt = this.test.rows.length;
    if (ns === this.#upTrain && nt === this.#upTest) return;
    this.#kernel ??= await GpuSiKernel.open(this.gpu!, W);
    const pack = (rows: Float32Array[], from: number) => {
      const out = new Float32Array((rows.length - from) * W);
      for (let i = from; i < rows.length; i++) out.set(rows[i], (i - from) * W);
      return out;
    };
    const tr = pack(this.train.rows, this.#upTrain), te = pack(this.test.rows, this.#upTest);
    this.#upTrain = ns;
    this.#upTest = nt;
    await this.#kernel.append(tr, te);
  }

  /** Frees the GPU buffers (rows and kernels); a later update or result uploads the rows again. */
  dispose(): void {
    this.#kernel?.destroy();
    this.#kernel = null;
    this.#upTrain = 0;
    this.#upTest = 0;
  }

  /** Kernel entries of the train rows from `s0` and the test rows from `t0` on (earlier entries are known). */
  #extend(s0: number, t0: number): void {
    const ns = this.train.rows.length, nt = this.test.rows.length;
    this.theta.ensure(ns, ns);
    this.ktest.ensure(nt, ns);
    const tr = this.train.rows, te = this.test.rows;
    const threads = this.threads;
    if (ns > s0) {
      gram(this.theta.block(s0, 0, ns - s0, ns), tr.slice(s0), tr, { lower: s0, threads });
      if (t0 > 0) gram(this.ktest.block(0, s0, t0, ns - s0), te.slice(0, t0), tr.slice(s0), { threads });
    }
    if (nt > t0 && ns > 0) gram(this.ktest.block(t0, 0, nt - t0, ns), te.slice(t0), tr, { threads });
  }

  merge(other: Estimator): void {
    const o = other as UniqueInfoEstimator;
    if (
      !(o instanceof UniqueInfoEstimator) || o.lambda !== this.lambda || o.sketchDim !== this.sketchDim ||
      JSON.stringify(o.tt) !== JSON.stringify(this.tt)
    ) {
      throw new Error("Cannot merge unique-info estimators with different options: current value is incompatible");
    }
    if (o.train.rows.length + o.test.rows.length === 0) return;
    this.#checkLayout(o.layout!, {});
    this.#checkStep(o.step, {});
    for (const k of o.keys) {
      if (this.keys.has(k)) {
        throw new InputError(
          `Cannot merge as both parts have a row for the same sample and output: current value is ${k}`,
        );
      }
    }
    const s0 = this.train.rows.length, t0 = this.test.rows.length;
    for (const k of o.keys) this.keys.add(k);
    if (this.gpu) {
      // rows only: their products are computed on the GPU when they are uploaded (next update or result)
      this.#appendRows(o);
      return;
    }
    this.#appendRows(o);
    const ns = this.train.rows.length, nt = this.test.rows.length;
    const os = o.train.rows.length, ot = o.test.rows.length;
    this.theta.ensure(ns, ns);
    this.ktest.ensure(nt, ns);
    // their own block: copy (the same dot products a single pass would compute)
    for (let i = 0; i < os; i++) {
      const src = o.theta.data.subarray(i * o.theta.colCap, i * o.theta.colCap + i + 1);
      this.theta.data.set(src, (s0 + i) * this.theta.colCap + s0);
    }
    for (let i = 0; i < ot; i++) {
      const src = o.ktest.data.subarray(i * o.ktest.colCap, i * o.ktest.colCap + os);
      this.ktest.data.set(src, (t0 + i) * this.ktest.colCap + s0);
    }
    // cross terms: their train rows x our train rows, our test x their train, their test x our train
    const tr = this.train.rows, te = this.test.rows;
    const threads = this.threads;
    if (os > 0 && s0 > 0) gram(this.theta.block(s0, 0, os, s0), tr.slice(s0), tr.slice(0, s0), { threads });
    if (os > 0 && t0 > 0) gram(this.ktest.block(0, s0, t0, os), te.slice(0, t0), tr.slice(s0), { threads });
    if (ot > 0 && s0 > 0) gram(this.ktest.block(t0, 0, ot, s0), te.slice(t0), tr.slice(0, s0), { threads });
  }

  /** Appends the other estimator's rows (after ours). */
  #appendRows(o: UniqueInfoEstimator): void {
    for (const [mine, theirs] of [[this.train, o.train], [this.test, o.test]] as const) {
      for (let i = 0; i < theirs.rows.length; i++) {
        mine.rows.push(theirs.rows[i]);
        mine.ids.push(theirs.ids[i]);
        mine.outputs.push(theirs.outputs[i]);
        mine.f0.push(theirs.f0[i]);
        mine.target.push(theirs.target[i]);
        mine.files.push(this.#file(o.files[theirs.files[i]]));
        mine.batches.push(theirs.batches[i]);
        mine.flags.push(theirs.flags[i]);
      }
    }
    this.flagged ||= o.flagged;
  }

  state(): StateValue {
    if (this.gpu) {
      // the CPU path's state, exactly: its float64 kernels are computed here from the rows (the GPU's are float32)
      this.theta = new Grow();
      this.ktest = new Grow();
      this.#extend(0, 0);
    }
    const pack = (s: RowSet) => {
      const rows = new Float32Array(s.rows.length * this.width);
      s.rows.forEach((r, i) => rows.set(r, i * this.width));
      return {
        rows,
        ids: BigInt64Array.from(s.ids),
        outputs: Int32Array.from(s.outputs),
        f0: Float64Array.from(s.f0),
        target: Float64Array.from(s.target),
        files: Int32Array.from(s.files),
        batches: Int32Array.from(s.batches),
        ...(this.flagged ? { flags: Int32Array.from(s.flags) } : {}),
      };
    };
    return {
      layout: this.layout as unknown as StateValue,
      step: this.step === null ? null : String(this.step),
      files: this.files,
      train: pack(this.train),
      test: pack(this.test),
      theta: this.theta.compact(),
      ktest: this.ktest.compact(),
    };
  }

  load(state: Record<string, any>): this {
    if (state.layout) this.#checkLayout(state.layout as Layout, {});
    this.step = state.step === null ? null : BigInt(state.step);
    this.files = [...state.files];
    for (const [set, s] of [[this.train, state.train], [this.test, state.test]] as const) {
      const n = s.ids.length;
      const buf = new SharedArrayBuffer(Math.max(4, n * this.width * 4));
      new Float32Array(buf).set(s.rows.subarray(0, n * this.width));
      for (let i = 0; i < n; i++) {
        set.rows.push(new Float32Array(buf, i * this.width * 4, this.width));
        set.ids.push(s.ids[i]);
        set.outputs.push(s.outputs[i]);
        set.f0.push(s.f0[i]);
        set.target.push(s.target[i]);
        set.files.push(s.files[i]);
        set.batches.push(s.batches[i]);
        set.flags.push(s.flags ? s.flags[i] : 0);
        this.keys.add(`${set === this.train ? "train" : "test"}:${s.ids[i]}:${s.outputs[i]}`);
      }
    }
    if (state.train.flags) this.flagged = true;
    const ns = this.train.rows.length, nt = this.test.rows.length;
    if (this.gpu) return this; // the rows go up to the GPU at the next update or result
    this.theta = Grow.from(state.theta, ns, ns);
    this.ktest = Grow.from(state.ktest, nt, ns);
    return this;
  }

  /** Groups a row set by sample id (sorted), checking that every sample has outputs 0..k-1 exactly once. */
  #samples(set: RowSet, k: number, split: string): Samples {
    const by = new Map<bigint, number[]>();
    for (let s = 0; s < set.ids.length; s++) {
      let l = by.get(set.ids[s]);
      if (!l) by.set(set.ids[s], l = []);
      l.push(s);
    }
    const ids = [...by.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const slots = new Int32Array(ids.length * k);
    ids.forEach((id, i) => {
      const l = by.get(id)!;
      const seen = new Array<number>(k).fill(-1);
      for (const s of l) if (set.outputs[s] < k) seen[set.outputs[s]] = s;
      const missing = seen.flatMap((s, c) => (s < 0 ? [c] : []));
      if (missing.length > 0 || l.length !== k) {
        const first = l[0];
        throw new InputError(
          `Cannot use ${split} sample_id ${id} as it needs one row for each of the ${k} outputs 0..${k - 1} (missing ${
            list(missing) || "none"
          }; outputs seen: ${list(l.map((s) => set.outputs[s]))}): current value is ${l.length} rows`,
          { file: this.files[set.files[first]], batch: set.batches[first], column: "output" },
        );
      }
      for (let c = 0; c < k; c++) slots[i * k + c] = seen[c];
    });
    return { ids, slots };
  }

  result(): Results | Promise<Results> {
    const tr = this.train, te = this.test;
    let k = 0, at = 0;
    for (let s = 0; s < tr.outputs.length; s++) if (tr.outputs[s] + 1 > k) [k, at] = [tr.outputs[s] + 1, s];
    if (k > tr.rows.length) {
      // Every train sample needs one row per output 0..k-1: refuse before allocating by k.
      throw new InputError(
        `Cannot use output index ${k - 1} as every train sample needs one row for each output 0..${
          k - 1
        } and only ${tr.rows.length} train rows arrived: current value is ${k - 1}`,
        { file: this.files[tr.files[at]], batch: tr.batches[at], column: "output" },
      );
    }
    const train = this.#samples(tr, k, "train");
    const test = te.rows.length > 0 && k > 0 ? this.#samples(te, k, "test") : null;
    if (this.gpu) return this.#solveGpu(train, test, k).then((r) => this.#table(train, test, k, r));
    if (this.tt) return this.#solveFinite(train, test, k, this.tt).then((r) => this.#table(train, test, k, r));
    return this.#table(train, test, k, this.#solveCpu(train, test, k));
  }

  /** Finite training time (float64, CPU): one eigendecomposition, then per-sample deletions (finite_time.ts). */
  async #solveFinite(train: Samples, test: Samples | null, k: number, tt: TrainingTime): Promise<Solved> {
    const n = train.ids.length, N = n * k;
    if (N === 0) return { si: new Float64Array(0), fsi: new Float64Array(0) };
    const ldt = this.theta.colCap, th = this.theta.data;
    const A = sharedF64(N * N);
    for (let i = 0; i < N; i++) {
      const a = train.slots[i];
      for (let j = 0; j <= i; j++) {
        const b = train.slots[j];
        A[i * N + j] = a >= b ? th[a * ldt + b] : th[b * ldt + a];
      }
    }
    let K: Float64Array | null = null, rows = 0;
    if (test) {
      rows = test.slots.length;
      const ldk = this.ktest.colCap, kd = this.ktest.data;
      K = sharedF64(rows * N);
      for (let t = 0; t < rows; t++) {
        const row = test.slots[t] * ldk;
        for (let j = 0; j < N; j++) K[t * N + j] = kd[row + train.slots[j]];
      }
    }
    const nTest = test?.ids.length ?? 0;
    return await finiteTimeSi(A, N, k, this.#residual(train), K, rows, nTest, tt, this.route, this.threads);
  }

  /** `Y - f0` of the train rows in (sample_id, output) order. */
  #residual(train: Samples): Float64Array {
    const tr = this.train, r = new Float64Array(train.slots.length);
    for (let i = 0; i < r.length; i++) r[i] = tr.target[train.slots[i]] - tr.f0[train.slots[i]];
    return r;
  }

  /** The float64 CPU path: Cholesky of Theta + lambda I, M, then the per-sample terms. */
  #solveCpu(train: Samples, test: Samples | null, k: number): Solved {
    const n = train.ids.length, N = n * k, lambda = this.lambda;
    const si = new Float64Array(n), fsi = new Float64Array(n);
    if (N > 0) {
      // A = Theta + lambda I in (sample_id, output) order
      const ldt = this.theta.colCap, th = this.theta.data;
      const A = sharedF64(N * N);
      for (let i = 0; i < N; i++) {
        const si_ = train.slots[i];
        for (let j = 0; j <= i; j++) {
          const sj = train.slots[j];
          A[i * N + j] = si_ >= sj ? th[si_ * ldt + sj] : th[sj * ldt + si_];
        }
        A[i * N + i] += lambda;
      }
      try {
        const progress = this.progress;
        choleskyInPlace(A, N, {
          threads: this.threads,
          progress: progress && ((p) => progress(p, 100, "% factorisation")),
        });
      } catch (e) {
        throw factorError(e, lambda);
      }
      const av = choleskySolve(A, N, this.#residual(train));
      const M = inverseFromCholesky(A, N, {
        threads: this.threads,
        progress: this.progress && ((p) => this.progress!(p, 100, "% inverse")),
      });
      // b_i = M_ii^-1 a_i, and (M - lambda M^2)_ii with (M^2)_ii[r][s] = <M row ir, M row is> (M symmetric)
      const b = new Float64Array(N);
      const mii = new Float64Array(k * k);
      for (let i = 0; i < n; i++) {
        const o = i * k;
        for (let x = 0; x < k; x++) for (let y = 0; y <= x; y++) mii[x * k + y] = M[(o + x) * N + o + y];
        const diag = Float64Array.from(mii);
        choleskyInPlace(diag, k);
        const bi = choleskySolve(diag, k, av.subarray(o, o + k));
        b.set(bi, o);
        let s = 0;
        for (let x = 0; x < k; x++) {
          for (let y = 0; y < k; y++) {
            let m2 = 0;
            const rx = (o + x) * N, ry = (o + y) * N;
            for (let t = 0; t < N; t++) m2 += M[rx + t] * M[ry + t];
            s += bi[x] * (M[rx + o + y] - lambda * m2) * bi[y];
          }
        }
        si[i] = s;
      }
      if (test) {
        const T = test.slots.length, nTest = test.ids.length;
        const ldk = this.ktest.colCap, kd = this.ktest.data;
        const K = sharedF64(T * N);
        for (let t = 0; t < T; t++) {
          const row = test.slots[t] * ldk;
          for (let j = 0; j < N; j++) K[t * N + j] = kd[row + train.slots[j]];
        }
        const Q = sharedF64(T * N); // K_test M
        gemm(matrix(Q, T, N), matrix(K, T, N), transpose(matrix(M, N)), { threads: this.threads });
        functionSi(Q, b, n, k, T, nTest, fsi);
      }
      // alpha - beta_{-i} = M[:, block i] b_i
      const dual = (i: number) => {
        const d = new Float64Array(N);
        for (let x = 0; x < N; x++) for (let c = 0; c < k; c++) d[x] += M[x * N + i * k + c] * b[i * k + c];
        return d;
      };
      return { si, fsi, dual };
    }
    return { si, fsi };
  }

  /** The WebGPU path (float32; plugins/unique_info/gpu_kernel.ts): the same per-sample terms from the GPU's M. */
  async #solveGpu(train: Samples, test: Samples | null, k: number): Promise<{ si: Float64Array; fsi: Float64Array }> {
    const lambda = this.lambda;
    const n = train.ids.length, N = n * k;
    const si = new Float64Array(n), fsi = new Float64Array(n);
    if (N === 0) return { si, fsi };
    await this.#sync();
    const r = this.#residual(train);
    const pairs = new Int32Array(2 * n * k * k);
    for (let i = 0, p = 0; i < n; i++) {
      for (let x = 0; x < k; x++) {
        for (let y = 0; y < k; y++, p++) [pairs[2 * p], pairs[2 * p + 1]] = [i * k + x, i * k + y];
      }
    }
    let out;
    try {
      out = await this.#kernel!.solve({
        lambda,
        trainOrder: train.slots,
        testOrder: test?.slots ?? new Int32Array(0),
        residual: r,
        pairs,
      });
    } catch (e) {
      throw factorError(e, lambda);
    }
    const t0 = performance.now();
    const { m, m2, a, q } = out;
    const b = new Float64Array(N);
    const mii = new Float64Array(k * k);
    for (let i = 0; i < n; i++) {
      const o = i * k, p = i * k * k;
      for (let x = 0; x < k; x++) for (let y = 0; y < k; y++) mii[x * k + y] = m[p + x * k + y];
      const diag = Float64Array.from(mii);
      choleskyInPlace(diag, k);
      const bi = choleskySolve(diag, k, a.subarray(o, o + k));
      b.set(bi, o);
      let s = 0;
      for (let x = 0; x < k; x++) {
        for (let y = 0; y < k; y++) s += bi[x] * (m[p + x * k + y] - lambda * m2[p + x * k + y]) * bi[y];
      }
      si[i] = s;
    }
    if (test) {
      functionSi(q, b, n, k, test.slots.length, test.ids.length, fsi);
    }
    this.gpuTimes = { ...out.times, host_terms: (performance.now() - t0) / 1000, ...this.#kernel!.appendTimes };
    return { si, fsi };
  }

  /** The result table(s). */
  #table(train: Samples, test: Samples | null, k: number, solved: Solved): Results {
    const { si, fsi } = solved;
    const n = train.ids.length, lambda = this.lambda;
    const rank = (v: Float64Array) => {
      const order = Array.from(v.keys()).sort((x, y) => v[y] - v[x] || x - y);
      const r = new Array<number>(v.length);
      order.forEach((i, p) => (r[i] = p + 1));
      return r;
    };
    const rw = rank(si), rf = test ? rank(fsi) : null;
    const meta: Record<string, string> = {
      "infotap.estimator": "unique-info",
      "infotap.definition":
        "docs/science.md section 3: linearised at w0, sum-of-losses MSE, ridge lambda toward w0, t = inf",
      "infotap.units.si_weights": "squared parameter distance ||w - w_{-i}||^2",
      "infotap.units.si_function": "mean over test samples of squared output change sum_c (f_c(x;w) - f_c(x;w_{-i}))^2",
      "infotap.outputs": String(k),
      "infotap.test_samples": String(test?.ids.length ?? 0),
      "infotap.parameters": String(this.width),
    };
    if (this.layout?.sketched.some((s) => s !== null)) meta["infotap.sketch.seed"] = this.layout.sketched.join(",");
    const tt = this.tt;
    if (tt) {
      meta["infotap.definition"] =
        `docs/science.md section 3: linearised at w0, sum-of-losses MSE, ridge lambda toward w0, ${
          tt.lr === undefined ? `gradient flow for time t = ${tt.t}` : `${tt.t} gradient-descent steps of size ${tt.lr}`
        } from w0`;
      meta["infotap.si.route"] = solved.route ?? "";
      if (solved.degree !== undefined) meta["infotap.si.chebyshev_degree"] = String(solved.degree);
    }
    const extra: Results = {};
    if (this.summaryView) extra.unique_information_summary = summaryTable(si, test ? fsi : null);
    if (this.changeVectors > 0 && solved.dual) {
      const rowOf = (x: number) => this.train.rows[train.slots[x]];
      extra.si_change_vectors = changeVectorsTable(
        train.ids,
        si,
        this.changeVectors,
        solved.dual,
        rowOf,
        this.width,
        JSON.stringify(this.layout),
      );
    }
    return {
      ...extra,
      unique_information: tableFromColumns([
        { name: "sample_id", type: "int64", values: train.ids },
        { name: "si_weights", type: "float64", values: si },
        { name: "si_function", type: "float64", values: test ? fsi : new Array(n).fill(null) },
        { name: "rank_weights", type: "int32", values: rw },
        { name: "rank_function", type: "int32", values: rf ?? new Array(n).fill(null) },
        { name: "samples", type: "int64", values: new Array(n).fill(n) },
        { name: "lambda", type: "float64", values: new Array(n).fill(lambda) },
        // A sample is flagged when any of its rows is (the input's `flag` column, e.g. a flipped label).
        ...(this.flagged
          ? [{
            name: "flag",
            type: "int32" as const,
            values: train.ids.map((_, i) =>
              Math.max(...Array.from({ length: k }, (_, c) => this.train.flags[train.slots[i * k + c]]))
            ),
          }]
          : []),
        ...(tt
          ? [
            { name: "t", type: "float64" as const, values: new Array(n).fill(tt.t) },
            { name: "lr", type: "float64" as const, values: new Array(n).fill(tt.lr ?? null) },
          ]
          : []),
      ], meta),
    };
  }

  summary() {
    return { trainRows: this.train.rows.length, testRows: this.test.rows.length, parameters: this.width };
  }
}

/** The `unique-info` estimator plugin. */
export const uniqueInfoPlugin: EstimatorPlugin = definePlugin({
  name: "unique-info",
  description:
    "Per-sample smooth unique information in the weights and the function, from Jacobians at w0 (docs/science.md section 3).",
  inputs: ["jacobians/v1"],
  byDefault: true,
  tables: { unique_information: {}, unique_information_summary: {}, si_change_vectors: {} },
  report: uniqueInfoReport,
  // Float32 Gram products and inversion on the GPU (plugins/unique_info/gpu_kernel.ts): within a tolerance that grows with
  // the condition number of Theta + lambda I (docs/bench/webgpu_si.md); used only under --backend webgpu.
  gpu: () => "approximate",
  // Rows (float32) and the kernels (float64, with growth slack), then the factor, L^-T and M (module header).
  memory: (o, shape) => {
    const width = shape.tensors.reduce((a, t) => a + t.width, 0);
    const p = o["si-sketch-dim"] === undefined
      ? width
      : Math.min(width, (o["si-sketch-dim"] as number) * shape.tensors.length);
    const n = shape.rows ?? 0;
    return { state: 4 * p * n + 8 * n * n * (1.56 + 3), results: n * 60 };
  },
  memoryOptions: ["si-sketch-dim"],
  options: {
    "si-lambda": {
      type: "number",
      min: 0,
      required: true,
      description:
        "ridge lambda toward w0 (sum-of-losses convention); M = (Theta + lambda I)^-1; > 0 unless --si-t is given",
    },
    "si-t": {
      type: "number",
      greaterThan: 0,
      description:
        "finite training time: T gradient-descent steps of size --si-lr, or gradient flow for time T without it (default: converged, t = infinity)",
    },
    "si-lr": { type: "number", greaterThan: 0, description: "step size of the T discrete steps of --si-t" },
    "si-finite-route": {
      type: "string",
      choices: ["auto", "secular", "volterra", "chebyshev"],
      description:
        "leave-one-out method at finite --si-t: auto (the cheapest), secular (any t), volterra (discrete steps; cost grows with T), chebyshev (any t; the filter as a Chebyshev series to machine precision)",
    },
    "si-change-vectors": {
      type: "integer",
      min: 1,
      description: "also write w - w_{-i} of the N samples of highest weight SI (table si_change_vectors)",
    },
    "si-summary": {
      type: "boolean",
      description:
        "also write the dataset-summarisation view: SI share by fraction of samples kept (unique_information_summary)",
    },
    "si-sketch-dim": {
      type: "integer",
      min: 1,
      description: "project each Jacobian column to this many values with the seeded Rademacher sketch (--seed)",
    },
  },
  validate: validateOptions,
  create(options, context) {
    return new UniqueInfoEstimator(options, context);
  },
  restore(state, options, context) {
    return new UniqueInfoEstimator(options, context).load(state as unknown as Record<string, any>);
  },
});

/** The first ten numbers of a list, then how many more (error messages stay one short line). */
function list(xs: number[]): string {
  return xs.length <= 10 ? xs.join(", ") : `${xs.slice(0, 10).join(", ")} and ${xs.length - 10} more`;
}
