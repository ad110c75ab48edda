/**
 * Secular-equation roots against brute-force eigenvalues (Jacobi): the rank-one update `diag(d) + rho z z^T`, and
 * the deletion of one row and column of `V diag(d) V^T` (roots = eigenvalues of the principal submatrix); Löwner's
 * weights against the true weights.
 */
import assert from "node:assert/strict";
import { lownerWeights, rootMinusPole, secularRoots } from "./secular.ts";
import { symEig } from "./symeig.ts";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

Deno.test("secular: rank-one update roots are the eigenvalues of diag(d) + rho z z^T", () => {
  for (const n of [1, 2, 5, 40]) {
    const r = rng(n + 1);
    const d = Float64Array.from({ length: n }, (_, i) => i + 0.5 * r());
    const z = Float64Array.from({ length: n }, r), rho = 0.7;
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = (i === j ? d[i] : 0) + rho * z[i] * z[j];
    const ref = Array.from(symEig(a, n).values).reverse();
    const roots = secularRoots(d, z.map((x) => x * x), n, 1 / rho);
    // Jacobi's eigenvalues err by a few ulps of the largest (symeig.ts)
    const tol = 1e-13 * Math.max(1, ...ref.map(Math.abs));
    ref.forEach((x, m) => assert.ok(Math.abs(d[roots.origin[m]] + roots.tau[m] - x) < tol, `root ${m}`));
    const zh = new Float64Array(n);
    lownerWeights(d, z, n, 1 / rho, roots, 0, zh);
    zh.forEach((x, j) => assert.ok(Math.abs(x - z[j]) < 1e-12 * Math.abs(z[j]) + 1e-14, `zhat ${j}`));
  }
});

Deno.test("secular: deletion roots are the eigenvalues of the principal submatrix, to high relative accuracy", () => {
  const n = 30, r = rng(3);
  const d = Float64Array.from({ length: n }, (_, i) => i * i * 0.1 + 1e-3);
  // V = a random orthogonal matrix (Jacobi vectors of a random symmetric matrix); A = V diag(d) V^T
  const s = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) s[i * n + j] = s[j * n + i] = r();
  const V = symEig(s, n).vectors;
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) for (let t = 0; t < n; t++) a[i * n + j] += V[i * n + t] * d[t] * V[j * n + t];
  }
  const del = 4, sub = new Float64Array((n - 1) * (n - 1));
  for (let i = 0, x = 0; i < n; i++) {
    if (i === del) continue;
    for (let j = 0, y = 0; j < n; j++) if (j !== del) sub[x * (n - 1) + y++] = a[i * n + j];
    x++;
  }
  const ref = Array.from(symEig(sub, n - 1).values).reverse();
  const z = V.slice(del * n, del * n + n);
  const roots = secularRoots(d, z.map((x) => x * x), n, 0);
  assert.equal(roots.origin.length, n - 1);
  const tol = 1e-13 * Math.max(...ref.map(Math.abs)); // the reference's rounding (A built as V diag(d) V^T)
  ref.forEach((x, m) => {
    assert.ok(Math.abs(d[roots.origin[m]] + roots.tau[m] - x) < tol, `root ${m}`);
    assert.ok(d[m] < x && x < d[m + 1], "interlacing");
    assert.ok(rootMinusPole(d, roots, m, m) > 0 && rootMinusPole(d, roots, m, m + 1) < 0);
  });
  const zh = new Float64Array(n);
  lownerWeights(d, z, n, 0, roots, 1, zh);
  zh.forEach((x, j) => assert.ok(Math.abs(x - z[j]) < 1e-10 * Math.abs(z[j]), `zhat ${j}: ${x} vs ${z[j]}`));
  // a weight far below the others: its root hugs its pole, and tau keeps it apart from the pole
  const w2 = Float64Array.from({ length: 4 }, (_, j) => (j === 1 ? 1e-24 : 1 / 3));
  const tiny = secularRoots(new Float64Array([0, 1, 2, 3]), w2, 4, 0);
  // root 1 = 1 + 1e-24 / (1/3 (-1 + 1 + 1/2)) = 1 + 6e-24 (to ~1e-16 relative), far below an ulp of 1
  assert.equal(tiny.origin[1], 1);
  assert.ok(Math.abs(tiny.tau[1] / 6e-24 - 1) < 1e-12, `tau ${tiny.tau[1]}`);
});
