/**
 * `label-mi`: the mutual information `I(neuron; label)` (nats) between each binned neuron and the class label
 * (docs/science.md section 1, information-plane style): the plug-in formula on the contingency table of bin
 * code x label, accumulated batch by batch with exact counts (= scikit-learn `mutual_info_score` on the codes).
 *
 * Binning is `entropy`'s (the same `--bins`, `--binning`, `--range` options and conventions, see
 * `plugins/_shared/binning.ts`). Rows where the neuron is non-finite are left out of that neuron's table and counted
 * in `nonfinite`. The stream must have a `label` column.
 *
 * Table `label_mi`: one row per neuron and step.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { labelMiPlugin } from "./label_mi.ts";
 * const est = labelMiPlugin.create({ bins: 2, binning: "global", range: [0, 1] }, { byStep: false, seed: 0 });
 * est.update({ numRows: 2, label: new Int32Array([0, 1]), columns: [{ name: "fc1", width: 1, values: new Float32Array([0.1, 0.9]) }] } as never);
 * const t = (await est.result()).label_mi;
 * assert.ok(Math.abs((t.getChild("mi")!.get(0) as number) - Math.log(2)) < 1e-12);
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
  type OptionValues,
  type StateValue,
} from "../../pipeline/core/plugin.ts";
import { nullIfNaN } from "../../pipeline/core/stats.ts";
import { sortStepKeys, stepFromKey, stepKey, stepRuns } from "../../pipeline/core/steps.ts";
import { tableFromColumns } from "../../pipeline/core/table.ts";
import { LayerBinning, mergeRangeScans, RangeScanner } from "../_shared/binning.ts";
import { BINNING_OPTIONS, RANGE_HINT, validateBinning } from "../_shared/binning_options.ts";
import { codeRows, mutualInformation, NONFINITE } from "../_shared/pair_counts.ts";
import { labelMiReport } from "./report.ts";

/** Per step and layer: per label value, `width * bins` counts; and non-finite counts per neuron. */
interface LayerAcc {
  byLabel: Map<number, Float64Array>;
  nonfinite: Float64Array;
}

interface LabelMiState {
  layers: { name: string; width: number }[];
  steps: Record<string, { name: string; labels: Int32Array; counts: Float64Array[]; nonfinite: Float64Array }[]>;
}

class LabelMiEstimator extends LayerBinning implements Estimator {
  steps = new Map<string, Map<string, LayerAcc>>();
  readonly byStep: boolean;

  constructor(options: OptionValues, context: EstimatorContext) {
    super(options, context);
    this.byStep = context.byStep;
  }

