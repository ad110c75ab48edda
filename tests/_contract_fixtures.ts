/**
 * Contract-test fixtures: for each registered plugin, options and small batches that exercise it. Every
 * built-in plugin must have at least one entry (the contract suite fails otherwise).
 */
import type { Batch } from "../schemas/batch.ts";
import type { EstimatorContext, OptionValues } from "../pipeline/core/plugin.ts";
import { activationBatch, gradientBatch, jacobianBatch, Rng } from "./_util.ts";

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
 * Gradient batches with tensors `fc1.weight` (6), `fc1.bias` (2), `fc2.weight` (3): steps 0..1, draws 0..1,
 * and (batch 1) a NaN and an Inf entry.
 */
export function mixedGradients(seed = 1, batches = 4, rows = 25, fisher: "true" | "empirical" = "true"): Batch[] {
  const rng = new Rng(seed);
  const out: Batch[] = [];
  for (let b = 0; b < batches; b++) {
    const w = new Float32Array(rows * 6), bias = new Float32Array(rows * 2), w2 = new Float32Array(rows * 3);
    for (let i = 0; i < rows; i++) {
      const z = rng.normal(); // a shared factor makes F non-diagonal
      for (let j = 0; j < 6; j++) w[i * 6 + j] = z * (j + 1) * 0.3 + rng.normal() * 0.1;
      for (let j = 0; j < 2; j++) bias[i * 2 + j] = rng.normal() * 1e-3;
      for (let j = 0; j < 3; j++) w2[i * 3 + j] = rng.normal() * 10 - z;
    }
    if (b === 1) {
      w[4] = NaN;
      w2[7] = Infinity;
    }
    out.push(
      gradientBatch(rows, {
        "fc1.weight": { width: 6, values: w },
        "fc1.bias": { width: 2, values: bias },
        "fc2.weight": { width: 3, values: w2 },
      }, {
        step: new BigInt64Array(rows).fill(BigInt(Math.floor((b * 2) / batches))),
        draw: Int32Array.from({ length: rows }, (_, i) => i % 2),
        fisher,
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

/**
 * Activations under weight noise: `inputs` samples x `draws` draws (a `draw` column), layers `fc1` (3 neurons,
 * input-dependent noise; enough draws for its full covariance) and `fc2` (5), steps 0..1, rows shuffled so that an input's draws arrive across batches
 * (and merge halves); one NaN row in `fc1`, and one input with a single draw (left out).
 */
export function drawActivations(seed = 1, batches = 4, inputs = 7, draws = 100): Batch[] {
  const rng = new Rng(seed);
  const rows: { id: number; draw: number; step: number }[] = [];
  for (let step = 0; step < 2; step++) {
    for (let i = 0; i < inputs; i++) for (let d = 0; d < draws; d++) rows.push({ id: i, draw: d, step });
    if (step === 0) rows.push({ id: inputs, draw: 0, step });
  }
  const steps = rows.map((r) => r.step);
  for (let i = rows.length - 1; i > 0; i--) {
    const s = rng.int(i + 1);
    if (steps[i] === steps[s]) [rows[i], rows[s]] = [rows[s], rows[i]];
  }
  const per = Math.ceil(rows.length / batches);
  const out: Batch[] = [];
  for (let b = 0; b < batches; b++) {
    const part = rows.slice(b * per, (b + 1) * per);
    const a = new Float32Array(part.length * 3), c = new Float32Array(part.length * 5);
    part.forEach((r, i) => {
      const z = rng.normal();
      for (let j = 0; j < 3; j++) a[i * 3 + j] = r.id * (j - 1) + (0.2 + 0.1 * r.id) * (z + rng.normal() * 0.5);
      for (let j = 0; j < 5; j++) c[i * 5 + j] = Math.sin(r.id + j) * 3 + rng.normal() * (j + 1) * 0.3;
    });
    if (b === 1) a[4] = NaN;
    out.push(
      activationBatch(part.length, { fc1: { width: 3, values: a }, fc2: { width: 5, values: c } }, {
        sampleId: BigInt64Array.from(part, (r) => BigInt(r.id)),
        step: BigInt64Array.from(part, (r) => BigInt(r.step)),
        draw: Int32Array.from(part, (r) => r.draw),
      }),
    );
    out[out.length - 1].index = b;
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
  fisher: [
    {
      label: "diagonal, info_weights and an exact sketch (P = 11 <= ell)",
      options: { "prior-var": 0.5, beta: 2, "fisher-rank": 16, "fisher-diag": true },
      batches: () => mixedGradients(1),
      rtol: 1e-9,
    },
    {
      label: "by step, empirical, no sketch",
      options: { "fisher-rank": 0 },
      context: { byStep: true },
      batches: () => mixedGradients(2, 6, 20, "empirical"),
    },
    {
      // n = 12 < 2 ell rows: the sketch never shrinks, so merging is exact even though P > ell.
      label: "sketch below its first shrink (P = 11 > ell = 8)",
      options: { "prior-var": 1, beta: 1, "fisher-rank": 8 },
      batches: () => mixedGradients(3, 4, 3),
      rtol: 1e-9,
    },
  ],
  mi: [
    {
      label: "KSG within layers (reservoir smaller than the stream)",
      options: { "mi-samples": 60 },
      batches: () => mixedActivations(5),
      rtol: 1e-12,
    },
    {
      label: "KSG all pairs by step, k = 2",
      options: { "mi-pairs": "all", "ksg-k": 2 },
      context: { byStep: true, seed: 7 },
      batches: () => mixedActivations(6),
    },
    { label: "binned global", options: { "mi-estimator": "binned", "mi-bins": 5 }, batches: () => mixedActivations(7) },
    {
      label: "binned neuron binning, all pairs, by step",
      options: { "mi-estimator": "binned", "mi-bins": 4, "mi-binning": "neuron", "mi-pairs": "all" },
      context: { byStep: true },
      batches: () => mixedActivations(8),
    },
  ],
  "label-mi": [
    { label: "global binning", options: { bins: 6 }, batches: () => mixedActivations(9) },
    {
      label: "neuron binning by step",
      options: { bins: 3, binning: "neuron" },
      context: { byStep: true },
      batches: () => mixedActivations(10),
    },
    { label: "user range with clipping", options: { bins: 4, range: [-1, 1] }, batches: () => mixedActivations(11) },
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
  "effective-info": [
    {
      label: "full covariance (fc1) and diagonal (fc2), per neuron",
      options: { "eff-cov-width": 4 },
      batches: () => drawActivations(1),
      rtol: 1e-9,
    },
    {
      label: "by step, diagonal only, no neuron rows",
      options: { "eff-cov-width": 0, "eff-neurons": false },
      context: { byStep: true },
      batches: () => drawActivations(2, 5, 6, 8),
      rtol: 1e-9,
    },
  ],
  "example-mean": [
    { label: "per-neuron mean and variance", options: {}, batches: () => mixedActivations(4), rtol: 1e-9 },
  ],
};
