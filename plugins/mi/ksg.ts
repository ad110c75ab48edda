/**
 * The KSG mutual-information kernel (Kraskov, Stoegbauer, Grassberger 2004, algorithm 1), exactly as
 * docs/science.md section 1 and scikit-learn's private `_compute_mi_cc` define it:
 *
 * `I = psi(n) + psi(k) - < psi(n_x + 1) + psi(n_y + 1) >`, Chebyshev norm in the joint space, `r_i` the distance
 * from sample i to its k-th nearest *other* sample, and `n_x` (`n_y`) the number of other samples j with
 * `|x_i - x_j| <= nextafter(r_i, 0)`, i.e. strictly closer than `r_i` when `r_i > 0`, and exactly equal when
 * `r_i == 0` (scikit-learn's `radius_neighbors(radius=nextafter(r, 0))`, whose test is `<=`). Negative estimates
 * are kept. Distances are `|a - b|` in float64, the same expression as a brute-force reference uses, so the
 * counts are identical, not just close.
 *
 * The mean `< psi(n_x + 1) + psi(n_y + 1) >` is formed from fixed-point terms: each `psi(m)` of the float64 table
 * {@linkcode digammaTable} rounded once to a multiple of `2^-36` ({@linkcode fixedPsi}; error at most `2^-37` per
 * term), summed exactly as integers (i64 in WebAssembly; in JavaScript one float64 accumulator of the integers, moved
 * exactly into `hi * 2^20 + lo` parts before it could reach 2^53), then {@linkcode ksgFromSum}: `psi(n) + psi(k) - S / (n 2^36)`. So the estimate is within `2^-36`
 * nats (plus one final rounding) of the mean of the float64 terms, and independent of the summation order: the
 * JavaScript and WebAssembly kernels, any number of threads and the WebGPU kernel (`plugins/mi/gpu_ksg.ts`, the same
 * integers) give the same bits.
 *
 * Speed: each neuron is prepared once (float32 values, sorted values, ranks with ties broken by sample index,
 * tie-group sizes, and a strip of about `n / G` samples per grid column, cut only between tie groups). Per pair,
 * the samples are bucketed into the `G x G` grid of strips (value-monotone cells). Cell by cell, each sample's k
 * nearest neighbours are found by scanning the 3 x 3 block of cells around it (k = 3: three locals, no array);
 * when the block's value-space border is nearer than the k-th distance, the exact rectangle of strips that can
 * hold closer samples is scanned too. `n_x`, `n_y` come from four interleaved branch-free binary searches in the
 * sorted marginals (their load latencies overlap), restricted to the scanned strips' rank ranges. Points shared
 * by more than k samples (e.g. ReLU zeros in both neurons) have radius 0 and are answered from their tie-group
 * sizes; they are stored once, weighted by their multiplicity, as neighbours of others. Cost per pair about
 * `O(n log n)` with a small constant, against `O(n^2)` for brute force. Inputs are float32 (the wire format's
 * type).
 *
 * For k = 3 (the default) the per-pair work runs in a WebAssembly SIMD kernel (`plugins/mi/ksg_wasm.ts`) in two
 * passes: the neighbour search (cells in Z order; two candidates per step, branch-free `pmin`/`pmax` top-4 lists;
 * on cells much higher than wide, or wider than high, in value space the block reaches further along the narrow
 * axis) stores each sample's radius; then a straight loop counts `n_x`, `n_y`: each neuron's fence table
 * ({@linkcode NeuronPrep.fence}: value buckets to sorted positions) gives a window of a few positions for each of
 * the four borders, verified against the sorted values (else the whole half range), searched in three branch-free
 * halvings. About 3-4x faster than this JavaScript, with the same bits: same distances, same counts, same integer
 * sum (`plugins/mi/mi_test.ts` checks it, and that both kernels keep the bits of the kernels before these passes).
 *
 * @module
 */
import { KSG_WASM, ksgKernels, MAX_HEAVY } from "./ksg_wasm.ts";
import { nativeKernels, nativeSwitch } from "../kernels/native/native.ts";

/** Values the kernel takes: float32 (the wire format's type), or float64 (`--ksg-jitter`'s jittered values). */
export type KsgValues = Float32Array | Float64Array;

/** One neuron's samples prepared for the KSG kernel (all arrays in sample order unless said otherwise). */
export interface NeuronPrep {
  /** Values in sample order. */
  vals: KsgValues;
  /** Values sorted ascending. */
  sorted: KsgValues;
  /** Position of each sample in `sorted` (ties broken by sample index). */
  rank: Int32Array;
  /** The sample at each position of `sorted` (the inverse of `rank`). */
  order: Int32Array;
  /** First position of each sample's value in `sorted` (the start of its tie group). */
  group: Int32Array;
  /** Size of each sample's tie group (1 when its value is unique). */
  tie: Int32Array;
  /** Grid strip of each sample: strips hold about `n / G` samples, tied values always share one. */
  cell: Uint16Array;
  /** First position in `sorted` of each strip, `G + 1` entries (`n` past the last strip). */
  edge: Int32Array;
  /** Number of strips (at most `G`). */
  strips: number;
  /**
   * Fence table of the marginal counts' searches, {@linkcode fenceLength} entries: entry `j` is the first position
   * in `sorted` whose bucket ({@linkcode fenceBucket} with {@linkcode fenceLo}, {@linkcode fenceScale}) is at least
   * `j`.
   */
  fence: Int32Array;
  /** Origin of the fence buckets (the 0.5% quantile, or its {@linkcode floatKey} where the scale is negative). */
  fenceLo: number;
  /**
   * Buckets per unit value (`FENCE_BUCKETS * n` between the 0.5% and 99.5% quantiles; 0 when they are equal);
   * negative where the buckets are over the values' bits ({@linkcode floatKey}: kept when that crowds them less).
   */
  fenceScale: number;
  /** The largest tie group's size (at most `k`: no sample of this neuron can be a heavy point). */
  maxTie: number;
}

