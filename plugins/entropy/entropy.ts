/**
 * `entropy`: intra-neuron diversity, the plug-in entropy of each neuron's binned activations, in nats
 * (docs/science.md section 1; Bansal et al., NeurIPS 2022).
 *
 * Binning: `--binning global` (default, as the paper's code) shares equal-width bins over `[min, max]` of all
 * values of all analysed layers; `--binning neuron` uses each neuron's own `[min, max]`. Both need a first pass
 * over the input unless `--range LO,HI` fixes the global range. Error bound: none beyond float64 rounding; the
 * histogram counts are exact, so the estimate equals the plug-in formula on the same bins.
 *
 * `--entropy-estimator knn`: the Kozachenko-Leonenko estimate instead, as the official code's `method="knn"`
 * (plugins/entropy/knn.ts; `--entropy-k`, `--entropy-samples`).
 *
 * Tables: `neuron_entropy` (one row per neuron and step) and `layer_summary` (per layer and step).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { entropyPlugin } from "./entropy.ts";
 * const est = entropyPlugin.create({ bins: 2, binning: "global", range: [0, 1] }, { byStep: false, seed: 0 });
 * est.update({ numRows: 2, columns: [{ name: "fc1", width: 1, values: new Float32Array([0.1, 0.9]) }] } as never);
 * const t = (await est.result()).neuron_entropy;
 * assert.ok(Math.abs((t.getChild("entropy")!.get(0) as number) - Math.log(2)) < 1e-12);
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
  type EstimatorSummary,
  type OptionValues,
  type Results,
  type StateValue,
} from "../../pipeline/core/plugin.ts";
import { sortStepKeys, stepFromKey, stepKey, stepRuns } from "../../pipeline/core/steps.ts";
import { BINNING_OPTIONS, RANGE_HINT, validateBinning } from "../_shared/binning_options.ts";
import { binRows, entropyOf, FLUSH_ROWS, LayerBinning, mergeRangeScans, RangeScanner } from "../_shared/binning.ts";
import { GpuHistograms } from "./gpu_histogram.ts";
import type { GpuContext } from "../kernels/gpu/context.ts";
import { entropyReport } from "./report.ts";
import { KnnEntropyEstimator, type KnnState, mergeKnnSummaries } from "./knn.ts";
import { EntropyTables } from "./_tables.ts";

interface LayerAcc {
  /** Totals, width * bins (exact integers in float64). */
  counts: Float64Array;
  /** Working counts (fast Uint32 increments), flushed into `counts` before they could overflow. */
  work: Uint32Array;
  /** Rows binned into `work` since its last flush. */
  pending: number;
  nonfinite: Float64Array;
  clipped: Float64Array;
}

function flush(a: LayerAcc): void {
  if (a.pending === 0) return;
  for (let i = 0; i < a.work.length; i++) a.counts[i] += a.work[i];
  a.work.fill(0);
  a.pending = 0;
}

interface EntropyState {
  layers: { name: string; width: number }[];
  steps: Record<string, { name: string; counts: Float64Array; nonfinite: Float64Array; clipped: Float64Array }[]>;
}

class EntropyEstimator extends LayerBinning implements Estimator {
  steps = new Map<string, Map<string, LayerAcc>>();
  readonly byStep: boolean;
  /** WebGPU path (`context.gpu`): counts accumulate on the GPU, read back by `flush()`. */
  readonly gpu: GpuContext | null;
  #hist: GpuHistograms | null = null;

  constructor(options: OptionValues, context: EstimatorContext) {
    super(options, context);
    this.gpu = context.gpu ?? null;
    this.byStep = context.byStep;
  }

