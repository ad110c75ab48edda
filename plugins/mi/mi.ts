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
 * `--mi-pairs within` (default) takes the pairs inside each layer; `all` every pair of analysed neurons; `paper` the
 * official code's full N x N matrix (cross-layer pairs and self-pairs; rows of `neuron_mi` for every unordered
 * pair with `a <= b`) and its per-neuron row means, diagonal included (table `neuron_mi_mean`; `layer_summary` then
 * holds the mean and median of the layer's neuron means), optionally normalised (`--mi-normalise row|global`).
 * `--mi-pair-sample N` keeps a seeded uniform sample of N pairs per layer (`all`: of all pairs), stated in run.json.
 *
 * Ties: the `ties` column of `neuron_mi` (KSG) is the fraction of a pair's samples whose k-th neighbour distance
 * is 0 (`plugins/mi/ties.ts`); above 1% the run warns and run.json's summary counts the pairs. `--ksg-jitter`
 * applies scikit-learn's `mutual_info_regression` scaling and noise first (`plugins/mi/jitter.ts`, float64, CPU),
 * `--ksg-clip` turns negative estimates into 0 as its `_compute_mi_cc` does.
 *
 * Memory, per step (`--by-step` multiplies it by the number of steps): KSG keeps `2 x --mi-samples` rows of every
 * analysed neuron as float32 (~60 MB at 768 neurons x 10,000), plus ~170 MB of per-neuron preparation while the
 * result is computed; binned MI keeps `pairs x bins^2` uint32 counts (~300 MB for 294,528 pairs at 16 bins).
 * Tables: `neuron_mi` (one row per unordered pair and step, no self-pairs except with `paper`), `layer_summary`
 * (mean and median MI over each layer's within-layer pairs) and, with `paper`, `neuron_mi_mean`.
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
import { addPairCounts, codeRows, mutualInformationMany, NONFINITE } from "../_shared/pair_counts.ts";
import { type LayerShape, type ReservoirState, StepReservoirs } from "./reservoir.ts";
import { GpuPairCounts } from "./gpu_pair_counts.ts";
import { gpuKsgPairs, KSG_GPU_MAX_K } from "./gpu_ksg.ts";
import type { GpuContext } from "../kernels/gpu/context.ts";
import { resolveThreads } from "../kernels/threads.ts";
import { thresholds } from "../_shared/gpu_thresholds.ts";
import { mix } from "../../schemas/sketch.ts";
import { tiedFractions } from "./ties.ts";
import { jitterColumn, jitterSeed } from "./jitter.ts";
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

/** `--mi-pairs`. */
type PairMode = "within" | "all" | "paper";

/** Uniform in [0, 1) from a seeded 32-bit counter hash (for the pair sample). */
function uniform(seed: number, i: number): number {
  return mix((seed ^ mix(i + 0x632be5ab)) >>> 0) / 4294967296;
}

/**
 * `--mi-pair-sample`: `count` of the `total` pairs of one group, uniformly without replacement (Floyd's algorithm,
 * seeded by `--seed` and the group), as sorted pair indices; all of them when `count` is 0 or at least `total`.
 */
export function samplePairIndices(total: number, count: number, seed: number, group: number): Float64Array {
  if (count <= 0 || count >= total) return Float64Array.from({ length: total }, (_, i) => i);
  const s = mix((mix(seed >>> 0) ^ mix(group + 0x27d4eb2f)) >>> 0);
  const chosen = new Set<number>();
  for (let j = total - count, i = 0; j < total; j++, i++) {
    const t = Math.floor(uniform(s, i) * (j + 1));
    chosen.add(chosen.has(t) ? j : t);
  }
  return Float64Array.from(chosen).sort();
}

/** Appends the pairs `a < b` of neurons `o..o+w` (lexicographic index `t`) kept by `keep` (sorted indices). */
function pushPairs(out: number[], o: number, w: number, keep: Float64Array): void {
  let a = 0, first = 0; // index of pair (a, a + 1)
  for (const t of keep) {
    while (t >= first + (w - 1 - a)) first += w - 1 - a++;
    out.push(o + a, o + a + 1 + (t - first));
  }
}

function planPairs(layers: LayerShape[], mode: PairMode, sample = 0, seed = 0): PairPlan {
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
  if (mode === "paper") {
    // the official code's N x N matrix: every unordered pair, cross-layer pairs and self-pairs included
    for (let a = 0; a < N; a++) for (let b = a; b < N; b++) out.push(a, b);
  } else if (mode === "all") {
    pushPairs(out, 0, N, samplePairIndices((N * (N - 1)) / 2, sample, seed, 0));
  } else {
    layers.forEach((l, li) => {
      pushPairs(out, offsets[li], l.width, samplePairIndices((l.width * (l.width - 1)) / 2, sample, seed, li));
    });
  }
  return { offsets, neurons: N, pairs: new Int32Array(out), layerOf, neuronOf };
}

/** Options both estimators read. */
interface Common {
  estimator: "ksg" | "binned";
  mode: PairMode;
  /** `--mi-normalise` (paper mode only). */
  normalise: "none" | "row" | "global";
  /** `--mi-pair-sample` (0: all pairs) and the `--seed` it draws with. */
  sample: number;
  seed: number;
  byStep: boolean;
}

/** The options of {@linkcode Common} from the plugin's options and context. */
function common(estimator: "ksg" | "binned", options: OptionValues, context: EstimatorContext): Common {
  return {
    estimator,
    mode: options["mi-pairs"] as PairMode,
    normalise: (options["mi-normalise"] ?? "none") as Common["normalise"],
    sample: (options["mi-pair-sample"] ?? 0) as number,
    seed: context.seed,
    byStep: context.byStep,
  };
}

/** One step's estimates: per pair MI and samples, and for KSG the fraction of tied samples. */
interface StepEstimates {
  mi: Float64Array;
  samples: Float64Array;
  ties?: Float64Array;
}

abstract class PairEstimator implements Estimator {
  layers: LayerShape[] = [];
  plan: PairPlan | null = null;
  readonly common: Common;
  /** Where the result phase reports the pairs done (`EstimatorContext.progress`). */
  readonly progress: EstimatorContext["progress"];
  constructor(common: Common, context: EstimatorContext) {
    this.common = common;
    this.progress = context.progress;
  }
  abstract update(batch: Batch): void | Promise<void>;
  abstract merge(other: Estimator): void;
  abstract state(): StateValue;
  /** Per step key: per pair MI and samples. */
  abstract estimates(): Promise<Map<string, StepEstimates>>;
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
    this.plan = planPairs(this.layers, this.common.mode, this.common.sample, this.common.seed);
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
      ties: [] as (number | null)[],
      step: [] as (bigint | null)[],
    };
    const sum = {
      layer: [] as string[],
      step: [] as (bigint | null)[],
      mean: [] as (number | null)[],
      median: [] as (number | null)[],
    };
    const means = {
      layer: [] as string[],
      neuron: [] as number[],
      step: [] as (bigint | null)[],
      mean: [] as (number | null)[],
    };
    const plan = this.plan;
    const paper = this.common.mode === "paper";
    for (const key of sortStepKeys(est.keys())) {
      if (!plan) break;
      const { mi, samples, ties } = est.get(key)!;
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
        cols.ties.push(ties ? nullIfNaN(ties[p]) : null);
        cols.step.push(step);
        if (la === lb && !paper) perLayer[la].push(mi[p]);
      }
      if (paper) {
        // per neuron: the mean of its row of the (normalised) N x N matrix, diagonal included; per layer: the
        // mean and median of its neurons' row means
        const rows = paperRowMeans(plan.neurons, plan.pairs, mi, this.common.normalise);
        for (let a = 0; a < plan.neurons; a++) {
          const li = plan.layerOf[a];
          means.layer.push(this.layers[li].name);
          means.neuron.push(plan.neuronOf[a]);
          means.step.push(step);
          means.mean.push(nullIfNaN(rows[a]));
          perLayer[li].push(rows[a]);
        }
      }
      this.layers.forEach((l, li) => {
        sum.layer.push(l.name);
        sum.step.push(step);
        sum.mean.push(nullIfNaN(mean(perLayer[li])));
        sum.median.push(nullIfNaN(percentile(perLayer[li], 50)));
      });
    }
    const meta: Record<string, string> = {
      "infotap.estimator": "mi",
      "infotap.units": "nats",
      "infotap.mi-pairs": this.common.mode,
      ...this.meta(),
    };
    if (this.common.sample > 0) meta["infotap.mi-pair-sample"] = String(this.common.sample);
    if (paper) meta["infotap.mi-normalise"] = this.common.normalise;
    const out: Results = {
      neuron_mi: tableFromColumns([
        { name: "layer_a", type: "utf8", values: cols.la },
        { name: "neuron_a", type: "int32", values: cols.na },
        { name: "layer_b", type: "utf8", values: cols.lb },
        { name: "neuron_b", type: "int32", values: cols.nb },
        { name: "mi", type: "float64", values: cols.mi },
        { name: "estimator", type: "utf8", values: cols.est },
        { name: "samples", type: "int64", values: cols.samples },
        { name: "ties", type: "float64", values: cols.ties },
        { name: "step", type: "int64", values: cols.step },
      ], meta),
      layer_summary: tableFromColumns([
        { name: "layer", type: "utf8", values: sum.layer },
        { name: "step", type: "int64", values: sum.step },
        { name: "mi_mean", type: "float64", values: sum.mean },
        { name: "mi_median", type: "float64", values: sum.median },
      ]),
    };
    if (paper) {
      out.neuron_mi_mean = tableFromColumns([
        { name: "layer", type: "utf8", values: means.layer },
        { name: "neuron", type: "int32", values: means.neuron },
        { name: "step", type: "int64", values: means.step },
        { name: "mi_mean", type: "float64", values: means.mean },
      ], {
        "infotap.estimator": "mi",
        "infotap.units": this.common.normalise === "none" ? "nats" : "normalised",
        "infotap.mi-normalise": this.common.normalise,
      });
    }
    return out;
  }
}

