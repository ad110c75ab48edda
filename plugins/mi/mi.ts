/**
 * `mi`: inter-neuron diversity, the mutual information (nats) between pairs of neurons
 * (docs/science.md section 1; Bansal et al., NeurIPS 2022).
 *
 * - `--mi-estimator ksg` (default, as the paper's code): KSG, algorithm 1 of Kraskov et al. 2004, `--ksg-k`
 *   neighbours (default 3), Chebyshev norm, strict marginal counts, no noise, no rescaling, negative estimates
 *   kept: scikit-learn's private `_compute_mi_cc` (see `plugins/mi/ksg.ts`), except that the mean of
 *   `psi(n_x + 1) + psi(n_y + 1)` is an exact sum of `psi` values rounded to multiples of `2^-36` (at most `2^-37`
 *   per term, so within `2^-36` nats of the float64 terms' exact mean, and independent of summation order, so
 *   every path gives the same bits). KSG needs all samples at
 *   once, so the estimator keeps a seeded uniform sample of at most `--mi-samples` rows (bottom-k reservoir on a
 *   hash of `(--seed, sample_id, step)`, see `plugins/mi/reservoir.ts`): its state is that reservoir, merges and
 *   batch sizes do not change it. Pairs with a non-finite value use the rows where both neurons are finite.
 *   Under `--backend webgpu`, and `auto` on a hardware adapter, the pairs run on the GPU (`plugins/mi/gpu_ksg.ts`:
 *   the same neighbour counts and fixed-point sums, so MI bit-equal to the CPU's); pairs the kernel cannot take
 *   run on the CPU kernel.
 * - `--mi-estimator binned`: plug-in MI of the joint histogram of two binned neurons (`--mi-bins` equal-width
 *   bins, `--mi-binning global|neuron` ranges from a first pass), streamed: every pair's joint histogram is
 *   accumulated batch by batch; exact counts, so it equals the contingency-table formula on the same bins.
 *
 * `--mi-pairs within` (default) takes the pairs inside each layer; `all` every pair of analysed neurons.
 *
 * Memory, per step (`--by-step` multiplies it by the number of steps): KSG keeps `2 x --mi-samples` rows of every
 * analysed neuron as float32 (~60 MB at 768 neurons x 10,000), plus ~170 MB of per-neuron preparation while the
 * result is computed; binned MI keeps `pairs x bins^2` uint32 counts (~300 MB for 294,528 pairs at 16 bins).
 * Tables: `neuron_mi` (one row per unordered pair and step, no self-pairs) and `layer_summary` (mean and median
 * MI over each layer's within-layer pairs).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { miPlugin } from "./mi.ts";
 * const est = miPlugin.create({ "mi-estimator": "binned", "mi-bins": 2, "mi-binning": "global", "mi-pairs": "within", "ksg-k": 3, "mi-samples": 100 }, { byStep: false, seed: 0, scan: { lo: 0, hi: 1, layers: {} } });
 * est.update({ numRows: 2, columns: [{ name: "fc1", width: 2, values: new Float32Array([0, 0, 1, 1]) }] } as never);
 * const t = (await est.result()).neuron_mi;
 * assert.ok(Math.abs((t.getChild("mi")!.get(0) as number) - Math.log(2)) < 1e-12);
 * ```
 *
 * @module
 */
import type { Batch } from "../../schemas/batch.ts";
import {
  definePlugin,
  type Estimator,
  type EstimatorContext,
  type EstimatorPlugin,
  type OptionValues,
  type Results,
  type StateValue,
} from "../../pipeline/core/plugin.ts";
import { mean, nullIfNaN, percentile } from "../../pipeline/core/stats.ts";
import { sortStepKeys, stepFromKey, stepKey, stepRuns } from "../../pipeline/core/steps.ts";
import { tableFromColumns } from "../../pipeline/core/table.ts";
import { type LayerRange, layerRange, mergeRangeScans, type RangeScan, RangeScanner } from "../_shared/binning.ts";
import { ksgPairs } from "./ksg_pairs.ts";
import { addPairCounts, codeRows, mutualInformation, NONFINITE } from "../_shared/pair_counts.ts";
import { type LayerShape, Reservoir, type ReservoirState } from "./reservoir.ts";
import { GpuPairCounts } from "./gpu_pair_counts.ts";
import { gpuKsgPairs, KSG_GPU_MAX_K } from "./gpu_ksg.ts";
import type { GpuContext } from "../kernels/gpu/context.ts";
import { resolveThreads } from "../kernels/threads.ts";
import { thresholds } from "../_shared/gpu_thresholds.ts";
import { miReport } from "./report.ts";

