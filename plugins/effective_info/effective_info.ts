/**
 * `effective-info`: the effective information in the activations (Achille, Paolini, Soatto 2019, Def. 3.1;
 * docs/science.md section 2, docs/effective_info.md): `I(x; z)` between an input x, uniform over the N probe
 * inputs, and a layer's activations z when the weights are drawn from the post-distribution
 * `N(w*, Sigma*)`, from `activations/v1` rows recorded under R weight-noise draws (`draw` column) per input.
 *
 * - Per input (`sample_id`) and layer: the sample mean `mu_x` and covariance `C_x` of the R draws (Welford
 *   updates; Chan's formula on merge), float64. Then `z | x ~ N(mu_x, C_x)` and z is a mixture of N Gaussians;
 *   the table gives the pairwise Bhattacharyya lower and KL upper bound on `I(x; z)` (`mixture_bounds.ts`), in
 *   nats, `0 <= lower <= upper <= log N`.
 * - Per neuron: the same with each neuron's variances (`level = neuron`). Per layer: the full `d x d`
 *   covariance when `d <= --eff-cov-width` (default 32) and the draws make its finite-draws bias small
 *   (`kl_bias <= 0.1` nats, about `R >= d^2 / 0.2`), else the diagonal (neurons' noise taken as independent;
 *   stated in `covariance`).
 * - Finite draws bias both bounds upward: `kl_bias` is the expected KL between two inputs of identical
 *   distribution from R draws each (about `2 d / R` diagonal, `d^2 / (2 R)` full; see {@linkcode klBias}).
 * - Variances below 1e-12 of the mean variance (of the neuron, or of the layer's diagonal) are raised to it
 *   (a ridge on full covariances), so that a noise-free neuron counts its distinct means exactly; counted in
 *   the summary (`floored`).
 * - Rows with a non-finite value in a layer are left out of that layer (`nonfinite`); inputs with fewer than
 *   2 usable draws are left out (`skipped_inputs`). Inputs are ordered by `sample_id` before the pairwise sums,
 *   so results do not depend on batching or merging beyond float rounding.
 *
 * Table `effective_info`: `level` (neuron | layer), `layer`, `neuron` (null on layer rows), `width`, `lower`,
 * `upper`, `log_n` (= log N, the ceiling), `covariance` (variance | full | diagonal), `noise_var` (mean over
 * inputs and neurons of the per-input variance), `signal_var` (mean over neurons of the variance of the means
 * over inputs), `kl_bias` (nats, at the fewest draws), `inputs`, `draws` (fewest draws of an input), `rows`, `skipped_inputs`, `nonfinite`, `step`.
 * Cost: `N (N - 1) / 2` pairs per neuron and per layer, `O(d)` each (`O(d^3)` with the full covariance).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { effectiveInfoPlugin } from "./effective_info.ts";
 * const est = effectiveInfoPlugin.create({ "eff-cov-width": 32, "eff-neurons": true }, { byStep: false, seed: 0 });
 * // Two inputs, three draws each, one neuron: means 0 and 10, noise variance 1: fully distinguishable.
 * est.update({
 *   numRows: 6, step: null, file: "x", index: 0, draw: new Int32Array([0, 1, 2, 0, 1, 2]),
 *   sampleId: new BigInt64Array([0n, 0n, 0n, 1n, 1n, 1n]),
 *   columns: [{ name: "fc1", width: 1, values: new Float32Array([-1, 0, 1, 9, 10, 11]) }],
 * } as never);
 * const t = (await est.result()).effective_info;
 * assert.ok(Math.abs((t.getChild("upper")!.get(0) as number) - Math.LN2) < 1e-9);
 * ```
 *
 * @module
 */
import type { Batch } from "../../schemas/batch.ts";
import { InputError } from "../../schemas/errors.ts";
import {
  definePlugin,
  type Estimator,
  type EstimatorContext,
  type EstimatorPlugin,
  type EstimatorSummary,
  type OptionValues,
  type Results,
  type StateValue,
} from "../../pipeline/core/plugin.ts";
import { sortStepKeys, stepFromKey, stepKey, stepRuns } from "../../pipeline/core/steps.ts";
import { tableFromColumns } from "../../pipeline/core/table.ts";
import { diagonalBounds, fullBounds, type MixtureBounds } from "./mixture_bounds.ts";
import { effectiveInfoReport } from "./report.ts";

/** Variances below this fraction of the mean variance are raised to it. */
export const VAR_FLOOR = 1e-12;
/** The floor when the mean variance is 0 (a noise-free neuron): tiny, yet with a finite reciprocal. */
const TINY_VAR = 1e-300;
/** A layer gets its full covariance only while the finite-draws bias of a pairwise KL stays below this (nats). */
export const FULL_BIAS_MAX = 0.1;

