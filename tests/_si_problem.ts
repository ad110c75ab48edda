/**
 * Test problems of the unique-information tests (CPU: plugins/unique_info/unique_info_test.ts; WebGPU: plugins/unique_info/gpu_test.ts): random
 * Jacobians of a linear model with noisy targets, the leave-one-out retraining reference (ridge in parameter space,
 * Gaussian elimination, independent of the kernel-space closed form of docs/science.md section 3), and the rows as
 * shuffled `jacobians/v1` batches.
 *
 * @module
 */
import type { Batch } from "../schemas/batch.ts";
import { sketchJacobian, sketchMetadata } from "../schemas/sketch.ts";
import { makeRecordBatch } from "../pipeline/producers/produce.ts";
import type * as arrow from "apache-arrow";
import { jacobianBatch, type JacobianRows, Rng } from "./_util.ts";

/** A problem: `n` train and `nTest` test samples, `k` outputs, `p` parameters. */
export interface Problem {
  n: number;
  nTest: number;
  k: number;
  p: number;
  /** Row-major Jacobian rows, sample-major then output: (n k) x p, float32 values. */
  j: Float32Array;
  jTest: Float32Array;
  f0: Float32Array;
  y: Float32Array;
  f0Test: Float32Array;
}

/** A random problem; `corrupt`: train samples whose targets are pushed far off. */
export function problem(seed: number, n: number, nTest: number, k: number, p: number, corrupt: number[] = []): Problem {
  const rng = new Rng(seed);
  const rand = (len: number, s = 1) => Float32Array.from({ length: len }, () => rng.normal() * s);
  const j = rand(n * k * p, 1 / Math.sqrt(p)), jTest = rand(nTest * k * p, 1 / Math.sqrt(p));
  const f0 = rand(n * k, 0.3), f0Test = rand(nTest * k, 0.3);
  const truth = rand(p);
  const y = new Float32Array(n * k);
  for (let r = 0; r < n * k; r++) {
    let s = f0[r];
    for (let t = 0; t < p; t++) s += j[r * p + t] * truth[t];
    y[r] = s + 0.05 * rng.normal();
  }
  for (const i of corrupt) for (let c = 0; c < k; c++) y[i * k + c] += 4 * (c % 2 === 0 ? 1 : -1);
  return { n, nTest, k, p, j, jTest, f0, y, f0Test };
}

/** Solves (A) x = b by Gaussian elimination with partial pivoting (A is p x p, copied). */
function gaussSolve(a: Float64Array, b: Float64Array, p: number): Float64Array {
  const m = Float64Array.from(a), x = Float64Array.from(b);
  for (let c = 0; c < p; c++) {
    let piv = c;
    for (let r = c + 1; r < p; r++) if (Math.abs(m[r * p + c]) > Math.abs(m[piv * p + c])) piv = r;
    if (piv !== c) {
      for (let t = 0; t < p; t++) [m[c * p + t], m[piv * p + t]] = [m[piv * p + t], m[c * p + t]];
      [x[c], x[piv]] = [x[piv], x[c]];
    }
    for (let r = c + 1; r < p; r++) {
      const f = m[r * p + c] / m[c * p + c];
      if (f === 0) continue;
      for (let t = c; t < p; t++) m[r * p + t] -= f * m[c * p + t];
      x[r] -= f * x[c];
    }
  }
  for (let c = p - 1; c >= 0; c--) {
    let s = x[c];
    for (let t = c + 1; t < p; t++) s -= m[c * p + t] * x[t];
    x[c] = s / m[c * p + c];
  }
  return x;
}

/** w - w0 of the ridge problem over the train samples not in `drop`: (J^T J + lambda I)^-1 J^T (Y - f0). */
export function ridge(pr: Problem, lambda: number, drop: number): Float64Array {
  const { p, k } = pr;
  const a = new Float64Array(p * p), b = new Float64Array(p);
  for (let i = 0; i < pr.n; i++) {
    if (i === drop) continue;
    for (let c = 0; c < k; c++) {
      const r = (i * k + c) * p, res = pr.y[i * k + c] - pr.f0[i * k + c];
      for (let s = 0; s < p; s++) {
        b[s] += pr.j[r + s] * res;
        for (let t = 0; t < p; t++) a[s * p + t] += pr.j[r + s] * pr.j[r + t];
      }
    }
  }
  for (let s = 0; s < p; s++) a[s * p + s] += lambda;
  return gaussSolve(a, b, p);
}

