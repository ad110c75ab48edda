/**
 * Benchmark of the `mi` estimator (issue 3), on one synthetic layer of 768 neurons x 10,000 samples
 * (quick: 128 x 2,000): pre-activation-like values from a 16-factor linear model plus noise (continuous, as the
 * paper's code taps pre-activations), all within-layer pairs (294,528 at 768).
 *
 * 1. KSG (k = 3): infotap (per-neuron preparation once, rank-grid neighbour search, worker threads) against a
 *    per-pair reference that starts from the raw columns every pair, as the paper's code does (brute-force
 *    O(n^2) KSG: k-th neighbour radius by a scan of all samples, then marginal counts by a scan). Both are timed
 *    on a random sample of pairs and extrapolated to all pairs (the reference at 10,000 samples takes ~1 s a
 *    pair); `--full` times infotap on every pair instead. The reference is single-threaded and divided by the
 *    threads infotap used (as if it were spread perfectly over the same cores).
 * 2. Binned MI (16 bins, global binning): the whole `mi --mi-estimator binned` estimator (first pass, streamed
 *    batches of 1,000 rows, joint histograms of every pair, MI), against a per-pair reference (codes and a
 *    contingency table built per pair from the raw columns) timed on a sample of pairs and extrapolated.
 *
 * Run alone: `node_modules/deno/deno run -A scripts/bench/mi.ts [--quick] [--full]`.
 *
 * @module
 */
import { ksgPairs } from "../../plugins/mi/ksg_pairs.ts";
import { prepNeuron } from "../../plugins/mi/ksg.ts";
import { miPlugin } from "../../plugins/mi/mi.ts";
import { RangeScanner } from "../../plugins/_shared/binning.ts";
import { resolveOptions } from "../../pipeline/core/plugin.ts";
import type { Batch } from "../../schemas/batch.ts";
import process from "node:process";

import type { BenchRow } from "./_types.ts";
import { makeRng, synthetic } from "./_mi_data.ts";

function digamma(x: number): number {
  let r = 0;
  while (x < 6) {
    r -= 1 / x;
    x += 1;
  }
  const f = 1 / (x * x);
  return r + Math.log(x) - 0.5 / x - f * (1 / 12 - f * (1 / 120 - f * (1 / 252 - f * (1 / 240 - f / 132))));
}

/** Per-pair reference KSG: brute force over all samples, nothing reused between pairs. */
export function referenceKsg(x: Float32Array, y: Float32Array, k: number): number {
  const n = x.length;
  const best = new Float64Array(k);
  let total = 0;
  for (let i = 0; i < n; i++) {
    best.fill(Infinity);
    const xi = x[i], yi = y[i];
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const d = Math.max(Math.abs(xi - x[j]), Math.abs(yi - y[j]));
      if (d < best[k - 1]) {
        let m = k - 1;
        while (m > 0 && best[m - 1] > d) {
          best[m] = best[m - 1];
          m--;
        }
        best[m] = d;
      }
    }
    const r = best[k - 1];
    let nx = 0, ny = 0;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      if (Math.abs(xi - x[j]) < r || (r === 0 && xi === x[j])) nx++;
      if (Math.abs(yi - y[j]) < r || (r === 0 && yi === y[j])) ny++;
    }
    total += digamma(nx + 1) + digamma(ny + 1);
  }
  return digamma(n) + digamma(k) - total / n;
}

function samplePairs(N: number, count: number, seed: number): Int32Array {
  const rng = makeRng(seed);
  const out = new Int32Array(2 * count);
  for (let p = 0; p < count; p++) {
    const a = Math.floor(rng.u() * N);
    let b = Math.floor(rng.u() * (N - 1));
    if (b >= a) b++;
    out[2 * p] = Math.min(a, b);
    out[2 * p + 1] = Math.max(a, b);
  }
  return out;
}

function allPairs(N: number): Int32Array {
  const out = new Int32Array(N * (N - 1));
  let at = 0;
  for (let a = 0; a < N; a++) for (let b = a + 1; b < N; b++) (out[at++] = a), (out[at++] = b);
  return out;
}

