/**
 * Synthetic Jacobian batches and reference helpers for the unique-information benchmarks (scripts/bench/si.ts,
 * si_finite.ts, gpu_si.ts).
 *
 * @module
 */
import type { Batch } from "../../schemas/batch.ts";

/** A seeded linear congruential generator of uniform values in [-0.5, 0.5). */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

/**
 * Synthetic Jacobian batches: `n` train and `nTest` test samples, `k` outputs, `p` parameters, `perBatch` rows per
 * batch; uniform entries (row norm ~1), or scaled by `scales` per column; values from `lcg(seed)`.
 */
export function makeSiBatches(
  n: number,
  nTest: number,
  k: number,
  p: number,
  perBatch: number,
  opts: { seed: number; scales?: Float32Array },
): Batch[] {
  const rnd = lcg(opts.seed);
  const scale = Math.sqrt(12 / p), scales = opts.scales;
  const rows: { id: number; test: boolean; out: number }[] = [];
  for (let i = 0; i < n; i++) for (let c = 0; c < k; c++) rows.push({ id: i, test: false, out: c });
  for (let i = 0; i < nTest; i++) for (let c = 0; c < k; c++) rows.push({ id: 1_000_000 + i, test: true, out: c });
  const out: Batch[] = [];
  for (let b = 0; b * perBatch < rows.length; b++) {
    const part = rows.slice(b * perBatch, (b + 1) * perBatch);
    const values = new Float32Array(part.length * p);
    if (scales) { for (let i = 0; i < values.length; i++) values[i] = rnd() * scales[i % p] / Math.sqrt(p); }
    else for (let i = 0; i < values.length; i++) values[i] = rnd() * scale;
    out.push({
      kind: "jacobians/v1",
      file: "bench",
      index: b,
      numRows: part.length,
      sampleId: BigInt64Array.from(part, (r) => BigInt(r.id)),
      step: null,
      label: null,
      draw: null,
      split: Uint8Array.from(part, (r) => (r.test ? 1 : 0)),
      output: Int32Array.from(part, (r) => r.out),
      f0: Float32Array.from(part, () => rnd()),
      target: Float32Array.from(part, (r) => (r.test ? NaN : rnd() * 2)),
      columns: [{ name: "params", width: p, values, metadata: new Map() }],
      metadata: new Map(),
      byteLength: values.byteLength,
    } as unknown as Batch);
  }
  return out;
}

/**
 * Weight SI `d^T Theta d` and function SI `||K_test d||^2 / nTest` of a dual difference `d = alpha - beta_{-i}`
 * (padded), from the full kernels (`theta` N x N, `ktest` T x N): the per-sample references' last step.
 */
export function siOfDual(
  theta: Float64Array,
  ktest: Float64Array,
  d: Float64Array,
  N: number,
  T: number,
  nTest: number,
): { w: number; f: number } {
  let w = 0;
  for (let x = 0; x < N; x++) {
    let s = 0;
    for (let y = 0; y < N; y++) s += theta[x * N + y] * d[y];
    w += d[x] * s;
  }
  let f = 0;
  for (let t = 0; t < T; t++) {
    let s = 0;
    for (let y = 0; y < N; y++) s += ktest[t * N + y] * d[y];
    f += s * s;
  }
  return { w, f: f / nTest };
}

/**
 * The kernel and residuals the estimator built from `batches` (its slot order is the sample order here): `theta`
 * (N x N, both triangles filled), `ktest` (test x train) and `r = target - f0` of the training rows.
 */
export function ownKernel(
  est: unknown,
  batches: Batch[],
  N: number,
): { theta: Float64Array; ktest: Float64Array; r: Float64Array } {
  const inner = est as { theta: { compact(): Float64Array }; ktest: { compact(): Float64Array } };
  const theta = inner.theta.compact(), ktest = inner.ktest.compact();
  for (let i = 0; i < N; i++) for (let j = i + 1; j < N; j++) theta[i * N + j] = theta[j * N + i];
  const r = new Float64Array(N);
  let x = 0;
  for (const b of batches) {
    for (let i = 0; i < b.numRows; i++) if (b.split![i] === 0) r[x++] = b.target![i] - b.f0![i];
  }
  return { theta, ktest, r };
}

/**
 * The official code's first step for one sample: the kernel without sample `i`'s `k` rows (lower triangle of the
 * m x m matrix, in shared memory) and the kept rows' indices.
 */
export function kernelWithout(
  theta: Float64Array,
  N: number,
  k: number,
  i: number,
): { a: Float64Array; keep: number[] } {
  const keep = [...Array(N).keys()].filter((j) => Math.floor(j / k) !== i);
  const m = keep.length;
  const a = new Float64Array(new SharedArrayBuffer(8 * m * m));
  for (let x = 0; x < m; x++) for (let y = 0; y <= x; y++) a[x * m + y] = theta[keep[x] * N + keep[y]];
  return { a, keep };
}