/** A set of neurons whose pairs are counted together on the GPU: one layer (`within`) or all (`all`). */
interface PairGroup {
  layers: number[];
  /** Neurons in the group, their first global index, and the group's first entry in the counts. */
  n: number;
  neuronOffset: number;
  countOffset: number;
  /** Threshold words (gpu/_thresholds.ts): one shared set or one per neuron. */
  thr: Uint32Array;
}

/** Pairs of neurons (global indices over the layers in order) and their layers. */
interface PairPlan {
  offsets: number[];
  neurons: number;
  pairs: Int32Array;
  /** Global index -> layer index and neuron within it. */
  layerOf: Int32Array;
  neuronOf: Int32Array;
}

function planPairs(layers: LayerShape[], mode: "within" | "all"): PairPlan {
  const offsets: number[] = [];
  let N = 0;
  for (const l of layers) {
    offsets.push(N);
    N += l.width;
  }
  const layerOf = new Int32Array(N), neuronOf = new Int32Array(N);
  layers.forEach((l, li) => {
    for (let j = 0; j < l.width; j++) {
      layerOf[offsets[li] + j] = li;
      neuronOf[offsets[li] + j] = j;
    }
  });
  const out: number[] = [];
  if (mode === "all") {
    for (let a = 0; a < N; a++) for (let b = a + 1; b < N; b++) out.push(a, b);
  } else {
    layers.forEach((l, li) => {
      const o = offsets[li];
      for (let a = 0; a < l.width; a++) for (let b = a + 1; b < l.width; b++) out.push(o + a, o + b);
    });
  }
  return { offsets, neurons: N, pairs: new Int32Array(out), layerOf, neuronOf };
}

/** Options both estimators read. */
interface Common {
  estimator: "ksg" | "binned";
  mode: "within" | "all";
  byStep: boolean;
}

abstract class PairEstimator implements Estimator {
  layers: LayerShape[] = [];
  plan: PairPlan | null = null;
  readonly common: Common;
  constructor(common: Common) {
    this.common = common;
  }
  abstract update(batch: Batch): void | Promise<void>;
  abstract merge(other: Estimator): void;
  abstract state(): StateValue;
  /** Per step key: per pair MI and samples. */
  abstract estimates(): Promise<Map<string, { mi: Float64Array; samples: Float64Array }>>;
  abstract meta(): Record<string, string>;

  setLayers(layers: LayerShape[], where = "merge"): void {
    if (this.plan) {
      const same = layers.length === this.layers.length &&
        layers.every((l, i) => l.name === this.layers[i].name && l.width === this.layers[i].width);
      if (!same) {
        throw new Error(
          `Cannot ${where} mi estimators as the layers differ: current value is ${
            layers.map((l) => `${l.name}:${l.width}`).join(",")
          }`,
        );
      }
      return;
    }
    this.layers = layers.map((l) => ({ name: l.name, width: l.width }));
    this.plan = planPairs(this.layers, this.common.mode);
  }