/**
 * Expected pairwise KL between two inputs with the same distribution, from estimating their means and covariances
 * with R draws each (Gaussian sampling theory: `E[C^-1-hat] = (R-1)/(R-d-2) C^-1`, the means' noise `2 C / R`):
 * `[d (d + 1) + 2 d (R - 1) / R] / (2 (R - d - 2))` for a full `d x d` covariance, and d times the `d = 1` value,
 * `(2R - 1) / (R (R - 3))`, for a diagonal one. The estimated bounds are biased upward by about this much per pair
 * when it is not small (Infinity when R is too small for the expectation to exist).
 */
export function klBias(d: number, draws: number, full: boolean): number {
  const r = draws;
  if (full) return r > d + 2 ? (d * (d + 1) + (2 * d * (r - 1)) / r) / (2 * (r - d - 2)) : Infinity;
  return r > 3 ? (d * (2 * r - 1)) / (r * (r - 3)) : Infinity;
}

/** Running moments of one layer over the inputs of one step: per input slot `n`, mean (d), M2 (d or d x d). */
interface LayerMoments {
  name: string;
  width: number;
  /** True: M2 holds the full `d x d` matrix (upper triangle kept), false: the diagonal only. */
  full: boolean;
  n: Float64Array;
  mean: Float64Array;
  m2: Float64Array;
  nonfinite: number;
}

interface StepMoments {
  slot: Map<bigint, number>;
  ids: bigint[];
  layers: LayerMoments[];
}

interface EffState {
  steps: Record<string, { ids: BigInt64Array; layers: LayerMoments[] }>;
}

const grow = (a: Float64Array, n: number): Float64Array => {
  if (a.length >= n) return a;
  const b = new Float64Array(Math.max(n, 2 * a.length));
  b.set(a);
  return b;
};

class EffectiveInfoEstimator implements Estimator {
  readonly covWidth: number;
  readonly neurons: boolean;
  readonly byStep: boolean;
  steps = new Map<string, StepMoments>();
  #delta = new Float64Array(0);

  constructor(options: OptionValues, context: EstimatorContext) {
    this.covWidth = (options["eff-cov-width"] as number | undefined) ?? 32;
    this.neurons = (options["eff-neurons"] as boolean | undefined) ?? true;
    this.byStep = context.byStep;
  }