/** The arrays of a {@linkcode NeuronPrep} that {@linkcode prepNeuron} can write into the caller's memory. */
export type PrepArrays = Pick<NeuronPrep, "sorted" | "rank" | "order" | "group" | "tie" | "cell" | "edge" | "fence">;

/**
 * The fence bucket of value `v`: `trunc((v - lo) * scale)` clamped to `[0, buckets - 1]` (NaN: 0), as the
 * WebAssembly kernel computes it (`i32.trunc_sat_f64_s` and two selects); with a negative `scale`, the same over
 * {@linkcode floatKey} of `v` with `|scale|` (a fence over the values' bits: about a logarithmic scale, for heavy
 * tails). Monotone in `v`, so a fence table built with it bounds where a value's position in the sorted values can
 * be.
 */
export function fenceBucket(v: number, lo: number, scale: number, buckets: number): number {
  const q = Math.trunc(((scale < 0 ? floatKey(v) : v) - lo) * Math.abs(scale));
  return q > 0 ? (q < buckets - 1 ? q : buckets - 1) : 0;
}

const KEY_F32 = new Float32Array(1), KEY_U32 = new Uint32Array(KEY_F32.buffer);

/**
 * The order-preserving 32 bits of `v` rounded to float32 (-0 as +0), as a number: monotone in `v`, and spaced
 * about logarithmically in it.
 */
export function floatKey(v: number): number {
  KEY_F32[0] = v + 0;
  const u = KEY_U32[0];
  return (u ^ ((u >> 31) | 0x80000000)) >>> 0;
}

/**
 * Fence buckets a sample. The native kernel reads eight positions from a border's bucket's first one, so one bucket
 * a sample rarely misses (four measured 3% slower there, the tables' memory four times as large; the WebAssembly
 * kernel was 2% faster with one too).
 */
export const FENCE_BUCKETS = 1;

/** Entries of a fence table for `n` samples: `FENCE_BUCKETS * max(n, 1) + 1`. */
export function fenceLength(n: number): number {
  return FENCE_BUCKETS * Math.max(1, n) + 1;
}

/**
 * The fence table of sorted values (see {@linkcode NeuronPrep.fence}), between the 0.5% and 99.5% quantiles, into
 * `fence` ({@linkcode fenceLength} entries); returns its origin and scale.
 */
function fences(sorted: KsgValues, fence: Int32Array): { fenceLo: number; fenceScale: number } {
  const n = sorted.length, M = fenceLength(n) - 1;
  const q0 = Math.floor(0.005 * (n - 1)), q1 = Math.ceil(0.995 * (n - 1));
  const lo = n > 0 ? sorted[q0] : 0, hi = n > 0 ? sorted[q1] : 0;
  let scale = hi > lo ? M / (hi - lo) : 0;
  if (!Number.isFinite(scale)) scale = 0;
  // entry j: how many positions have a bucket below j (buckets rise with the position)
  fence.fill(0);
  for (let p = 0; p < n; p++) fence[fenceBucket(sorted[p], lo, scale, M) + 1]++;
  let fenceLo = lo, fenceScale = scale;
  if (n > 0) {
    // the same over the values' bits, kept where its buckets are less crowded (sum of squared counts)
    const klo = floatKey(sorted[q0]), khi = floatKey(sorted[q1]);
    const ksc = khi > klo ? M / (khi - klo) : 0;
    const alt = new Int32Array(M + 1);
    for (let p = 0; p < n; p++) alt[fenceBucket(sorted[p], klo, -ksc, M) + 1]++;
    let s1 = 0, s2 = 0;
    for (let j = 1; j <= M; j++) (s1 += fence[j] * fence[j]), (s2 += alt[j] * alt[j]);
    if (s2 < s1 && ksc > 0) (fence.set(alt), (fenceLo = klo), (fenceScale = -ksc));
  }
  for (let j = 1; j <= M; j++) fence[j] += fence[j - 1];
  return { fenceLo, fenceScale };
}

/** Number of grid strips per axis for `n` samples (about 2 samples per cell on average). */
export function gridSize(n: number): number {
  return Math.max(1, Math.min(4096, Math.floor(Math.sqrt(n / 2))));
}

/** New arrays for one neuron's preparation (`sorted` in float64 where `f64`). */
export function prepArrays(n: number, f64: boolean): PrepArrays {
  return {
    sorted: f64 ? new Float64Array(n) : new Float32Array(n),
    rank: new Int32Array(n),
    order: new Int32Array(n),
    group: new Int32Array(n),
    tie: new Int32Array(n),
    cell: new Uint16Array(n),
    edge: new Int32Array(gridSize(n) + 1),
    fence: new Int32Array(fenceLength(n)),
  };
}

/**
 * Prepares one neuron's `n` finite values for {@linkcode ksgPair}: a Float64Array is kept in float64, anything else
 * becomes float32. The arrays are new, or `into`'s (the caller's memory, e.g. views of one shared buffer: no copy;
 * its `sorted` in the values' precision).
 */
export function prepNeuron(values: ArrayLike<number>, n = values.length, into?: PrepArrays): NeuronPrep {
  return prepFinite(values, n, into, false)!;
}

