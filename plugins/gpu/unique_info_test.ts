/**
 * `unique-info` on WebGPU (float32 Gram products and sweep inversion, plugins/gpu/si_kernel.ts) against the float64
 * CPU path and against leave-one-out retraining of a linear ridge model (SCIENCE.md section 3), at small sizes
 * (llvmpipe). Tolerances: docs/bench/webgpu_si.md.
 */
import assert from "node:assert/strict";
import { probeAdapter } from "../../pipeline/gpu.ts";
import type { Batch } from "../../pipeline/batch.ts";
import type { Estimator } from "../../pipeline/plugin.ts";
import { invertSpd } from "../../pipeline/linalg_chol.ts";
import { jacobianBatch, Rng, rowsOf, runPlugin } from "../../tests/_util.ts";
import { uniqueInfoPlugin } from "../unique_info.ts";
import { GpuSiKernel } from "./si_kernel.ts";

const adapter = await probeAdapter();
if (!adapter) console.warn("gpu/unique_info_test: SKIPPED, no WebGPU adapter at all on this machine");
const GPU = { backend: "webgpu" } as const;

interface Problem {
  n: number;
  nTest: number;
  k: number;
  p: number;
  j: Float32Array;
  jTest: Float32Array;
  f0: Float32Array;
  y: Float32Array;
}

function problem(seed: number, n: number, nTest: number, k: number, p: number): Problem {
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
function batchesOf(pr: Problem, perBatch: number): Batch[] {
  const rows: { id: number; test: boolean; out: number; f0: number; y: number | null; j: Float32Array }[] = [];
  for (let i = 0; i < pr.n; i++) {
    for (let c = 0; c < pr.k; c++) {
      const r = i * pr.k + c;
      rows.push({ id: 100 + i, test: false, out: c, f0: pr.f0[r], y: pr.y[r], j: pr.j.subarray(r * pr.p, (r + 1) * pr.p) });
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
    out.push(jacobianBatch({
      sampleId: part.map((r) => r.id),
      split: part.map((r) => (r.test ? "test" : "train")),
      output: part.map((r) => r.out),
      f0: part.map((r) => r.f0),
      target: part.map((r) => r.y),
      tensors: { "l1.weight": col(0, cut), "l2.weight": col(cut, pr.p) },
    }, "jac.arrows", b));
  }
  return out;
}

function column(results: Awaited<ReturnType<typeof runPlugin>>["results"], name: string): number[] {
  return rowsOf(results.unique_information).map((r) => r[name] as number);
}

function maxRel(got: number[], want: number[]): number {
  let m = 0;
  got.forEach((g, i) => (m = Math.max(m, Math.abs(g - want[i]) / Math.abs(want[i]))));
  return m;
}

Deno.test({
  name: "GPU sweep inversion equals the float64 inverse within float32 rounding (several pivot blocks, partial last)",
  ignore: adapter === null,
  async fn() {
    const rng = new Rng(3);
    const P = 50, N = 45; // software tiles of 16: blocks of 32, 16 and 13 rows with nb = 16... nb = 32 here
    const rows = Float32Array.from({ length: N * P }, () => rng.normal() / Math.sqrt(P));
    const g = await GpuSiKernel.open(P);
    try {
      await g.append(rows.subarray(0, 20 * P).slice(), new Float32Array(0));
      await g.append(rows.subarray(20 * P).slice(), rows.subarray(0, 3 * P).slice());
      const order = Int32Array.from({ length: N }, (_, i) => (i * 7) % N); // a permutation
      const pairs = new Int32Array(2 * N * N);
      for (let x = 0; x < N; x++) for (let y = 0; y < N; y++) [pairs[2 * (x * N + y)], pairs[2 * (x * N + y) + 1]] = [x, y];
      const lambda = 0.5;
      const out = await g.solve({
        lambda,
        trainOrder: order,
        testOrder: Int32Array.of(2, 0, 1),
        residual: Float64Array.from({ length: N }, (_, i) => i % 3 - 1),
        pairs,
      });
      // float64 reference in position order
      const A = new Float64Array(N * N);
      for (let x = 0; x < N; x++) {
        for (let y = 0; y < N; y++) {
          let s = 0;
          for (let t = 0; t < P; t++) s += rows[order[x] * P + t] * rows[order[y] * P + t];
          A[x * N + y] = s + (x === y ? lambda : 0);
        }
      }
      const M = invertSpd(A, N);
      let errM = 0, errM2 = 0, errA = 0, errQ = 0;
      const norm = Math.max(...M.map(Math.abs));
      for (let x = 0; x < N; x++) {
        let a = 0;
        for (let y = 0; y < N; y++) {
          errM = Math.max(errM, Math.abs(out.m[x * N + y] - M[x * N + y]) / norm);
          let m2 = 0;
          for (let t = 0; t < N; t++) m2 += M[x * N + t] * M[y * N + t];
          errM2 = Math.max(errM2, Math.abs(out.m2[x * N + y] - m2) / (norm * norm));
          a += M[x * N + y] * (y % 3 - 1);
        }
        errA = Math.max(errA, Math.abs(out.a[x] - a) / norm);
      }
      const testOrder = [2, 0, 1];
      for (let t = 0; t < 3; t++) {
        for (let y = 0; y < N; y++) {
          let q = 0;
          for (let x = 0; x < N; x++) {
            let kk = 0;
            for (let s = 0; s < P; s++) kk += rows[testOrder[t] * P + s] * rows[order[x] * P + s];
            q += kk * M[x * N + y];
          }
          errQ = Math.max(errQ, Math.abs(out.q[t * N + y] - q) / norm);
        }
      }
      console.log("sweep errors (M, M^2, a, Q)", [errM, errM2, errA, errQ]);
      assert.ok(errM < 1e-5 && errM2 < 1e-5 && errA < 1e-5 && errQ < 1e-5, `errors ${[errM, errM2, errA, errQ]}`);
      // a float32 rounding is visible (the path really is float32), far below the tolerance
      assert.ok(errM > 0);
    } finally {
      g.destroy();
    }
  },
});