/**
 * `--mi-pairs paper`: the row means of the symmetric `N x N` matrix whose upper triangle (diagonal included) is
 * `mi` over `pairs`, as the official code's `mis.mean(1)`: the diagonal counts once per row, NaN entries are left
 * out of the mean. `row` divides each row by its largest entry plus `1e-4` (its `get_knn_intra_mi(norm=True)`),
 * `global` every entry by the largest entry of the matrix (its `--normalize_mi`); NaN entries are skipped there too.
 */
export function paperRowMeans(N: number, pairs: Int32Array, mi: Float64Array, normalise: string): Float64Array {
  const sum = new Float64Array(N), count = new Float64Array(N), max = new Float64Array(N).fill(-Infinity);
  const P = pairs.length / 2;
  for (let p = 0; p < P; p++) {
    const a = pairs[2 * p], b = pairs[2 * p + 1], v = mi[p];
    if (Number.isNaN(v)) continue;
    max[a] = Math.max(max[a], v);
    max[b] = Math.max(max[b], v);
  }
  let top = -Infinity;
  for (let a = 0; a < N; a++) top = Math.max(top, max[a]);
  for (let p = 0; p < P; p++) {
    const a = pairs[2 * p], b = pairs[2 * p + 1], v = mi[p];
    if (Number.isNaN(v)) continue;
    for (const row of a === b ? [a] : [a, b]) {
      sum[row] += normalise === "row" ? v / (max[row] + 1e-4) : normalise === "global" ? v / top : v;
      count[row]++;
    }
  }
  return sum.map((s, a) => (count[a] > 0 ? s / count[a] : NaN));
}

