/**
 * `unique-info` at finite training time against explicit leave-one-out training of a linear model (where the
 * linearisation is exact), simulated here in parameter space, independently of the eigenbasis method:
 * T gradient-descent steps `w <- w - eta (J^T (J w - r) + lambda w)` (discrete), or gradient flow for time T as
 * the top-right block of `exp(T [[-H, J^T r], [0, 0]])`, `H = J^T J + lambda I` (scaling and squaring of a Taylor
 * series), each once per left-out sample.
 */
import assert from "node:assert/strict";
import { uniqueInfoPlugin } from "./unique_info.ts";
import { rowsOf, runPlugin } from "../../tests/_util.ts";
import { batchesOf, looReference, type Problem, problem, siOfDelta } from "../../tests/_si_problem.ts";
import {
  chebyshevFilter,
  chooseRoute,
  gain,
  looChebyshev,
  looSecular,
  looVolterra,
  routeCosts,
  spectral,
  type TrainingTime,
} from "./finite_time.ts";
import { gemm, matrix, sharedF64, transpose } from "../kernels/linalg/mod.ts";
import { Rng } from "../../tests/_util.ts";

/** w - w0 after training without sample `drop` (-1: all). */
function train(pr: Problem, t: number, lr: number | undefined, lambda: number, drop: number): Float64Array {
  const { p, k, n } = pr;
  const rowsKept: number[] = [];
  for (let i = 0; i < n; i++) if (i !== drop) { for (let c = 0; c < k; c++) rowsKept.push(i * k + c); }
  const J = (r: number, s: number) => pr.j[r * p + s];
  const res = (r: number) => pr.y[r] - pr.f0[r];
  if (lr !== undefined) {
    const w = new Float64Array(p);
    for (let step = 0; step < t; step++) {
      const g = new Float64Array(p);
      for (const r of rowsKept) {
        let f = 0;
        for (let s = 0; s < p; s++) f += J(r, s) * w[s];
        const e = f - res(r);
        for (let s = 0; s < p; s++) g[s] += J(r, s) * e;
      }
      for (let s = 0; s < p; s++) w[s] -= lr * (g[s] + lambda * w[s]);
    }
    return w;
  }
  // gradient flow: exp(t M), M = [[-H, b], [0, 0]] (size p + 1); w(t) = top-right column
  const m = p + 1, M = new Float64Array(m * m);
  for (const r of rowsKept) {
    for (let s = 0; s < p; s++) {
      M[s * m + p] += J(r, s) * res(r);
      for (let u = 0; u < p; u++) M[s * m + u] -= J(r, s) * J(r, u);
    }
  }
  for (let s = 0; s < p; s++) M[s * m + s] -= lambda;
  let norm = 0;
  for (const v of M) norm += Math.abs(v);
  let sq = 0;
  while ((t * norm) / 2 ** sq > 0.25) sq++;
  const A = M.map((v) => (v * t) / 2 ** sq);
  const mul = (x: Float64Array, y: Float64Array) => {
    const z = new Float64Array(m * m);
    for (let i = 0; i < m; i++) {
      for (let l = 0; l < m; l++) for (let j = 0; j < m; j++) z[i * m + j] += x[i * m + l] * y[l * m + j];
    }
    return z;
  };
  let E = new Float64Array(m * m), term = new Float64Array(m * m);
  for (let i = 0; i < m; i++) E[i * m + i] = term[i * m + i] = 1;
  for (let q = 1; q <= 24; q++) {
    term = mul(term, A).map((v) => v / q);
    E = E.map((v, i) => v + term[i]);
  }
  for (let s = 0; s < sq; s++) E = mul(E, E);
  return Float64Array.from({ length: p }, (_, s) => E[s * m + p]);
}

/** Weight and function SI of every sample by leave-one-out training. */
function reference(pr: Problem, t: number, lr: number | undefined, lambda: number) {
  const full = train(pr, t, lr, lambda, -1);
  const w: number[] = [], f: number[] = [], deltas: Float64Array[] = [];
  for (let i = 0; i < pr.n; i++) {
    const d = train(pr, t, lr, lambda, i).map((v, s) => full[s] - v);
    deltas.push(d);
    const si = siOfDelta(pr, d);
    w.push(si.w);
    f.push(si.f);
  }
  return { w, f, deltas };
}

