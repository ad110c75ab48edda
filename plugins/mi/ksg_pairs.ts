/**
 * KSG mutual information for many neuron pairs over one sample set, spread over threads.
 *
 * Each neuron is prepared once ({@linkcode prepNeuron}: sorted values, ranks, grid strips) straight into shared
 * memory (tie groups kept only for neurons with a heavy point); this thread and worker threads take chunks of pairs
 * (the thread runner, plugins/kernels/threads.ts), a chunk in one call of the native kernel where it runs, and write
 * each pair's estimate into a shared array. Each pair's estimate is exact fixed-point arithmetic, so the results do
 * not depend on who computes it. Pairs involving a neuron with non-finite values use the rows where both neurons
 * are finite (prepared per pair); `samples` reports the rows each pair used.
 *
 * @module
 */
import { runChunks } from "../kernels/threads.ts";
import { nativeKernels, nativeSwitch } from "../kernels/native/native.ts";
import {
  fenceLength,
  gridSize,
  ksgNative,
  ksgPair,
  KsgScratch,
  type KsgValues,
  type NeuronPrep,
  prepFinite,
  prepNeuron,
} from "./ksg.ts";

/** Shared inputs of a pair computation (plain or SharedArrayBuffer-backed arrays). */
export interface PairJob {
  /** Rows (samples). */
  n: number;
  /** KSG neighbours. */
  k: number;
  /** Neuron-major values, `neurons * n` (float64: `--ksg-jitter`). */
  cols: KsgValues;
  /** Per neuron: 1 when all its n values are finite. */
  finite: Uint8Array;
  /** Prepared finite neurons ({@linkcode NeuronPrep}), neuron-major: `neurons * n` each, `edge` `neurons * (G+1)`. */
  sorted: KsgValues;
  rank: Int32Array;
  order: Int32Array;
  /**
   * Tie groups (`group`, `tie`) of the neurons that have a heavy point (a tie group of more than `k` samples: the
   * only pairs that read them), `n` each at the neuron's `tieSlot` (-1: none kept; empty arrays where no neuron
   * has one).
   */
  group: Int32Array;
  tie: Int32Array;
  tieSlot: Int32Array;
  cell: Uint16Array;
  edge: Int32Array;
  strips: Int32Array;
  /** Fence tables, `neurons * fenceLength(n)`, with their origins and scales per neuron. */
  fence: Int32Array;
  fenceLo: Float64Array;
  fenceScale: Float64Array;
  /** Per neuron, its largest tie group. */
  maxTie: Int32Array;
  /** Pairs as `[a0, b0, a1, b1, ...]`. */
  pairs: Int32Array;
  /** Outputs per pair. */
  mi: Float64Array;
  samples: Int32Array;
  /** Pairs per chunk. */
  chunk: number;
}

/** The most pairs per chunk. */
const CHUNK = 64;

/** The worker module of KSG pair jobs. */
const KSG_WORKER = new URL("./_ksg_worker.ts", import.meta.url);

/** The tie groups of a neuron without a heavy point: never read. */
const NONE = new Int32Array(0);

function view(job: PairJob, a: number): NeuronPrep {
  const n = job.n, o = a * n, G1 = gridSize(n) + 1, slot = job.tieSlot[a];
  return {
    vals: job.cols.subarray(o, o + n),
    sorted: job.sorted.subarray(o, o + n),
    rank: job.rank.subarray(o, o + n),
    order: job.order.subarray(o, o + n),
    group: slot < 0 ? NONE : job.group.subarray(slot * n, slot * n + n),
    tie: slot < 0 ? NONE : job.tie.subarray(slot * n, slot * n + n),
    cell: job.cell.subarray(o, o + n),
    edge: job.edge.subarray(a * G1, a * G1 + G1),
    strips: job.strips[a],
    fence: job.fence.subarray(a * fenceLength(n), (a + 1) * fenceLength(n)),
    fenceLo: job.fenceLo[a],
    fenceScale: job.fenceScale[a],
    maxTie: job.maxTie[a],
  };
}

/** The function that computes chunk `c` of `job` (pairs `c * chunk ..`) on this thread (and on the workers). */
export function pairChunks(job: PairJob): (c: number) => void {
  const { n, k, pairs, mi, samples, finite, cols } = job;
  const P = pairs.length / 2;
  const scratch = new KsgScratch(n);
  // one view per neuron, kept: the kernel skips copying a neuron it holds already (same arrays)
  const views: NeuronPrep[] = [];
  const prep = (a: number) => views[a] ??= view(job, a);
  // the native kernel takes a chunk's pairs in one call where it can (what it leaves is done below)
  const lib =
    k === 3 && cols instanceof Float32Array && job.sorted instanceof Float32Array && nativeKernels?.ksgKernel &&
      nativeSwitch.use && ksgNative.use
      ? nativeKernels
      : null;
  const done = new Uint8Array(job.chunk);
  return (c) => {
    const p0 = c * job.chunk, p1 = Math.min(P, p0 + job.chunk);
    if (lib) {
      lib.symbols.itn_ksg_pairs(
        lib.ksgCtx,
        n,
        pairs.subarray(2 * p0, 2 * p1),
        p1 - p0,
        cols,
        job.cell,
        job.order,
        job.sorted,
        job.edge,
        gridSize(n) + 1,
        job.strips,
        job.fence,
        fenceLength(n),
        job.fenceLo,
        job.fenceScale,
        job.group,
        job.tie,
        job.tieSlot,
        finite,
        scratch.fixed.values,
        scratch.psi,
        mi.subarray(p0, p1),
        done,
      );
    }
    for (let p = p0; p < p1; p++) {
      if (lib && done[p - p0]) {
        samples[p] = n;
        continue;
      }
      const a = pairs[2 * p], b = pairs[2 * p + 1];
      if (finite[a] && finite[b]) {
        mi[p] = ksgPair(prep(a), prep(b), k, scratch);
        samples[p] = n;
      } else {
        const xa = cols.subarray(a * n, a * n + n), xb = cols.subarray(b * n, b * n + n);
        const keep: number[] = [];
        for (let r = 0; r < n; r++) if (Number.isFinite(xa[r]) && Number.isFinite(xb[r])) keep.push(r);
        // the pair's finite rows, in the columns' precision
        const x = cols instanceof Float64Array ? new Float64Array(keep.length) : new Float32Array(keep.length);
        const y = cols instanceof Float64Array ? new Float64Array(keep.length) : new Float32Array(keep.length);
        keep.forEach((r, i) => (x[i] = xa[r], y[i] = xb[r]));
        samples[p] = x.length;
        mi[p] = x.length > k ? ksgPair(prepNeuron(x), prepNeuron(y), k, new KsgScratch(x.length)) : NaN;
      }
    }
  };
}