  #step(key: string, cols: { name: string; width: number }[]): StepMoments {
    let s = this.steps.get(key);
    if (!s) {
      s = {
        slot: new Map(),
        ids: [],
        layers: cols.map((c) => ({
          name: c.name,
          width: c.width,
          full: c.width <= this.covWidth,
          n: new Float64Array(16),
          mean: new Float64Array(16 * c.width),
          m2: new Float64Array(16 * (c.width <= this.covWidth ? c.width * c.width : c.width)),
          nonfinite: 0,
        })),
      };
      this.steps.set(key, s);
    }
    return s;
  }

  #slot(s: StepMoments, id: bigint): number {
    let k = s.slot.get(id);
    if (k === undefined) {
      k = s.ids.length;
      s.ids.push(id);
      s.slot.set(id, k);
      for (const l of s.layers) {
        l.n = grow(l.n, k + 1);
        l.mean = grow(l.mean, (k + 1) * l.width);
        l.m2 = grow(l.m2, (k + 1) * (l.full ? l.width * l.width : l.width));
      }
    }
    return k;
  }

  update(batch: Batch): void {
    if (!batch.draw) {
      throw new InputError(
        "Cannot estimate effective information as the activations need a 'draw' column (one row per input and weight-noise draw): current value is missing",
        { file: batch.file, batch: batch.index, column: "draw" },
      );
    }
    for (const run of stepRuns(batch, this.byStep)) {
      const s = this.#step(stepKey(run.step), batch.columns);
      for (let i = 0; i < batch.columns.length; i++) {
        const col = batch.columns[i], l = s.layers[i];
        if (!l || l.name !== col.name || l.width !== col.width) {
          throw new InputError(
            `Cannot accumulate effective information as the layers changed (expected ${
              s.layers.map((x) => `${x.name}[${x.width}]`).join(", ")
            }): current value is ${batch.columns.map((c) => `${c.name}[${c.width}]`).join(", ")}`,
            { file: batch.file, batch: batch.index },
          );
        }
      }
      for (let r = run.r0; r < run.r1; r++) {
        const k = this.#slot(s, batch.sampleId[r]);
        for (let i = 0; i < batch.columns.length; i++) this.#add(s.layers[i], k, batch.columns[i].values, r);
      }
    }
  }

  /** Welford update of input slot `k` with row `r` (rows holding a non-finite value are left out). */
  #add(l: LayerMoments, k: number, v: Float32Array, r: number): void {
    const d = l.width, o = r * d;
    let bad = 0;
    for (let a = 0; a < d; a++) bad += v[o + a] - v[o + a];
    if (bad !== 0) {
      l.nonfinite++;
      return;
    }
    if (this.#delta.length < d) this.#delta = new Float64Array(d);
    const delta = this.#delta, n = ++l.n[k], mo = k * d;
    for (let a = 0; a < d; a++) {
      delta[a] = v[o + a] - l.mean[mo + a];
      l.mean[mo + a] += delta[a] / n;
    }
    const f = (n - 1) / n;
    if (l.full) {
      const m = k * d * d;
      for (let a = 0; a < d; a++) {
        const fa = f * delta[a];
        for (let b = a; b < d; b++) l.m2[m + a * d + b] += fa * delta[b];
      }
    } else {
      for (let a = 0; a < d; a++) l.m2[mo + a] += f * delta[a] * delta[a];
    }
  }

  merge(other: Estimator): void {
    const o = other as EffectiveInfoEstimator;
    if (!(o instanceof EffectiveInfoEstimator) || o.covWidth !== this.covWidth) {
      throw new Error(
        "Cannot merge effective-info estimators with different --eff-cov-width: current value is incompatible",
      );
    }
    for (const [key, os] of o.steps) {
      const s = this.#step(key, os.layers);
      os.ids.forEach((id, ok) => {
        const k = this.#slot(s, id);
        os.layers.forEach((ol, i) => this.#mergeSlot(s.layers[i], k, ol, ok));
      });
      os.layers.forEach((ol, i) => (s.layers[i].nonfinite += ol.nonfinite));
    }
  }

  /** Chan et al.: `M2 = M2_a + M2_b + delta delta^T n_a n_b / n`. */
  #mergeSlot(l: LayerMoments, k: number, o: LayerMoments, ok: number): void {
    const d = l.width, na = l.n[k], nb = o.n[ok], n = na + nb;
    if (nb === 0) return;
    const mo = k * d, oo = ok * d;
    if (this.#delta.length < d) this.#delta = new Float64Array(d);
    const delta = this.#delta;
    for (let a = 0; a < d; a++) {
      delta[a] = o.mean[oo + a] - l.mean[mo + a];
      l.mean[mo + a] += (delta[a] * nb) / n;
    }
    const f = (na * nb) / n;
    if (l.full) {
      const m = k * d * d, om = ok * d * d;
      for (let a = 0; a < d; a++) {
        for (let b = a; b < d; b++) l.m2[m + a * d + b] += o.m2[om + a * d + b] + f * delta[a] * delta[b];
      }
    } else {
      for (let a = 0; a < d; a++) l.m2[mo + a] += o.m2[oo + a] + f * delta[a] * delta[a];
    }
    l.n[k] = n;
  }

  state(): StateValue {
    const steps: EffState["steps"] = {};
    for (const [key, s] of this.steps) {
      const k = s.ids.length;
      steps[key] = {
        ids: BigInt64Array.from(s.ids),
        layers: s.layers.map((l) => ({
          name: l.name,
          width: l.width,
          full: l.full,
          n: l.n.slice(0, k),
          mean: l.mean.slice(0, k * l.width),
          m2: l.m2.slice(0, k * (l.full ? l.width * l.width : l.width)),
          nonfinite: l.nonfinite,
        })),
      };
    }
    return { steps } as unknown as StateValue;
  }

  load(state: EffState): this {
    for (const [key, s] of Object.entries(state.steps)) {
      this.steps.set(key, {
        slot: new Map([...s.ids].map((id, k) => [id, k])),
        ids: [...s.ids],
        layers: s.layers.map((l) => ({ ...l })),
      });
    }
    return this;
  }

  result(): Results {
    const t = {
      level: [] as string[],
      layer: [] as string[],
      neuron: [] as (number | null)[],
      width: [] as number[],
      lower: [] as (number | null)[],
      upper: [] as (number | null)[],
      log_n: [] as (number | null)[],
      covariance: [] as string[],
      noise_var: [] as (number | null)[],
      signal_var: [] as (number | null)[],
      kl_bias: [] as (number | null)[],
      inputs: [] as number[],
      draws: [] as number[],
      rows: [] as number[],
      skipped_inputs: [] as number[],
      nonfinite: [] as number[],
      step: [] as (bigint | null)[],
    };
    const nn = (x: number) => (Number.isFinite(x) ? x : null);
    for (const key of sortStepKeys(this.steps.keys())) {
      const s = this.steps.get(key)!;
      const step = stepFromKey(key);
      for (const l of s.layers) {
        const d = l.width, m = this.#prepare(s, l), N = m.used.length;
        const push = (level: string, neuron: number | null, width: number, b: MixtureBounds | null, cov: string) => {
          const bias = N > 0 ? klBias(width, m.draws, cov === "full") : NaN;
          const pick = (x: Float64Array) => (neuron === null ? x.reduce((p, q) => p + q, 0) / d : x[neuron]);
          t.level.push(level);
          t.layer.push(l.name);
          t.neuron.push(neuron);
          t.width.push(width);
          t.lower.push(b ? nn(b.lower) : null);
          t.upper.push(b ? nn(b.upper) : null);
          t.log_n.push(N > 0 ? Math.log(N) : null);
          t.covariance.push(cov);
          t.noise_var.push(nn(pick(m.noise)));
          t.signal_var.push(nn(pick(m.signal)));
          t.kl_bias.push(bias === Infinity ? null : nn(bias));
          t.inputs.push(N);
          t.draws.push(N > 0 ? m.draws : 0);
          t.rows.push(m.rows);
          t.skipped_inputs.push(s.ids.length - N);
          t.nonfinite.push(l.nonfinite);
          t.step.push(step);
        };
        if (this.neurons) {
          for (let a = 0; a < d; a++) {
            push("neuron", a, 1, N > 0 ? diagonalBounds(m.means, m.floored, N, d, a, a + 1) : null, "variance");
          }
        }
        // Full covariance only while its finite-draws bias stays small (it grows as d^2 / R).
        const full = l.full && N > 0 && klBias(d, m.draws, true) <= FULL_BIAS_MAX;
        let b: MixtureBounds | null = null;
        const meanVar = m.noise.reduce((p, q) => p + q, 0) / d;
        if (N > 0 && full) b = fullBounds(m.means, this.#covariances(l, m.used, meanVar), N, d);
        else if (N > 0) b = diagonalBounds(m.means, m.floored, N, d);
        push("layer", null, d, b, full ? "full" : "diagonal");
      }
    }
    return {
      effective_info: tableFromColumns([
        { name: "level", type: "utf8", values: t.level },
        { name: "layer", type: "utf8", values: t.layer },
        { name: "neuron", type: "int32", values: t.neuron },
        { name: "width", type: "int32", values: t.width },
        { name: "lower", type: "float64", values: t.lower },
        { name: "upper", type: "float64", values: t.upper },
        { name: "log_n", type: "float64", values: t.log_n },
        { name: "covariance", type: "utf8", values: t.covariance },
        { name: "noise_var", type: "float64", values: t.noise_var },
        { name: "signal_var", type: "float64", values: t.signal_var },
        { name: "kl_bias", type: "float64", values: t.kl_bias },
        { name: "inputs", type: "int64", values: t.inputs },
        { name: "draws", type: "int64", values: t.draws },
        { name: "rows", type: "int64", values: t.rows },
        { name: "skipped_inputs", type: "int64", values: t.skipped_inputs },
        { name: "nonfinite", type: "int64", values: t.nonfinite },
        { name: "step", type: "int64", values: t.step },
      ], {
        "infotap.estimator": "effective-info",
        "infotap.units": "lower/upper/log_n: nats; noise_var/signal_var: squared activation units",
        "infotap.bounds":
          "pairwise distances (Kolchinsky and Tracey 2017): lower = Bhattacharyya, upper = KL, for the mixture over inputs of N(mu_x, C_x) estimated from the draws",
        "infotap.eff_cov_width": String(this.covWidth),
      }),
    };
  }

  /**
   * One layer of one step: its inputs with 2 usable draws or more in `sample_id` order (the pairwise sums then do
   * not depend on arrival order), their means and variances (`n x d`), the variances raised to the floor, each
   * neuron's noise variance (mean over inputs) and signal variance (of the means over inputs), the rows used and the
   * fewest draws of an input.
   */
  #prepare(s: StepMoments, l: LayerMoments) {
    const d = l.width;
    const used = s.ids.map((id, k) => ({ id, k })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .filter((o) => l.n[o.k] >= 2).map((o) => o.k);
    const N = used.length;
    const means = new Float64Array(N * d), vars = new Float64Array(N * d);
    let rows = 0, draws = Infinity, flooredCount = 0;
    used.forEach((k, i) => {
      const n = l.n[k];
      rows += n;
      draws = Math.min(draws, n);
      for (let a = 0; a < d; a++) {
        means[i * d + a] = l.mean[k * d + a];
        vars[i * d + a] = (l.full ? l.m2[k * d * d + a * d + a] : l.m2[k * d + a]) / (n - 1);
      }
    });
    const noise = new Float64Array(d), signal = new Float64Array(d), floored = Float64Array.from(vars);
    for (let a = 0; a < d; a++) {
      let sv = 0, sm = 0;
      for (let i = 0; i < N; i++) {
        sv += vars[i * d + a];
        sm += means[i * d + a];
      }
      noise[a] = sv / N;
      const mu = sm / N;
      let ss = 0;
      for (let i = 0; i < N; i++) ss += (means[i * d + a] - mu) ** 2;
      signal[a] = ss / N;
      const floor = VAR_FLOOR * noise[a] || TINY_VAR;
      for (let i = 0; i < N; i++) {
        if (floored[i * d + a] < floor) {
          floored[i * d + a] = floor;
          flooredCount++;
        }
      }
    }
    return { used, means, floored, flooredCount, noise, signal, rows, draws };
  }

  /** Full covariances `M2 / (n - 1)` of the used inputs (upper triangle mirrored), plus the variance-floor ridge. */
  #covariances(l: LayerMoments, used: number[], meanVar: number): Float64Array {
    const d = l.width, dd = d * d, out = new Float64Array(used.length * dd);
    const ridge = VAR_FLOOR * meanVar || TINY_VAR;
    used.forEach((k, i) => {
      const n = l.n[k];
      for (let a = 0; a < d; a++) {
        for (let b = a; b < d; b++) {
          const c = l.m2[k * dd + a * d + b] / (n - 1);
          out[i * dd + a * d + b] = out[i * dd + b * d + a] = c;
        }
        out[i * dd + a * d + a] += ridge;
      }
    });
    return out;
  }

  summary(): EstimatorSummary {
    let floored = 0, skipped = 0, nonfinite = 0;
    for (const s of this.steps.values()) {
      for (const l of s.layers) {
        const m = this.#prepare(s, l);
        floored += m.flooredCount;
        skipped += s.ids.length - m.used.length;
        nonfinite += l.nonfinite;
      }
    }
    const warnings: string[] = [];
    if (floored > 0) {
      warnings.push(`${floored} per-input variance(s) raised to ${VAR_FLOOR} of their neuron's mean variance`);
    }
    if (skipped > 0) warnings.push(`${skipped} (input, layer) pair(s) with fewer than 2 usable draws left out`);
    if (nonfinite > 0) warnings.push(`${nonfinite} row(s) with a non-finite value left out of their layer`);
    return { steps: this.steps.size, floored, skipped_inputs: skipped, nonfinite, warnings };
  }
}