/** run.json's record of `--mi-pair-sample`: pairs kept of all, per layer (`within`) or over all neurons (`all`). */
function pairSampleSummary(e: PairEstimator): Record<string, unknown> {
  if (e.common.sample <= 0 || !e.plan) return {};
  const kept = new Map<string, number>(), of = new Map<string, number>();
  const P = e.plan.pairs.length / 2;
  const group = (a: number) => e.common.mode === "all" ? "(all)" : e.layers[e.plan!.layerOf[a]].name;
  for (let p = 0; p < P; p++) {
    const g = group(e.plan.pairs[2 * p]);
    kept.set(g, (kept.get(g) ?? 0) + 1);
  }
  if (e.common.mode === "all") of.set("(all)", (e.plan.neurons * (e.plan.neurons - 1)) / 2);
  else for (const l of e.layers) of.set(l.name, (l.width * (l.width - 1)) / 2);
  return {
    pair_sample: {
      requested: e.common.sample,
      seed: e.common.seed,
      groups: [...of].map(([name, total]) => ({ group: name, pairs: kept.get(name) ?? 0, of: total })),
    },
  };
}

/**
 * Rows of bin codes the binned CPU path collects before counting them (`neurons x rows` bytes, about 32 MiB, 8,192
 * to 65,536 rows, a multiple of 8): each block costs a pass over every pair's counts (the fold of the scratch
 * histograms, the copy in and out of the WebAssembly kernel's memory; plugins/_shared/pair_counts.ts), so blocks are
 * long.
 */