function alloc<T>(C: { new (b: ArrayBufferLike): T; BYTES_PER_ELEMENT: number }, length: number, shared: boolean): T {
  const bytes = Math.max(8, Math.ceil((length * C.BYTES_PER_ELEMENT) / 8) * 8);
  const buf = shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
  return new (C as unknown as new (b: ArrayBufferLike, o: number, l: number) => T)(buf, 0, length);
}

/**
 * KSG estimates for `pairs` of neurons whose values are `cols` (neuron-major, `n` rows each), using up to
 * `threads` threads, this one included (1 = this thread only); `prepSeconds` is the wall time of the per-neuron
 * preparation (once per neuron, on this thread, before the pairs). `progress` is told the pairs taken so far.
 */
export function ksgPairs(
  cols: KsgValues,
  n: number,
  pairs: Int32Array,
  k: number,
  threads: number,
  progress?: (pairs: number) => void,
): { mi: Float64Array; samples: Int32Array; prepSeconds: number } {
  const t0 = performance.now();
  const neurons = n > 0 ? cols.length / n : 0;
  const P = pairs.length / 2;
  const shared = threads > 1;
  const used = new Uint8Array(neurons);
  for (let p = 0; p < 2 * P; p++) used[pairs[p]] = 1;
  const job: PairJob = {
    n,
    k,
    cols: shared ? copyShared(cols) : cols,
    finite: alloc(Uint8Array, neurons, shared),
    sorted: cols instanceof Float64Array
      ? alloc(Float64Array, neurons * n, shared)
      : alloc(Float32Array, neurons * n, shared),
    rank: alloc(Int32Array, neurons * n, shared),
    order: alloc(Int32Array, neurons * n, shared),
    group: NONE,
    tie: NONE,
    tieSlot: alloc(Int32Array, neurons, shared).fill(-1),
    cell: alloc(Uint16Array, neurons * n, shared),
    edge: alloc(Int32Array, neurons * (gridSize(n) + 1), shared),
    strips: alloc(Int32Array, neurons, shared),
    fence: alloc(Int32Array, neurons * fenceLength(n), shared),
    fenceLo: alloc(Float64Array, neurons, shared),
    fenceScale: alloc(Float64Array, neurons, shared),
    maxTie: alloc(Int32Array, neurons, shared),
    pairs: shared ? copyShared(pairs) : pairs,
    mi: alloc(Float64Array, P, shared),
    samples: alloc(Int32Array, P, shared),
    // chunks of up to 64 pairs, at least four per thread (the chunking never changes a pair's estimate)
    chunk: Math.max(1, Math.min(CHUNK, Math.ceil(P / (4 * threads)))),
  };
  // tie groups into one pair of arrays, kept only for the neurons with a heavy point (the job's arrays made at the
  // first such neuron)
  const group = new Int32Array(n), tie = new Int32Array(n);
  for (let a = 0; a < neurons; a++) {
    if (!used[a]) continue;
    // prepared into the job's arrays (no copies); pairs with a neuron that is not all finite are prepared per pair
    const prep = prepFinite(cols.subarray(a * n, a * n + n), n, { ...view(job, a), group, tie });
    job.finite[a] = prep ? 1 : 0;
    if (!prep) continue;
    job.strips[a] = prep.strips;
    job.fenceLo[a] = prep.fenceLo;
    job.fenceScale[a] = prep.fenceScale;
    job.maxTie[a] = prep.maxTie;
    if (prep.maxTie > k) {
      if (job.group === NONE) {
        job.group = alloc(Int32Array, neurons * n, shared);
        job.tie = alloc(Int32Array, neurons * n, shared);
      }
      job.tieSlot[a] = a;
      job.group.set(group, a * n);
      job.tie.set(tie, a * n);
    }
  }
  const prepSeconds = (performance.now() - t0) / 1000;
  const chunks = Math.ceil(P / job.chunk);
  const told = progress ? (c: number) => progress(Math.min(P, c * job.chunk)) : undefined;
  runChunks({ worker: KSG_WORKER, kind: "ksg", message: job, chunks, run: pairChunks(job), progress: told }, threads);
  return { mi: job.mi.slice(), samples: job.samples.slice(), prepSeconds };
}

function copyShared<T extends Float32Array | Float64Array | Int32Array>(a: T): T {
  const C = a.constructor as unknown as {
    new (b: ArrayBufferLike, o: number, l: number): T;
    BYTES_PER_ELEMENT: number;
  };
  const out = new C(new SharedArrayBuffer(Math.max(8, a.byteLength)), 0, a.length);
  out.set(a as never);
  return out;
}
