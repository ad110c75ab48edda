import assert from "node:assert/strict";
import { fisherPlugin, layerOf } from "./fisher.ts";
import { FdSketch } from "./fd_sketch.ts";
import { symEig } from "../kernels/linalg/symeig.ts";
import { gradientBatch, Rng, rowsOf, runPlugin } from "../../tests/_util.ts";
import { mixedGradients } from "../../tests/_contract_fixtures.ts";
import { resolveOptions } from "../../pipeline/core/plugin.ts";
import type { Batch } from "../../schemas/batch.ts";

const close = (a: number, b: number, rtol: number, label: string) =>
  assert.ok(Math.abs(a - b) <= rtol * Math.max(Math.abs(a), Math.abs(b), 1e-300), `${label}: ${a} vs ${b}`);

/** Sylvester-Hadamard sign: columns of H (n = 64) are orthogonal, so G = H diag(sigma) has G^T G = n diag(sigma^2). */
const hadamard = (r: number, j: number) => {
  let x = r & j, p = 0;
  while (x) {
    p ^= x & 1;
    x >>= 1;
  }
  return p ? -1 : 1;
};

const SHAPES: [string, number][] = [["fc1.weight", 20], ["fc1.bias", 4], ["fc2.weight", 12], ["fc2.bias", 4]];

/** G (64 x 40) with orthogonal columns: F = G^T G / 64 = diag(sigma^2) exactly; split into 3 batches. */
function knownCovariance(): { batches: Batch[]; sigma2: number[] } {
  const P = 40;
  const sigma = Array.from({ length: P }, (_, j) => Math.fround(0.05 + 0.37 * ((j * 7) % 13) + j / 16));
  const rows = (r: number) => sigma.map((s, j) => s * hadamard(r, j + 1));
  const batches: Batch[] = [];
  for (const [r0, r1] of [[0, 10], [10, 41], [41, 64]]) {
    const params: Record<string, { width: number; values: Float32Array }> = {};
    let at = 0;
    for (const [name, w] of SHAPES) {
      const v = new Float32Array((r1 - r0) * w);
      for (let r = r0; r < r1; r++) for (let j = 0; j < w; j++) v[(r - r0) * w + j] = rows(r)[at + j];
      params[name] = { width: w, values: v };
      at += w;
    }
    batches.push(
      gradientBatch(r1 - r0, params, { draw: Int32Array.from({ length: r1 - r0 }, (_, i) => (r0 + i) % 2) }, r0),
    );
  }
  return { batches, sigma2: sigma.map((s) => s * s) };
}

Deno.test("fisher: diagonal, trace and info_weights equal the closed forms on G with known covariance", async () => {
  const { batches, sigma2 } = knownCovariance();
  const lambda2 = 0.3, beta = 0.7, c = lambda2 / beta;
  const { results } = await runPlugin(
    fisherPlugin,
    { "prior-var": lambda2, beta, "fisher-rank": 8, "fisher-diag": true },
    batches,
  );
  const rows = rowsOf(results.fisher);
  const info = (s2: number[]) => s2.reduce((a, f) => a + 0.5 * (Math.log(1 + c * f) - (c * f) / (1 + c * f)), 0);
  const sum = (xs: number[]) => xs.reduce((a, x) => a + x, 0);
  let at = 0;
  const byName = new Map(rows.map((r) => [`${r.level}:${r.parameter}`, r]));
  const layerSigma = new Map<string, number[]>();
  for (const [name, w] of SHAPES) {
    const s2 = sigma2.slice(at, at + w);
    at += w;
    const r = byName.get(`parameter:${name}`)!;
    assert.equal(Number(r.numel), w);
    assert.equal(r.samples, "64");
    assert.equal(r.kind, "true Fisher");
    close(r.trace as number, sum(s2), 1e-9, `${name} trace`);
    close(r.mean_diag as number, sum(s2) / w, 1e-9, `${name} mean_diag`);
    close(r.max_diag as number, Math.max(...s2), 1e-9, `${name} max_diag`);
    close(r.info_weights as number, info(s2), 1e-9, `${name} info_weights`);
    layerSigma.set(layerOf(name), [...(layerSigma.get(layerOf(name)) ?? []), ...s2]);
  }
  for (const [layer, s2] of layerSigma) {
    const r = byName.get(`layer:${layer}`)!;
    close(r.trace as number, sum(s2), 1e-9, `${layer} trace`);
    close(r.info_weights as number, info(s2), 1e-9, `${layer} info_weights`);
  }
  const total = byName.get("total:null")!;
  close(total.trace as number, sum(sigma2), 1e-9, "total trace");
  close(total.info_weights as number, info(sigma2), 1e-9, "total info_weights");
  assert.equal(rows.length, 4 + 2 + 1);
  // Full diagonal.
  const diag = rowsOf(results.fisher_diag);
  assert.equal(diag.length, 40);
  diag.forEach((d, i) => close(d.value as number, sigma2[i], 1e-9, `diag ${i}`));
  // Sketch: F's eigenvalues are sigma^2 sorted; each estimate within [lambda_i - bound, lambda_i].
  const exact = [...sigma2].sort((a, b) => b - a);
  const spec = rowsOf(results.fisher_spectrum);
  assert.equal(spec.length, 8);
  const bound = spec[0].error_bound as number;
  assert.ok(bound > 0, "the sketch shrank (64 rows > 2 ell = 16)");
  spec.forEach((s, i) => {
    const mu = s.eigenvalue as number;
    assert.ok(mu <= exact[i] * (1 + 1e-9) && exact[i] <= mu + bound * (1 + 1e-9), `eigen ${i}: ${mu} ${exact[i]}`);
  });
  // FD's a priori bound: Delta/n <= ||G - G_k||_F^2 / ((ell - k) n) = sum_{i>k} lambda_i / (ell - k).
  for (let k = 0; k < 8; k++) assert.ok(bound <= sum(exact.slice(k)) / (8 - k) * (1 + 1e-9), `a priori k=${k}`);
  // logdet and effective dimension: lower bounds of the exact values.
  const ld = sum(exact.map((l) => Math.log1p(c * l))), ed = sum(exact.map((l) => (c * l) / (1 + c * l)));
  assert.ok((total.logdet as number) <= ld && (total.logdet as number) > 0);
  assert.ok((total.effective_dim as number) <= ed && (total.effective_dim as number) > 0);
});

