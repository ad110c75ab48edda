/**
 * The binned-MI kernel: joint histograms of many neuron pairs, accumulated batch by batch from bin codes
 * ({@linkcode codeRows}, {@linkcode addPairCounts}: with at most 16 bins, whole 16-row groups of finite pairs in the
 * WebAssembly kernel of `pair_counts_wasm.ts`, the rest four rows a word here; same integers as the row-by-row
 * loop), and the plug-in MI of a joint histogram ({@linkcode mutualInformation}; docs/science.md section 1, =
 * scikit-learn `mutual_info_score` on the codes). Rows where either neuron is non-finite are left out of that pair
 * only. Where the native kernels are loaded (plugins/kernels/native/), both the counts (bit sets and AVX-512
 * popcounts) and the MI of many tables ({@linkcode mutualInformationMany}) run there, with the same results. The
 * packed loops: docs/internals.md, "Binned-MI pair counts".
 *
 * @module
 */
import type { LayerRange } from "./binning.ts";
import { addPairCountsWasm } from "./pair_counts_wasm.ts";
import { nativeKernels, nativeSwitch } from "../kernels/native/native.ts";

/** The code of a non-finite value. */
export const NONFINITE = 255;

/**
 * Bin codes of rows `[r0, r1)` of a row-major column (same convention as `binRows`: numpy.histogram, last bin
 * closed, values outside the range clipped into the edge bins), written neuron-major into
 * `codes[(offset + j) * stride + at0 + (r - r0)]` (`stride` defaults to the rows, `at0` to 0). Adds each neuron's
 * non-finite count to `nonfinite[offset + j]`.
 */
export function codeRows(
  values: Float32Array,
  width: number,
  r0: number,
  r1: number,
  range: LayerRange,
  bins: number,
  codes: Uint8Array,
  offset: number,
  nonfinite: Float64Array,
  stride = r1 - r0,
  at0 = 0,
): void {
  const { lo, hi } = range;
  const last = bins - 1;
  for (let j = 0; j < width; j++) {
    const span = hi[j] > lo[j] ? hi[j] - lo[j] : Infinity, l = lo[j];
    const out = (offset + j) * stride + at0;
    let bad = 0;
    for (let r = r0, at = out; r < r1; r++, at++) {
      const x = values[r * width + j];
      const t = ((x - l) / span) * bins;
      if (t >= 0 && t < bins) codes[at] = t | 0;
      else if (t >= bins && x !== Infinity) codes[at] = last;
      else if (t < 0 && x !== -Infinity) codes[at] = 0;
      else {
        codes[at] = NONFINITE;
        bad++;
      }
    }
    nonfinite[offset + j] += bad;
  }
}

/** Two scratch histograms of up to 16 x 16 cells for the packed loop. */
const SCRATCH = new Uint32Array(2 * 256);

/**
 * Adds the joint histograms of pairs `[p0, p1)` over `rows` rows of `codes` (neuron-major, neuron `a`'s codes at
 * `codes[a * stride ..]`, `stride` defaulting to `rows`) into `counts[(p - from) * B^2 + a * B + b]` (`from`
 * defaulting to 0: `counts` may hold just the pairs from `from` on). `dirty[neuron]` is 1 when that neuron has a
 * non-finite code in these rows. `loaded`: the previous call, in the same synchronous run of the caller, counted
 * these very codes (the kernel that holds them does not copy them again). `threads`: threads of the native kernel
 * (the other paths run on the caller's). With at most 16 bins, whole 16-row groups of clean pairs are counted by the
 * WebAssembly kernel; the four-rows-a-word loop runs on the rest when `stride` and the codes' byte offset are
 * multiples of 4.
 */
