/**
 * Ties in KSG: per pair, the fraction of samples whose k-th neighbour distance is 0 (docs/science.md section 1).
 *
 * A sample's k-th nearest other sample is at Chebyshev distance 0 exactly when at least k other samples share both
 * its values, i.e. when its point `(x, y)` is held by more than k samples. There the KSG estimator counts only the
 * exact copies in each marginal and the estimate is badly biased (ReLU zeros, quantised activations). Per neuron,
 * the values held by more than k samples ("heavy" values) are found once; per pair only samples heavy in both
 * neurons can be tied, counted by point in a small table: no cost for continuous neurons.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tiedFractions } from "./ties.ts";
 * // 5 samples, two neurons: the point (0, 0) is held by 4 samples, so with k = 3 those 4 are tied
 * const cols = new Float32Array([0, 0, 0, 0, 1, 0, 0, 0, 0, 2]);
 * assert.deepEqual([...tiedFractions(cols, 5, new Int32Array([0, 1]), 3)], [0.8]);
 * ```
 *
 * @module
 */

/** Per neuron: the index of each sample's heavy value (-1 when its value is held by at most k samples), or null. */
interface Heavy {
  index: Int32Array;
  count: number;
}

function heavyValues(x: ArrayLike<number>, k: number): Heavy | null {
  const counts = new Map<number, number>(); // SameValueZero: -0 and +0 are one value, as |a - b| = 0 says
  for (let i = 0; i < x.length; i++) counts.set(x[i], (counts.get(x[i]) ?? 0) + 1);
  const ids = new Map<number, number>();
  for (const [v, c] of counts) if (c > k) ids.set(v, ids.size);
  if (ids.size === 0) return null;
  const index = new Int32Array(x.length);
  for (let i = 0; i < x.length; i++) index[i] = ids.get(x[i]) ?? -1;
  return { index, count: ids.size };
}

/** Samples at points held by more than k samples, given both neurons' heavy values. */
function tiedSamples(a: Heavy, b: Heavy, n: number, k: number): number {
  let tied = 0;
  if (a.count * b.count <= 1 << 16) {
    const t = new Int32Array(a.count * b.count);
    for (let i = 0; i < n; i++) {
      const ha = a.index[i], hb = b.index[i];
      if (ha >= 0 && hb >= 0) t[ha * b.count + hb]++;
    }
    for (let c = 0; c < t.length; c++) if (t[c] > k) tied += t[c];
  } else {
    const t = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const ha = a.index[i], hb = b.index[i];
      if (ha >= 0 && hb >= 0) t.set(ha * b.count + hb, (t.get(ha * b.count + hb) ?? 0) + 1);
    }
    for (const c of t.values()) if (c > k) tied += c;
  }
  return tied;
}

/**
 * Per pair `(pairs[2p], pairs[2p+1])` of neuron-major columns `cols` (`n` rows each): the fraction of the rows
 * where both neurons are finite whose k-th neighbour distance is 0 (NaN when no row is finite in both).
 */
export function tiedFractions(
  cols: Float32Array | Float64Array,
  n: number,
  pairs: Int32Array,
  k: number,
): Float64Array {
  const neurons = n > 0 ? cols.length / n : 0, P = pairs.length / 2;
  const heavy: (Heavy | null | undefined)[] = new Array(neurons);
  const finite = new Uint8Array(neurons);
  const out = new Float64Array(P);
  for (let p = 0; p < P; p++) {
    const a = pairs[2 * p], b = pairs[2 * p + 1];
    for (const c of [a, b]) {
      if (heavy[c] !== undefined) continue;
      const x = cols.subarray(c * n, c * n + n);
      finite[c] = x.every(Number.isFinite) ? 1 : 0;
      heavy[c] = finite[c] ? heavyValues(x, k) : null;
    }
    if (finite[a] && finite[b]) {
      const ha = heavy[a], hb = heavy[b];
      out[p] = ha && hb ? tiedSamples(ha, hb, n, k) / n : 0;
      continue;
    }
    // rows finite in both neurons only (rare): this pair's own heavy values
    const xa: number[] = [], xb: number[] = [];
    for (let r = 0; r < n; r++) {
      const u = cols[a * n + r], v = cols[b * n + r];
      if (Number.isFinite(u) && Number.isFinite(v)) xa.push(u), xb.push(v);
    }
    const ha = heavyValues(xa, k), hb = heavyValues(xb, k);
    out[p] = xa.length === 0 ? NaN : ha && hb ? tiedSamples(ha, hb, xa.length, k) / xa.length : 0;
  }
  return out;
}