function blockRows(neurons: number): number {
  return Math.max(8192, Math.min(65536, Math.floor(binnedBlock.bytes / Math.max(1, neurons) / 8) * 8));
}

/** The byte budget of a block of codes (tests lower it to count several full blocks). */
export const binnedBlock: { bytes: number } = { bytes: 2 ** 25 };

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
  /** `--ksg-jitter`: scikit-learn's `mutual_info_regression` scaling and noise first (float64, CPU). */
  readonly jitter: boolean;
  /** `--ksg-clip`: negative estimates become 0 (scikit-learn's `_compute_mi_cc`). */
  readonly clip: boolean;
  /** Threads of the pairs (`context.threads`). */
  readonly threads: number;
  /** WebGPU path (`context.gpu`): neighbour counts on the GPU (gpu_ksg.ts; CPU for the pairs it cannot take). */
  readonly gpu: GpuContext | null;
  readonly reservoirs: StepReservoirs;
  /** Ties over every step's pairs, for run.json (set by `estimates`). */
  #ties = { pairs: 0, above: 0, max: 0 };

  constructor(options: OptionValues, context: EstimatorContext) {
    super(common("ksg", options, context), context);
    this.gpu = context.gpu ?? null;
    this.k = options["ksg-k"] as number;
    this.capacity = options["mi-samples"] as number;
    this.reservoirs = new StepReservoirs(this.capacity, () => this.layers);
    this.seed = context.seed;
    this.jitter = Boolean(options["ksg-jitter"]);
    this.clip = Boolean(options["ksg-clip"]);
    this.threads = resolveThreads(context.threads);
  }

  update(batch: Batch): void {
    this.setLayers(batch.columns, "update");
    this.reservoirs.add(batch, this.common.byStep, this.seed);
  }

  merge(other: Estimator): void {
    const o = other as KsgEstimator;
    if (
      !(o instanceof KsgEstimator) || o.k !== this.k || o.capacity !== this.capacity || o.seed !== this.seed ||
      o.jitter !== this.jitter || o.clip !== this.clip
    ) {
      throw new Error("Cannot merge mi estimators with different options or seed: current value is incompatible");
    }
    if (!o.plan) return;
    this.setLayers(o.layers);
    this.reservoirs.merge(o.reservoirs);
  }

  state(): StateValue {
    return { layers: this.layers, steps: this.reservoirs.state() } as unknown as StateValue;
  }

  load(s: KsgState): this {
    if (s.layers.length) this.setLayers(s.layers);
    this.reservoirs.load(s.steps);
    return this;
  }

  meta(): Record<string, string> {
    const m: Record<string, string> = {
      "infotap.mi-estimator": "ksg",
      "infotap.ksg-k": String(this.k),
      "infotap.mi-samples": String(this.capacity),
    };
    if (this.jitter) m["infotap.ksg-jitter"] = "true";
    if (this.clip) m["infotap.ksg-clip"] = "true";
    return m;
  }

  async estimates() {
    const out = new Map<string, StepEstimates>();
    const plan = this.plan;
    if (!plan) return out;
    const P = plan.pairs.length / 2, total = P * this.reservoirs.steps.size;
    let before = 0;
    const told = this.progress ? (p: number) => this.progress!(before + p, total, "pairs") : undefined;
    this.#ties = { pairs: 0, above: 0, max: 0 };
    for (const [key, r] of this.reservoirs.steps) {
      const s = r.state();
      const n = s.keys.length;
      let cols: Float32Array | Float64Array = new Float32Array(plan.neurons * n);
      this.layers.forEach((l, li) => {
        const v = s.values[li], w = l.width, o = plan.offsets[li];
        for (let row = 0; row < n; row++) {
          for (let j = 0; j < w; j++) cols[(o + j) * n + row] = v[row * w + j];
        }
      });
      if (this.jitter) {
        // scikit-learn's mutual_info_regression recipe per neuron, in float64 (see plugins/mi/jitter.ts)
        const f32 = cols, f64 = new Float64Array(plan.neurons * n);
        for (let a = 0; a < plan.neurons; a++) {
          const seed = jitterSeed(this.seed, plan.layerOf[a], plan.neuronOf[a]);
          f64.set(jitterColumn(f32.subarray(a * n, a * n + n), seed), a * n);
        }
        cols = f64;
      }
      const threads = threadsFor(P, n, this.threads);
      const { mi, samples } = this.gpu && cols instanceof Float32Array
        ? await gpuKsgPairs(this.gpu, cols, n, plan.pairs, this.k, { threads })
        : ksgPairs(cols, n, plan.pairs, this.k, threads, told);
      if (this.clip) { for (let p = 0; p < P; p++) if (mi[p] < 0) mi[p] = 0; }
      const ties = tiedFractions(cols, n, plan.pairs, this.k);
      for (let p = 0; p < P; p++) {
        this.#ties.pairs++;
        if (ties[p] > 0.01) this.#ties.above++;
        if (ties[p] > this.#ties.max) this.#ties.max = ties[p];
      }
      out.set(key, { mi, samples: Float64Array.from(samples), ties });
      before += P;
      told?.(0);
    }
    return out;
  }

  /**
   * For run.json: ties (pairs whose fraction of samples with k-th neighbour distance 0 exceeds 1%) and the pair
   * sample, with warning lines the CLI prints; null when there is nothing to say. Read after `result()`.
   */
  summary(): Record<string, unknown> | null {
    const out: Record<string, unknown> = {};
    const warnings: string[] = [];
    const t = this.#ties;
    if (t.above > 0) {
      out.ties = { pairs_above_1pct: t.above, pairs: t.pairs, max_fraction: t.max, k: this.k };
      warnings.push(
        `${t.above} of ${t.pairs} pair(s) have more than 1% of samples whose k-th neighbour distance is 0 ` +
          `(k = ${this.k}; tied values, up to ${(100 * t.max).toFixed(1)}%): KSG is biased there (column 'ties'; ` +
          `--ksg-jitter adds scikit-learn's noise)`,
      );
    }
    Object.assign(out, pairSampleSummary(this));
    if (warnings.length) out.warnings = warnings;
    return Object.keys(out).length ? out : null;
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
  /** CPU path: coded rows not counted yet (one step's), and the code buffer it reuses. */
  #block: { key: string; rows: number; codes: Uint8Array; bad: Float64Array } | null = null;
  #codes: Uint8Array | null = null;
  /** GPU counters by step key, least recently used first (see {@linkcode binnedGpuLimits}). */
  #gpuSteps = new Map<string, GpuPairCounts[]>();

  /** Threads of the native joint counts of a block still pending at results (`context.threads`). */
  readonly threads: number;

  constructor(options: OptionValues, context: EstimatorContext) {
    super(common("binned", options, context), context);
    this.threads = resolveThreads(context.threads);
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

  /**
   * Reads GPU-held counts back into the host counts (no-op on the CPU path: a pending block of coded rows is counted
   * by `state` and `merge`, and by `estimates` beside the counts without adding it to them).
   */
  async flush(): Promise<void> {
    if (!this.#groups) return;
    for (const [key, counters] of this.#gpuSteps) await this.#readBack(key, counters);
  }

  /** For run.json: why the GPU path was left, if it was, and the pair sample. */
  summary(): Record<string, unknown> | null {
    const out: Record<string, unknown> = this.gpuFallback ? { gpu_fallback: this.gpuFallback } : {};
    Object.assign(out, pairSampleSummary(this));
    return Object.keys(out).length ? out : null;
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
    // rows are coded into a block of blockRows and counted when it is full, the step changes or results are read
    const BLOCK_ROWS = blockRows(plan.neurons);
    for (const run of stepRuns(batch, this.common.byStep)) {
      const key = stepKey(run.step);
      if (this.#block && this.#block.key !== key) this.#countBlock();
      for (let r = run.r0; r < run.r1;) {
        const b = this.#block ??= {
          key,
          rows: 0,
          codes: this.#codes ??= new Uint8Array(plan.neurons * blockRows(plan.neurons)),
          bad: new Float64Array(plan.neurons),
        };
        const take = Math.min(run.r1 - r, BLOCK_ROWS - b.rows);
        batch.columns.forEach((c, li) => {
          codeRows(
            c.values,
            c.width,
            r,
            r + take,
            this.ranges[li],
            this.bins,
            b.codes,
            plan.offsets[li],
            b.bad,
            BLOCK_ROWS,
            b.rows,
          );
        });
        b.rows += take;
        r += take;
        if (b.rows === BLOCK_ROWS) this.#countBlock();
      }
    }
  }

  /** Adds the joint counts of the pending block of coded rows (CPU path). */
  #countBlock(): void {
    const b = this.#block;
    if (!b) return;
    this.#block = null;
    const plan = this.plan!, acc = this.#acc(b.key);
    const dirty = new Uint8Array(plan.neurons);
    for (let a = 0; a < plan.neurons; a++) {
      if (b.bad[a] > 0) {
        dirty[a] = 1;
        acc.nonfinite[a] += b.bad[a];
      }
    }
    const stride = blockRows(plan.neurons);
    addPairCounts(b.codes, b.rows, plan.pairs, 0, plan.pairs.length / 2, this.bins, dirty, acc.counts, stride);
  }

  merge(other: Estimator): void {
    const o = other as BinnedEstimator;
    if (!(o instanceof BinnedEstimator) || o.bins !== this.bins || o.binning !== this.binning) {
      throw new Error("Cannot merge mi estimators with different bins or binning: current value is incompatible");
    }
    o.#checkFlushed("merge an mi estimator");
    o.#countBlock();
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
    this.#countBlock();
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

  /**
   * MI of every pair and step. The pending block of coded rows (CPU path) is counted here chunk by chunk of pairs,
   * beside the step's counts and without adding it to them: a result read before more rows arrive never holds
   * the full count array (301 MB for 768 neurons x 16 bins), and the estimator's state is left as it was.
   */
  async estimates() {
    await this.flush();
    const out = new Map<string, StepEstimates>();
    const plan = this.plan;
    if (!plan) return out;
    const B = this.bins, B2 = B * B, P = plan.pairs.length / 2;
    const block = this.#block && this.#block.rows > 0 ? this.#block : null;
    const keys = [...this.steps.keys()];
    if (block && !this.steps.has(block.key)) keys.push(block.key);
    const total = keys.length * P, stride = blockRows(plan.neurons);
    const chunk = Math.max(1, Math.min(P, Math.floor(PENDING_CHUNK_CELLS / B2)));
    let done = 0, scratch: Uint32Array | null = null;
    for (const key of keys) {
      const acc = this.steps.get(key);
      const pending = block?.key === key ? block : null;
      const dirty = new Uint8Array(plan.neurons);
      if (pending) { for (let a = 0; a < plan.neurons; a++) dirty[a] = pending.bad[a] > 0 ? 1 : 0; }
      const mi = new Float64Array(P), samples = new Float64Array(P);
      for (let c0 = 0; c0 < P; c0 += chunk) {
        const c1 = Math.min(P, c0 + chunk);
        let counts = acc?.counts as Uint32Array, from = 0;
        if (pending) {
          scratch ??= new Uint32Array(chunk * B2);
          if (acc) scratch.set(acc.counts.subarray(c0 * B2, c1 * B2));
          else scratch.fill(0, 0, (c1 - c0) * B2);
          // the codes are copied into the kernel's memory for the first chunk only (this loop never yields)
          addPairCounts(
            pending.codes,
            pending.rows,
            plan.pairs,
            c0,
            c1,
            B,
            dirty,
            scratch,
            stride,
            c0,
            c0 > 0,
            this.threads,
          );
          counts = scratch;
          from = c0;
        }
        this.progress?.(done + c0, total, "pairs");
        mutualInformationMany(counts, (c0 - from) * B2, c1 - c0, B, B, mi, samples, c0);
      }
      out.set(key, { mi, samples });
      done += P;
    }
    this.progress?.(done, total, "pairs");
    return out;
  }
}

/** Cells of joint counts `estimates` counts at once from a pending block (8 MiB of Uint32). */
const PENDING_CHUNK_CELLS = 1 << 21;

/** The `mi` estimator plugin. */
export const miPlugin: EstimatorPlugin = definePlugin({
  name: "mi",
  description:
    "Mutual information (nats) between pairs of neurons, KSG or binned: inter-neuron diversity (docs/science.md section 1).",
  inputs: ["activations/v1"],
  tables: { neuron_mi: {}, layer_summary: { keys: ["layer", "step"], overview: true }, neuron_mi_mean: {} },
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
      choices: ["within", "all", "paper"],
      description:
        "within: pairs inside each layer; all: every pair of analysed neurons; paper: the official code's N x N " +
        "matrix (self-pairs too) and per-neuron row means (table neuron_mi_mean)",
    },
    "mi-normalise": {
      type: "string",
      default: "none",
      choices: ["none", "row", "global"],
      description:
        "--mi-pairs paper: divide each row by its maximum + 1e-4 (row) or all by the matrix maximum (global)",
    },
    "mi-pair-sample": {
      type: "integer",
      default: 0,
      min: 0,
      description: "at most this many pairs per layer (within) or in all (all), a seeded uniform sample (0: all pairs)",
    },
    "ksg-jitter": {
      type: "boolean",
      default: false,
      description: "KSG: scale to unit variance and add 1e-10 noise first, as scikit-learn's mutual_info_regression",
    },
    "ksg-clip": {
      type: "boolean",
      default: false,
      description: "KSG: negative estimates become 0, as scikit-learn's _compute_mi_cc (the paper keeps them)",
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
    if ((o["mi-normalise"] ?? "none") !== "none" && o["mi-pairs"] !== "paper") {
      throw new Error(`Cannot use --mi-normalise as it needs --mi-pairs paper: current value is ${o["mi-pairs"]}`);
    }
    if ((o["mi-pair-sample"] as number ?? 0) > 0 && o["mi-pairs"] === "paper") {
      throw new Error(
        `Cannot use --mi-pair-sample with --mi-pairs paper as the paper's row means need every pair: current value is ${
          o["mi-pair-sample"]
        }`,
      );
    }
    for (const flag of ["ksg-jitter", "ksg-clip"]) {
      if (o[flag] && o["mi-estimator"] !== "ksg") {
        throw new Error(`Cannot use --${flag} as it needs --mi-estimator ksg: current value is ${o["mi-estimator"]}`);
      }
    }
  },
  scan(options) {
    return options["mi-estimator"] === "binned" ? new RangeScanner() : null;
  },
  mergeScans: mergeRangeScans,
  // Binned results are per step; KSG's ties summary counts pairs only when some are tied, so it cannot be
  // combined exactly over steps finished apart: KSG holds every step.
  stepLocal: (o) => o["mi-estimator"] === "binned",
  // The pair sample is the same in every step; a GPU fallback is said by either.
  mergeSummaries: (a, b) => ({ ...b, ...a }),
  // Per step: binned, pairs x bins^2 uint32 counts, and once (`work`) the block of coded rows, the WebAssembly
  // kernel's copy of it or the native kernel's bit sets (bins / 8 bytes a code), and the chunk of counts of a block
  // still pending at results; KSG, the reservoir (2 x --mi-samples rows of every neuron, float32) and, while the
  // result is computed, the neurons' columns and their prepared arrays (6.5 times them: sorted values, ranks, order,
  // fence, strips, and the tie groups where a neuron has a heavy point).
  memory: (o, shape) => {
    const widths = shape.tensors.map((t) => t.width), n = widths.reduce((a, w) => a + w, 0);
    const sample = (o["mi-pair-sample"] ?? 0) as number;
    const group = (w: number) => (sample > 0 ? Math.min(sample, (w * (w - 1)) / 2) : (w * (w - 1)) / 2);
    const pairs = o["mi-pairs"] === "all" ? group(n) : widths.reduce((a, w) => a + group(w), 0);
    // 54 bytes a row in the table (measured), about as much again left by building it until it is collected
    const results = pairs * 95 + shape.tensors.length * 80;
    if (o["mi-estimator"] === "binned") {
      const b = o["mi-bins"] as number;
      const work = n * blockRows(n) * (1 + Math.max(1, b / 8)) + PENDING_CHUNK_CELLS * 4;
      return { state: pairs * b * b * 4 + n * 8 + pairs * 16, results, work };
    }
    const rows = Math.min(o["mi-samples"] as number, shape.rows ?? (o["mi-samples"] as number));
    return { state: 2 * rows * n * 4 + rows * 16 + 6.5 * rows * n * 4 + pairs * 16, results };
  },
  memoryOptions: ["mi-bins", "mi-samples", "mi-pair-sample"],
  // Binned: integer counts. KSG: the reservoir keeps the rows of smallest (seed, sample_id, step) keys, the
  // same whatever the batch order or split.
  orderFree: true,
  // Binned: integer joint counts, bit-equal on the GPU (gpu/pair_counts.ts). KSG: the same neighbour counts and
  // the same exact fixed-point psi sums as the CPU kernels (plugins/mi/ksg.ts, gpu/ksg.ts), so bit-equal too; k above
  // the kernel's limit runs on the CPU.
  // The GPU paths take within/all pairs of float32 values: the paper's matrix (self-pairs), a pair sample (binned)
  // and jittered float64 values run on the CPU.
  gpu: (o) =>
    o["mi-pairs"] === "paper"
      ? null
      : o["mi-estimator"] === "binned"
      ? ((o["mi-pair-sample"] as number ?? 0) > 0 ? null : "exact")
      : o["ksg-jitter"]
      ? null
      : (o["ksg-k"] as number) <= KSG_GPU_MAX_K
      ? "exact"
      : null,
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
