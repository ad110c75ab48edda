/**
 * Contract-test fixtures: for each registered plugin, options and small batches that exercise it. Every
 * built-in plugin must have at least one entry (the contract suite fails otherwise).
 */
import type { Batch } from "../pipeline/batch.ts";
import type { EstimatorContext, OptionValues } from "../pipeline/plugin.ts";
import { activationBatch, jacobianBatch, Rng } from "./_util.ts";

/** One contract scenario. */
export interface ContractFixture {
  label: string;
  options: OptionValues;
  context?: Partial<EstimatorContext>;
  /** At least 2 batches (merge splits them in halves). */
  batches: () => Batch[];
  /** Relative tolerance for floats (default 1e-12). */
  rtol?: number;
  /** Batch sizes for the invariance check (default 1, 7, 1000). */
  batchSizes?: number[];
}

/** Activation batches with two layers, steps 0..2, labels 0..3, a few NaN/Inf, and a constant neuron. */
export function mixedActivations(seed = 1, batches = 4, rows = 25): Batch[] {
  const rng = new Rng(seed);
  const out: Batch[] = [];
  for (let b = 0; b < batches; b++) {
    const a = new Float32Array(rows * 5), c = new Float32Array(rows * 3);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < 5; j++) a[i * 5 + j] = rng.normal() * (j + 1);
      c[i * 3] = 2.5; // constant neuron
      c[i * 3 + 1] = rng.next();
      c[i * 3 + 2] = Math.exp(rng.normal());
    }
    if (b === 1) {
      a[3] = NaN;
      a[7] = Infinity;
      c[5] = -Infinity;
    }
    out.push(
      activationBatch(rows, { fc1: { width: 5, values: a }, fc2: { width: 3, values: c } }, {
        step: new BigInt64Array(rows).fill(BigInt(Math.floor((b * 3) / batches))),
        label: Int32Array.from({ length: rows }, () => rng.int(4)),
      }, b * rows),
    );
    out[out.length - 1].index = b;
  }
  return out;
}

/**
 * Jacobian batches: `n` train samples and `nTest` test samples with `k` outputs each, two tensor columns, rows
 * shuffled so that a sample's outputs arrive in any order and across batches (and across merge halves).
 */
export function mixedJacobians(seed = 1, batches = 4, n = 9, nTest = 3, k = 2): Batch[] {
  const rng = new Rng(seed);
  const rows: { id: number; test: boolean; out: number }[] = [];
  for (let i = 0; i < n; i++) for (let c = 0; c < k; c++) rows.push({ id: i, test: false, out: c });
  for (let i = 0; i < nTest; i++) for (let c = 0; c < k; c++) rows.push({ id: 50 + i, test: true, out: c });
  for (let i = rows.length - 1; i > 0; i--) {
    const s = rng.int(i + 1);
    [rows[i], rows[s]] = [rows[s], rows[i]];
  }
  const per = Math.ceil(rows.length / batches);
  const out: Batch[] = [];
  for (let b = 0; b < batches; b++) {
    const part = rows.slice(b * per, (b + 1) * per);
    const col = (w: number) => Float32Array.from({ length: part.length * w }, () => rng.normal());
    out.push(jacobianBatch(
      {
        sampleId: part.map((r) => r.id),
        split: part.map((r) => (r.test ? "test" : "train")),
        output: part.map((r) => r.out),
        f0: part.map(() => rng.normal()),
        target: part.map((r) => (r.test ? null : rng.normal())),
        tensors: { "fc1.weight": { width: 6, values: col(6) }, "fc2.weight": { width: 4, values: col(4) } },
      },
      "jacobians",
      b,
    ));
  }
  return out;
}

/** Fixtures by plugin name. */
export const CONTRACT_FIXTURES: Record<string, ContractFixture[]> = {
  entropy: [
    { label: "global binning", options: { bins: 10 }, batches: () => mixedActivations(1) },
    {
      label: "neuron binning by step",
      options: { bins: 7, binning: "neuron" },
      context: { byStep: true },
      batches: () => mixedActivations(2),
    },
    { label: "user range with clipping", options: { bins: 5, range: [-1, 1] }, batches: () => mixedActivations(3) },
  ],
  "unique-info": [
    { label: "k = 2 with test rows", options: { "si-lambda": 0.5 }, batches: () => mixedJacobians(5) },
    {
      label: "k = 1 sketched, no test rows",
      options: { "si-lambda": 2, "si-sketch-dim": 3 },
      context: { seed: 42 },
      batches: () => mixedJacobians(6, 3, 8, 0, 1),
    },
  ],
  "example-mean": [
    { label: "per-neuron mean and variance", options: {}, batches: () => mixedActivations(4), rtol: 1e-9 },
  ],
};