  #acc(key: string, name: string, width: number): LayerAcc {
    let s = this.steps.get(key);
    if (!s) this.steps.set(key, s = new Map());
    let a = s.get(name);
    if (!a) {
      a = {
        counts: new Float64Array(width * this.bins),
        work: new Uint32Array(width * this.bins),
        pending: 0,
        nonfinite: new Float64Array(width),
        clipped: new Float64Array(width),
      };
      s.set(name, a);
    }
    return a;
  }

  update(batch: Batch): void | Promise<void> {
    if (this.gpu) return this.#updateGpu(batch);
    const runs = stepRuns(batch, this.byStep);
    for (const col of batch.columns) {
      const range = this.range(col.name, col.width);
      for (const run of runs) {
        const a = this.#acc(stepKey(run.step), col.name, col.width);
        if (a.pending + (run.r1 - run.r0) >= FLUSH_ROWS) flush(a);
        binRows(col.values, col.width, run.r0, run.r1, range, this.bins, a.work, a.nonfinite, a.clipped);
        a.pending += run.r1 - run.r0;
      }
    }
  }

  /** The WebGPU path: the same bins (bit-equal counts, see gpu/_thresholds.ts), counted on the GPU. */
  async #updateGpu(batch: Batch): Promise<void> {
    const runs = stepRuns(batch, this.byStep).map((r) => ({ key: stepKey(r.step), r0: r.r0, r1: r.r1 }));
    for (const col of batch.columns) {
      this.range(col.name, col.width);
      for (const r of runs) this.#acc(r.key, col.name, col.width);
    }
    this.#hist ??= GpuHistograms.open(this.gpu!, this.bins, (key, name, counts, nonfinite, clipped) => {
      const a = this.#acc(key, name, nonfinite.length);
      for (let i = 0; i < counts.length; i++) a.counts[i] += counts[i];
      for (let j = 0; j < nonfinite.length; j++) {
        a.nonfinite[j] += nonfinite[j];
        a.clipped[j] += clipped[j];
      }
    });
    await this.#hist.update(batch, runs, (name, width) => this.range(name, width));
  }

  /** Reads GPU-held counts back into the host totals (no-op on the CPU path). */
  async flush(): Promise<void> {
    await this.#hist?.flush();
  }

  /** Frees the GPU buffers (results and state read back first). */
  dispose(): void {
    this.#hist?.destroy();
    this.#hist = null;
  }

  #checkFlushed(what: string): void {
    if (this.#hist?.pending) {
      throw new Error(`Cannot ${what} as GPU counts are not read back (await flush() first): current value is pending`);
    }
  }

  merge(other: Estimator): void {
    const o = other as EntropyEstimator;
    if (!(o instanceof EntropyEstimator) || o.bins !== this.bins || o.binning !== this.binning) {
      throw new Error("Cannot merge entropy estimators with different bins or binning: current value is incompatible");
    }
    o.#checkFlushed("merge an entropy estimator");
    for (const l of o.layers) {
      const mine = this.layers.find((x) => x.name === l.name);
      if (mine && mine.width !== l.width) {
        throw new Error(
          `Cannot merge entropy estimators as layer '${l.name}' has width ${mine.width} here: current value is ${l.width}`,
        );
      }
      this.range(l.name, l.width);
    }
    for (const [key, layers] of o.steps) {
      for (const [name, a] of layers) {
        const mine = this.#acc(key, name, a.nonfinite.length);
        flush(a);
        for (let i = 0; i < a.counts.length; i++) mine.counts[i] += a.counts[i];
        for (let i = 0; i < a.nonfinite.length; i++) {
          mine.nonfinite[i] += a.nonfinite[i];
          mine.clipped[i] += a.clipped[i];
        }
      }
    }
  }

  state(): StateValue {
    this.#checkFlushed("snapshot the entropy estimator");
    const steps: EntropyState["steps"] = {};
    for (const [key, layers] of this.steps) {
      steps[key] = [...layers].map(([name, a]) => {
        flush(a);
        return { name, counts: a.counts, nonfinite: a.nonfinite, clipped: a.clipped };
      });
    }
    return { layers: this.layers, steps } as unknown as StateValue;
  }

  load(state: EntropyState): this {
    for (const l of state.layers) this.range(l.name, l.width);
    for (const [key, layers] of Object.entries(state.steps)) {
      const m = new Map<string, LayerAcc>();
      for (const l of layers) {
        m.set(l.name, { ...l, work: new Uint32Array(l.counts.length), pending: 0 });
      }
      this.steps.set(key, m);
    }
    return this;
  }

  /** Totals for run.json (non-finite values excluded, values clipped into the edge bins), and a warning for each. */
  summary(): EstimatorSummary & { nonfinite: number; clipped: number } {
    let nonfinite = 0, clipped = 0;
    for (const layers of this.steps.values()) {
      for (const a of layers.values()) {
        for (let j = 0; j < a.nonfinite.length; j++) {
          nonfinite += a.nonfinite[j];
          clipped += a.clipped[j];
        }
      }
    }
    return entropySummary(nonfinite, clipped);
  }

  result(): Results | Promise<Results> {
    if (this.#hist?.pending) return this.flush().then(() => this.#tables());
    return this.#tables();
  }

  #tables(): Results {
    const B = this.bins;
    const out = new EntropyTables();
    for (const key of sortStepKeys(this.steps.keys())) {
      const layers = this.steps.get(key)!;
      const step = stepFromKey(key);
      for (const l of this.layers) {
        const a = layers.get(l.name);
        if (!a) continue;
        flush(a);
        const range = this.ranges.get(l.name)!;
        const hs = new Float64Array(l.width);
        for (let j = 0; j < l.width; j++) {
          const h = entropyOf(a.counts, j * B, B);
          hs[j] = h;
          let n = 0;
          for (let k = 0; k < B; k++) n += a.counts[j * B + k];
          out.neuron({
            layer: l.name,
            neuron: j,
            entropy: h,
            bins: B,
            samples: n,
            nonfinite: a.nonfinite[j],
            clipped: a.clipped[j],
            lo: range.lo[j],
            hi: range.hi[j],
            step,
          });
        }
        out.layer(l.name, step, hs);
      }
    }
    return out.tables({
      "infotap.estimator": "entropy",
      "infotap.units": "nats",
      "infotap.binning": this.binning,
      "infotap.bins": String(B),
    });
  }
}