/**
 * {@linkcode prepNeuron} of values that may not all be finite: null where one is not (checked by the native
 * preparation where it runs: no JavaScript loop over the values; elsewhere skipped when `check` is false, for a
 * caller that knows them finite).
 */
export function prepFinite(
  values: ArrayLike<number>,
  n = values.length,
  into?: PrepArrays,
  check = true,
): NeuronPrep | null {
  const vals = (values instanceof Float32Array || values instanceof Float64Array) && values.length === n
    ? values
    : Float32Array.from({ length: n }, (_, i) => values[i]);
  const out = into ?? prepArrays(n, vals instanceof Float64Array);
  if (
    vals instanceof Float32Array && out.sorted instanceof Float32Array && nativeKernels !== null &&
    nativeSwitch.use && ksgNative.use
  ) {
    const prep = nativePrep(vals, n, out);
    if (prep === false) return null;
    if (prep !== null) return prep;
  }
  if (check) { for (let i = 0; i < n; i++) if (!Number.isFinite(vals[i])) return null; }
  const { rank, order, group, tie, cell, edge } = out;
  const used = new Int32Array(n); // tie-group sizes, at each group's first position
  let sorted: KsgValues;
  if (vals instanceof Float32Array && n <= MAX_KEYED) sorted = rankByKeys(vals, rank, group, used);
  else {
    sorted = vals.slice().sort();
    for (let i = 0; i < n; i++) {
      const v = vals[i];
      let lo = 0, hi = n; // first position with sorted[pos] >= v
      while (lo < hi) {
        const m = (lo + hi) >>> 1;
        if (sorted[m] < v) lo = m + 1;
        else hi = m;
      }
      group[i] = lo;
      rank[i] = lo + used[lo]++;
    }
  }
  out.sorted.set(sorted);
  let maxTie = 0;
  for (let i = 0; i < n; i++) (tie[i] = used[group[i]]), (order[rank[i]] = i), (maxTie = Math.max(maxTie, tie[i]));
  // Strips of about n/G samples each, cut only between tie groups (so no strip is empty and ties share one).
  const G = gridSize(n), target = n / G;
  edge.fill(n);
  const stripOf = new Uint16Array(n); // by sorted position
  let strip = 0, inStrip = 0;
  edge[0] = 0;
  for (let r = 0; r < n;) {
    const size = used[r];
    if (inStrip >= target && strip < G - 1) {
      edge[++strip] = r;
      inStrip = 0;
    }
    for (const end = r + size; r < end; r++) stripOf[r] = strip;
    inStrip += size;
  }
  const strips = n > 0 ? strip + 1 : 0;
  for (let i = 0; i < n; i++) cell[i] = stripOf[rank[i]];
  return { vals, ...out, strips, ...fences(out.sorted, out.fence), maxTie };
}

/**
 * {@linkcode prepNeuron} by the native kernel into `out` (`plugins/kernels/native/ksg.c`); false where a value is
 * not finite, null where it could not run.
 */
function nativePrep(vals: Float32Array, n: number, out: PrepArrays): NeuronPrep | null | false {
  const meta = new Float64Array(4);
  const { sorted, rank, order, group, tie, cell, edge, fence } = out;
  const k = nativeKernels!;
  const code = k.symbols.itn_ksg_prep(n, vals, sorted, rank, order, group, tie, cell, edge, fence, meta);
  if (code === -2) return false;
  if (code !== 0) return null;
  return { vals, ...out, strips: meta[0], fenceLo: meta[1], fenceScale: meta[2], maxTie: meta[3] };
}

/** The most samples {@linkcode rankByKeys} takes (its keys need `32 + log2(n)` bits, below 2^53). */
const MAX_KEYED = 2 ** 21 - 1;

/**
 * Ranks (ties by sample index), tie-group starts and sizes of float32 values by one native sort of packed keys:
 * the value's order-preserving 32 bits (-0 as +0) times `2^b` plus the sample index (exact below 2^53). The same
 * arrays as the per-sample binary searches of {@linkcode prepNeuron} (`n` at most {@linkcode MAX_KEYED}); returns
 * the values in that order (a zero's sign may sit elsewhere in its tie group than in a plain sort: it never changes
 * a comparison or a distance).
 */
function rankByKeys(vals: Float32Array, rank: Int32Array, group: Int32Array, used: Int32Array): Float32Array {
  const n = vals.length;
  const scale = 2 ** Math.max(1, Math.ceil(Math.log2(n + 1)));
  const keys = new Float64Array(n), sorted = new Float32Array(n);
  for (let i = 0; i < n; i++) keys[i] = floatKey(vals[i]) * scale + i; // -0 ranks as +0 (equal values)
  keys.sort();
  let start = 0;
  for (let p = 0; p < n; p++) {
    const k = keys[p], i = k - Math.floor(k / scale) * scale; // exact: a power-of-two scale
    sorted[p] = vals[i];
    if (p > 0 && sorted[p] !== sorted[p - 1]) start = p;
    rank[i] = p;
    group[i] = start;
    used[start]++;
  }
  return sorted;
}

/** `psi(m)` for integers `m = 0..n` (index 0 unused, NaN), by the recurrence `psi(m+1) = psi(m) + 1/m`. */
export function digammaTable(n: number): Float64Array {
  const t = new Float64Array(n + 1);
  t[0] = NaN;
  if (n >= 1) t[1] = -0.57721566490153286061;
  for (let m = 1; m < n; m++) t[m + 1] = t[m] + 1 / m;
  return t;
}

/**
 * Fixed-point scale of the `psi` terms: each `psi(m)` of {@linkcode digammaTable} is rounded once to a multiple
 * of `2^-36` ({@linkcode fixedPsi}), and the sums of `psi(n_x + 1) + psi(n_y + 1)` are exact integer sums of
 * those (the WebGPU kernel, plugins/mi/gpu_ksg.ts, sums the same integers).
 */