/** Runs the benchmark and returns its rows. */
export async function bench(args: { quick: boolean; full?: boolean }): Promise<BenchRow[]> {
  const N = args.quick ? 128 : 768, n = args.quick ? 2000 : 10000;
  const totalPairs = (N * (N - 1)) / 2;
  const threads = Math.max(1, Math.min(8, navigator.hardwareConcurrency ?? 1));
  const cols = synthetic(N, n);
  const rows: BenchRow[] = [];

  // 1. KSG
  const pairs = args.full ? allPairs(N) : samplePairs(N, args.quick ? 400 : 4000, 1);
  const P = pairs.length / 2;
  let t = performance.now();
  const fast = ksgPairs(cols, n, pairs, 3, threads);
  const fastSec = (performance.now() - t) / 1000;
  // the per-neuron preparation is done once whatever the number of pairs: only the pair part is extrapolated
  const fastAll = args.full ? fastSec : fast.prepSeconds + ((fastSec - fast.prepSeconds) * totalPairs) / P;
  const refPairs = args.quick ? 4 : 3;
  t = performance.now();
  for (let p = 0; p < refPairs; p++) {
    const a = pairs[2 * p], b = pairs[2 * p + 1];
    const ref = referenceKsg(cols.subarray(a * n, a * n + n), cols.subarray(b * n, b * n + n), 3);
    if (Math.abs(ref - fast.mi[p]) > 1e-9) {
      throw new Error(
        `Cannot trust the benchmark as infotap and the reference differ: current value is ${fast.mi[p]} vs ${ref}`,
      );
    }
  }
  const refPerPair = (performance.now() - t) / 1000 / refPairs;
  const refAll = (refPerPair * totalPairs) / threads;
  rows.push({
    name: `KSG k=3, ${N} neurons x ${n} samples, all ${totalPairs} within-layer pairs`,
    value: fastAll,
    unit: "s",
    reference: refAll,
    ratio: refAll / fastAll,
    note:
      `${threads} threads; ${
        args.full ? "all pairs timed" : `timed on ${P} random pairs, extrapolated (per-neuron preparation ` +
          `${fast.prepSeconds.toFixed(1)} s, counted once)`
      }; ` +
      `reference: brute-force KSG per pair (${refPairs} pairs timed, ${
        refPerPair.toFixed(3)
      } s/pair, / ${threads} cores)`,
  });
  // one thread, all pairs among the first m neurons: the per-core figure (not affected by how many cores were
  // free), with the per-neuron preparation amortised over m - 1 pairs per neuron instead of N - 1
  const m = args.quick ? 15 : 29;
  const sub = cols.subarray(0, m * n);
  // the CPU time of the per-neuron preparation alone (the same work ksgPairs does once per neuron first)
  const prep0 = process.cpuUsage();
  for (let a = 0; a < m; a++) prepNeuron(sub.subarray(a * n, a * n + n));
  const prepCpu = process.cpuUsage(prep0).user / 1e6;
  t = performance.now();
  const cpu0 = process.cpuUsage();
  const one = ksgPairs(sub, n, allPairs(m), 3, 1);
  const oneCpu = process.cpuUsage(cpu0).user / 1e6;
  const oneSec = (performance.now() - t) / 1000;
  const P1 = one.mi.length;
  rows.push({
    name: `KSG k=3 per pair at ${n} samples, one thread`,
    value: (oneSec * 1000) / P1,
    unit: "ms",
    reference: refPerPair * 1000,
    ratio: refPerPair / (oneSec / P1),
    note: `all ${P1} pairs of ${m} neurons, including their preparation`,
  });
  rows.push({
    name: `KSG k=3 per pair at ${n} samples, one thread, CPU time`,
    value: (oneCpu * 1000) / P1,
    unit: "ms",
    note: `user CPU time of the same run (wall / CPU = ${(oneSec / oneCpu).toFixed(2)}: above 1 when other ` +
      `processes took the core); includes the preparation of the ${m} neurons`,
  });
  const pairCpu = (oneCpu - prepCpu) / P1;
  rows.push({
    name: `KSG k=3 per pair at ${n} samples, one thread, CPU time without the per-neuron preparation`,
    value: pairCpu * 1000,
    unit: "ms",
    note: `preparation: ${((prepCpu / m) * 1000).toFixed(1)} ms CPU per neuron, done once per neuron; ` +
      `all ${totalPairs} pairs on 2 free cores would take ${(pairCpu * totalPairs / 2 + prepCpu / m * N).toFixed(0)} s`,
  });

  // 2. Binned MI through the estimator, batches of 1,000 rows
  const options = resolveOptions(miPlugin, { "mi-estimator": "binned", "mi-bins": 16 });
  const rowsPerBatch = 1000;
  const batches: Batch[] = [];
  for (let r0 = 0; r0 < n; r0 += rowsPerBatch) {
    const m = Math.min(rowsPerBatch, n - r0);
    const values = new Float32Array(m * N);
    for (let r = 0; r < m; r++) for (let a = 0; a < N; a++) values[r * N + a] = cols[a * n + r0 + r];
    batches.push({
      numRows: m,
      step: null,
      label: null,
      sampleId: BigInt64Array.from({ length: m }, (_, i) => BigInt(r0 + i)),
      columns: [{ name: "fc1", width: N, values, metadata: new Map() }],
      file: "bench",
      index: batches.length,
    } as unknown as Batch);
  }
  t = performance.now();
  const scanner = new RangeScanner();
  for (const b of batches) scanner.update(b);
  const est = miPlugin.create(options, { byStep: false, seed: 0, scan: scanner.result() });
  for (const b of batches) await est.update(b);
  const res = await est.result();
  const binnedSec = (performance.now() - t) / 1000;
  if (res.neuron_mi.numRows !== totalPairs) throw new Error("Cannot trust the benchmark: wrong pair count");
  // reference: per pair, codes and a contingency table from the raw columns
  const scan = scanner.result() as unknown as { lo: number; hi: number };
  const refBinPairs = samplePairs(N, args.quick ? 200 : 300, 2);
  t = performance.now();
  let check = 0;
  for (let p = 0; p < refBinPairs.length / 2; p++) {
    const a = refBinPairs[2 * p], b = refBinPairs[2 * p + 1];
    const table = new Map<number, number>(), ma = new Map<number, number>(), mb = new Map<number, number>();
    for (let r = 0; r < n; r++) {
      const code = (v: number) => Math.min(15, Math.max(0, Math.floor(((v - scan.lo) / (scan.hi - scan.lo)) * 16)));
      const x = code(cols[a * n + r]), y = code(cols[b * n + r]);
      table.set(x * 16 + y, (table.get(x * 16 + y) ?? 0) + 1);
      ma.set(x, (ma.get(x) ?? 0) + 1);
      mb.set(y, (mb.get(y) ?? 0) + 1);
    }
    let mi = 0;
    for (const [key, c] of table) mi += (c / n) * Math.log((c * n) / (ma.get(key >> 4)! * mb.get(key & 15)!));
    check += mi;
  }
  const refBinAll = ((performance.now() - t) / 1000) * totalPairs / (refBinPairs.length / 2);
  rows.push({
    name: `binned MI, 16 bins, ${N} neurons x ${n} samples, all ${totalPairs} pairs (streamed, 1,000-row batches)`,
    value: binnedSec,
    unit: "s",
    reference: refBinAll,
    ratio: refBinAll / binnedSec,
    note: `one thread, includes the first pass; reference: contingency table per pair (Map), ${
      refBinPairs.length / 2
    } pairs timed, extrapolated (checksum ${check.toFixed(3)})`,
  });
  return rows;
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick"), full = Deno.args.includes("--full");
  for (const r of await bench({ quick, full })) console.log(JSON.stringify(r));
}
