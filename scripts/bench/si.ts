/**
 * Benchmark of `unique-info` (docs/science.md section 3): all n samples' SI and F-SI from one float64 factorisation,
 * end to end (Gram products as the batches arrive, then Cholesky, inverse and per-sample terms), against the
 * per-sample re-solve of the official code (one Cholesky of the kernel without sample i per sample), timed on a
 * few samples in the same run and extrapolated to all n. The re-solved samples also check the fast path's values.
 * A third row times the Gram product with tfjs-backend-wasm's float32 matMul against ours (float64 accumulation).
 *
 * Full size: nk = 5,000 train rows (n = 2,500, k = 2) + 200 test rows, P = 20,000; quick: nk = 300, P = 2,000.
 *
 * Run alone: `node_modules/deno/deno run -A scripts/bench/si.ts [--quick]`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { uniqueInfoPlugin } from "../../plugins/unique_info/unique_info.ts";
import process from "node:process";
import {
  choleskyInPlace,
  choleskySolve,
  gram,
  invertSpd,
  kernels,
  matrix,
  sharedF64,
  wasmSimd,
} from "../../plugins/kernels/linalg/mod.ts";
import { defaultThreads, threadStats } from "../../plugins/kernels/threads.ts";

import type { BenchRow } from "./_types.ts";
import { kernelWithout, makeSiBatches, ownKernel, siOfDual } from "./_si_batches.ts";

/** The official-code path for one sample: factorise the kernel without its rows, re-solve, compare. */
function resolveOne(
  theta: Float64Array,
  ktest: Float64Array,
  r: Float64Array,
  alpha: Float64Array,
  N: number,
  T: number,
  nTest: number,
  k: number,
  lambda: number,
  i: number,
): { w: number; f: number } {
  const { a, keep } = kernelWithout(theta, N, k, i);
  const m = keep.length;
  for (let x = 0; x < m; x++) a[x * m + x] += lambda;
  choleskyInPlace(a, m);
  const sub = choleskySolve(a, m, keep.map((j) => r[j]));
  // w - w_{-i} = J^T d with d = alpha - (alpha_{-i} padded with zeros)
  const d = Float64Array.from(alpha);
  keep.forEach((j, x) => (d[j] -= sub[x]));
  return siOfDual(theta, ktest, d, N, T, nTest);
}

