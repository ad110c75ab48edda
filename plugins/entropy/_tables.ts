/**
 * The `entropy` estimator's two tables, filled row by row by the binned and the kNN estimators alike
 * (./entropy.ts, ./knn.ts): `neuron_entropy` (one row per neuron and step) and `layer_summary` (per layer and step).
 *
 * @module
 */
import type { Results } from "../../pipeline/core/plugin.ts";
import { mean, nullIfNaN, percentile } from "../../pipeline/core/stats.ts";
import { tableFromColumns } from "../../pipeline/core/table.ts";

/** One neuron's row of `neuron_entropy` (`bins` null and `clipped` 0 where binning does not apply). */
export interface NeuronEntropyRow {
  layer: string;
  neuron: number;
  entropy: number;
  bins: number | null;
  samples: number;
  nonfinite: number;
  clipped: number;
  lo: number | null;
  hi: number | null;
  step: bigint | null;
}

/** Collects rows and builds the tables. */
export class EntropyTables {
  #rows: NeuronEntropyRow[] = [];
  #layers: { layer: string; step: bigint | null; hs: Float64Array }[] = [];

  /** Adds one neuron's row. */
  neuron(row: NeuronEntropyRow): void {
    this.#rows.push(row);
  }

  /** Adds one layer's summary row from its neurons' entropies. */
  layer(layer: string, step: bigint | null, hs: Float64Array): void {
    this.#layers.push({ layer, step, hs });
  }

  /** The two tables; `meta` becomes `neuron_entropy`'s schema metadata. */
  tables(meta: Record<string, string>): Results {
    const r = this.#rows, l = this.#layers;
    const col = <K extends keyof NeuronEntropyRow>(k: K) => r.map((x) => x[k]);
    const stat = (f: (hs: Float64Array) => number) => l.map((x) => nullIfNaN(f(x.hs)));
    return {
      neuron_entropy: tableFromColumns([
        { name: "layer", type: "utf8", values: col("layer") },
        { name: "neuron", type: "int32", values: col("neuron") },
        { name: "entropy", type: "float64", values: r.map((x) => nullIfNaN(x.entropy)) },
        { name: "bins", type: "int32", values: col("bins") },
        { name: "samples", type: "int64", values: col("samples") },
        { name: "nonfinite", type: "int64", values: col("nonfinite") },
        { name: "clipped", type: "int64", values: col("clipped") },
        { name: "lo", type: "float64", values: col("lo") },
        { name: "hi", type: "float64", values: col("hi") },
        { name: "step", type: "int64", values: col("step") },
      ], meta),
      layer_summary: tableFromColumns([
        { name: "layer", type: "utf8", values: l.map((x) => x.layer) },
        { name: "step", type: "int64", values: l.map((x) => x.step) },
        { name: "neurons", type: "int32", values: l.map((x) => x.hs.length) },
        { name: "entropy_mean", type: "float64", values: stat(mean) },
        { name: "entropy_median", type: "float64", values: stat((hs) => percentile(hs, 50)) },
        { name: "entropy_p10", type: "float64", values: stat((hs) => percentile(hs, 10)) },
        { name: "entropy_p90", type: "float64", values: stat((hs) => percentile(hs, 90)) },
      ]),
    };
  }
}
