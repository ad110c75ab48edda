/**
 * `eigh` against matrices of known spectrum `Q diag(values) Q^T` (Q a product of random reflectors), with the
 * cases divide and conquer must deflate: repeated eigenvalues, clusters closer than the tolerance, zeros, and a
 * tridiagonal with a zero off-diagonal entry; plus residual and orthogonality of the vectors.
 */
import assert from "node:assert/strict";
import { eigh } from "./eigh.ts";
import { symEig } from "./symeig.ts";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

/** Q diag(values) Q^T with Q = H_1 ... H_4 (random Householder reflectors). */
function known(values: number[], seed: number): Float64Array {
  const n = values.length, r = rng(seed);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) a[i * n + i] = values[i];
  for (let h = 0; h < 4; h++) {
    const v = Float64Array.from({ length: n }, r);
    const vv = v.reduce((s, x) => s + x * x, 0);
    // a <- H a H, H = I - 2 v v^T / vv
    const av = new Float64Array(n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) av[i] += a[i * n + j] * v[j];
    const vav = v.reduce((s, x, i) => s + x * av[i], 0);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        a[i * n + j] += (-2 * (av[i] * v[j] + v[i] * av[j]) + (4 * vav * v[i] * v[j]) / vv) / vv;
      }
    }
  }
  return a;
}

function check(a: Float64Array, n: number, expect: number[] | null, what: string): void {
  const { values, vectors: v } = eigh(a, n);
  let an = 0;
  for (const x of a) an = Math.max(an, Math.abs(x));
  const tol = 1e-13 * Math.max(1, an) * Math.sqrt(n);
  for (let j = 1; j < n; j++) assert.ok(values[j] >= values[j - 1], `${what}: not ascending`);
  if (expect) {
    const e = [...expect].sort((x, y) => x - y);
    e.forEach((x, j) => assert.ok(Math.abs(values[j] - x) <= tol, `${what}: value ${j} ${values[j]} vs ${x}`));
  }
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let t = 0; t < n; t++) s += a[i * n + t] * v[t * n + j];
      assert.ok(Math.abs(s - values[j] * v[i * n + j]) <= tol, `${what}: residual of vector ${j}`);
    }
    for (let l = 0; l <= j; l++) {
      let s = 0;
      for (let t = 0; t < n; t++) s += v[t * n + j] * v[t * n + l];
      assert.ok(Math.abs(s - (j === l ? 1 : 0)) <= 1e-13 * Math.sqrt(n), `${what}: orthogonality ${j}, ${l}: ${s}`);
    }
  }
}

Deno.test("eigh: random symmetric matrices (leaf, one merge, several levels) match Jacobi and are orthogonal", () => {
  for (const n of [1, 2, 7, 33, 80, 150]) {
    const r = rng(n);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = r();
    const ref = symEig(a, n);
    check(a, n, Array.from(ref.values), `random n = ${n}`);
  }
});

Deno.test("eigh: repeated, clustered and zero eigenvalues (deflation)", () => {
  const n = 120;
  const rep = Array.from({ length: n }, (_, i) => (i < 60 ? 0 : i < 90 ? 1 : 2 + i / 100)); // 60 zeros, 30 ones
  check(known(rep, 1), n, rep, "repeated");
  const cluster = Array.from({ length: n }, (_, i) => 1 + (i % 10) * 1e-15 + Math.floor(i / 10)); // 12 tight clusters
  check(known(cluster, 2), n, cluster, "clusters");
  const wide = Array.from({ length: n }, (_, i) => 10 ** (-12 + (i % 25) / 2) * (i % 3 === 0 ? -1 : 1));
  check(known(wide, 3), n, wide, "graded");
});

Deno.test("eigh: block-diagonal input (zero couplings in the tridiagonal)", () => {
  const n = 70, a = new Float64Array(n * n), r = rng(9);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) if (Math.floor(i / 35) === Math.floor(j / 35)) a[i * n + j] = a[j * n + i] = r();
  }
  check(a, n, Array.from(symEig(a, n).values), "block diagonal");
  const diag = new Float64Array(n * n);
  for (let i = 0; i < n; i++) diag[i * n + i] = (i * 7) % 13;
  check(diag, n, Array.from({ length: n }, (_, i) => (i * 7) % 13), "diagonal");
});
