/**
 * A leaf order for heatmaps: average-linkage (UPGMA) agglomerative clustering of a symmetric distance matrix by the
 * nearest-neighbour chain algorithm (O(n^2) time and memory; Murtagh 1983, as in SciPy's `linkage(method="average")`),
 * then the leaves of the dendrogram left to right. Ties between equal distances are broken by a permutation of the
 * items drawn from `seed`, so the order is reproducible and says which seed made it. Hand-written rather than
 * ml-hclust: its `agnes` copies the whole matrix at each merge (O(n^3) time, ml-matrix as a dependency) and breaks
 * ties by input order only. See docs/report.md, "MI heatmaps".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clusterOrder } from "./cluster.ts";
 * // Items 0 and 2 are close, 1 and 3 are close: the order keeps each pair together.
 * const d = [[0, 9, 1, 9], [9, 0, 9, 2], [1, 9, 0, 9], [9, 2, 9, 0]].flat();
 * const { order, merges } = clusterOrder(Float64Array.from(d), 4, 0);
 * assert.equal(Math.abs(order.indexOf(0) - order.indexOf(2)), 1);
 * assert.equal(Math.abs(order.indexOf(1) - order.indexOf(3)), 1);
 * assert.deepEqual(merges.map((m) => m.height), [1, 2, 9]);
 * ```
 *
 * @module
 */
import { mulberry32 } from "./random.ts";

/** One merge of the dendrogram: two clusters (item ids `< n`, merge `k` as `n + k`) at a height. */
export interface Merge {
  a: number;
  b: number;
  height: number;
  size: number;
}

/** A permutation of `0..n-1` from a seeded mulberry32 generator (Fisher-Yates). */
export function seededPermutation(n: number, seed: number): Int32Array {
  const next = mulberry32(seed);
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/**
 * Clusters `n` items by the row-major distance matrix `dist` (`n * n`, symmetric; the diagonal is not read) with
 * average linkage; returns the leaves in dendrogram order (the child holding the smaller permuted item first) and
 * the merges sorted by height.
 */
export function clusterOrder(dist: Float64Array, n: number, seed: number): { order: number[]; merges: Merge[] } {
  if (n <= 1) return { order: n ? [0] : [], merges: [] };
  // Work in permuted positions: ties are broken by the lower position, which the seed chose.
  const perm = seededPermutation(n, seed);
  const d = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) d[i * n + j] = dist[perm[i] * n + perm[j]];
  const size = new Int32Array(n).fill(1);
  const alive = new Uint8Array(n).fill(1);
  /** The cluster id (item or `n + merge`) held at each position's slot. */
  const id = Int32Array.from({ length: n }, (_, i) => i);
  const raw: Merge[] = [];
  const chain: number[] = [];
  while (raw.length < n - 1) {
    if (chain.length === 0) chain.push(alive.indexOf(1));
    const x = chain[chain.length - 1];
    // The nearest live neighbour of x; the previous chain element wins ties (that keeps the chain reducible).
    let y = chain.length > 1 ? chain[chain.length - 2] : -1;
    let best = y >= 0 ? d[x * n + y] : Infinity;
    for (let j = 0; j < n; j++) {
      if (!alive[j] || j === x) continue;
      const v = d[x * n + j];
      if (v < best || (v === best && y < 0)) {
        best = v;
        y = j;
      }
    }
    if (chain.length > 1 && y === chain[chain.length - 2]) {
      chain.length -= 2;
      // Merge x and y into the slot of the lower position (Lance-Williams update for average linkage).
      const [keep, drop] = x < y ? [x, y] : [y, x];
      const sk = size[keep], sd = size[drop];
      for (let k = 0; k < n; k++) {
        if (!alive[k] || k === keep || k === drop) continue;
        const v = (sk * d[keep * n + k] + sd * d[drop * n + k]) / (sk + sd);
        d[keep * n + k] = d[k * n + keep] = v;
      }
      raw.push({ a: id[keep], b: id[drop], height: best, size: sk + sd });
      alive[drop] = 0;
      size[keep] = sk + sd;
      id[keep] = n + raw.length - 1;
      continue;
    }
    chain.push(y);
  }
  // Sort merges by height (stable) and renumber the clusters they refer to. The key is the largest height on the
  // way up, so that a parent never comes before a child whose height rounding made larger.
  const key = new Float64Array(raw.length);
  raw.forEach((m, k) => {
    key[k] = Math.max(m.height, m.a >= n ? key[m.a - n] : -Infinity, m.b >= n ? key[m.b - n] : -Infinity);
  });
  const sorted = raw.map((m, k) => ({ m, k })).sort((p, q) => key[p.k] - key[q.k] || p.k - q.k);
  const rename = new Int32Array(n - 1);
  sorted.forEach(({ k }, i) => (rename[k] = i));
  const re = (c: number) => (c < n ? c : n + rename[c - n]);
  const merges = sorted.map(({ m }) => ({ a: re(m.a), b: re(m.b), height: m.height, size: m.size }));
  // Leaves left to right; the child whose lowest position is smaller goes first.
  const low = new Int32Array(2 * n - 1);
  for (let i = 0; i < n; i++) low[i] = i;
  merges.forEach((m, k) => (low[n + k] = Math.min(low[m.a], low[m.b])));
  const order: number[] = [];
  const stack = [2 * n - 2];
  while (stack.length) {
    const c = stack.pop()!;
    if (c < n) {
      order.push(perm[c]);
      continue;
    }
    const m = merges[c - n];
    const [first, second] = low[m.a] <= low[m.b] ? [m.a, m.b] : [m.b, m.a];
    stack.push(second, first);
  }
  return {
    order,
    merges: merges.map((m) => ({ ...m, a: m.a < n ? perm[m.a] : m.a, b: m.b < n ? perm[m.b] : m.b })),
  };
}