  async result(): Promise<Results> {
    const est = await this.estimates();
    const cols = {
      la: [] as string[],
      na: [] as number[],
      lb: [] as string[],
      nb: [] as number[],
      mi: [] as (number | null)[],
      est: [] as string[],
      samples: [] as number[],
      step: [] as (bigint | null)[],
    };
    const sum = {
      layer: [] as string[],
      step: [] as (bigint | null)[],
      mean: [] as (number | null)[],
      median: [] as (number | null)[],
    };
    const plan = this.plan;
    for (const key of sortStepKeys(est.keys())) {
      if (!plan) break;
      const { mi, samples } = est.get(key)!;
      const step = stepFromKey(key);
      const perLayer = this.layers.map(() => [] as number[]);
      const P = plan.pairs.length / 2;
      for (let p = 0; p < P; p++) {
        const a = plan.pairs[2 * p], b = plan.pairs[2 * p + 1];
        const la = plan.layerOf[a], lb = plan.layerOf[b];
        cols.la.push(this.layers[la].name);
        cols.na.push(plan.neuronOf[a]);
        cols.lb.push(this.layers[lb].name);
        cols.nb.push(plan.neuronOf[b]);
        cols.mi.push(nullIfNaN(mi[p]));
        cols.est.push(this.common.estimator);
        cols.samples.push(samples[p]);
        cols.step.push(step);
        if (la === lb) perLayer[la].push(mi[p]);
      }
      this.layers.forEach((l, li) => {
        sum.layer.push(l.name);
        sum.step.push(step);
        sum.mean.push(nullIfNaN(mean(perLayer[li])));
        sum.median.push(nullIfNaN(percentile(perLayer[li], 50)));
      });
    }
    return {
      neuron_mi: tableFromColumns([
        { name: "layer_a", type: "utf8", values: cols.la },
        { name: "neuron_a", type: "int32", values: cols.na },
        { name: "layer_b", type: "utf8", values: cols.lb },
        { name: "neuron_b", type: "int32", values: cols.nb },
        { name: "mi", type: "float64", values: cols.mi },
        { name: "estimator", type: "utf8", values: cols.est },
        { name: "samples", type: "int64", values: cols.samples },
        { name: "step", type: "int64", values: cols.step },
      ], { "infotap.estimator": "mi", "infotap.units": "nats", "infotap.mi-pairs": this.common.mode, ...this.meta() }),
      layer_summary: tableFromColumns([
        { name: "layer", type: "utf8", values: sum.layer },
        { name: "step", type: "int64", values: sum.step },
        { name: "mi_mean", type: "float64", values: sum.mean },
        { name: "mi_median", type: "float64", values: sum.median },
      ]),
    };
  }
}

/** Threads for a KSG job of `pairs` pairs over `n` samples: 1 for small jobs. */
/**
 * Limits of the binned-MI GPU path. `budget`: bytes of joint counts kept on the GPU at once (all steps of one
 * estimator): with `--by-step` each step has its own counters (768 neurons x 16 bins: 302 MB per step), so older
 * steps are read back beyond it. `bindingLimit`: the largest counts of one layer (or of all neurons with
 * `--mi-pairs all`) the GPU may hold; null: the adapter's storage binding size. Tests lower both.
 */
export const binnedGpuLimits: { budget: number; bindingLimit: number | null } = { budget: 2 ** 31, bindingLimit: null };

/** Threads for the KSG pairs: the run's (`context.threads`) when the work is large enough to pay for workers. */
function threadsFor(pairs: number, n: number, threads: number): number {
  if (pairs * n < 4_000_000) return 1;
  return Math.max(1, Math.min(threads, Math.ceil(pairs / 64)));
}

interface KsgState {
  layers: LayerShape[];
  steps: Record<string, ReservoirState>;
}

class KsgEstimator extends PairEstimator {
  readonly k: number;
  readonly capacity: number;
  readonly seed: number;
  /** Threads of the pairs (`context.threads`). */
  readonly threads: number;
  /** WebGPU path (`context.gpu`): neighbour counts on the GPU (gpu_ksg.ts; CPU for the pairs it cannot take). */
  readonly gpu: GpuContext | null;
  steps = new Map<string, Reservoir>();

  constructor(options: OptionValues, context: EstimatorContext) {
    super({ estimator: "ksg", mode: options["mi-pairs"] as "within" | "all", byStep: context.byStep });
    this.gpu = context.gpu ?? null;
    this.k = options["ksg-k"] as number;
    this.capacity = options["mi-samples"] as number;
    this.seed = context.seed;
    this.threads = resolveThreads(context.threads);
  }

