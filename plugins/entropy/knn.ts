/**
 * `entropy --entropy-estimator knn`: the Kozachenko-Leonenko k-nearest-neighbour entropy of each neuron, in nats,
 * as the paper's official code computes it with `method="knn"` (`_get_knn_entropy`, docs/science.md section 1):
 * for a neuron's n finite values, with `r_i` the distance from value i to its k-th nearest other value,
 *
 *     H = psi(n) - psi(k) + (1/n) sum_i ln(2 r_i)        (Chebyshev norm in one dimension: log c_d = 0)
 *
 * A value shared by more than k samples has `r_i = 0`, so H is -Infinity, as there (its `min_dist` is 0); the run
 * then warns. The k-th distance comes from the sorted values (the k nearest lie among the k on each side), exact
 * float64 differences of float32 values, so the same distances as scikit-learn's `KDTree.query`.
 *
 * Like KSG it needs all samples at once: a seeded uniform reservoir of at most `--entropy-samples` rows (the
 * `mi` estimator's, plugins/mi/reservoir.ts), merged and checkpointed the same way. `--entropy-k` neighbours
 * (default 3, `_get_knn_entropy`'s default).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { knnEntropy } from "./knn.ts";
 * // 0, 1, 3: with k = 1 the distances are 1, 1, 2
 * const psi1 = -0.5772156649015329, psi3 = psi1 + 1 + 1 / 2;
 * assert.ok(Math.abs(knnEntropy([0, 1, 3], 1).h - (psi3 - psi1 + (2 * Math.log(2) + Math.log(4)) / 3)) < 1e-12);
 * ```
 *
 * @module
 */
import type { Batch } from "../../schemas/batch.ts";
import type { Estimator, EstimatorContext, OptionValues, Results, StateValue } from "../../pipeline/core/plugin.ts";
import { sortStepKeys, stepFromKey } from "../../pipeline/core/steps.ts";
import { EntropyTables } from "./_tables.ts";
import { type LayerShape, type ReservoirState, StepReservoirs } from "../mi/reservoir.ts";
import { digammaTable } from "../mi/ksg.ts";

/**
 * Kozachenko-Leonenko entropy (nats) of the finite values of `x` with `k` neighbours: `h` (-Infinity when a value
 * is held by more than k samples, NaN for at most k values), `n` the finite values used, `zero` the samples whose
 * k-th distance is 0.
 */
export function knnEntropy(x: ArrayLike<number>, k: number): { h: number; n: number; zero: number } {
  const v: number[] = [];
  for (let i = 0; i < x.length; i++) if (Number.isFinite(x[i])) v.push(x[i]);
  const n = v.length;
  if (n <= k) return { h: NaN, n, zero: 0 };
  const s = Float64Array.from(v).sort();
  let sum = 0, zero = 0;
  for (let p = 0; p < n; p++) {
    // merge the distances to the left and right neighbours in increasing order; the k-th is r
    let l = p - 1, r = p + 1, d = 0;
    for (let m = 0; m < k; m++) {
      const dl = l >= 0 ? s[p] - s[l] : Infinity, dr = r < n ? s[r] - s[p] : Infinity;
      if (dl <= dr) (d = dl, l--);
      else (d = dr, r++);
    }
    if (d === 0) zero++;
    sum += Math.log(2 * d);
  }
  const psi = digammaTable(n);
  return { h: psi[n] - psi[k] + sum / n, n, zero };
}

/** The kNN estimator's state: its layers and one reservoir per step. */
export interface KnnState {
  layers: LayerShape[];
  steps: Record<string, ReservoirState>;
}

/** The kNN entropy estimator: a reservoir of rows per step, entropies at the end. */
/** The kNN estimator's summary: non-finite values left out, neurons whose entropy is -Infinity (ties), a warning. */
function knnSummary(nonfinite: number, zeroNeurons: number, k: number): Record<string, unknown> {
  const out: Record<string, unknown> = { nonfinite };
  if (zeroNeurons > 0) {
    out.knn_ties = { neurons: zeroNeurons, k };
    out.warnings = [
      `${zeroNeurons} neuron(s) have a value held by more than ${k} samples: their kNN entropy is ` +
      `-Infinity (the official code's value; --entropy-estimator binned has no such limit)`,
    ];
  }
  return out;
}