Deno.test("fisher: with ell >= P the sketch is exact: logdet and effective_dim equal the closed forms", async () => {
  const { batches, sigma2 } = knownCovariance();
  const c = 2 / 3;
  const { results } = await runPlugin(fisherPlugin, { "prior-var": 2, beta: 3, "fisher-rank": 40 }, batches);
  const total = rowsOf(results.fisher).at(-1)!;
  assert.equal(total.level, "total");
  close(total.logdet as number, sigma2.reduce((a, l) => a + Math.log1p(c * l), 0), 1e-9, "logdet");
  close(total.effective_dim as number, sigma2.reduce((a, l) => a + (c * l) / (1 + c * l), 0), 1e-9, "eff dim");
  const spec = rowsOf(results.fisher_spectrum);
  const exact = [...sigma2].sort((a, b) => b - a);
  spec.forEach((s, i) => close(s.eigenvalue as number, exact[i], 1e-9, `eigen ${i}`));
});

/** Top eigenvalues of a symmetric matrix by power iteration with deflation (independent of Jacobi). */
function powerEigen(a: Float64Array, n: number, k: number): number[] {
  const m = Float64Array.from(a);
  const out: number[] = [];
  const rng = new Rng(99);
  for (let t = 0; t < k; t++) {
    let v = Float64Array.from({ length: n }, () => rng.normal());
    let lambda = 0;
    for (let it = 0; it < 3000; it++) {
      const w = new Float64Array(n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) w[i] += m[i * n + j] * v[j];
      const norm = Math.hypot(...w);
      const next = norm === 0 ? 0 : w.reduce((s, x, i) => s + x * v[i], 0);
      v = w.map((x) => x / norm);
      if (Math.abs(next - lambda) <= 1e-15 * Math.abs(next)) {
        lambda = next;
        break;
      }
      lambda = next;
    }
    out.push(lambda);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m[i * n + j] -= lambda * v[i] * v[j];
  }
  return out;
}

/** Rows of rank ~4 plus noise, P = 30. */
function lowRankRows(n: number, P: number, seed: number): Float64Array[] {
  const rng = new Rng(seed);
  const basis = Array.from({ length: 4 }, () => Float64Array.from({ length: P }, () => rng.normal()));
  return Array.from({ length: n }, () => {
    const r = Float64Array.from({ length: P }, () => 0.2 * rng.normal());
    basis.forEach((b, k) => {
      const z = rng.normal() * (4 - k);
      for (let j = 0; j < P; j++) r[j] += z * b[j];
    });
    return Float64Array.from(r, Math.fround);
  });
}