export function addPairCounts(
  codes: Uint8Array,
  rows: number,
  pairs: Int32Array,
  p0: number,
  p1: number,
  bins: number,
  dirty: Uint8Array,
  counts: Uint32Array,
  stride = rows,
  from = 0,
  loaded = false,
  threads = 1,
): void {
  if (p1 <= p0) return;
  if (!loaded) codesIn = null;
  if (nativeCounts(codes, rows, pairs, p0, p1, bins, counts, stride, from, threads)) return;
  const B2 = bins * bins;
  // the WebAssembly kernel counts the clean pairs' rows in whole 16-row groups; the loops below do the rest
  const wasm = rows >= 16 &&
    addPairCountsWasm(codes, stride, rows >> 4, pairs, p0, p1, bins, dirty, counts, from, codesIn === "wasm");
  if (wasm) codesIn = "wasm";
  const done = wasm ? (rows >> 4) << 4 : 0;
  const packed = bins <= 16 && stride % 4 === 0 && codes.byteOffset % 4 === 0;
  const words = packed ? new Uint32Array(codes.buffer, codes.byteOffset, codes.length >> 2) : null;
  const full = rows >> 2, ws = stride >> 2, h = SCRATCH;
  for (let p = p0; p < p1; p++) {
    const a = pairs[2 * p], b = pairs[2 * p + 1];
    const ca = a * stride, cb = b * stride, base = (p - from) * B2;
    if (!dirty[a] && !dirty[b]) {
      if (done === rows) continue;
      let r = done;
      if (words !== null) {
        // four rows a word: lane k of codes_a * B + codes_b is row k's joint cell
        const wa = a * ws, wb = b * ws;
        for (let q = done >> 2; q < full; q++) {
          const j = Math.imul(words[wa + q], bins) + words[wb + q];
          h[j & 255]++;
          h[256 + ((j >>> 8) & 255)]++;
          h[(j >>> 16) & 255]++;
          h[256 + (j >>> 24)]++;
        }
        for (let i = 0; i < B2; i++) {
          counts[base + i] += h[i] + h[256 + i];
          h[i] = h[256 + i] = 0;
        }
        r = full << 2;
      }
      for (; r < rows; r++) counts[base + codes[ca + r] * bins + codes[cb + r]]++;
    } else {
      for (let r = 0; r < rows; r++) {
        const x = codes[ca + r], y = codes[cb + r];
        if (x !== NONFINITE && y !== NONFINITE) counts[base + x * bins + y]++;
      }
    }
  }
}

/**
 * Which kernel holds the codes of the caller's current run of calls (`loaded`): null after a call that did not say
 * `loaded`, so that each kernel copies them once and never counts another caller's.
 */
let codesIn: "native" | "wasm" | null = null;

/** `addPairCounts` by the native kernel (every pair, non-finite rows in no bit set); false where it cannot. */
function nativeCounts(
  codes: Uint8Array,
  rows: number,
  pairs: Int32Array,
  p0: number,
  p1: number,
  bins: number,
  counts: Uint32Array,
  stride: number,
  from: number,
  threads: number,
): boolean {
  const k = nativeKernels;
  if (k === null || !k.avx512 || !nativeSwitch.use || bins > 64 || rows === 0) return false;
  if (codesIn !== "native") {
    const neurons = Math.floor(codes.length / stride);
    if (k.symbols.itn_load_codes(k.ctx, codes, neurons, stride, rows, bins) !== 0) return false;
    codesIn = "native";
  }
  k.symbols.itn_pair_counts(k.ctx, pairs, p0, p1, counts, from, threads);
  return true;
}

/** `Math.log(c)` of the integers below 2^16, filled on first use (the same bits as calling `Math.log`). */
let LOGS: Float64Array | null = null;
function logTable(): Float64Array {
  if (!LOGS) {
    LOGS = new Float64Array(1 << 16);
    LOGS[0] = -Infinity;
    for (let i = 1; i < LOGS.length; i++) LOGS[i] = Math.log(i);
  }
  return LOGS;
}

/** `Math.log(x)`, from the table for small integers. */
function log(x: number): number {
  return x < 65536 && Number.isInteger(x) ? (LOGS ?? logTable())[x] : Math.log(x);
}

/** Scratch of {@linkcode mutualInformation}: the non-zero cells' offsets, and the logs of the row sums. */
let NZ = new Int32Array(256), ROWLOG = new Float64Array(16);