export const PSI_SCALE = 2 ** 36;
/** The JavaScript kernel's exact sums are flushed into `hi * 2^20 + lo` (`0 <= lo < 2^20` per flush). */
const PSI_SPLIT = 2 ** 20;

/** `round(psi(m) * 2^36)` for `m = 0..n+1` (0 at m = 0): as BigInts and as float64 (exact integers). */
export interface FixedPsi {
  /** The integers. */
  values: BigInt64Array;
  /** The same integers as float64 (exact: below 2^53 in magnitude). */
  float: Float64Array;
  /**
   * Samples (two terms each) whose float64 sum stays exact: at most `2^52` in magnitude. The JavaScript kernel
   * adds terms into one float64 and every `flushEvery` samples moves it, exactly, into `hi * 2^20 + lo` sums.
   */
  flushEvery: number;
}

/**
 * The fixed-point `psi` table for up to `n` samples (`m = 0..n+1`; entry `m` does not depend on `n`):
 * `round(psi(m) * 2^36)`, with `psi(m)` from {@linkcode digammaTable}. Rounding errs by at most `2^-37` per term.
 */
export function fixedPsi(n: number): FixedPsi {
  const psi = digammaTable(n + 1);
  const values = new BigInt64Array(n + 2), float = new Float64Array(n + 2);
  // each 64-bit integer written as its two 32-bit halves (little-endian): no BigInt a term
  const half = new Uint32Array(values.buffer), H = 2 ** 32;
  let most = 1;
  for (let m = 1; m <= n + 1; m++) {
    const v = Math.round(psi[m] * PSI_SCALE); // exact integer: |v| < 2^53
    const hi = Math.floor(v / H); // two's complement: v = hi * 2^32 + lo, 0 <= lo < 2^32
    (half[2 * m] = v - hi * H), (half[2 * m + 1] = hi >>> 0);
    float[m] = v;
    most = Math.max(most, Math.abs(v));
  }
  return { values, float, flushEvery: Math.max(1, Math.floor(2 ** 52 / (2 * most))) };
}

/**
 * The KSG estimate from the exact fixed-point sum over the `n` samples of `psi(n_x + 1) + psi(n_y + 1)` (units of
 * `2^-36`): `psi(n) + psi(k) - sum / (n 2^36)`, with `psi` from {@linkcode digammaTable} (at least `n + 1`
 * entries). Every KSG path (JavaScript, WebAssembly, WebGPU) ends here, so equal sums give equal bits.
 */
export function ksgFromSum(sum: bigint, n: number, k: number, psi: Float64Array): number {
  return psi[n] + psi[k] - Number(sum) / PSI_SCALE / n;
}

/** `floor(t / 2^20)` of an exact float64 integer `t` (exact: division by a power of two); `t - it * 2^20` is exact too. */
function high(t: number): number {
  return Math.floor(t / PSI_SPLIT);
}

/** The exact sum `hi * 2^20 + lo + t` of exact float64 integers. */
function joinSplit(hi: number, lo: number, t: number): bigint {
  const h = high(t);
  return BigInt(hi + h) * BigInt(PSI_SPLIT) + BigInt(lo + (t - h * PSI_SPLIT));
}

/** Per-thread scratch memory for {@linkcode ksgPair}, sized for `n` samples. */
export class KsgScratch {
  readonly n: number;
  readonly G: number;
  readonly psi: Float64Array;
  /** Fixed-point `psi` terms ({@linkcode fixedPsi}). */
  readonly fixed: FixedPsi;
  #js: JsScratch | null = null;
  constructor(n: number) {
    this.n = n;
    this.G = gridSize(n);
    this.psi = digammaTable(n + 1);
    this.fixed = fixedPsi(n);
  }
  /** The JavaScript kernel's arrays, made on its first use (the native and WebAssembly kernels have their own). */
  get js(): JsScratch {
    const n = this.n;
    return this.#js ??= {
      start: new Int32Array(this.G * this.G + 1),
      pxy: new Float64Array(2 * n),
      pw: new Int32Array(n),
      pxr: new Int32Array(n),
      pyr: new Int32Array(n),
    };
  }
}

/** The JavaScript kernel's scratch: cell starts, stored samples' values, weights and sorted positions. */
interface JsScratch {
  start: Int32Array;
  pxy: Float64Array;
  pw: Int32Array;
  pxr: Int32Array;
  pyr: Int32Array;
}

/** Inserts `d` (< best[last]) into the sorted `best`, dropping the largest; returns the new largest. */
function insert(best: Float64Array, last: number, d: number): number {
  let j = last;
  while (j > 0 && best[j - 1] > d) {
    best[j] = best[j - 1];
    j--;
  }
  best[j] = d;
  return best[last];
}

/** `n_y` of the last {@linkcode countBoth} call (a second return value without an allocation). */
let countY = 0;

/**
 * Returns `n_x` and sets {@linkcode countY} to `n_y`, where `n_x` counts the positions m != ax in `[lx, hx)` of the sorted `xs`
 * (`xs[ax] = x`) with `|x - xs[m]| < r` (`r > 0`; pass the smallest double for "equal"), and likewise `n_y`: the
 * four branch-free binary searches run interleaved in one loop, so their load latencies overlap.
 */
