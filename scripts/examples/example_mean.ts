/**
 * `example-mean`: a small, complete example of an estimator plugin, to copy when writing your own.
 * Per-neuron mean and variance of activations, streamed with Chan et al.'s pairwise update (exact up to
 * float64 rounding, mergeable), non-finite values counted and excluded.
 *
 * To write your own: copy this file anywhere, change its one import (`"../../mod.ts"`, infotap's public entry
 * point) to the absolute file URL of your infotap checkout's `mod.ts` (e.g. `"file:///home/me/infotap/mod.ts"`),
 * rename the plugin, and run it from the checkout with `deno task analyze --plugin /abs/path/my_plugin.ts
 * --estimators my-name dump.arrows` (a relative `--plugin` path is taken from the checkout's root, where
 * `deno task` runs). The module's default export is the plugin. `example_mean_test.ts` does exactly this.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { examplePlugin } from "./example_mean.ts";
 * const est = examplePlugin.create({}, { byStep: false, seed: 0 });
 * est.update({ numRows: 2, columns: [{ name: "fc1", width: 1, values: new Float32Array([1, 3]) }] } as never);
 * const t = (await est.result()).neuron_moments;
 * assert.ok(t.getChild("mean")!.get(0) === 2 && t.getChild("variance")!.get(0) === 1);
 * ```
 *
 * @module
 */
// Everything comes from the published entry point: in a copy outside this repository, make this the absolute
// file URL of your checkout's mod.ts, e.g. "file:///home/me/infotap/mod.ts".
import {
  type Batch,
  definePlugin,
  type Estimator,
  type EstimatorPlugin,
  type StateValue,
  tableFromColumns,
} from "../../mod.ts";

/** Per layer: count, mean and M2 (sum of squared deviations) per neuron, and non-finite counts. */
interface Moments {
  n: Float64Array;
  mean: Float64Array;
  m2: Float64Array;
  nonfinite: Float64Array;
}

class MeanEstimator implements Estimator {
  layers = new Map<string, Moments>();

  #layer(name: string, width: number): Moments {
    let m = this.layers.get(name);
    if (!m) {
      m = {
        n: new Float64Array(width),
        mean: new Float64Array(width),
        m2: new Float64Array(width),
        nonfinite: new Float64Array(width),
      };
      this.layers.set(name, m);
    }
    return m;
  }

  /** Combines (nb, meanb, m2b) into neuron j of `m` (Chan et al. 1979). */
  static #combine(m: Moments, j: number, nb: number, meanb: number, m2b: number): void {
    const na = m.n[j];
    if (nb === 0) return;
    const n = na + nb, d = meanb - m.mean[j];
    m.mean[j] += (d * nb) / n;
    m.m2[j] += m2b + (d * d * na * nb) / n;
    m.n[j] = n;
  }

  update(batch: Batch): void {
    for (const col of batch.columns) {
      const m = this.#layer(col.name, col.width);
      for (let j = 0; j < col.width; j++) {
        // moments of this batch, then one combine: stable and batch-size independent up to rounding
        let n = 0, mean = 0, m2 = 0, nf = 0;
        for (let r = 0; r < batch.numRows; r++) {
          const x = col.values[r * col.width + j];
          if (!Number.isFinite(x)) {
            nf++;
            continue;
          }
          n++;
          const d = x - mean;
          mean += d / n;
          m2 += d * (x - mean);
        }
        m.nonfinite[j] += nf;
        MeanEstimator.#combine(m, j, n, mean, m2);
      }
    }
  }

  merge(other: Estimator): void {
    for (const [name, o] of (other as MeanEstimator).layers) {
      const m = this.#layer(name, o.n.length);
      for (let j = 0; j < o.n.length; j++) {
        MeanEstimator.#combine(m, j, o.n[j], o.mean[j], o.m2[j]);
        m.nonfinite[j] += o.nonfinite[j];
      }
    }
  }

  state(): StateValue {
    return Object.fromEntries([...this.layers].map(([k, m]) => [k, { ...m }]));
  }

  result() {
    const layer: string[] = [], neuron: number[] = [], mean: (number | null)[] = [], variance: (number | null)[] = [];
    const samples: number[] = [], nonfinite: number[] = [];
    for (const [name, m] of this.layers) {
      for (let j = 0; j < m.n.length; j++) {
        layer.push(name);
        neuron.push(j);
        mean.push(m.n[j] ? m.mean[j] : null);
        variance.push(m.n[j] ? m.m2[j] / m.n[j] : null);
        samples.push(m.n[j]);
        nonfinite.push(m.nonfinite[j]);
      }
    }
    return {
      neuron_moments: tableFromColumns([
        { name: "layer", type: "utf8", values: layer },
        { name: "neuron", type: "int32", values: neuron },
        { name: "mean", type: "float64", values: mean },
        { name: "variance", type: "float64", values: variance },
        { name: "samples", type: "int64", values: samples },
        { name: "nonfinite", type: "int64", values: nonfinite },
      ]),
    };
  }
}

/** The example plugin (population variance, i.e. divided by n). */
export const examplePlugin: EstimatorPlugin = definePlugin({
  name: "example-mean",
  description: "Example plugin: per-neuron mean and (population) variance of activations.",
  inputs: ["activations/v1"],
  options: {},
  create: () => new MeanEstimator(),
  restore(state) {
    const e = new MeanEstimator();
    for (const [name, m] of Object.entries(state as unknown as Record<string, Moments>)) e.layers.set(name, m);
    return e;
  },
});

export default examplePlugin;
