/**
 * The KSG mutual-information kernel (Kraskov, Stoegbauer, Grassberger 2004, algorithm 1), exactly as
 * ../shared/SCIENCE.md section 1 and scikit-learn's private `_compute_mi_cc` define it:
 *
 * `I = psi(n) + psi(k) - < psi(n_x + 1) + psi(n_y + 1) >`, Chebyshev norm in the joint space, `r_i` the distance
 * from sample i to its k-th nearest *other* sample, and `n_x` (`n_y`) the number of other samples j with
 * `|x_i - x_j| <= nextafter(r_i, 0)`, i.e. strictly closer than `r_i` when `r_i > 0`, and exactly equal when
 * `r_i == 0` (scikit-learn's `radius_neighbors(radius=nextafter(r, 0))`, whose test is `<=`). Negative estimates
 * are kept. Distances are `|a - b|` in float64, the same expression as a brute-force reference uses, so the
 * counts are identical, not just close.
 *
 * Speed: each neuron is prepared once (values, sorted values, ranks with ties broken by sample index, grid cell
 * of each sample). Per pair, the samples are bucketed into a `G x G` grid in rank space (equal-count strips per
 * axis), each sample's k nearest neighbours are found by searching rings of cells outward until the ring's
 * value-space boundary is at least the current k-th distance, and `n_x`, `n_y` come from galloping searches in
 * the sorted marginals. Cost per pair about `O(n log n)` with a small constant (against `O(n^2)` brute force).
 *
 * @module
 */

/** One neuron's samples prepared for the KSG kernel. */
export interface NeuronPrep {
  /** Values in sample order (float64, `-0` normalised to `0`). */
  vals: Float64Array;
  /** Values sorted ascending. */
  sorted: Float64Array;
  /** Position of each sample in `sorted` (ties broken by sample index). */
  rank: Int32Array;
  /** Grid strip of each sample: `floor(rank * G / n)`. */
  cell: Uint16Array;
}

/** Number of grid strips per axis for `n` samples (about 2 samples per cell on average). */
export function gridSize(n: number): number {
  return Math.max(1, Math.min(4096, Math.floor(Math.sqrt(n / 2))));
}

/** Prepares one neuron's `n` values (all finite) for {@linkcode ksgPair}. */
export function prepNeuron(values: ArrayLike<number>, n = values.length): NeuronPrep {
  const vals = new Float64Array(n);
  for (let i = 0; i < n; i++) vals[i] = values[i] + 0; // -0 + 0 === +0
  const sorted = vals.slice().sort();
  const rank = new Int32Array(n);
  const ties = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = vals[i];
    let lo = 0, hi = n; // first position with sorted[pos] >= v
    while (lo < hi) {
      const m = (lo + hi) >>> 1;
      if (sorted[m] < v) lo = m + 1;
      else hi = m;
    }
    rank[i] = lo + ties[lo]++;
  }
  const G = gridSize(n);
  const cell = new Uint16Array(n);
  for (let i = 0; i < n; i++) cell[i] = Math.floor((rank[i] * G) / n);
  return { vals, sorted, rank, cell };
}

/** `psi(m)` for integers `m = 0..n` (index 0 unused, NaN), by the recurrence `psi(m+1) = psi(m) + 1/m`. */
export function digammaTable(n: number): Float64Array {
  const t = new Float64Array(n + 1);
  t[0] = NaN;
  if (n >= 1) t[1] = -0.57721566490153286061;
  for (let m = 1; m < n; m++) t[m + 1] = t[m] + 1 / m;
  return t;
}

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer); // little-endian on every platform Deno runs on

/** `nextafter(r, 0)` for `r >= 0` (and 0 for 0): the largest double below a positive `r`. */
export function nextDown(r: number): number {
  if (!(r > 0)) return 0;
  if (r === Infinity) return Number.MAX_VALUE;
  f64[0] = r;
  if (u32[0] === 0) {
    u32[0] = 0xffffffff;
    u32[1]--;
  } else u32[0]--;
  return f64[0];
}