function countBoth(
  xs: KsgValues,
  lx: number,
  hx: number,
  ax: number,
  x: number,
  ys: KsgValues,
  ly: number,
  hy: number,
  ay: number,
  y: number,
  r: number,
): number {
  let b1 = lx, l1 = ax + 1 - lx, b2 = ax, l2 = hx - ax, b3 = ly, l3 = ay + 1 - ly, b4 = ay, l4 = hy - ay;
  while ((l1 | l2 | l3 | l4) > 1) {
    const h1 = l1 >>> 1, h2 = l2 >>> 1, h3 = l3 >>> 1, h4 = l4 >>> 1;
    b1 += h1 * +(x - xs[b1 + h1] >= r);
    b2 += h2 * +(xs[b2 + h2] - x < r);
    b3 += h3 * +(y - ys[b3 + h3] >= r);
    b4 += h4 * +(ys[b4 + h4] - y < r);
    l1 -= h1;
    l2 -= h2;
    l3 -= h3;
    l4 -= h4;
  }
  const nx = b2 - (b1 + +(x - xs[b1] >= r)), ny = b4 - (b3 + +(y - ys[b3] >= r));
  countY = ny;
  return nx;
}

/** The distance from `(x, y)` to the nearest border of a block whose outside lies beyond the given values. */
function bound(x: number, y: number, xLoV: number, xHiV: number, yLoV: number, yHiV: number): number {
  const bx = x - xLoV < xHiV - x ? x - xLoV : xHiV - x, by = y - yLoV < yHiV - y ? y - yLoV : yHiV - y;
  return bx < by ? bx : by;
}

/** Inserts the samples `[q0, q1)` into the sorted `best` (k+1 smallest distances); returns the largest. */
function scanRange(
  pxy: Float64Array,
  pw: Int32Array,
  q0: number,
  q1: number,
  x: number,
  y: number,
  best: Float64Array,
) {
  const last = best.length - 1;
  let kth = best[last];
  for (let q = q0; q < q1; q++) {
    const ax = Math.abs(x - pxy[2 * q]), ay = Math.abs(y - pxy[2 * q + 1]);
    if ((+(ax < kth) & +(ay < kth)) !== 0) {
      const d = ax > ay ? ax : ay;
      for (let m = pw[q]; m > 0 && d < kth; m--) kth = insert(best, last, d); // m identical samples count m times
    }
  }
  return kth;
}

/**
 * KSG mutual information (nats) of two prepared neurons over the same `n` samples; `k >= 1`, `n > k`.
 * NaN when `n <= k`.
 */
export function ksgPair(a: NeuronPrep, b: NeuronPrep, k: number, s: KsgScratch): number {
  const n = s.n;
  if (n <= k) return NaN;
  // Samples with at least k other samples at the same point have radius 0, so n_x and n_y are their tie
  // groups' sizes minus one: no search. Such a point is stored once, with its multiplicity as weight (this keeps
  // heavy ties, e.g. ReLU zeros, cheap).
  if (k === 3 && nativeKernels?.ksgKernel && nativeSwitch.use && ksgNative.use) {
    const sum = nativeTotal(a, b, n, s);
    if (sum !== null) return ksgFromSum(sum, n, k, s.psi);
  }
  const dup = duplicates(a, b, k, n);
  if (k === 3 && KSG_WASM !== null && ksgKernels.useWasm) {
    let heavy = 0;
    if (dup !== null) { for (let i = 0; i < n; i++) heavy += +(dup[i] > 0); }
    if (heavy <= MAX_HEAVY) return ksgFromSum(wasmTotal(KSG_WASM, a, b, n, dup, s), n, k, s.psi);
  }
  return ksgFromSum(jsTotal(a, b, k, dup, s), n, k, s.psi);
}

/**
 * The JavaScript kernel's exact fixed-point sum of {@linkcode ksgPair} (any `k`): apart, so that a run on the
 * native or WebAssembly kernel never compiles it.
 */