/** Leave-one-out retraining: weight SI and function SI of every train sample. */
export function looReference(pr: Problem, lambda: number): { w: number[]; f: number[] } {
  const full = ridge(pr, lambda, -1);
  const w: number[] = [], f: number[] = [];
  for (let i = 0; i < pr.n; i++) {
    const si = siOfDelta(pr, ridge(pr, lambda, i).map((v, s) => full[s] - v));
    w.push(si.w);
    f.push(si.f);
  }
  return { w, f };
}

/** Weight SI `||d||^2` and function SI (mean over test samples of `sum_c (J_test d)_c^2`) of a weight change `d`. */
export function siOfDelta(pr: Problem, d: Float64Array): { w: number; f: number } {
  let fs = 0;
  for (let x = 0; x < pr.nTest * pr.k; x++) {
    let df = 0;
    for (let s = 0; s < pr.p; s++) df += pr.jTest[x * pr.p + s] * d[s];
    fs += df * df;
  }
  return { w: d.reduce((acc, v) => acc + v * v, 0), f: fs / pr.nTest };
}

/**
 * The problem's rows as batches: rows shuffled (outputs of one sample in any order, in different batches),
 * test rows mixed in, sample ids offset by 100 (train) and 1000 (test), tensor split into two columns.
 */
export function batchesOf(pr: Problem, perBatch: number, seed = 9, sketch?: { m: number; seed: number }): Batch[] {
  const rows: { id: number; split: "train" | "test"; out: number; f0: number; y: number | null; j: Float32Array }[] =
    [];
  for (let i = 0; i < pr.n; i++) {
    for (let c = 0; c < pr.k; c++) {
      const r = i * pr.k + c;
      rows.push({
        id: 100 + i,
        split: "train",
        out: c,
        f0: pr.f0[r],
        y: pr.y[r],
        j: pr.j.subarray(r * pr.p, (r + 1) * pr.p),
      });
    }
  }
  for (let i = 0; i < pr.nTest; i++) {
    for (let c = 0; c < pr.k; c++) {
      const r = i * pr.k + c;
      rows.push({
        id: 1000 + i,
        split: "test",
        out: c,
        f0: pr.f0Test[r],
        y: null,
        j: pr.jTest.subarray(r * pr.p, (r + 1) * pr.p),
      });
    }
  }
  const rng = new Rng(seed);
  for (let i = rows.length - 1; i > 0; i--) {
    const s = rng.int(i + 1);
    [rows[i], rows[s]] = [rows[s], rows[i]];
  }
  const cut = Math.floor(pr.p / 3);
  const out: Batch[] = [];
  for (let b = 0; b * perBatch < rows.length; b++) {
    const part = rows.slice(b * perBatch, (b + 1) * perBatch);
    const col = (lo: number, hi: number) => {
      const v = new Float32Array(part.length * (hi - lo));
      part.forEach((r, i) => v.set(r.j.subarray(lo, hi), i * (hi - lo)));
      return v;
    };
    const tensors: JacobianRows["tensors"] = {};
    for (const [name, lo, hi] of [["layer1.weight", 0, cut], ["layer2.weight", cut, pr.p]] as const) {
      const values = col(lo, hi);
      tensors[name] = sketch
        ? {
          width: sketch.m,
          values: sketchJacobian(values, hi - lo, sketch.m, sketch.seed, name),
          metadata: sketchMetadata(sketch.seed, hi - lo),
        }
        : { width: hi - lo, values };
    }
    out.push(jacobianBatch(
      {
        sampleId: part.map((r) => r.id),
        split: part.map((r) => r.split),
        output: part.map((r) => r.out),
        f0: part.map((r) => r.f0),
        target: part.map((r) => r.y),
        tensors,
      },
      "jac.arrows",
      b,
    ));
  }
  return out;
}

/** Largest relative difference `|got - want| / |want|` over the entries. */
export function maxRel(got: number[], want: number[]): number {
  let m = 0;
  got.forEach((g, i) => (m = Math.max(m, Math.abs(g - want[i]) / Math.abs(want[i]))));
  return m;
}

/** A `jacobians/v1` batch back as a wire-format record batch (to write a dump of it). */
export function recordBatchOf(b: Batch): arrow.RecordBatch {
  return makeRecordBatch({
    kind: "jacobians/v1",
    sampleId: b.sampleId,
    split: [...b.split!].map((s) => (s === 0 ? "train" : "test")),
    output: b.output!,
    f0: b.f0!,
    target: b.target!,
    tensors: b.columns.map((c) => ({ name: c.name, width: c.width, values: c.values })),
  });
}