function assertRel(actual: number, expected: number, rtol: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= rtol * Math.abs(expected),
    `${what}: ${actual} vs ${expected} (rel ${Math.abs(actual - expected) / Math.abs(expected)})`,
  );
}

/** A safe step: 1 / (sum of squared Jacobian entries) <= 1 / lambda_max(J^T J). */
function stepOf(pr: Problem, lambda: number): number {
  let s = lambda;
  for (const v of pr.j) s += v * v;
  return 1 / s;
}

// k = 1 with P > N (full-rank Theta) and k = 3 with P < N (rank-deficient Theta: exact zero eigenvalues, deflated)
for (const [k, p, n] of [[1, 14, 9], [3, 10, 7]] as const) {
  for (const lambda of [0, 0.3]) {
    for (const mode of ["discrete", "continuous"] as const) {
      Deno.test(`unique-info at finite t equals leave-one-out training (${mode}, lambda = ${lambda}, k = ${k}, P = ${p}, n = ${n})`, async () => {
        const pr = problem(k * 100 + p + 7, n, 4, k, p);
        const lr = mode === "discrete" ? 2 * stepOf(pr, lambda) : undefined;
        const t = mode === "discrete" ? 60 : 3;
        const ref = reference(pr, t, lr, lambda);
        const routes = mode === "discrete" ? ["secular", "volterra", "chebyshev"] : ["secular", "chebyshev"];
        for (const route of routes) {
          const options = { "si-lambda": lambda, "si-t": t, "si-finite-route": route, ...(lr ? { "si-lr": lr } : {}) };
          const { results } = await runPlugin(uniqueInfoPlugin, options, batchesOf(pr, 5));
          const table = results.unique_information;
          assert.equal(table.schema.metadata.get("infotap.si.route"), route);
          const rows = rowsOf(table);
          for (let i = 0; i < n; i++) {
            assertRel(rows[i].si_weights as number, ref.w[i], 1e-8, `${route}: si_weights of sample ${i}`);
            assertRel(rows[i].si_function as number, ref.f[i], 1e-8, `${route}: si_function of sample ${i}`);
            assert.equal(rows[i].t, t);
            assert.equal(rows[i].lr, lr ?? null);
          }
        }
      });
    }
  }
}

Deno.test("unique-info: t -> infinity (gradient flow, lambda > 0) gives today's closed form", async () => {
  const pr = problem(31, 8, 3, 2, 9);
  const batches = batchesOf(pr, 4);
  const closed = rowsOf((await runPlugin(uniqueInfoPlugin, { "si-lambda": 0.4 }, batches)).results.unique_information);
  const ref = looReference(pr, 0.4);
  for (const route of ["secular", "chebyshev"]) {
    const finite = rowsOf(
      (await runPlugin(uniqueInfoPlugin, { "si-lambda": 0.4, "si-t": 1e6, "si-finite-route": route }, batches))
        .results.unique_information,
    );
    finite.forEach((r, i) => {
      assertRel(r.si_weights as number, closed[i].si_weights as number, 1e-8, `si_weights ${i}`);
      assertRel(r.si_function as number, closed[i].si_function as number, 1e-8, `si_function ${i}`);
      assertRel(r.si_weights as number, ref.w[i], 1e-8, `si_weights ${i} vs ridge retraining`);
    });
  }
});