function jsTotal(a: NeuronPrep, b: NeuronPrep, k: number, dup: Int32Array | null, s: KsgScratch): bigint {
  const n = s.n, Gx = a.strips, Gy = b.strips, cells = Gx * Gy;
  const { start, pxy, pw, pxr, pyr } = s.js, { float: fx, flushEvery } = s.fixed;
  const ax = a.vals, by = b.vals, ac = a.cell, bc = b.cell, ar = a.rank, br = b.rank;
  const xs = a.sorted, ys = b.sorted;
  // the exact fixed-point sum is tHi * 2^20 + tLo + t, all exact float64 integers: t takes the terms, and is moved
  // into tHi, tLo every flushEvery samples (before it could reach 2^53)
  let tHi = 0, tLo = 0, t = 0, left = flushEvery;
  // bucket the stored samples into cells (row-major by y strip, then x strip)
  start.fill(0, 0, cells + 1);
  for (let i = 0; i < n; i++) {
    if (dup !== null && dup[i] !== 0) {
      t += fx[a.tie[i]] + fx[b.tie[i]];
      if (--left === 0) {
        const h = high(t);
        (tHi += h), (tLo += t - h * PSI_SPLIT), (t = 0), (left = flushEvery);
      }
      if (dup[i] < 0) continue;
    }
    start[bc[i] * Gx + ac[i] + 1]++;
  }
  for (let c = 0; c < cells; c++) start[c + 1] += start[c];
  for (let i = 0; i < n; i++) {
    if (dup !== null && dup[i] < 0) continue;
    const c = bc[i] * Gx + ac[i];
    const at = start[c]++;
    pxy[2 * at] = ax[i];
    pxy[2 * at + 1] = by[i];
    pxr[at] = ar[i];
    pyr[at] = br[i];
    pw[at] = dup !== null && dup[i] > 0 ? dup[i] : 1;
  }
  for (let c = cells; c > 0; c--) start[c] = start[c - 1];
  start[0] = 0;
  const best = new Float64Array(k + 1); // k+1 smallest distances including the sample itself (distance 0)
  const xe = a.edge, ye = b.edge;
  for (let cy = 0; cy < Gy; cy++) {
    // the 3 x 3 block around a cell: rows y0..y1, columns x0..x1; every sample outside it lies beyond one of the
    // block's border values (strips are value-monotone): y <= yLoV, y >= yHiV, x <= xLoV or x >= xHiV
    const y0 = cy > 0 ? cy - 1 : 0, y1 = cy + 1 < Gy ? cy + 1 : Gy - 1;
    const yLoV = y0 > 0 ? ys[ye[y0] - 1] : -Infinity, yHiV = y1 < Gy - 1 ? ys[ye[y1 + 1]] : Infinity;
    const yr0 = ye[y0], yr1 = ye[y1 + 1];
    for (let cx = 0; cx < Gx; cx++) {
      const c0 = start[cy * Gx + cx], c1 = start[cy * Gx + cx + 1];
      if (c0 === c1) continue;
      const x0 = cx > 0 ? cx - 1 : 0, x1 = cx + 1 < Gx ? cx + 1 : Gx - 1;
      const xLoV = x0 > 0 ? xs[xe[x0] - 1] : -Infinity, xHiV = x1 < Gx - 1 ? xs[xe[x1 + 1]] : Infinity;
      const xr0 = xe[x0], xr1 = xe[x1 + 1];
      for (let p = c0; p < c1; p++) {
        if (pw[p] > 1) continue; // a duplicate's representative: counted above
        const x = pxy[2 * p], y = pxy[2 * p + 1];
        let kth: number;
        if (k === 3) {
          // the 3 nearest other samples, in locals (b1 <= b2 <= b3)
          let b1 = Infinity, b2 = Infinity, b3 = Infinity;
          for (let gy = y0; gy <= y1; gy++) {
            const q1 = start[gy * Gx + x1 + 1];
            for (let q = start[gy * Gx + x0]; q < q1; q++) {
              // Branch-free test of max(|dx|, |dy|) < b3: the signs of dx, dy are random, so ternaries on them
              // mispredict (3x slower in V8); Math.abs and the 0/1 product compile without branches.
              const ax = Math.abs(x - pxy[2 * q]), ay = Math.abs(y - pxy[2 * q + 1]);
              if ((+(ax < b3) & +(ay < b3) & +(q !== p)) !== 0) {
                const d = ax > ay ? ax : ay;
                // a representative of m identical samples counts m times
                for (let m = pw[q]; m > 0 && d < b3; m--) {
                  if (d < b2) {
                    b3 = b2;
                    if (d < b1) {
                      b2 = b1;
                      b1 = d;
                    } else b2 = d;
                  } else b3 = d;
                }
              }
            }
          }
          kth = b3;
          if (!(kth <= bound(x, y, xLoV, xHiV, yLoV, yHiV))) best[0] = 0, best[1] = b1, best[2] = b2, best[3] = b3;
        } else {
          for (let j = 0; j <= k; j++) best[j] = Infinity;
          kth = Infinity;
          for (let gy = y0; gy <= y1; gy++) {
            kth = scanRange(pxy, pw, start[gy * Gx + x0], start[gy * Gx + x1 + 1], x, y, best);
          }
        }
        let lx = xr0, hx = xr1, ly = yr0, hy = yr1;
        if (!(kth <= bound(x, y, xLoV, xHiV, yLoV, yHiV))) {
          // rare: the k-th neighbour may lie outside the block. Every sample within kth lies in the strips
          // X0..X1 x Y0..Y1 (value-monotone strips); scan that rectangle outside the block.
          let X0 = x0, X1 = x1, Y0 = y0, Y1 = y1;
          while (X0 > 0 && x - xs[xe[X0] - 1] < kth) X0--;
          while (X1 < Gx - 1 && xs[xe[X1 + 1]] - x < kth) X1++;
          while (Y0 > 0 && y - ys[ye[Y0] - 1] < kth) Y0--;
          while (Y1 < Gy - 1 && ys[ye[Y1 + 1]] - y < kth) Y1++;
          for (let gy = Y0; gy <= Y1; gy++) {
            const row = gy * Gx;
            if (gy < y0 || gy > y1) kth = scanRange(pxy, pw, start[row + X0], start[row + X1 + 1], x, y, best);
            else {
              if (X0 < x0) kth = scanRange(pxy, pw, start[row + X0], start[row + x0], x, y, best);
              if (X1 > x1) kth = scanRange(pxy, pw, start[row + x1 + 1], start[row + X1 + 1], x, y, best);
            }
          }
          lx = xe[X0], hx = xe[X1 + 1], ly = ye[Y0], hy = ye[Y1 + 1];
        }
        // outside the radius: distance >= kth when kth > 0 (i.e. > nextafter(kth, 0)), distance > 0 when kth = 0
        const nx = countBoth(xs, lx, hx, pxr[p], x, ys, ly, hy, pyr[p], y, kth > 0 ? kth : Number.MIN_VALUE);
        t += fx[nx + 1] + fx[countY + 1];
        if (--left === 0) {
          const h = high(t);
          (tHi += h), (tLo += t - h * PSI_SPLIT), (t = 0), (left = flushEvery);
        }
      }
    }
  }
  return joinSplit(tHi, tLo, t);
}