/** The summaries of two kNN estimators over disjoint steps, as one over both (`EstimatorPlugin.mergeSummaries`). */
export function mergeKnnSummaries(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const ties = (s: Record<string, unknown>) => s.knn_ties as { neurons: number; k: number } | undefined;
  const k = ties(a)?.k ?? ties(b)?.k ?? 0;
  return knnSummary(
    (a.nonfinite as number) + (b.nonfinite as number),
    (ties(a)?.neurons ?? 0) + (ties(b)?.neurons ?? 0),
    k,
  );
}

export class KnnEntropyEstimator implements Estimator {
  readonly k: number;
  readonly capacity: number;
  readonly seed: number;
  readonly byStep: boolean;
  layers: LayerShape[] = [];
  readonly reservoirs: StepReservoirs;
  #zeroNeurons = 0;
  #nonfinite = 0;

  constructor(options: OptionValues, context: EstimatorContext) {
    this.k = options["entropy-k"] as number;
    this.capacity = options["entropy-samples"] as number;
    this.reservoirs = new StepReservoirs(this.capacity, () => this.layers);
    this.seed = context.seed;
    this.byStep = context.byStep;
  }

  #setLayers(layers: LayerShape[], where: string): void {
    if (this.layers.length === 0) {
      this.layers = layers.map((l) => ({ name: l.name, width: l.width }));
      return;
    }
    const same = layers.length === this.layers.length &&
      layers.every((l, i) => l.name === this.layers[i].name && l.width === this.layers[i].width);
    if (!same) {
      throw new Error(
        `Cannot ${where} entropy estimators as the layers differ: current value is ${
          layers.map((l) => `${l.name}:${l.width}`).join(",")
        }`,
      );
    }
  }

  update(batch: Batch): void {
    this.#setLayers(batch.columns, "update");
    this.reservoirs.add(batch, this.byStep, this.seed);
  }

  merge(other: Estimator): void {
    const o = other as KnnEntropyEstimator;
    if (!(o instanceof KnnEntropyEstimator) || o.k !== this.k || o.capacity !== this.capacity || o.seed !== this.seed) {
      throw new Error("Cannot merge entropy estimators with different options or seed: current value is incompatible");
    }
    if (o.layers.length === 0) return;
    this.#setLayers(o.layers, "merge");
    this.reservoirs.merge(o.reservoirs);
  }

  state(): StateValue {
    return { layers: this.layers, steps: this.reservoirs.state() } as unknown as StateValue;
  }

  load(s: KnnState): this {
    if (s.layers.length) this.#setLayers(s.layers, "restore");
    this.reservoirs.load(s.steps);
    return this;
  }

  /** For run.json: non-finite values left out, and a warning when some neuron's entropy is -Infinity (ties). */
  summary(): Record<string, unknown> {
    return knnSummary(this.#nonfinite, this.#zeroNeurons, this.k);
  }

  result(): Results {
    const out = new EntropyTables();
    this.#zeroNeurons = 0;
    this.#nonfinite = 0;
    const steps = this.reservoirs.steps;
    for (const key of sortStepKeys(steps.keys())) {
      const s = steps.get(key)!.state(), rows = s.keys.length, step = stepFromKey(key);
      this.layers.forEach((l, li) => {
        const hs = new Float64Array(l.width), x = new Float64Array(rows);
        for (let j = 0; j < l.width; j++) {
          for (let r = 0; r < rows; r++) x[r] = s.values[li][r * l.width + j];
          const e = knnEntropy(x, this.k);
          let lo = Infinity, hi = -Infinity;
          for (let r = 0; r < rows; r++) if (Number.isFinite(x[r])) (lo = Math.min(lo, x[r]), hi = Math.max(hi, x[r]));
          hs[j] = e.h;
          if (e.zero > 0) this.#zeroNeurons++;
          this.#nonfinite += rows - e.n;
          // the binned table's columns: bins and clipped do not apply (null and 0), lo/hi are the values' range
          out.neuron({
            layer: l.name,
            neuron: j,
            entropy: e.h,
            bins: null,
            samples: e.n,
            nonfinite: rows - e.n,
            clipped: 0,
            lo: e.n > 0 ? lo : null,
            hi: e.n > 0 ? hi : null,
            step,
          });
        }
        out.layer(l.name, step, hs);
      });
    }
    return out.tables({
      "infotap.estimator": "entropy",
      "infotap.units": "nats",
      "infotap.entropy-estimator": "knn",
      "infotap.entropy-k": String(this.k),
      "infotap.entropy-samples": String(this.capacity),
    });
  }
}