  #res(key: string): Reservoir {
    let r = this.steps.get(key);
    if (!r) this.steps.set(key, r = new Reservoir(this.capacity, this.layers));
    return r;
  }

  update(batch: Batch): void {
    this.setLayers(batch.columns, "update");
    for (const run of stepRuns(batch, this.common.byStep)) {
      this.#res(stepKey(run.step)).addRows(batch, run.r0, run.r1, this.seed);
    }
  }

  merge(other: Estimator): void {
    const o = other as KsgEstimator;
    if (!(o instanceof KsgEstimator) || o.k !== this.k || o.capacity !== this.capacity || o.seed !== this.seed) {
      throw new Error("Cannot merge mi estimators with different options or seed: current value is incompatible");
    }
    if (!o.plan) return;
    this.setLayers(o.layers);
    for (const [key, r] of o.steps) this.#res(key).merge(r);
  }

  state(): StateValue {
    const steps: Record<string, ReservoirState> = {};
    for (const [key, r] of this.steps) steps[key] = r.state();
    return { layers: this.layers, steps } as unknown as StateValue;
  }

  load(s: KsgState): this {
    if (s.layers.length) this.setLayers(s.layers);
    for (const [key, st] of Object.entries(s.steps)) {
      this.steps.set(key, Reservoir.fromState(this.capacity, this.layers, st));
    }
    return this;
  }

  meta(): Record<string, string> {
    return {
      "infotap.mi-estimator": "ksg",
      "infotap.ksg-k": String(this.k),
      "infotap.mi-samples": String(this.capacity),
    };
  }

  async estimates() {
    const out = new Map<string, { mi: Float64Array; samples: Float64Array }>();
    const plan = this.plan;
    if (!plan) return out;
    for (const [key, r] of this.steps) {
      const s = r.state();
      const n = s.keys.length;
      const cols = new Float32Array(plan.neurons * n);
      this.layers.forEach((l, li) => {
        const v = s.values[li], w = l.width, o = plan.offsets[li];
        for (let row = 0; row < n; row++) {
          for (let j = 0; j < w; j++) cols[(o + j) * n + row] = v[row * w + j];
        }
      });
      const P = plan.pairs.length / 2;
      const threads = threadsFor(P, n, this.threads);
      const { mi, samples } = this.gpu
        ? await gpuKsgPairs(this.gpu, cols, n, plan.pairs, this.k, { threads })
        : ksgPairs(cols, n, plan.pairs, this.k, threads);
      out.set(key, { mi, samples: Float64Array.from(samples) });
    }
    return out;
  }
}

interface BinnedState {
  layers: LayerShape[];
  steps: Record<string, { counts: Uint32Array; nonfinite: Float64Array }>;
}

class BinnedEstimator extends PairEstimator {
  readonly bins: number;
  readonly binning: "global" | "neuron";
  readonly scan: RangeScan | undefined;
  ranges: LayerRange[] = [];
  steps = new Map<string, { counts: Uint32Array; nonfinite: Float64Array }>();
  /**
   * WebGPU path (`context.gpu`): joint counts as bit-matrix products on the GPU (exact). Turned off at
   * the first batch when a layer's joint counts exceed the adapter's storage binding size (the CPU path then runs;
   * `gpuFallback` says why).
   */
  gpu: GpuContext | null;
  gpuFallback: string | null = null;
  #sizeChecked = false;
  #groups: PairGroup[] | null = null;
  /** GPU counters by step key, least recently used first (see {@linkcode binnedGpuLimits}). */
  #gpuSteps = new Map<string, GpuPairCounts[]>();

  constructor(options: OptionValues, context: EstimatorContext) {
    super({ estimator: "binned", mode: options["mi-pairs"] as "within" | "all", byStep: context.byStep });
    this.gpu = context.gpu ?? null;
    this.bins = options["mi-bins"] as number;
    this.binning = options["mi-binning"] as "global" | "neuron";
    this.scan = context.scan as unknown as RangeScan | undefined;
  }

  override setLayers(layers: LayerShape[], where?: string): void {
    const fresh = !this.plan;
    super.setLayers(layers, where);
    if (fresh) {
      if (!this.scan) throw new Error("Cannot bin as no first pass was run: current value is missing");
      const g: [number, number] | null = Number.isFinite(this.scan.lo) ? [this.scan.lo, this.scan.hi] : null;
      this.ranges = this.layers.map((l) => layerRange(this.binning, l.width, g, this.scan!.layers[l.name]));
    }
  }