/** Byte offsets of the kernel's arrays in its memory, for `n` samples and a `Gx x Gy` grid, with typed views. */
interface WasmLayout {
  n: number;
  cells: number;
  buffer: ArrayBuffer;
  off: {
    tail: number;
    heavy: number;
    psi: number;
    px: number;
    py: number;
    pxr: number;
    pyr: number;
    xs: number;
    ys: number;
    xe: number;
    ye: number;
    xt: number;
    yt: number;
    ord: number;
    rad: number;
    start: number;
  };
  f64: Float64Array;
  i32: Int32Array;
  psi: BigInt64Array | null;
  /** The grid shape whose cell order is in memory (`Gx x Gy`). */
  ord: string;
  /** The arrays whose sorted values, edges and fences are in the x and y slots (by identity). */
  held: { sorted: KsgValues | null; edge: Int32Array | null; fence: Int32Array | null }[];
  heldN: number;
}

/**
 * The cells of a `Gx x Gy` grid in Z order (Morton: bits of x and y interleaved), each as `cy << 16 | cx`: the
 * kernel visits them in this order, so that consecutive cells are near in both marginals (cache reuse).
 */
export function zOrder(Gx: number, Gy: number): Int32Array {
  const out = new Int32Array(Gx * Gy);
  let at = 0;
  const side = 1 << Math.ceil(Math.log2(Math.max(Gx, Gy, 1)));
  for (let d = 0; d < side * side; d++) {
    let cx = 0, cy = 0;
    for (let b = 0; (1 << (2 * b)) < side * side; b++) {
      cx |= ((d >>> (2 * b)) & 1) << b;
      cy |= ((d >>> (2 * b + 1)) & 1) << b;
    }
    if (cx < Gx && cy < Gy) out[at++] = (cy << 16) | cx;
  }
  return out;
}

let layout: WasmLayout | null = null;
/** +inf entries after each sorted array in the kernel's memory (its fixed count searches read up to 7 past the end). */
const PAD = 8;

function wasmLayout(w: NonNullable<typeof KSG_WASM>, n: number, cells: number): WasmLayout {
  if (layout && layout.n >= n && layout.cells >= cells && layout.buffer === w.mem.buffer) return layout;
  n = Math.max(n, layout?.n ?? 0);
  cells = Math.max(cells, layout?.cells ?? 0);
  const r16 = (b: number) => Math.ceil(b / 16) * 16;
  let at = 0;
  const take = (bytes: number) => {
    const o = at;
    at += r16(bytes);
    return o;
  };
  const off = {
    tail: take(32),
    heavy: take(2 * 16 * MAX_HEAVY),
    psi: take(8 * (n + 2)),
    px: take(8 * (n + 2)),
    py: take(8 * (n + 2)),
    pxr: take(4 * n),
    pyr: take(4 * n),
    xs: take(8 * (n + PAD)), // s[n..n+7] = +inf: read past a count window's end
    ys: take(8 * (n + PAD)),
    xe: take(4 * 4097),
    ye: take(4 * 4097),
    xt: take(4 * fenceLength(n)),
    yt: take(4 * fenceLength(n)),
    ord: take(4 * cells),
    rad: take(8 * n),
    start: take(4 * (cells + 1)),
  };
  const have = w.mem.buffer.byteLength;
  if (at > have) w.mem.grow(Math.ceil((at - have) / 65536));
  const buffer = w.mem.buffer as ArrayBuffer;
  const f64 = new Float64Array(buffer), i32 = new Int32Array(buffer);
  f64.set([0, 0, 0, Infinity], off.tail / 8); // (0, 0), (0, inf): lane masks for a lone last sample
  layout = {
    n,
    cells,
    buffer,
    off,
    f64,
    i32,
    psi: null,
    ord: "",
    held: [0, 1].map(() => ({ sorted: null, edge: null, fence: null })),
    heldN: -1,
  };
  return layout;
}

/**
 * The exact fixed-point sum of `psi(n_x + 1) + psi(n_y + 1)` over all samples by the WebAssembly kernel (k = 3):
 * the same counts as the JavaScript kernel, summed as 64-bit integers.
 */
