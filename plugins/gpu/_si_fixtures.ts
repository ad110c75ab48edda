/**
 * Test problems of the WebGPU unique-information tests: random Jacobians of a linear model with noisy targets, as
 * shuffled `jacobians/v1` batches (train and test rows mixed, two tensor columns).
 *
 * @module
 */
import type { Batch } from "../../pipeline/batch.ts";
import { jacobianBatch, Rng } from "../../tests/_util.ts";

/** A problem: `n` train and `nTest` test samples, `k` outputs, `p` parameters. */
export interface Problem {
  n: number;
  nTest: number;
  k: number;
  p: number;
  j: Float32Array;
  jTest: Float32Array;
  f0: Float32Array;
  y: Float32Array;
}

export function problem(seed: number, n: number, nTest: number, k: number, p: number): Problem {
  const rng = new Rng(seed);
  const rand = (len: number, s = 1) => Float32Array.from({ length: len }, () => rng.normal() * s);
  const j = rand(n * k * p, 1 / Math.sqrt(p)), jTest = rand(nTest * k * p, 1 / Math.sqrt(p));
  const f0 = rand(n * k, 0.3), truth = rand(p);
  const y = new Float32Array(n * k);
  for (let r = 0; r < n * k; r++) {
    let s = f0[r];
    for (let t = 0; t < p; t++) s += j[r * p + t] * truth[t];
    y[r] = s + 0.3 * rng.normal();
  }
  return { n, nTest, k, p, j, jTest, f0, y };
}

/** The problem's rows, shuffled (train and test mixed), in batches of `perBatch` rows, two tensor columns. */
export function batchesOf(pr: Problem, perBatch: number): Batch[] {
  const rows: { id: number; test: boolean; out: number; f0: number; y: number | null; j: Float32Array }[] = [];
  for (let i = 0; i < pr.n; i++) {
    for (let c = 0; c < pr.k; c++) {
      const r = i * pr.k + c;
      rows.push({
        id: 100 + i,
        test: false,
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
      rows.push({ id: 1000 + i, test: true, out: c, f0: 0, y: null, j: pr.jTest.subarray(r * pr.p, (r + 1) * pr.p) });
    }
  }
  const rng = new Rng(5);
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
      return { width: hi - lo, values: v };
    };
    out.push(jacobianBatch(
      {
        sampleId: part.map((r) => r.id),
        split: part.map((r) => (r.test ? "test" : "train")),
        output: part.map((r) => r.out),
        f0: part.map((r) => r.f0),
        target: part.map((r) => r.y),
        tensors: { "l1.weight": col(0, cut), "l2.weight": col(cut, pr.p) },
      },
      "jac.arrows",
      b,
    ));
  }
  return out;
}

export function maxRel(got: number[], want: number[]): number {
  let m = 0;
  got.forEach((g, i) => (m = Math.max(m, Math.abs(g - want[i]) / Math.abs(want[i]))));
  return m;
}
