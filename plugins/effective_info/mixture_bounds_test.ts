/**
 * The pairwise bounds on I(x; z) for Gaussian mixtures against an independent brute-force Monte Carlo estimate,
 * the closed form `1/2 log det(I + S C^-1)` (means drawn from N(0, S), common noise C, N growing), and the bounds'
 * own large-N limits, derived here: with `D_ij = 1/2 (mu_i - mu_j)^T A^-1 (mu_i - mu_j)`,
 * `E_j exp(-D_ij) = sqrt(det A / det(A + S)) exp(-1/2 mu_i^T (A + S)^-1 mu_i)`, so
 * `-E_i log E_j exp(-D_ij) = 1/2 log det(I + S A^-1) + 1/2 tr(S (S + A)^-1)`;
 * KL is A = C (upper limit) and Bhattacharyya A = 4 C (lower limit).
 */
import assert from "node:assert/strict";
import { diagonalBounds, fullBounds } from "./mixture_bounds.ts";
import { Rng } from "../../tests/_util.ts";

// 2 x 2 helpers (row-major [a, b, c, d]).
type M2 = [number, number, number, number];
const det = (m: M2) => m[0] * m[3] - m[1] * m[2];
const inv = (m: M2): M2 => {
  const t = det(m);
  return [m[3] / t, -m[1] / t, -m[2] / t, m[0] / t];
};
const mul = (a: M2, b: M2): M2 => [
  a[0] * b[0] + a[1] * b[2],
  a[0] * b[1] + a[1] * b[3],
  a[2] * b[0] + a[3] * b[2],
  a[2] * b[1] + a[3] * b[3],
];
const add = (a: M2, b: M2): M2 => [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]];
const scale = (a: M2, s: number): M2 => [a[0] * s, a[1] * s, a[2] * s, a[3] * s];
const I2: M2 = [1, 0, 0, 1];
const chol = (m: M2): M2 => {
  const l00 = Math.sqrt(m[0]), l10 = m[2] / l00;
  return [l00, 0, l10, Math.sqrt(m[3] - l10 * l10)];
};

const S: M2 = [2, 0.6, 0.6, 1], C: M2 = [0.5, 0.1, 0.1, 0.3];
const closed = 0.5 * Math.log(det(add(I2, mul(S, inv(C)))));
const limit = (a: M2) =>
  0.5 * Math.log(det(add(I2, mul(S, inv(a))))) + 0.5 * (mul(S, inv(add(S, a)))[0] + mul(S, inv(add(S, a)))[3]);

/** N means drawn from N(0, S), every covariance C. */
function homoscedastic(n: number, seed: number) {
  const rng = new Rng(seed), l = chol(S);
  const means = new Float64Array(2 * n), covs = new Float64Array(4 * n);
  for (let i = 0; i < n; i++) {
    const a = rng.normal(), b = rng.normal();
    means[2 * i] = l[0] * a;
    means[2 * i + 1] = l[2] * a + l[3] * b;
    covs.set(C, 4 * i);
  }
  return { means, covs };
}

/**
 * Brute-force Monte Carlo of I(x; z) = E[log p_i(z) - log (1/N) sum_j p_j(z)], i uniform, z ~ N(mu_i, C_i),
 * with 2 x 2 densities written out (independent of mixture_bounds.ts); returns the estimate and its standard error.
 */
function monteCarlo(means: Float64Array, covs: Float64Array, n: number, samples: number, seed: number) {
  const rng = new Rng(seed);
  const comps = Array.from({ length: n }, (_, i) => {
    const c = Array.from(covs.subarray(4 * i, 4 * i + 4)) as M2;
    return { c, ic: inv(c), l: chol(c), logNorm: -Math.log(2 * Math.PI) - 0.5 * Math.log(det(c)) };
  });
  const logp = (j: number, z0: number, z1: number) => {
    const { ic, logNorm } = comps[j], a = z0 - means[2 * j], b = z1 - means[2 * j + 1];
    return logNorm - 0.5 * (a * (ic[0] * a + ic[1] * b) + b * (ic[2] * a + ic[3] * b));
  };
  let s = 0, s2 = 0;
  const lp = new Float64Array(n);
  for (let m = 0; m < samples; m++) {
    const i = rng.int(n), e0 = rng.normal(), e1 = rng.normal(), l = comps[i].l;
    const z0 = means[2 * i] + l[0] * e0, z1 = means[2 * i + 1] + l[2] * e0 + l[3] * e1;
    let max = -Infinity;
    for (let j = 0; j < n; j++) max = Math.max(max, lp[j] = logp(j, z0, z1));
    let acc = 0;
    for (let j = 0; j < n; j++) acc += Math.exp(lp[j] - max);
    const v = lp[i] - (max + Math.log(acc / n));
    s += v;
    s2 += v * v;
  }
  const mean = s / samples;
  return { mean, se: Math.sqrt((s2 / samples - mean * mean) / samples) };
}