Deno.test("unique-info: --si-change-vectors gives w - w_{-i} of the top samples; --si-summary the SI shares", async () => {
  const pr = problem(12, 10, 3, 2, 12);
  const lr = stepOf(pr, 0.1), t = 40;
  const ref = reference(pr, t, lr, 0.1);
  const { results } = await runPlugin(
    uniqueInfoPlugin,
    { "si-lambda": 0.1, "si-t": t, "si-lr": lr, "si-change-vectors": 3, "si-summary": true },
    batchesOf(pr, 6),
  );
  const cv = rowsOf(results.si_change_vectors);
  assert.equal(cv.length, 3 * pr.p);
  const top = [...ref.w.keys()].sort((a, b) => ref.w[b] - ref.w[a]).slice(0, 3);
  cv.forEach((r) => {
    const i = Number(r.sample_id) - 100;
    assert.equal(top[(r.rank_weights as number) - 1], i);
    const want = ref.deltas[i][r.parameter as number];
    assert.ok(Math.abs((r.delta_w as number) - want) <= 1e-8 * Math.sqrt(ref.w[i]), `delta_w ${r.delta_w} vs ${want}`);
  });
  const sum = rowsOf(results.unique_information_summary);
  assert.equal(sum.length, 20);
  const sorted = [...ref.w].sort((a, b) => b - a), total = sorted.reduce((a, b) => a + b, 0);
  sum.forEach((r) => {
    const m = Number(r.samples_kept);
    assert.equal(m, Math.ceil((r.fraction_kept as number) * pr.n - 1e-9));
    assertRel(r.si_weights_share as number, sorted.slice(0, m).reduce((a, b) => a + b, 0) / total, 1e-8, "share");
  });
  assert.equal(sum[19].si_weights_share, 1);
  // the closed form (t = infinity) writes change vectors too
  const closed = await runPlugin(uniqueInfoPlugin, { "si-lambda": 0.2, "si-change-vectors": 2 }, batchesOf(pr, 6));
  const ridge = looReference(pr, 0.2);
  const best = [...ridge.w.keys()].sort((a, b) => ridge.w[b] - ridge.w[a])[0];
  const rowsBest = rowsOf(closed.results.si_change_vectors).filter((r) => r.rank_weights === 1);
  assertRel(rowsBest.reduce((a, r) => a + (r.delta_w as number) ** 2, 0), ridge.w[best], 1e-8, "||delta_w||^2");
});

Deno.test("unique-info: finite-time option errors", async () => {
  const pr = problem(5, 4, 2, 1, 5);
  const b = batchesOf(pr, 3);
  await assert.rejects(
    () => runPlugin(uniqueInfoPlugin, { "si-lambda": 1, "si-lr": 0.1 }, b),
    /--si-lr as it needs --si-t/,
  );
  await assert.rejects(
    () => runPlugin(uniqueInfoPlugin, { "si-lambda": 0 }, b),
    /Cannot use --si-lambda as it must be > 0 without --si-t .*: current value is 0/,
  );
  await assert.rejects(
    () => runPlugin(uniqueInfoPlugin, { "si-lambda": 0, "si-t": 2.5, "si-lr": 0.1 }, b),
    /--si-t as it must be a whole number of steps with --si-lr: current value is 2.5/,
  );
  await assert.rejects(() => runPlugin(uniqueInfoPlugin, { "si-lambda": -1, "si-t": 2 }, b), /must be >= 0/);
});

Deno.test("finite_time: the spectral filter and the route choice", () => {
  // g(x) = (1 - (1 - eta x)^T) / x, and eta T at x = 0; T -> infinity: 1 / x
  assert.ok(Math.abs(gain(0.5, { t: 3, lr: 0.1, lambda: 0 }) - (1 - 0.95 ** 3) / 0.5) < 1e-15);
  assert.ok(Math.abs(gain(2, { t: 1, lambda: 0 }) - (1 - Math.exp(-2)) / 2) < 1e-15);
  assert.equal(gain(0, { t: 4, lambda: 0 }), 4);
  assert.ok(Math.abs(gain(1e-300, { t: 7, lr: 0.5, lambda: 0 }) - 3.5) < 1e-15);
  // oscillating steps (eta x > 1) still follow the formula
  assert.ok(Math.abs(gain(3, { t: 3, lr: 0.5, lambda: 0 }) - (1 - (-0.5) ** 3) / 3) < 1e-15);
  assert.equal(chooseRoute(2000, 1, { t: 1000, lr: 0.1, lambda: 0 }), "volterra");
  assert.equal(chooseRoute(2000, 1, { t: 1000, lambda: 0 }), "secular"); // no Chebyshev degree given
  assert.equal(chooseRoute(2000, 1, { t: 1000, lambda: 0 }, 200), "chebyshev");
  assert.equal(chooseRoute(2000, 1, { t: 1000, lr: 0.1, lambda: 0 }, 200), "chebyshev");
  assert.equal(chooseRoute(2000, 1, { t: 100, lr: 0.1, lambda: 0 }, 200), "volterra");
  assert.equal(chooseRoute(2000, 1, { t: 100000, lr: 1e-3, lambda: 0 }), "secular");
  assert.equal(chooseRoute(20, 1, { t: 1, lambda: 0 }, 1000), "secular"); // few samples, long series
  assert.ok(
    routeCosts(2000, 2, { t: 10, lr: 1, lambda: 0 }).volterra < routeCosts(2000, 2, { t: 10, lambda: 0 }).secular,
  );
  assert.equal(routeCosts(2000, 2, { t: 1, lambda: 0 }, 1e5).chebyshev, Infinity); // tables over the limit
});

