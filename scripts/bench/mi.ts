/**
 * Benchmark of the `mi` estimator (issues 3 and 17) on one synthetic layer of 768 neurons x 10,000 samples
 * (quick: 128 x 2,000): KSG against the paper's per-pair scikit-learn code, then on all pairs on every thread, and
 * the binned estimator against the one-hot matrix product in numpy (and PyTorch where it imports), the peers run
 * through Python in the same run on the same data and their values checked against infotap's before a time is
 * printed. Data, peers and figures: docs/bench/mi.md.
 *
 * Run alone: `node_modules/deno/deno run -A scripts/bench/mi.ts [--quick] [--full]`.
 *
 * @module
 */
import { ksgPairs } from "../../plugins/mi/ksg_pairs.ts";
import { threadStats } from "../../plugins/kernels/threads.ts";
import { prepArrays, prepNeuron } from "../../plugins/mi/ksg.ts";
import { miPlugin } from "../../plugins/mi/mi.ts";
import { RangeScanner } from "../../plugins/_shared/binning.ts";
import { resolveOptions } from "../../pipeline/core/plugin.ts";
import type { Batch } from "../../schemas/batch.ts";
import process from "node:process";

import type { BenchRow } from "./_types.ts";
import { makeRng, synthetic } from "./_mi_data.ts";
import { findPython, runPeer } from "./_python.ts";
import { digamma } from "../../plugins/mi/_ksg_reference.ts";
import { nativeKernels } from "../../plugins/kernels/native/native.ts";
import { defaultThreads } from "../../plugins/kernels/threads.ts";

/** Which kernels ran: the native ones where `npm install` built them and the CPU has AVX-512. */
const KERNELS = nativeKernels?.ksgKernel === 2
  ? "native kernels (AVX-512)"
  : nativeKernels?.ksgKernel === 1
  ? "native kernels (generic C)"
  : "WebAssembly kernels";

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

/**
 * Pairs in the order of a real run (`(a, b)` for every `b > a`, `a` ascending) for random neurons `a`, whole rows until
 * at least `count` pairs: a pair's cost depends on the neurons the kernel already holds, so random pairs would cost
 * more than the run they stand for.
 */
function samplePairs(N: number, count: number, seed: number): Int32Array {
  const rng = makeRng(seed);
  const chosen = new Set<number>();
  let total = 0;
  while (total < count && chosen.size < N - 1) {
    const a = Math.floor(rng.u() * (N - 1));
    if (chosen.has(a)) continue;
    chosen.add(a);
    total += N - 1 - a;
  }
  const out = new Int32Array(2 * total);
  let at = 0;
  for (const a of [...chosen].sort((x, y) => x - y)) {
    for (let b = a + 1; b < N; b++) (out[at++] = a), (out[at++] = b);
  }
  return out;
}

function allPairs(N: number): Int32Array {
  const out = new Int32Array(N * (N - 1));
  let at = 0;
  for (let a = 0; a < N; a++) for (let b = a + 1; b < N; b++) (out[at++] = a), (out[at++] = b);
  return out;
}

/** CPU seconds of this process (all its threads) since `from`. */
function cpuSince(from: { user: number; system: number }): number {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1e6;
}

function ms(s: number): string {
  return (s * 1000).toFixed(2);
}