/** The `effective-info` estimator plugin. */
export const effectiveInfoPlugin: EstimatorPlugin = definePlugin({
  name: "effective-info",
  description: "Effective information I(x; z) in the activations under weight noise (rows per input and noise draw): " +
    "Bhattacharyya lower and KL upper bounds per neuron and layer (SCIENCE.md section 2).",
  inputs: ["activations/v1"],
  tables: { effective_info: {} },
  report: effectiveInfoReport,
  // Welford/Chan moments: merging equals one pass up to float rounding.
  orderFree: true,
  // Per input (at most half the rows: every input needs two draws) and layer: float64 count, means and
  // variances (3 d), and the d x d covariance for layers up to --eff-cov-width; one row per neuron and layer.
  memory: (o, shape) => {
    const inputs = Math.ceil((shape.rows ?? 0) / 2), w = o["eff-cov-width"] as number;
    const perInput = shape.tensors.reduce(
      (a, t) => a + 8 * (1 + 3 * t.width + (t.width <= w ? t.width * t.width : 0)),
      0,
    );
    const rows = shape.tensors.reduce((a, t) => a + 1 + (o["eff-neurons"] ? t.width : 0), 0);
    return { state: inputs * perInput, results: rows * 150 };
  },
  memoryOptions: ["eff-cov-width"],
  options: {
    "eff-cov-width": {
      type: "integer",
      default: 32,
      min: 0,
      description:
        "layers of at most this many neurons get the full covariance (when every input has more draws than neurons); wider ones the diagonal",
    },
    "eff-neurons": { type: "boolean", default: true, description: "also write one row per neuron (level = neuron)" },
  },
  create(options, context) {
    return new EffectiveInfoEstimator(options, context);
  },
  restore(state, options, context) {
    return new EffectiveInfoEstimator(options, context).load(state as unknown as EffState);
  },
});