function wasmTotal(
  w: NonNullable<typeof KSG_WASM>,
  a: NeuronPrep,
  b: NeuronPrep,
  n: number,
  dup: Int32Array | null,
  s: KsgScratch,
): bigint {
  const Gx = a.strips, Gy = b.strips, cells = Gx * Gy;
  const L = wasmLayout(w, n, cells), { off, f64, i32 } = L;
  const { values, float: fx, flushEvery } = s.fixed;
  if (L.psi !== values) {
    new BigInt64Array(L.buffer).set(values.subarray(0, Math.min(values.length, n + 2)), off.psi / 8);
    L.psi = values;
  }
  const ax = a.vals, by = b.vals, ac = a.cell, bc = b.cell, ar = a.rank, br = b.rank;
  const st = off.start / 4, px = off.px / 8, py = off.py / 8, pxr = off.pxr / 4, pyr = off.pyr / 4;
  const hx = off.heavy / 8, hy = (off.heavy + 16 * MAX_HEAVY) / 8;
  let tHi = 0, tLo = 0, t = 0, left = flushEvery, H = 0; // exact: tHi * 2^20 + tLo + t, as in ksgPair
  i32.fill(0, st, st + cells + 1);
  for (let i = 0; i < n; i++) {
    if (dup !== null && dup[i] !== 0) {
      t += fx[a.tie[i]] + fx[b.tie[i]];
      if (--left === 0) {
        const h = high(t);
        (tHi += h), (tLo += t - h * PSI_SPLIT), (t = 0), (left = flushEvery);
      }
      if (dup[i] > 0) {
        f64[hx + 2 * H] = ax[i];
        f64[hy + 2 * H] = by[i];
        H++;
      }
      continue;
    }
    i32[st + bc[i] * Gx + ac[i] + 1]++;
  }
  for (let c = st; c < st + cells; c++) i32[c + 1] += i32[c];
  for (let i = 0; i < n; i++) {
    if (dup !== null && dup[i] !== 0) continue;
    const at = i32[st + bc[i] * Gx + ac[i]]++;
    f64[px + at] = ax[i];
    f64[py + at] = by[i];
    i32[pxr + at] = ar[i];
    i32[pyr + at] = br[i];
  }
  for (let c = st + cells; c > st; c--) i32[c] = i32[c - 1];
  i32[st] = 0;
  const N = i32[st + cells]; // samples in the grid
  // each axis's sorted values, strip edges and fence table, unless that neuron is there already (consecutive
  // pairs of a job share their first neuron)
  for (
    const [p, s, e, t, G, slot] of [[a, off.xs, off.xe, off.xt, Gx, 0], [b, off.ys, off.ye, off.yt, Gy, 1]] as const
  ) {
    const h = L.held[slot];
    if (h.sorted === p.sorted && h.edge === p.edge && h.fence === p.fence && L.heldN === n) continue;
    f64.set(p.sorted, s / 8);
    f64.fill(Infinity, s / 8 + n, s / 8 + n + PAD);
    i32.set(p.edge.subarray(0, G + 1), e / 4);
    i32.set(p.fence.subarray(0, fenceLength(n)), t / 4);
    L.held[slot] = { sorted: p.sorted, edge: p.edge, fence: p.fence };
  }
  L.heldN = n;
  if (L.ord !== `${Gx}x${Gy}`) {
    i32.set(zOrder(Gx, Gy), off.ord / 4);
    L.ord = `${Gx}x${Gy}`;
  }
  const args = [
    off.px,
    off.py,
    off.pxr,
    off.pyr,
    off.xs,
    off.ys,
    off.xe,
    off.ye,
    off.start,
    off.psi,
    off.heavy,
    H,
    off.tail,
    Gx,
    Gy,
    off.xt,
    off.yt,
    n,
    fenceLength(n) - 2,
    off.ord,
    cells,
    off.rad,
    N,
    a.fenceLo,
    a.fenceScale,
    b.fenceLo,
    b.fenceScale,
  ] as const;
  w.search(...args, 0n);
  return w.counts(...args, joinSplit(tHi, tLo, t));
}

/**
 * Whether `ksgPair` runs the native kernel where it is loaded and the CPU has AVX-512 (tests compare it with the
 * others); there is no native pair kernel without AVX-512 (plain C loops measured slower than WebAssembly).
 */
export const ksgNative: { use: boolean } = { use: true };

/** The native kernel's sum (`plugins/kernels/native/ksg.c`). */
const NATIVE_SUM = new BigInt64Array(1);

/**
 * The exact fixed-point sum of `psi(n_x + 1) + psi(n_y + 1)` over all samples by the native kernel (k = 3, float32
 * values; heavy points found there too, from the tie groups of neurons that have one); null where it cannot run.
 */
function nativeTotal(a: NeuronPrep, b: NeuronPrep, n: number, s: KsgScratch): bigint | null {
  const k = nativeKernels!;
  if (
    !(a.vals instanceof Float32Array) || !(b.vals instanceof Float32Array) || !(a.sorted instanceof Float32Array) ||
    !(b.sorted instanceof Float32Array)
  ) return null;
  // both neurons with a tie group of more than 3 samples: the kernel looks for points shared by more than 3
  const heavy = a.maxTie > 3 && b.maxTie > 3;
  const ok = k.symbols.itn_ksg_pair(
    k.ksgCtx,
    n,
    ...nativeNeuron(a, heavy),
    ...nativeNeuron(b, heavy),
    s.fixed.values,
    NATIVE_SUM,
  );
  return ok === 0 ? NATIVE_SUM[0] : null;
}

/** One neuron's arguments of `itn_ksg_pair` (native.ts `KSG_NEURON`), its tie groups where `heavy`. */
function nativeNeuron(p: NeuronPrep, heavy: boolean) {
  return [
    p.vals as Float32Array,
    p.cell,
    p.order,
    p.sorted as Float32Array,
    p.edge,
    p.strips,
    p.fence,
    p.fenceLo,
    p.fenceScale,
    heavy ? p.group : null,
    heavy ? p.tie : null,
  ] as const;
}

/**
 * Per sample, when at least `k` other samples share both its values: the multiplicity of its point for the
 * first such sample, -1 for the others; 0 otherwise. Null when there are none.
 */
function duplicates(a: NeuronPrep, b: NeuronPrep, k: number, n: number): Int32Array | null {
  if (a.maxTie <= k || b.maxTie <= k) return null; // no sample has k others at its point
  let first: Map<number, number> | null = null;
  let out: Int32Array | null = null;
  for (let i = 0; i < n; i++) {
    if (a.tie[i] > k && b.tie[i] > k) {
      first ??= new Map();
      out ??= new Int32Array(n);
      const key = a.group[i] * n + b.group[i];
      const f = first.get(key);
      if (f === undefined) {
        first.set(key, i);
        out[i] = 1;
      } else {
        out[f]++;
        out[i] = -1;
      }
    }
  }
  if (first === null || out === null) return null;
  for (const f of first.values()) {
    if (out[f] <= k) { // fewer than k others at this point: an ordinary sample after all
      for (let i = f; i < n; i++) {
        if (out[i] !== 0 && a.group[i] === a.group[f] && b.group[i] === b.group[f]) out[i] = 0;
      }
    }
  }
  return out;
}
