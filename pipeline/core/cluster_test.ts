import assert from "node:assert/strict";
import { clusterOrder } from "./cluster.ts";
import { Rng } from "../../tests/_util.ts";

/** Brute-force UPGMA: merge the two clusters whose mean pairwise distance (from the original matrix) is smallest. */
function naive(d: Float64Array, n: number): { heights: number[]; clusters: string[] } {
  let clusters = Array.from({ length: n }, (_, i) => [i]);
  const heights: number[] = [], out: string[] = [];
  while (clusters.length > 1) {
    let best = Infinity, bi = 0, bj = 1;
    for (let i = 0; i < clusters.length; i++) {
      for (let j = i + 1; j < clusters.length; j++) {
        let s = 0;
        for (const a of clusters[i]) for (const b of clusters[j]) s += d[a * n + b];
        const v = s / (clusters[i].length * clusters[j].length);
        if (v < best) [best, bi, bj] = [v, i, j];
      }
    }
    const merged = [...clusters[bi], ...clusters[bj]].sort((a, b) => a - b);
    heights.push(best);
    out.push(merged.join(","));
    clusters = [...clusters.filter((_, k) => k !== bi && k !== bj), merged];
  }
  return { heights, clusters: out };
}

/** The items under each merge of the dendrogram. */
function members(merges: { a: number; b: number }[], n: number): number[][] {
  const m: number[][] = [];
  const of = (c: number) => (c < n ? [c] : m[c - n]);
  for (const x of merges) m.push([...of(x.a), ...of(x.b)].sort((a, b) => a - b));
  return m;
}

Deno.test("clusterOrder: the merges and heights of brute-force average linkage; every cluster contiguous in the order", () => {
  const rng = new Rng(11);
  for (const n of [2, 3, 7, 25, 60]) {
    // Points on a line plus noise in 3 dimensions: Euclidean distances, no ties.
    const pts = Array.from({ length: n }, () => [rng.normal() * 3, rng.normal(), rng.normal()]);
    const d = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) d[i * n + j] = Math.hypot(...pts[i].map((v, k) => v - pts[j][k]));
    }
    const { order, merges } = clusterOrder(d, n, 3);
    const want = naive(d, n);
    assert.equal(merges.length, n - 1);
    merges.forEach((m, k) =>
      assert.ok(Math.abs(m.height - want.heights[k]) <= 1e-9 * want.heights[k], `n ${n} merge ${k}`)
    );
    assert.deepEqual(new Set(members(merges, n).map((c) => c.join(","))), new Set(want.clusters));
    assert.deepEqual([...order].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
    for (const c of members(merges, n)) {
      const at = c.map((i) => order.indexOf(i)).sort((a, b) => a - b);
      assert.equal(at[at.length - 1] - at[0], c.length - 1, `cluster ${c} is not contiguous in ${order}`);
    }
    assert.deepEqual(clusterOrder(d, n, 3).order, order, "same seed, same order");
  }
});

Deno.test("clusterOrder: ties are broken by the seed (equal distances: each seed gives its own order)", () => {
  const n = 8, d = new Float64Array(n * n).fill(1);
  const orders = new Set([0, 1, 2, 3].map((seed) => clusterOrder(d, n, seed).order.join(",")));
  assert.ok(orders.size > 1);
  assert.deepEqual(clusterOrder(new Float64Array(1), 1, 0).order, [0]);
  assert.deepEqual(clusterOrder(new Float64Array(0), 0, 0).order, []);
});

Deno.test("clusterOrder: many equal distances and rounding (binned MI near 0): still every item once, clusters contiguous", () => {
  const rng = new Rng(5), n = 60;
  const v = new Float64Array(n * n);
  // Even neurons share information; odd ones are noise (MI 0 or a few 1e-16 either way, as binned MI gives).
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const noise = i % 2 === 1 && j % 2 === 1 ? 0 : (rng.next() - 0.5) * 8e-16;
      v[i * n + j] = v[j * n + i] = i % 2 === 0 && j % 2 === 0 ? 0.45 + 0.2 * rng.next() : noise;
    }
  }
  const max = Math.max(...v), d = v.map((x) => max - x);
  for (const seed of [0, 1, 2]) {
    const { order, merges } = clusterOrder(d, n, seed);
    assert.deepEqual([...order].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
    const evens = order.map((i, k) => [i, k]).filter(([i]) => i % 2 === 0).map(([, k]) => k);
    assert.equal(evens[evens.length - 1] - evens[0], 29, "the even neurons are contiguous");
    for (const c of members(merges, n)) {
      const at = c.map((i) => order.indexOf(i)).sort((a, b) => a - b);
      assert.equal(at[at.length - 1] - at[0], c.length - 1);
    }
  }
});