function exactGram(rows: Float64Array[], P: number): Float64Array {
  const g = new Float64Array(P * P);
  for (const r of rows) for (let i = 0; i < P; i++) for (let j = 0; j < P; j++) g[i * P + j] += r[i] * r[j];
  return g;
}

Deno.test("FD sketch: top eigenvalues within the tracked bound of power iteration on G^T G, also after merges", () => {
  const P = 30, n = 200, ell = 6;
  const rows = lowRankRows(n, P, 5);
  const exact = powerEigen(exactGram(rows, P), P, ell);
  const one = new FdSketch(ell, P);
  for (const r of rows) one.append(r);
  // Four sketches merged pairwise: FD's mergeability keeps the same guarantee.
  const parts = [0, 1, 2, 3].map((q) => {
    const s = new FdSketch(ell, P);
    for (const r of rows.slice(q * 50, q * 50 + 50)) s.append(r);
    return s;
  });
  parts[0].merge(parts[1]);
  parts[2].merge(parts[3]);
  parts[0].merge(parts[2]);
  const fro2 = rows.reduce((a, r) => a + r.reduce((b, x) => b + x * x, 0), 0);
  for (const [label, s] of [["one pass", one], ["merged", parts[0]]] as const) {
    assert.equal(s.n, n);
    assert.ok(s.delta > 0 && s.shrinks > 0, `${label} shrank`);
    const mu = s.eigenvalues().values;
    for (let i = 0; i < ell - 1; i++) {
      assert.ok(mu[i] <= exact[i] * (1 + 1e-9), `${label} ${i}: ${mu[i]} <= ${exact[i]}`);
      assert.ok(exact[i] <= mu[i] + s.delta * (1 + 1e-9), `${label} ${i}: ${exact[i]} <= ${mu[i]} + ${s.delta}`);
    }
    // A priori: Delta <= ||G - G_k||_F^2 / (ell - k), with ||G - G_k||_F^2 = ||G||_F^2 - sum_{i<=k} lambda_i.
    for (let k = 0; k < ell; k++) {
      const tail = fro2 - exact.slice(0, k).reduce((a, x) => a + x, 0);
      assert.ok(s.delta <= (tail / (ell - k)) * (1 + 1e-9), `${label} a priori k=${k}`);
    }
    // The sketch is useful here: the top direction is captured to within 2%.
    assert.ok(mu[0] > 0.98 * exact[0], `${label} top eigenvalue ${mu[0]} vs ${exact[0]}`);
  }
});

Deno.test("symEig: A V = V diag(values), V orthonormal, values descending (random symmetric 12 x 12)", () => {
  const n = 12, rng = new Rng(3);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = rng.normal();
  const { values, vectors } = symEig(a, n);
  for (let k = 0; k < n; k++) {
    if (k) assert.ok(values[k] <= values[k - 1]);
    for (let i = 0; i < n; i++) {
      let av = 0;
      for (let j = 0; j < n; j++) av += a[i * n + j] * vectors[j * n + k];
      assert.ok(Math.abs(av - values[k] * vectors[i * n + k]) < 1e-12, `residual ${k},${i}`);
    }
    for (let l = 0; l < n; l++) {
      let d = 0;
      for (let i = 0; i < n; i++) d += vectors[i * n + k] * vectors[i * n + l];
      assert.ok(Math.abs(d - (k === l ? 1 : 0)) < 1e-12);
    }
  }
  // trace is preserved
  const tr = Array.from({ length: n }, (_, i) => a[i * n + i]).reduce((x, y) => x + y, 0);
  close(values.reduce((x, y) => x + y, 0), tr, 1e-12, "trace");
});

Deno.test("fisher: NaN/Inf entries are left out of their own F_jj and counted; such rows skip the sketch", async () => {
  const batches = mixedGradients(7);
  const { results } = await runPlugin(fisherPlugin, { "fisher-diag": true, "fisher-rank": 4 }, batches);
  const diag = rowsOf(results.fisher_diag);
  // Independent reference: coordinate 4 of fc1.weight (has one NaN in batch 1).
  let s = 0, k = 0;
  for (const b of batches) {
    const v = b.columns[0].values;
    for (let r = 0; r < b.numRows; r++) {
      if (Number.isFinite(v[r * 6 + 4])) {
        s += v[r * 6 + 4] ** 2;
        k++;
      }
    }
  }
  assert.equal(k, 99);
  close(diag[4].value as number, s / k, 1e-12, "F_44 over finite rows");
  const t = rowsOf(results.fisher);
  assert.equal(t.find((r) => r.parameter === "fc1.weight")!.nonfinite, "1");
  assert.equal(t.find((r) => r.parameter === "fc2.weight")!.nonfinite, "1");
  assert.equal(t.find((r) => r.level === "total")!.nonfinite, "2");
  const spec = rowsOf(results.fisher_spectrum);
  assert.equal(spec[0].sketch_skipped, "2");
  assert.equal(spec[0].samples, "98");
});