/** Runs the benchmark and returns its rows. */
export async function bench(args: { quick: boolean; full?: boolean }): Promise<BenchRow[]> {
  const N = args.quick ? 128 : 768, n = args.quick ? 2000 : 10000;
  const totalPairs = (N * (N - 1)) / 2;
  const threads = Math.max(1, Math.min(8, navigator.hardwareConcurrency ?? 1));
  const cols = synthetic(N, n);
  const rows: BenchRow[] = [];
  const python = await findPython("numpy,scipy,sklearn");
  const noPeer = "scikit-learn not found (apt-get install -y python3-sklearn, or INFOTAP_PYTHON=/path/to/python)";

  // 1. KSG per pair, one thread: all pairs of the first m neurons (preparation included), against the paper's
  //    per-pair scikit-learn code on the same pairs, values checked equal.
  const m = args.quick ? 15 : 32;
  const sub = cols.subarray(0, m * n);
  const subPairs = allPairs(m);
  const P1 = subPairs.length / 2;
  const prep0 = process.cpuUsage();
  // the preparation alone, into one set of arrays (no garbage left for the collector to free during the timing)
  const into = prepArrays(n, false);
  for (let a = 0; a < m; a++) prepNeuron(sub.subarray(a * n, a * n + n), n, into);
  const prepCpu = cpuSince(prep0);
  let t = performance.now();
  const cpu0 = process.cpuUsage();
  const one = ksgPairs(sub, n, subPairs, 3, 1);
  const oneCpu = cpuSince(cpu0);
  const oneSec = (performance.now() - t) / 1000;
  let paper: { cpu: number; wall: number } | null = null;
  if (python) {
    const peer = await runPeer<{ mi: number[] }>(python, sub, n, { what: "paper_ksg", k: 3, pairs: [...subPairs] });
    let worst = 0;
    peer.mi.forEach((v, p) => (worst = Math.max(worst, Math.abs(v - one.mi[p]))));
    if (!(worst <= 1e-9)) {
      throw new Error(`Cannot trust the benchmark as infotap and the paper's code differ: current value is ${worst}`);
    }
    paper = { cpu: peer.cpu_s / P1, wall: peer.wall_s / P1 };
  }
  const cpuPair = oneCpu / P1, wallPair = oneSec / P1;
  rows.push({
    name: `KSG k=3 per pair at ${n} samples, one thread, CPU time: infotap vs the paper's scikit-learn code`,
    value: cpuPair * 1000,
    unit: "ms",
    reference: paper ? paper.cpu * 1000 : undefined,
    ratio: paper ? paper.cpu / cpuPair : undefined,
    note: paper
      ? `all ${P1} pairs of ${m} neurons, infotap's per-neuron preparation included, ${KERNELS}; reference: NearestNeighbors + ` +
        `2 KDTree per pair as technion-cs-nlp/Information-Reflects-Memorization (scikit-learn, same pairs, values ` +
        `equal to 1e-9); CPU time of each process`
      : noPeer,
  });
  rows.push({
    name: `KSG k=3 per pair at ${n} samples, one thread, wall time: infotap vs the paper's scikit-learn code`,
    value: wallPair * 1000,
    unit: "ms",
    reference: paper ? paper.wall * 1000 : undefined,
    ratio: paper ? paper.wall / wallPair : undefined,
    note: `same run as the row above (wall / CPU: infotap ${(oneSec / oneCpu).toFixed(2)}${
      paper ? `, scikit-learn ${(paper.wall / paper.cpu).toFixed(2)}` : ""
    }; above 1 when other processes took the core)`,
  });
  const pairCpu = (oneCpu - prepCpu) / P1;
  rows.push({
    name: `KSG k=3 per pair at ${n} samples, one thread, CPU time without the per-neuron preparation`,
    value: pairCpu * 1000,
    unit: "ms",
    note: `preparation: ${ms(prepCpu / m)} ms CPU per neuron, done once per neuron; all ${totalPairs} pairs on ` +
      `${threads} free cores would take ${(pairCpu * totalPairs / threads + prepCpu / m * N).toFixed(0)} s`,
  });
  if (nativeKernels?.ksgKernel === 2) {
    // the generic C kernel, which CPUs without AVX-512 run, on the same pairs (capped to it for this row only)
    nativeKernels.symbols.itn_ksg_kernel(1);
    const g0 = process.cpuUsage(), gt = performance.now();
    let generic: { mi: Float64Array };
    try {
      generic = ksgPairs(sub, n, subPairs, 3, 1);
    } finally {
      nativeKernels.symbols.itn_ksg_kernel(2);
    }
    const gCpu = cpuSince(g0) / P1, gWall = (performance.now() - gt) / 1000 / P1;
    if (!generic.mi.every((v, p) => Object.is(v, one.mi[p]))) {
      throw new Error("Cannot trust the benchmark as the generic and AVX-512 kernels differ: current value is unequal");
    }
    rows.push({
      name: `(extra) KSG k=3 per pair at ${n} samples, one thread, CPU time, generic C kernel (CPUs without AVX-512)`,
      value: gCpu * 1000,
      unit: "ms",
      reference: paper ? paper.cpu * 1000 : undefined,
      ratio: paper ? paper.cpu / gCpu : undefined,
      note: `the same pairs, preparation included, the kernel capped to the generic one (values equal to the AVX-512 ` +
        `kernel's); wall ${ms(gWall)} ms; reference: the paper's code as above`,
    });
  }

  // 2. KSG, all within-layer pairs of the layer on every thread: timed on a sample of pairs (or all with --full).
  const pairs = args.full ? allPairs(N) : samplePairs(N, args.quick ? 400 : 4000, 1);
  const P = pairs.length / 2;
  // worker threads start once per process (module load, compilation): started before the timing, as they would be
  // long before the end of a real run, so that their start is not multiplied by the extrapolation
  for (let tries = 0, before = threadStats.workerChunks; threads > 1 && tries < 100; tries++) {
    ksgPairs(cols.subarray(0, 6 * n), n, allPairs(6), 3, threads);
    if (threadStats.workerChunks > before) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t = performance.now();
  const cpuAll0 = process.cpuUsage();
  const fast = ksgPairs(cols, n, pairs, 3, threads);
  const fastSec = (performance.now() - t) / 1000;
  const fastCpu = cpuSince(cpuAll0);
  // the per-neuron preparation is done once whatever the number of pairs: only the pair part is extrapolated
  const fastAll = args.full ? fastSec : fast.prepSeconds + ((fastSec - fast.prepSeconds) * totalPairs) / P;
  const paperAll = paper ? (paper.wall * totalPairs) / threads : undefined;
  rows.push({
    name: `KSG k=3, ${N} neurons x ${n} samples, all ${totalPairs} within-layer pairs, wall`,
    value: fastAll,
    unit: "s",
    reference: paperAll,
    ratio: paperAll ? paperAll / fastAll : undefined,
    note: `${threads} threads (CPU ${(fastCpu / fastSec).toFixed(2)} cores busy on average); ${
      args.full
        ? "all pairs timed"
        : `timed on ${P} pairs (every pair of random first neurons, in the run's order), extrapolated (per-neuron preparation ` +
          `${fast.prepSeconds.toFixed(1)} s, counted once)`
    }; workers started before the timing; reference: the paper's per-pair code at its wall time per pair above, / ${threads} cores`,
  });
  // extra row: a brute-force O(n^2) KSG per pair (nobody's tool; kept as the definition, labelled as such)
  const refPairs = args.quick ? 4 : 2;
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
  const brutePerPair = (performance.now() - t) / 1000 / refPairs;
  rows.push({
    name: `(extra) KSG k=3 per pair at ${n} samples, one thread: infotap vs a brute-force O(n^2) KSG`,
    value: wallPair * 1000,
    unit: "ms",
    reference: brutePerPair * 1000,
    ratio: brutePerPair / wallPair,
    note: `not a peer: the definition by brute force (TypeScript, ${refPairs} pairs timed), values equal to 1e-9`,
  });

  // 3. Binned MI through the estimator, batches of 1,000 rows, against the one-hot matrix product a user would write
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
  const binCpu0 = process.cpuUsage();
  const scanner = new RangeScanner();
  for (const b of batches) scanner.update(b);
  const est = miPlugin.create(options, { byStep: false, seed: 0, scan: scanner.result() });
  for (const b of batches) await est.update(b);
  const res = await est.result();
  const binnedSec = (performance.now() - t) / 1000;
  const binnedCpu = cpuSince(binCpu0);
  if (res.neuron_mi.numRows !== totalPairs) throw new Error("Cannot trust the benchmark: wrong pair count");
  const miCol = res.neuron_mi.getChild("mi")!;
  let ours = 0;
  for (let p = 0; p < totalPairs; p++) ours += miCol.get(p) as number;
  const binName = `binned MI, 16 bins, ${N} neurons x ${n} samples, all ${totalPairs} pairs`;
  for (const what of ["binned_numpy", "binned_torch"] as const) {
    const lib = what === "binned_numpy" ? "numpy" : "PyTorch";
    const py = what === "binned_numpy" ? python : await findPython("numpy,scipy,sklearn,torch");
    let peer: { checksum: number; cpu_s: number; wall_s: number } | null = null;
    if (py) {
      peer = await runPeer<{ checksum: number }>(py, cols, n, { what, bins: 16 });
      if (!(Math.abs(peer.checksum - ours) <= 1e-9 * totalPairs)) {
        throw new Error(
          `Cannot trust the benchmark as infotap and ${lib} differ: current value is ${ours} vs ${peer.checksum}`,
        );
      }
    }
    for (const kind of ["CPU", "wall"] as const) {
      const mine = kind === "CPU" ? binnedCpu : binnedSec;
      const theirs = peer ? (kind === "CPU" ? peer.cpu_s : peer.wall_s) : undefined;
      rows.push({
        name: `${binName}, ${kind} time: infotap vs ${lib} one-hot matrix product`,
        value: mine,
        unit: "s",
        reference: theirs,
        ratio: theirs ? theirs / mine : undefined,
        note: !peer
          ? `${lib} not found`
          : kind === "CPU"
          ? `infotap: the estimator on 1,000-row batches, first pass included, ${KERNELS}, counts on ${
            nativeKernels?.avx512 ? `${defaultThreads()} threads` : "one thread"
          }; ${lib}: codes, ` +
            `one-hot (n x ${N * 16}) float32, O^T O (all joint counts; BLAS threads), MI of every pair; sums of MI ` +
            `equal to 1e-9 a pair`
          : `same run as the CPU row`,
      });
    }
  }
  // extra row: a per-pair contingency table in a Map (not a peer; labelled as such)
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
    name: `(extra) ${binName}: infotap vs a per-pair contingency table (Map)`,
    value: binnedSec,
    unit: "s",
    reference: refBinAll,
    ratio: refBinAll / binnedSec,
    note: `not a peer: TypeScript Map per pair, ${refBinPairs.length / 2} pairs timed, extrapolated (checksum ${
      check.toFixed(3)
    })`,
  });
  return rows;
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick"), full = Deno.args.includes("--full");
  for (const r of await bench({ quick, full })) console.log(JSON.stringify(r));
}