/** The summary of `nonfinite` values excluded and `clipped` ones, with a warning for each kind. */
function entropySummary(nonfinite: number, clipped: number): EstimatorSummary & { nonfinite: number; clipped: number } {
  const warnings: string[] = [];
  if (nonfinite > 0) {
    warnings.push(`${nonfinite} non-finite value(s) (NaN/Inf) were excluded and counted (column 'nonfinite')`);
  }
  if (clipped > 0) {
    warnings.push(`${clipped} value(s) outside --range were clipped into the edge bins (column 'clipped')`);
  }
  return { nonfinite, clipped, warnings };
}

/** The `entropy` estimator plugin. */
export const entropyPlugin: EstimatorPlugin = definePlugin({
  name: "entropy",
  description:
    "Entropy (nats) of each neuron's binned activations: intra-neuron diversity (docs/science.md section 1).",
  inputs: ["activations/v1"],
  byDefault: true,
  tables: { neuron_entropy: {}, layer_summary: { keys: ["layer", "step"], overview: true } },
  report: entropyReport,
  options: {
    ...BINNING_OPTIONS,
    "entropy-estimator": {
      type: "string",
      default: "binned",
      choices: ["binned", "knn"],
      description:
        "binned: plug-in entropy of the histogram (paper's default); knn: Kozachenko-Leonenko (method='knn')",
    },
    "entropy-k": { type: "integer", default: 3, min: 1, description: "knn entropy: number of nearest neighbours" },
    "entropy-samples": {
      type: "integer",
      default: 10000,
      min: 2,
      description: "knn entropy: at most this many samples kept (seeded uniform reservoir, --seed)",
    },
  },
  validate: validateBinning,
  scan(options) {
    return options.range || options["entropy-estimator"] === "knn" ? null : new RangeScanner();
  },
  liveHint: RANGE_HINT,
  mergeScans: mergeRangeScans,
  // Binned: integer counts. kNN: the reservoir keeps the rows of smallest seeded key, whatever the batch order.
  orderFree: true,
  stepLocal: true,
  mergeSummaries: (a, b) =>
    "clipped" in a
      ? entropySummary(
        (a.nonfinite as number) + (b.nonfinite as number),
        (a.clipped as number) + (b.clipped as number),
      )
      : mergeKnnSummaries(a, b),
  // Per step: binned, float64 totals and uint32 working counts per neuron and bin, two float64 counters per
  // neuron; kNN, the reservoir (2 x --entropy-samples rows of every neuron, float32).
  memory: (o, shape) => {
    const n = shape.tensors.reduce((a, t) => a + t.width, 0);
    const results = n * 90 + shape.tensors.length * 120;
    if (o["entropy-estimator"] !== "knn") return { state: n * ((o.bins as number) * 12 + 16), results };
    const rows = Math.min(o["entropy-samples"] as number, shape.rows ?? (o["entropy-samples"] as number));
    return { state: 2 * rows * n * 4 + rows * 16, results };
  },
  memoryOptions: ["bins", "entropy-samples"],
  // Integer counts, bit-equal on the GPU (gpu/histogram.ts); kNN runs on the CPU.
  gpu: (o) => o["entropy-estimator"] === "knn" ? null : "exact",
  create(options, context) {
    return options["entropy-estimator"] === "knn"
      ? new KnnEntropyEstimator(options, context)
      : new EntropyEstimator(options, context);
  },
  restore(state, options, context) {
    return options["entropy-estimator"] === "knn"
      ? new KnnEntropyEstimator(options, context).load(state as unknown as KnnState)
      : new EntropyEstimator(options, context).load(state as unknown as EntropyState);
  },
});