Deno.test("fisher: the kind is required, carried into every row, and never mixed", async () => {
  const good = mixedGradients(8, 2, 5, "empirical");
  const { results } = await runPlugin(fisherPlugin, { "fisher-diag": true, "fisher-rank": 2 }, good);
  for (const name of ["fisher", "fisher_diag", "fisher_spectrum"]) {
    const t = results[name];
    assert.equal(t.schema.metadata.get("infotap.fisher"), "empirical Fisher");
    assert.ok(rowsOf(t).every((r) => r.kind === "empirical Fisher"), name);
  }
  const noKind = { ...good[0], metadata: new Map([["infotap.schema", "gradients/v1"]]) };
  await assert.rejects(
    () => runPlugin(fisherPlugin, {}, [noKind]),
    /file 'test', batch 0, column 'infotap.fisher': Cannot compute the Fisher information as schema metadata 'infotap.fisher' must be 'true' or 'empirical'.*current value is missing/,
  );
  const mixed = [good[0], mixedGradients(9, 1, 5, "true")[0]];
  await assert.rejects(() => runPlugin(fisherPlugin, {}, mixed), /Cannot mix empirical Fisher and true Fisher/);
});

Deno.test("fisher: --prior-var and --beta are > 0 and go together; without them info_weights is null", async () => {
  assert.throws(
    () => resolveOptions(fisherPlugin, { "prior-var": 1 }),
    /\[fisher\] .*--prior-var and --beta go together/,
  );
  assert.throws(() => resolveOptions(fisherPlugin, { "prior-var": 1, beta: 0 }), /--beta as it must be > 0/);
  assert.throws(() => resolveOptions(fisherPlugin, { "prior-var": -1, beta: 1 }), /--prior-var as it must be > 0/);
  const { results } = await runPlugin(fisherPlugin, {}, mixedGradients(10, 2, 5));
  const rows = rowsOf(results.fisher);
  assert.ok(rows.every((r) => r.info_weights === null && r.logdet === null && r.effective_dim === null));
  assert.ok(rows.every((r) => typeof r.trace === "number"));
  assert.equal(results.fisher.schema.metadata.get("infotap.prior_var"), undefined);
  const withPrior = await runPlugin(fisherPlugin, { "prior-var": 0.25, beta: 4 }, mixedGradients(10, 2, 5));
  assert.equal(withPrior.results.fisher.schema.metadata.get("infotap.prior_var"), "0.25");
  assert.equal(withPrior.results.fisher.schema.metadata.get("infotap.beta"), "4");
});

Deno.test("fisher: --by-step gives one row set per step, each equal to a run over that step's rows", async () => {
  const batches = mixedGradients(11, 4, 10);
  const { results } = await runPlugin(fisherPlugin, { "fisher-rank": 0 }, batches, { byStep: true });
  const rows = rowsOf(results.fisher);
  assert.deepEqual([...new Set(rows.map((r) => r.step))], ["0", "1"]);
  for (const step of [0, 1]) {
    const only = await runPlugin(fisherPlugin, { "fisher-rank": 0 }, batches.slice(step * 2, step * 2 + 2));
    const want = rowsOf(only.results.fisher);
    const got = rows.filter((r) => r.step === String(step));
    assert.equal(got.length, want.length);
    got.forEach((r, i) => close(r.trace as number, want[i].trace as number, 1e-12, `step ${step} row ${i}`));
  }
});

Deno.test("fisher: a sketch too large for memory is refused with an error naming --fisher-rank", async () => {
  const wide = gradientBatch(1, { "big.weight": { width: 5_000_000, values: new Float32Array(5_000_000) } });
  await assert.rejects(
    () => runPlugin(fisherPlugin, { "fisher-rank": 64 }, [wide]),
    /Cannot keep a Frequent Directions sketch as its buffer .* would take 4\.8 GiB \(pass --fisher-rank 0 or a smaller rank\): current value is ell = 64, P = 5000000/,
  );
  const { results } = await runPlugin(fisherPlugin, { "fisher-rank": 0 }, [wide]);
  assert.equal(rowsOf(results.fisher).at(-1)!.trace, 0);
});