/**
 * Plug-in MI (nats) of the contingency table `counts[off + a * nb + b]` (`na x nb`); NaN when it is empty.
 * `rowSum` and `colSum` are scratch arrays of at least `na` and `nb` entries (`colSum` also holds the logs of the
 * column sums once they are known). Logs of small integer counts come from a table of `Math.log` values, so the
 * result has the same bits as evaluating every log directly.
 *
 * The sum runs over the non-zero cells in row-major order, each term `(c / n) * (log c + log n - log a - log b)`
 * evaluated as written: the first pass collects those cells without a branch (a table's zeros are unpredictable,
 * and a mispredicted test per cell cost more than the term), the second adds their terms in order.
 */
export function mutualInformation(
  counts: ArrayLike<number>,
  off: number,
  na: number,
  nb: number,
  rowSum: Float64Array,
  colSum: Float64Array,
): number {
  if (NZ.length < na * nb) NZ = new Int32Array(na * nb);
  if (ROWLOG.length < na) ROWLOG = new Float64Array(na);
  const nz = NZ, rowLog = ROWLOG;
  let n = 0, k = 0;
  for (let a = 0; a < na; a++) {
    let s = 0;
    const row = a * nb;
    for (let b = 0; b < nb; b++) {
      const c = counts[off + row + b];
      s += c;
      nz[k] = row + b;
      k += +(c > 0);
    }
    rowSum[a] = s;
    n += s;
  }
  // column sums in a local each (a sum kept in the array costs a load, a store and V8's integer checks a cell)
  for (let b = 0; b < nb; b++) {
    let s = 0;
    for (let a = 0; a < na; a++) s += counts[off + a * nb + b];
    colSum[b] = s;
  }
  if (n === 0) return NaN;
  for (let b = 0; b < nb; b++) colSum[b] = log(colSum[b]); // only read where the column has a count > 0
  for (let a = 0; a < na; a++) rowLog[a] = log(rowSum[a]); // only read where the row has a count > 0
  let mi = 0;
  const logN = Math.log(n), logs = LOGS ?? logTable();
  for (let j = 0; j < k; j++) {
    const i = nz[j], c = counts[off + i], a = (i / nb) | 0;
    // counts are integers: the table's Math.log(c) below 2^16
    mi += (c / n) * ((c < 65536 ? logs[c] : Math.log(c)) + logN - rowLog[a] - colSum[i - a * nb]);
  }
  return mi;
}

/** Scratch of the native {@linkcode mutualInformationMany}. */
let NATIVE_SCRATCH = new Float64Array(0);

/**
 * {@linkcode mutualInformation} of `tables` consecutive `na x nb` tables from `counts[off]` into `mi[at ..]`, and
 * each table's count (the rows it holds) into `samples[at ..]`: in the native kernel where it is loaded (tables
 * whose count reaches 2^16 are evaluated here), else one table at a time here. The same bits either way.
 */
export function mutualInformationMany(
  counts: Uint32Array,
  off: number,
  tables: number,
  na: number,
  nb: number,
  mi: Float64Array,
  samples: Float64Array,
  at: number,
): void {
  const cells = na * nb, k = nativeKernels;
  const rs = new Float64Array(na), cs = new Float64Array(nb);
  const one = (t: number) => {
    mi[at + t] = mutualInformation(counts, off + t * cells, na, nb, rs, cs);
    // the rows counted: the sum of the row sums mutualInformation leaves in rs (exact integers)
    let n = 0;
    for (let i = 0; i < na; i++) n += rs[i];
    samples[at + t] = n;
  };
  if (k === null || !nativeSwitch.use || tables === 0) {
    for (let t = 0; t < tables; t++) one(t);
    return;
  }
  const need = Math.max(Math.ceil(cells / 2) + na + nb, 640);
  if (NATIVE_SCRATCH.length < need) NATIVE_SCRATCH = new Float64Array(need);
  k.symbols.itn_mutual_information(
    counts.subarray(off, off + tables * cells),
    tables,
    na,
    nb,
    LOGS ?? logTable(),
    mi.subarray(at, at + tables),
    samples.subarray(at, at + tables),
    NATIVE_SCRATCH,
  );
  for (let t = 0; t < tables; t++) if (samples[at + t] >= 65536) one(t);
}