  #acc(key: string) {
    let a = this.steps.get(key);
    if (!a) {
      const P = this.plan!.pairs.length / 2;
      a = { counts: new Uint32Array(P * this.bins * this.bins), nonfinite: new Float64Array(this.plan!.neurons) };
      this.steps.set(key, a);
    }
    return a;
  }

  /** The GPU groups, in the order of the plan's pairs. */
  #pairGroups(): PairGroup[] {
    if (this.#groups) return this.#groups;
    const plan = this.plan!, B = this.bins;
    const sets = this.common.mode === "all" ? [this.layers.map((_, i) => i)] : this.layers.map((_, i) => [i]);
    let countOffset = 0;
    this.#groups = [];
    for (const layers of sets) {
      const n = layers.reduce((a, li) => a + this.layers[li].width, 0);
      if (n < 2) continue;
      const lo: number[] = [], hi: number[] = [];
      for (const li of layers) {
        for (let j = 0; j < this.layers[li].width; j++) {
          lo.push(this.ranges[li].lo[j]);
          hi.push(this.ranges[li].hi[j]);
        }
      }
      const shared = lo.every((x, j) => x === lo[0] && hi[j] === hi[0]);
      const thr = new Uint32Array((shared ? 1 : n) * (B + 1));
      for (let j = 0; j < (shared ? 1 : n); j++) thresholds(lo[j], hi[j], B, thr, j * (B + 1));
      this.#groups.push({ layers, n, neuronOffset: plan.offsets[layers[0]], countOffset, thr });
      countOffset += ((n * (n - 1)) / 2) * B * B;
    }
    return this.#groups;
  }

  /** GPU bytes of one step's joint counts (all groups). */
  #stepBytes(): number {
    return this.#pairGroups().reduce((a, g) => a + ((g.n * (g.n - 1)) / 2) * this.bins * this.bins * 4, 0);
  }

  /** Reads one step's GPU counts back into its host counts and frees them. */
  async #evict(key: string): Promise<void> {
    const counters = this.#gpuSteps.get(key)!;
    await this.#readBack(key, counters);
    for (const c of counters) c.destroy();
    this.#gpuSteps.delete(key);
  }

  async #readBack(key: string, counters: GpuPairCounts[]): Promise<void> {
    const acc = this.#acc(key);
    for (let i = 0; i < counters.length; i++) {
      if (!counters[i].pending) continue;
      const g = this.#groups![i];
      const { counts, nonfinite } = await counters[i].readAll();
      for (let k = 0; k < counts.length; k++) acc.counts[g.countOffset + k] += counts[k];
      for (let j = 0; j < g.n; j++) acc.nonfinite[g.neuronOffset + j] += nonfinite[j];
    }
  }

  async #updateGpu(batch: Batch): Promise<void> {
    const groups = this.#pairGroups();
    if (!this.#sizeChecked) {
      this.#sizeChecked = true;
      // First batch: a layer whose joint counts exceed one storage binding stays on the CPU (same counts).
      const limit = binnedGpuLimits.bindingLimit ?? this.gpu!.limits.maxStorageBufferBindingSize;
      const big = groups.find((g) => ((g.n * (g.n - 1)) / 2) * this.bins * this.bins * 4 > limit);
      if (big) {
        this.gpu = null;
        this.gpuFallback =
          `joint counts of ${big.n} neurons x ${this.bins}^2 bins exceed the GPU's storage binding size (${limit} bytes): counted on the CPU`;
        return this.update(batch);
      }
    }
    for (const run of stepRuns(batch, this.common.byStep)) {
      const key = stepKey(run.step), rows = run.r1 - run.r0;
      this.#acc(key);
      let counters = this.#gpuSteps.get(key);
      if (counters) {
        this.#gpuSteps.delete(key); // most recently used last
        this.#gpuSteps.set(key, counters);
      } else {
        // By step, each step has its own counters: keep at most binnedGpuLimits.budget bytes of them on the GPU,
        // reading the least recently used step's back into its host counts first (exact either way).
        const need = this.#stepBytes();
        while (this.#gpuSteps.size > 0 && (this.#gpuSteps.size + 1) * need > binnedGpuLimits.budget) {
          await this.#evict(this.#gpuSteps.keys().next().value!);
        }
        counters = [];
        for (const g of groups) counters.push(GpuPairCounts.open(this.gpu!, g.n, this.bins, g.thr));
        this.#gpuSteps.set(key, counters);
      }
      for (let i = 0; i < groups.length; i++) {
        const g = groups[i];
        let values: Float32Array;
        if (g.layers.length === 1) {
          const c = batch.columns[g.layers[0]];
          values = c.values.subarray(run.r0 * c.width, run.r1 * c.width);
        } else {
          // `all`: the rows of every layer side by side (one row-major rows x N matrix).
          values = new Float32Array(rows * g.n);
          let at = 0;
          for (const li of g.layers) {
            const c = batch.columns[li], w = c.width;
            for (let r = 0; r < rows; r++) {
              values.set(c.values.subarray((run.r0 + r) * w, (run.r0 + r + 1) * w), r * g.n + at);
            }
            at += w;
          }
        }
        await counters[i].update(values, rows);
      }
    }
  }

  /** Reads GPU-held counts back into the host counts (no-op on the CPU path). */
  async flush(): Promise<void> {
    if (!this.#groups) return;
    for (const [key, counters] of this.#gpuSteps) await this.#readBack(key, counters);
  }

  /** For run.json: why the GPU path was left, if it was. */
  summary(): { gpu_fallback: string } | null {
    return this.gpuFallback ? { gpu_fallback: this.gpuFallback } : null;
  }

  /** Frees the GPU buffers (results and state read back first). */
  dispose(): void {
    for (const counters of this.#gpuSteps.values()) for (const c of counters) c.destroy();
    this.#gpuSteps.clear();
  }

  #checkFlushed(what: string): void {
    for (const counters of this.#gpuSteps.values()) {
      if (counters.some((c) => c.pending)) {
        throw new Error(
          `Cannot ${what} as GPU counts are not read back (await flush() first): current value is pending`,
        );
      }
    }
  }

  update(batch: Batch): void | Promise<void> {
    this.setLayers(batch.columns, "update");
    if (this.gpu) return this.#updateGpu(batch);
    const plan = this.plan!;
    const P = plan.pairs.length / 2;
    for (const run of stepRuns(batch, this.common.byStep)) {
      const rows = run.r1 - run.r0;
      const acc = this.#acc(stepKey(run.step));
      const codes = new Uint8Array(plan.neurons * rows);
      const bad = new Float64Array(plan.neurons);
      batch.columns.forEach((c, li) => {
        codeRows(c.values, c.width, run.r0, run.r1, this.ranges[li], this.bins, codes, plan.offsets[li], bad);
      });
      const dirty = new Uint8Array(plan.neurons);
      for (let a = 0; a < plan.neurons; a++) {
        if (bad[a] > 0) {
          dirty[a] = 1;
          acc.nonfinite[a] += bad[a];
        }
      }
      addPairCounts(codes, rows, plan.pairs, 0, P, this.bins, dirty, acc.counts);
    }
  }

  merge(other: Estimator): void {
    const o = other as BinnedEstimator;
    if (!(o instanceof BinnedEstimator) || o.bins !== this.bins || o.binning !== this.binning) {
      throw new Error("Cannot merge mi estimators with different bins or binning: current value is incompatible");
    }
    o.#checkFlushed("merge an mi estimator");
    if (!o.plan) return;
    this.setLayers(o.layers);
    for (const [key, a] of o.steps) {
      const mine = this.#acc(key);
      for (let i = 0; i < a.counts.length; i++) mine.counts[i] += a.counts[i];
      for (let i = 0; i < a.nonfinite.length; i++) mine.nonfinite[i] += a.nonfinite[i];
    }
  }

  state(): StateValue {
    this.#checkFlushed("snapshot the mi estimator");
    const steps: BinnedState["steps"] = {};
    for (const [key, a] of this.steps) steps[key] = a;
    return { layers: this.layers, steps } as unknown as StateValue;
  }

  load(s: BinnedState): this {
    if (s.layers.length) this.setLayers(s.layers);
    for (const [key, a] of Object.entries(s.steps)) this.steps.set(key, { counts: a.counts, nonfinite: a.nonfinite });
    return this;
  }

  meta(): Record<string, string> {
    return {
      "infotap.mi-estimator": "binned",
      "infotap.mi-bins": String(this.bins),
      "infotap.mi-binning": this.binning,
    };
  }

  async estimates() {
    await this.flush();
    const out = new Map<string, { mi: Float64Array; samples: Float64Array }>();
    const B = this.bins, B2 = B * B;
    const rs = new Float64Array(B), cs = new Float64Array(B);
    for (const [key, a] of this.steps) {
      const P = a.counts.length / B2;
      const mi = new Float64Array(P), samples = new Float64Array(P);
      for (let p = 0; p < P; p++) {
        mi[p] = mutualInformation(a.counts, p * B2, B, B, rs, cs);
        let n = 0;
        for (let i = 0; i < B2; i++) n += a.counts[p * B2 + i];
        samples[p] = n;
      }
      out.set(key, { mi, samples });
    }
    return out;
  }
}

/** The `mi` estimator plugin. */
export const miPlugin: EstimatorPlugin = definePlugin({
  name: "mi",
  description:
    "Mutual information (nats) between pairs of neurons, KSG or binned: inter-neuron diversity (docs/science.md section 1).",
  inputs: ["activations/v1"],
  tables: { neuron_mi: {}, layer_summary: { keys: ["layer", "step"], overview: true } },
  report: miReport,
  options: {
    "mi-estimator": {
      type: "string",
      default: "ksg",
      choices: ["ksg", "binned"],
      description:
        "ksg: Kraskov et al. k-nearest-neighbour estimator (paper's code); binned: plug-in on joint histograms",
    },
    "ksg-k": { type: "integer", default: 3, min: 1, description: "KSG: number of nearest neighbours" },
    "mi-pairs": {
      type: "string",
      default: "within",
      choices: ["within", "all"],
      description: "within: pairs inside each layer; all: every pair of analysed neurons",
    },
    "mi-samples": {
      type: "integer",
      default: 10000,
      min: 2,
      description: "KSG: at most this many samples kept (seeded uniform reservoir, --seed)",
    },
    "mi-bins": { type: "integer", default: 16, min: 1, description: "binned MI: equal-width bins per neuron (<= 254)" },
    "mi-binning": {
      type: "string",
      default: "global",
      choices: ["global", "neuron"],
      description: "binned MI: global [min,max] over all analysed layers, or each neuron's own [min,max]",
    },
  },
  validate(o) {
    if ((o["mi-bins"] as number) >= NONFINITE) {
      throw new Error(`Cannot use --mi-bins as it must be < ${NONFINITE}: current value is ${o["mi-bins"]}`);
    }
  },
  scan(options) {
    return options["mi-estimator"] === "binned" ? new RangeScanner() : null;
  },
  mergeScans: mergeRangeScans,
  // Binned: integer counts. KSG: the reservoir keeps the rows of smallest (seed, sample_id, step) keys, the
  // same whatever the batch order or split.
  orderFree: true,
  // Binned: integer joint counts, bit-equal on the GPU (gpu/pair_counts.ts). KSG: the same neighbour counts and
  // the same exact fixed-point psi sums as the CPU kernels (plugins/mi/ksg.ts, gpu/ksg.ts), so bit-equal too; k above
  // the kernel's limit runs on the CPU.
  gpu: (o) => o["mi-estimator"] === "binned" ? "exact" : (o["ksg-k"] as number) <= KSG_GPU_MAX_K ? "exact" : null,
  create(options, context) {
    return options["mi-estimator"] === "binned"
      ? new BinnedEstimator(options, context)
      : new KsgEstimator(options, context);
  },
  restore(state, options, context) {
    return options["mi-estimator"] === "binned"
      ? new BinnedEstimator(options, context).load(state as unknown as BinnedState)
      : new KsgEstimator(options, context).load(state as unknown as KsgState);
  },
});