  #acc(key: string, name: string, width: number): LayerAcc {
    let s = this.steps.get(key);
    if (!s) this.steps.set(key, s = new Map());
    let a = s.get(name);
    if (!a) s.set(name, a = { byLabel: new Map(), nonfinite: new Float64Array(width) });
    return a;
  }

  update(batch: Batch): void {
    const labels = batch.label;
    if (!labels) {
      throw new InputError(
        "Cannot compute label MI (label-mi) as the stream has no 'label' column: current value is missing",
        { file: batch.file, batch: batch.index, column: "label" },
      );
    }
    const B = this.bins;
    for (const col of batch.columns) {
      const range = this.range(col.name, col.width);
      for (const run of stepRuns(batch, this.byStep)) {
        const rows = run.r1 - run.r0, w = col.width;
        const a = this.#acc(stepKey(run.step), col.name, w);
        const codes = new Uint8Array(w * rows);
        codeRows(col.values, w, run.r0, run.r1, range, B, codes, 0, a.nonfinite);
        for (let r = 0; r < rows; r++) {
          const y = labels[run.r0 + r];
          let c = a.byLabel.get(y);
          if (!c) a.byLabel.set(y, c = new Float64Array(w * B));
          for (let j = 0; j < w; j++) {
            const code = codes[j * rows + r];
            if (code !== NONFINITE) c[j * B + code]++;
          }
        }
      }
    }
  }

  merge(other: Estimator): void {
    const o = other as LabelMiEstimator;
    if (!(o instanceof LabelMiEstimator) || o.bins !== this.bins || o.binning !== this.binning) {
      throw new Error("Cannot merge label-mi estimators with different bins or binning: current value is incompatible");
    }
    for (const l of o.layers) this.range(l.name, l.width);
    for (const [key, layers] of o.steps) {
      for (const [name, a] of layers) {
        const mine = this.#acc(key, name, a.nonfinite.length);
        for (let j = 0; j < a.nonfinite.length; j++) mine.nonfinite[j] += a.nonfinite[j];
        for (const [y, c] of a.byLabel) {
          const m = mine.byLabel.get(y);
          if (!m) mine.byLabel.set(y, c.slice());
          else for (let i = 0; i < c.length; i++) m[i] += c[i];
        }
      }
    }
  }

  state(): StateValue {
    const steps: LabelMiState["steps"] = {};
    for (const [key, layers] of this.steps) {
      steps[key] = [...layers].map(([name, a]) => {
        const labels = [...a.byLabel.keys()].sort((x, y) => x - y);
        return {
          name,
          labels: Int32Array.from(labels),
          counts: labels.map((y) => a.byLabel.get(y)!),
          nonfinite: a.nonfinite,
        };
      });
    }
    return { layers: this.layers, steps } as unknown as StateValue;
  }

  load(state: LabelMiState): this {
    for (const l of state.layers) this.range(l.name, l.width);
    for (const [key, layers] of Object.entries(state.steps)) {
      const m = new Map<string, LayerAcc>();
      for (const l of layers) {
        const byLabel = new Map<number, Float64Array>();
        l.labels.forEach((y, i) => byLabel.set(y, l.counts[i]));
        m.set(l.name, { byLabel, nonfinite: l.nonfinite });
      }
      this.steps.set(key, m);
    }
    return this;
  }

  result() {
    const B = this.bins;
    const cols = {
      layer: [] as string[],
      neuron: [] as number[],
      mi: [] as (number | null)[],
      samples: [] as number[],
      nonfinite: [] as number[],
      labels: [] as number[],
      step: [] as (bigint | null)[],
    };
    for (const key of sortStepKeys(this.steps.keys())) {
      const layers = this.steps.get(key)!;
      const step = stepFromKey(key);
      for (const l of this.layers) {
        const a = layers.get(l.name);
        if (!a) continue;
        const labels = [...a.byLabel.keys()].sort((x, y) => x - y);
        const L = labels.length;
        const table = new Float64Array(B * L);
        const rs = new Float64Array(B), cs = new Float64Array(Math.max(1, L));
        for (let j = 0; j < l.width; j++) {
          let n = 0;
          labels.forEach((y, li) => {
            const c = a.byLabel.get(y)!;
            for (let b = 0; b < B; b++) {
              table[b * L + li] = c[j * B + b];
              n += c[j * B + b];
            }
          });
          cols.layer.push(l.name);
          cols.neuron.push(j);
          cols.mi.push(nullIfNaN(mutualInformation(table, 0, B, L, rs, cs)));
          cols.samples.push(n);
          cols.nonfinite.push(a.nonfinite[j]);
          cols.labels.push(L);
          cols.step.push(step);
        }
      }
    }
    return {
      label_mi: tableFromColumns([
        { name: "layer", type: "utf8", values: cols.layer },
        { name: "neuron", type: "int32", values: cols.neuron },
        { name: "mi", type: "float64", values: cols.mi },
        { name: "samples", type: "int64", values: cols.samples },
        { name: "nonfinite", type: "int64", values: cols.nonfinite },
        { name: "labels", type: "int32", values: cols.labels },
        { name: "step", type: "int64", values: cols.step },
      ], {
        "infotap.estimator": "label-mi",
        "infotap.units": "nats",
        "infotap.binning": this.binning,
        "infotap.bins": String(B),
      }),
    };
  }
}

/** The `label-mi` estimator plugin. */
export const labelMiPlugin: EstimatorPlugin = definePlugin({
  name: "label-mi",
  description: "Mutual information (nats) between each binned neuron and the class label (docs/science.md section 1).",
  inputs: ["activations/v1"],
  tables: { label_mi: {} },
  report: labelMiReport,
  options: BINNING_OPTIONS,
  validate: validateBinning,
  scan(options) {
    return options.range ? null : new RangeScanner();
  },
  liveHint: RANGE_HINT,
  mergeScans: mergeRangeScans,
  orderFree: true, // integer counts
  stepLocal: true,
  // Per step: float64 counts per label, neuron and bin (10 labels assumed when no first pass counted them).
  memory: (o, shape) => {
    const n = shape.tensors.reduce((a, t) => a + t.width, 0);
    return { state: n * ((o.bins as number) * 8 * (shape.labels ?? 10) + 8), results: n * 70 };
  },
  memoryOptions: ["bins"],
  create(options, context) {
    return new LabelMiEstimator(options, context);
  },
  restore(state, options, context) {
    return new LabelMiEstimator(options, context).load(state as unknown as LabelMiState);
  },
});