/** Per-thread scratch memory for {@linkcode ksgPair}, sized for `n` samples. */
export class KsgScratch {
  readonly n: number;
  readonly G: number;
  readonly start: Int32Array;
  readonly pxy: Float64Array;
  readonly segs: Int32Array;
  readonly pxr: Int32Array;
  readonly pyr: Int32Array;
  readonly edge: Int32Array;
  readonly psi: Float64Array;
  constructor(n: number) {
    this.n = n;
    const G = this.G = gridSize(n);
    this.start = new Int32Array(G * G + 1);
    this.pxy = new Float64Array(2 * n);
    this.segs = new Int32Array(4 * G + 8);
    this.pxr = new Int32Array(n);
    this.pyr = new Int32Array(n);
    this.edge = new Int32Array(G + 1);
    for (let r = n - 1; r >= 0; r--) this.edge[Math.floor((r * G) / n)] = r;
    this.edge[G] = n;
    this.psi = digammaTable(n + 1);
  }
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

/** Count of positions m around `at` in `s` (including `at`) with `|s[at] - s[m]| <= rr`. */
function countWithin(s: Float64Array, n: number, at: number, v: number, rr: number): number {
  // left: smallest m <= at with v - s[m] <= rr (v - s[m] is non-increasing in m)
  let lo: number, hi: number, step = 1;
  hi = at;
  lo = at - 1;
  while (lo >= 0 && v - s[lo] <= rr) {
    hi = lo;
    lo = at - (step <<= 1);
  }
  if (lo < 0) lo = -1;
  // answer in (lo, hi]: s[lo] fails (or lo = -1), s[hi] passes
  while (hi - lo > 1) {
    const m = (lo + hi) >>> 1;
    if (v - s[m] <= rr) hi = m;
    else lo = m;
  }
  const left = hi;
  step = 1;
  lo = at;
  hi = at + 1;
  while (hi < n && s[hi] - v <= rr) {
    lo = hi;
    hi = at + (step <<= 1);
  }
  if (hi > n) hi = n;
  // answer in [lo, hi): s[lo] passes, s[hi] fails (or hi = n)
  while (hi - lo > 1) {
    const m = (lo + hi) >>> 1;
    if (s[m] - v <= rr) lo = m;
    else hi = m;
  }
  return lo - left + 1;
}

/** Chebyshev distance from `(x, y)` in cell `(cx, cy)` to its k-th nearest other sample (`best.length = k+1`). */
function kthDistance(
  pxy: Float64Array,
  start: Int32Array,
  edge: Int32Array,
  xs: Float64Array,
  ys: Float64Array,
  G: number,
  cx: number,
  cy: number,
  x: number,
  y: number,
  best: Float64Array,
  segs: Int32Array,
): number {
  const last = best.length - 1;
  for (let j = 0; j <= last; j++) best[j] = Infinity;
  let kth = Infinity;
  for (let R = 0;; R++) {
    const xlo = cx - R, xhi = cx + R, ylo = cy - R, yhi = cy + R;
    const x0 = xlo < 0 ? 0 : xlo, x1 = xhi >= G ? G - 1 : xhi;
    // the ring's cells as contiguous ranges of samples: full rows at the top and bottom, single cells between
    let ns = 0;
    if (ylo >= 0) {
      segs[ns++] = start[ylo * G + x0];
      segs[ns++] = start[ylo * G + x1 + 1];
    }
    if (R > 0) {
      if (yhi < G) {
        segs[ns++] = start[yhi * G + x0];
        segs[ns++] = start[yhi * G + x1 + 1];
      }
      const y0 = ylo + 1 < 0 ? 0 : ylo + 1, y1 = yhi - 1 >= G ? G - 1 : yhi - 1;
      for (let gy = y0; gy <= y1; gy++) {
        if (xlo >= 0) {
          segs[ns++] = start[gy * G + xlo];
          segs[ns++] = start[gy * G + xlo + 1];
        }
        if (xhi < G) {
          segs[ns++] = start[gy * G + xhi];
          segs[ns++] = start[gy * G + xhi + 1];
        }
      }
    }
    for (let g = 0; g < ns; g += 2) {
      const q1 = segs[g + 1] * 2;
      for (let q = segs[g] * 2; q < q1; q += 2) {
        const dx = x - pxy[q], dy = y - pxy[q + 1];
        const ax = dx < 0 ? -dx : dx, ay = dy < 0 ? -dy : dy;
        const d = ax > ay ? ax : ay;
        if (d < kth) kth = insert(best, last, d);
      }
    }
    if (xlo <= 0 && ylo <= 0 && xhi >= G - 1 && yhi >= G - 1) return kth;
    if (kth < Infinity) {
      let bound = Infinity;
      if (xlo > 0) bound = Math.min(bound, x - xs[edge[xlo] - 1]);
      if (xhi < G - 1) bound = Math.min(bound, xs[edge[xhi + 1]] - x);
      if (ylo > 0) bound = Math.min(bound, y - ys[edge[ylo] - 1]);
      if (yhi < G - 1) bound = Math.min(bound, ys[edge[yhi + 1]] - y);
      if (kth <= bound) return kth;
    }
  }
}

/**
 * KSG mutual information (nats) of two prepared neurons over the same `n` samples; `k >= 1`, `n > k`.
 * NaN when `n <= k`.
 */
export function ksgPair(a: NeuronPrep, b: NeuronPrep, k: number, s: KsgScratch): number {
  const n = s.n, G = s.G;
  if (n <= k) return NaN;
  const { start, pxy, segs, pxr, pyr, edge, psi } = s;
  const ax = a.vals, by = b.vals, ac = a.cell, bc = b.cell, ar = a.rank, br = b.rank;
  const xs = a.sorted, ys = b.sorted;
  // bucket samples into cells (row-major by y strip, then x strip)
  start.fill(0);
  for (let i = 0; i < n; i++) start[bc[i] * G + ac[i] + 1]++;
  for (let c = 0; c < G * G; c++) start[c + 1] += start[c];
  for (let i = 0; i < n; i++) {
    const c = bc[i] * G + ac[i];
    const at = start[c]++;
    pxy[2 * at] = ax[i];
    pxy[2 * at + 1] = by[i];
    pxr[at] = ar[i];
    pyr[at] = br[i];
  }
  for (let c = G * G; c > 0; c--) start[c] = start[c - 1];
  start[0] = 0;
  const best = new Float64Array(k + 1); // k+1 smallest distances including the sample itself (distance 0)
  let total = 0;
  for (let cy = 0; cy < G; cy++) {
    for (let cx = 0; cx < G; cx++) {
      const c0 = start[cy * G + cx], c1 = start[cy * G + cx + 1];
      for (let p = c0; p < c1; p++) {
        const x = pxy[2 * p], y = pxy[2 * p + 1];
        const rr = nextDown(kthDistance(pxy, start, edge, xs, ys, G, cx, cy, x, y, best, segs));
        const nx = countWithin(xs, n, pxr[p], x, rr) - 1;
        const ny = countWithin(ys, n, pyr[p], y, rr) - 1;
        total += psi[nx + 1] + psi[ny + 1];
      }
    }
  }
  return psi[n] + psi[k] - total / n;
}