// within ~2e-14 max |g| where g is steep: the values at the nodes carry the rounding of x (g' is up to t^2 / 2)
Deno.test("finite_time: the Chebyshev series of the filter is within ~1e-14 max|g| of g on the spectrum", () => {
  for (
    const [tt, a, b] of [
      [{ t: 300, lambda: 0 }, 0, 3],
      [{ t: 1000, lr: 0.3, lambda: 0 }, 1e-3, 6],
      [{ t: 2, lambda: 0.5 }, 0.5, 1.5],
      [{ t: 50, lr: 1.99, lambda: 0 }, 0, 1], // 1 - eta x near -1 at the top: the full degree T - 1
    ] as [TrainingTime, number, number][]
  ) {
    const ch = chebyshevFilter(a, b, tt)!;
    const c = ch.coefficients;
    let worst = 0, gmax = 0;
    for (let m = 0; m <= 1000; m++) {
      const y = -1 + m / 500, x = ch.mid + ch.half * y; // g at the x of y (g' is up to t^2 / 2)
      let t0 = 1, t1 = y, p = c[0] + (c.length > 1 ? c[1] * y : 0);
      for (let s = 2; s < c.length; s++) [t0, t1] = [t1, 2 * y * t1 - t0], p += c[s] * t1;
      const g = gain(x, tt);
      worst = Math.max(worst, Math.abs(p - g));
      gmax = Math.max(gmax, Math.abs(g));
    }
    assert.ok(
      worst <= 1e-13 * gmax,
      `${JSON.stringify(tt)}: max |p - g| = ${worst} (max |g| ${gmax}, D ${c.length - 1})`,
    );
    // a discrete filter is a polynomial of degree T - 1: the series never needs more
    if (tt.lr !== undefined) assert.ok(c.length <= tt.t, `degree ${c.length - 1} for T = ${tt.t}`);
  }
});

/** A random spectral problem: `Theta = J J^T` (N = n k rows, p columns; p < N: exact zero eigenvalues). */
function randomSpectral(seed: number, N: number, p: number) {
  const rng = new Rng(seed);
  const J = sharedF64(N * p).map(() => rng.normal() / Math.sqrt(p));
  const theta = sharedF64(N * N);
  gemm(matrix(theta, N), matrix(J, N, p), transpose(matrix(J, p === 0 ? 1 : N, p)), { threads: 1 });
  return spectral(theta, N, new Float64Array(N).map(() => rng.normal()));
}

Deno.test("finite_time: the Chebyshev route equals the secular and Volterra routes to ~1e-12", () => {
  for (const [k, n, p] of [[1, 40, 60], [2, 30, 80], [3, 20, 25]]) {
    const N = n * k, sp = randomSpectral(100 * k + n, N, p), top = sp.values[N - 1];
    const cases: TrainingTime[] = [
      { t: 300 / top, lambda: 0 },
      { t: 2 / top, lambda: 0.1 * top },
      { t: 400, lr: 0.9 / top, lambda: 0 },
      { t: 60, lr: 1.9 / top, lambda: 0.05 * top },
    ];
    for (const tt of cases) {
      const cheb = sharedF64(n * N), ref = sharedF64(n * N), vol = sharedF64(n * N);
      looChebyshev(sp, k, tt, cheb, 1);
      for (let i = 0; i < n; i++) looSecular(sp, k, i, tt, ref.subarray(i * N, (i + 1) * N));
      if (tt.lr !== undefined) looVolterra(sp, k, tt, vol, 1);
      for (let i = 0; i < n; i++) {
        let norm = 0, d = 0, dv = 0;
        for (let j = 0; j < N; j++) {
          const x = ref[i * N + j];
          norm += x * x;
          d += (cheb[i * N + j] - x) ** 2;
          dv += (cheb[i * N + j] - vol[i * N + j]) ** 2;
        }
        const what = `k = ${k}, ${JSON.stringify(tt)}, sample ${i}`;
        assert.ok(Math.sqrt(d / norm) <= 1e-11, `${what}: chebyshev vs secular ${Math.sqrt(d / norm)}`);
        if (tt.lr !== undefined) {
          assert.ok(Math.sqrt(dv / norm) <= 1e-11, `${what}: chebyshev vs volterra ${Math.sqrt(dv / norm)}`);
        }
      }
    }
  }
});