/** Runs the benchmark and returns its rows. */
export async function bench(args: { quick: boolean }): Promise<BenchRow[]> {
  const [n, nTest, k, p, few] = args.quick ? [150, 10, 2, 2000, 3] : [2500, 100, 2, 20000, 2];
  const N = n * k, T = nTest * k, lambda = 0.1;
  const batches = makeSiBatches(n, nTest, k, p, 500, { seed: 1 });
  const rows: BenchRow[] = [];
  const size = `nk = ${N}, P = ${p}, ${T} test rows`;

  const workerChunks0 = threadStats.workerChunks;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const est = uniqueInfoPlugin.create({ "si-lambda": lambda }, { byStep: false, seed: 0 });
  for (const b of batches) est.update(b);
  const t1 = performance.now();
  const cpu1 = process.cpuUsage(cpu0).user / 1e6;
  const table = (await est.result()).unique_information;
  const t2 = performance.now();
  const cpu2 = process.cpuUsage(cpu0).user / 1e6;
  const threads = `${defaultThreads()} thread(s), ${threadStats.workerChunks - workerChunks0} chunks done by workers`;
  const fast = (t2 - t0) / 1000;

  // reference: the estimator's own kernel (samples arrive in id order here, so slot order = sample order),
  // then one re-solve per sample
  const { theta, ktest, r } = ownKernel(est, batches, N);
  const a = Float64Array.from(theta);
  for (let i = 0; i < N; i++) a[i * N + i] += lambda;
  choleskyInPlace(a, N);
  const alpha = choleskySolve(a, N, r);
  const t3 = performance.now();
  let worst = 0;
  for (let i = 0; i < few; i++) {
    const ref = resolveOne(theta, ktest, r, alpha, N, T, nTest, k, lambda, i);
    const w = table.getChild("si_weights")!.get(i) as number, f = table.getChild("si_function")!.get(i) as number;
    worst = Math.max(worst, Math.abs(w - ref.w) / ref.w, Math.abs(f - ref.f) / ref.f);
  }
  const perSample = (performance.now() - t3) / 1000 / few;
  const reference = perSample * n;
  rows.push({
    name: `unique-info end to end (${size})`,
    value: fast,
    unit: "s",
    reference,
    ratio: reference / fast,
    note: `reference: per-sample re-solve, ${perSample.toFixed(2)} s/sample on ${few} samples x n = ${n} ` +
      `(kernel not counted); max relative difference on those samples ${worst.toExponential(1)}; ${threads}; ` +
      `CPU time (all threads) ${cpu2.toFixed(1)} s`,
  });
  const gramFlops = (N * N / 2 + T * N) * p * 2;
  rows.push({
    name: `unique-info kernel build (Gram, float64 accumulation, ${size})`,
    value: (t1 - t0) / 1000,
    unit: "s",
    note: `${(gramFlops / ((t1 - t0) / 1000) / 1e9).toFixed(2)} GFLOP/s wall, ${
      (gramFlops / cpu1 / 1e9).toFixed(2)
    } GFLOP/s per CPU second (CPU time ${cpu1.toFixed(1)} s)`,
  });
  rows.push({
    name: `unique-info factorisation + per-sample SI (nk = ${N})`,
    value: (t2 - t1) / 1000,
    unit: "s",
    note:
      `Cholesky, inverse, M^2 diagonal blocks, K_test M: ${(N ** 3 / ((t2 - t1) / 1000) / 1e9).toFixed(2)} GFLOP/s ` +
      `(counting n^3 for the inverse); CPU time ${(cpu2 - cpu1).toFixed(1)} s`,
  });

  // Gram: tfjs-backend-wasm float32 matMul against ours, on a block of rows
  const g = args.quick ? 200 : 1000;
  const block: Float32Array[] = [];
  for (const b of batches) {
    for (let i = 0; i < b.numRows && block.length < g; i++) {
      block.push(b.columns[0].values.subarray(i * p, (i + 1) * p));
    }
  }
  const flat = new Float32Array(g * p);
  block.forEach((row, i) => flat.set(row, i * p));
  const { tfjsJacobians } = await import("../../pipeline/producers/tfjs/jacobians.ts");
  for await (
    const _ of tfjsJacobians({
      params: [{ name: "w", shape: [1, 1], values: new Float32Array(1) }],
      apply: ([w], x) => tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D),
      inputs: new Float32Array(1),
      inputShape: [1],
      targets: new Float32Array(1),
      backend: "wasm",
    })
  ) { /* starts the wasm backend */ }
  tf.dispose(tf.matMul(tf.ones([8, 64]), tf.ones([8, 64]), false, true)); // warm-up
  const t4 = performance.now();
  const x = tf.tensor2d(flat, [g, p]);
  const gt = tf.matMul(x, x, false, true);
  const tfGram = await gt.data();
  const t5 = performance.now();
  tf.dispose([x, gt]);
  const ours = new Float64Array(g * g);
  gram(matrix(ours, g), block, block);
  const t6 = performance.now();
  let err = 0;
  for (let i = 0; i < g * g; i++) {
    err = Math.max(err, Math.abs(tfGram[i] - ours[i]) / Math.abs(ours[i % g * g + i % g]));
  }
  rows.push({
    name: `Gram ${g} x ${g} over P = ${p}: tfjs-backend-wasm matMul (float32)`,
    value: (t5 - t4) / 1000,
    unit: "s",
    reference: (t6 - t5) / 1000,
    ratio: (t6 - t5) / (t5 - t4),
    note: `reference: our float64-accumulated Gram (full, not triangular); tfjs float32 max error / diagonal ${
      err.toExponential(1)
    } (${tf.getBackend()}, SIMD ${tf.env().getBool("WASM_HAS_SIMD_SUPPORT")})`,
  });

  // the same linear algebra with the scalar JavaScript kernels instead of the WebAssembly SIMD ones
  const h = Math.min(block.length, args.quick ? 200 : 1000), q = args.quick ? 400 : 2000;
  const spd = new Float64Array(q * q);
  for (let i = 0; i < q; i++) {
    for (let j = 0; j <= i; j++) spd[i * q + j] = (i === j ? q : 0) + ((i * 31 + j * 17) % 13) / 13;
  }
  for (
    const [label, work] of [
      [
        `Gram ${h} rows x P = ${p} (lower triangle)`,
        () => gram(matrix(new Float64Array(h * h), h), block.slice(0, h), block.slice(0, h), { lower: 0 }),
      ],
      [`SPD inverse n = ${q} (Cholesky + L^-T + Y Y^T)`, () => invertSpd(spd, q)],
    ] as const
  ) {
    const time = (useWasm: boolean) => {
      kernels.useWasm = useWasm;
      const t = performance.now();
      work();
      kernels.useWasm = wasmSimd;
      return (performance.now() - t) / 1000;
    };
    const simd = time(true), js = time(false);
    rows.push({
      name: `${label}: WebAssembly SIMD kernel`,
      value: simd,
      unit: "s",
      reference: js,
      ratio: js / simd,
      note: "reference: the scalar JavaScript 4 x 4 kernel (same results; Gram bit-identical)",
    });
  }
  // the Gram on shared memory with a worker thread against the calling thread alone (same bits)
  {
    const buf = new SharedArrayBuffer(h * p * 4);
    const shared = block.slice(0, h).map((r, i) => {
      const v = new Float32Array(buf, i * p * 4, p);
      v.set(r);
      return v;
    });
    const timed = (threads: number) => {
      const out = sharedF64(h * h), c = process.cpuUsage().user, t = performance.now();
      gram(matrix(out, h), shared, shared, { lower: 0, threads });
      const s = (performance.now() - t) / 1000, cpu = (process.cpuUsage().user - c) / 1e6;
      return { s, cpu, out };
    };
    const threads = Math.max(2, defaultThreads());
    timed(threads); // starts the workers
    await new Promise((r) => setTimeout(r, 200));
    const before = threadStats.workerChunks;
    const many = timed(threads), one = timed(1);
    const same = many.out.every((v, i) => v === one.out[i]);
    const flops = h * h * p; // lower triangle, 2 flops per multiply-add
    rows.push({
      name: `Gram ${h} rows x P = ${p} (lower triangle): ${threads} threads`,
      value: many.s,
      unit: "s",
      reference: one.s,
      ratio: one.s / many.s,
      note: `reference: 1 thread; ${(flops / many.s / 1e9).toFixed(2)} GFLOP/s wall against ${
        (flops / one.s / 1e9).toFixed(2)
      } (per CPU second: ${(flops / many.cpu / 1e9).toFixed(2)} and ${(flops / one.cpu / 1e9).toFixed(2)}); ${
        threadStats.workerChunks - before
      } chunks done by workers; bit-identical: ${same}`,
    });
  }
  return rows;
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  for (const row of await bench({ quick })) console.log(JSON.stringify(row));
}