Deno.test("mixture bounds: bracket the closed form 1/2 log det(I + S C^-1) and the Monte Carlo I(x; z) as N grows", () => {
  const upInf = limit(C), loInf = limit(scale(C, 4));
  assert.ok(loInf < closed && closed < upInf, `limits ${loInf} < ${closed} < ${upInf}`);
  const err: { n: number; up: number; lo: number; mc: number }[] = [];
  for (const n of [25, 200, 1600]) {
    const { means, covs } = homoscedastic(n, n);
    const full = fullBounds(means, covs, n, 2);
    const mc = monteCarlo(means, covs, n, n === 1600 ? 6000 : 20000, 7);
    // The bounds bracket the true I(x; z) of this mixture (Monte Carlo within 3 standard errors).
    assert.ok(
      full.lower <= mc.mean + 3 * mc.se && mc.mean - 3 * mc.se <= full.upper,
      `N ${n}: ${JSON.stringify({ full, mc })}`,
    );
    err.push({ n, up: Math.abs(full.upper - upInf), lo: Math.abs(full.lower - loInf), mc: Math.abs(mc.mean - closed) });
    if (n === 1600) {
      assert.ok(full.lower < closed && closed < full.upper, `N ${n}: ${full.lower} < ${closed} < ${full.upper}`);
      // The mixture's I(x; z) converges to the closed form ...
      assert.ok(Math.abs(mc.mean - closed) < 0.03 + 3 * mc.se, `MC ${mc.mean} vs closed ${closed}`);
      // ... and the bounds to their limits (they do not close the gap: it is 1/2 tr(S (S + C)^-1) above). Each bound
      // is a mean over the N inputs of a term with spread ~1: 0.05 is two standard errors at N = 1600.
      assert.ok(Math.abs(full.upper - upInf) < 0.05 && Math.abs(full.lower - loInf) < 0.05, JSON.stringify(full));
      // Diagonal kernel on diagonal covariances equals the full kernel.
      const dm = homoscedastic(n, 3);
      const v = new Float64Array(2 * n).map((_, k) => (k % 2 ? C[3] : C[0]));
      const dc = new Float64Array(4 * n).map((_, k) => (k % 4 === 0 ? C[0] : k % 4 === 3 ? C[3] : 0));
      const a = diagonalBounds(dm.means, v, n, 2), b = fullBounds(dm.means, dc, n, 2);
      assert.ok(Math.abs(a.lower - b.lower) < 1e-12 && Math.abs(a.upper - b.upper) < 1e-12, `${a} vs ${b}`);
    }
  }
  assert.ok(err[2].up < err[0].up && err[2].lo < err[0].lo && err[2].mc < err[0].mc, JSON.stringify(err));
});

Deno.test("mixture bounds: heteroscedastic components agree with Monte Carlo; 0 for equal ones, log N far apart", () => {
  const rng = new Rng(21), n = 40;
  const means = new Float64Array(2 * n).map(() => rng.normal() * 1.5);
  const covs = new Float64Array(4 * n);
  for (let i = 0; i < n; i++) {
    const a = 0.1 + rng.next(), b = 0.1 + rng.next() * 2, r = (rng.next() - 0.5) * 1.6;
    covs.set([a, r * Math.sqrt(a * b), r * Math.sqrt(a * b), b], 4 * i);
  }
  const b = fullBounds(means, covs, n, 2);
  const mc = monteCarlo(means, covs, n, 40000, 5);
  assert.ok(b.lower < mc.mean - 3 * mc.se && mc.mean + 3 * mc.se < b.upper, JSON.stringify({ b, mc }));
  // Per coordinate (one neuron): the diagonal kernel against a 1-d Monte Carlo through the same helper.
  const v0 = new Float64Array(n).map((_, i) => covs[4 * i]), m0 = new Float64Array(n).map((_, i) => means[2 * i]);
  const one = diagonalBounds(
    means,
    new Float64Array(2 * n).map((_, k) => covs[4 * (k >> 1) + 3 * (k % 2)]),
    n,
    2,
    0,
    1,
  );
  const pad = (x: Float64Array) => new Float64Array(2 * x.length).map((_, k) => (k % 2 ? 0 : x[k >> 1]));
  const c1 = new Float64Array(4 * n).map((_, k) => (k % 4 === 0 ? v0[k >> 2] : k % 4 === 3 ? 1 : 0));
  const mc1 = monteCarlo(pad(m0), c1, n, 40000, 6);
  assert.ok(one.lower <= mc1.mean + 3 * mc1.se && mc1.mean - 3 * mc1.se <= one.upper, JSON.stringify({ one, mc1 }));
  // Identical components carry nothing; far-apart ones carry log N.
  const same = diagonalBounds(new Float64Array(10).fill(3), new Float64Array(10).fill(2), 5, 2);
  assert.ok(Math.abs(same.lower) < 1e-15 && Math.abs(same.upper) < 1e-15, JSON.stringify(same));
  const far = diagonalBounds(new Float64Array(5).map((_, i) => 1e3 * i), new Float64Array(5).fill(1), 5, 1);
  assert.ok(Math.abs(far.lower - Math.log(5)) < 1e-12 && Math.abs(far.upper - Math.log(5)) < 1e-12);
});
