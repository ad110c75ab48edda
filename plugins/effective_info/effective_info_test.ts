/**
 * The `effective-info` estimator end to end: activations under noise draws, the moments it estimates, and the
 * bounds against the closed form (common noise), against the bounds of the true moments (weight noise on a
 * linear layer, where `z | x ~ N(x W*, sigma^2 ||x||^2 I)` exactly), noise-free neurons, options and errors.
 */
import assert from "node:assert/strict";
import { effectiveInfoPlugin, klBias } from "./effective_info.ts";
import { diagonalBounds, fullBounds } from "./mixture_bounds.ts";
import { activationBatch, Rng, rowsOf, runPlugin } from "../../tests/_util.ts";
import type { Batch } from "../../schemas/batch.ts";

/** Rows `(input, draw)` in draw-major order (as a producer records them), split into `parts` batches. */
function drawBatches(
  inputs: number,
  draws: number,
  layers: Record<string, number>,
  value: (input: number, draw: number) => Record<string, number[]>,
  parts = 3,
): Batch[] {
  const rows: [number, number][] = [];
  for (let r = 0; r < draws; r++) for (let i = 0; i < inputs; i++) rows.push([i, r]);
  const per = Math.ceil(rows.length / parts), out: Batch[] = [];
  for (let p = 0; p < parts; p++) {
    const part = rows.slice(p * per, (p + 1) * per);
    const cols: Record<string, { width: number; values: Float32Array }> = {};
    for (const [name, w] of Object.entries(layers)) {
      cols[name] = { width: w, values: new Float32Array(part.length * w) };
    }
    part.forEach(([i, r], k) => {
      const v = value(i, r);
      for (const [name, w] of Object.entries(layers)) cols[name].values.set(v[name], k * w);
    });
    const b = activationBatch(part.length, cols, {
      sampleId: BigInt64Array.from(part, ([i]) => BigInt(1000 + i)),
      draw: Int32Array.from(part, ([, r]) => r),
    });
    b.index = p;
    out.push(b);
  }
  return out;
}

Deno.test("effective-info: common noise C, means from N(0, S): bounds bracket 1/2 log det(I + S C^-1)", async () => {
  const rng = new Rng(31), n = 300, draws = 200;
  const S = [2, 0.6, 0.6, 1], C = [0.5, 0.1, 0.1, 0.3];
  const ls = [Math.sqrt(S[0]), S[2] / Math.sqrt(S[0])], lc = [Math.sqrt(C[0]), C[2] / Math.sqrt(C[0])];
  ls.push(Math.sqrt(S[3] - ls[1] ** 2));
  lc.push(Math.sqrt(C[3] - lc[1] ** 2));
  const mu = Array.from({ length: n }, () => {
    const a = rng.normal(), b = rng.normal();
    return [ls[0] * a, ls[1] * a + ls[2] * b];
  });
  const batches = drawBatches(n, draws, { fc: 2 }, (i) => {
    const a = rng.normal(), b = rng.normal();
    return { fc: [mu[i][0] + lc[0] * a, mu[i][1] + lc[1] * a + lc[2] * b] };
  });
  const { results } = await runPlugin(effectiveInfoPlugin, {}, batches);
  const rows = rowsOf(results.effective_info);
  const layer = rows.find((r) => r.level === "layer")!;
  const detIplusSCinv = (() => {
    const dc = C[0] * C[3] - C[1] * C[2], ci = [C[3] / dc, -C[1] / dc, -C[2] / dc, C[0] / dc];
    const m = [
      S[0] * ci[0] + S[1] * ci[2],
      S[0] * ci[1] + S[1] * ci[3],
      S[2] * ci[0] + S[3] * ci[2],
      S[2] * ci[1] + S[3] * ci[3],
    ];
    return (1 + m[0]) * (1 + m[3]) - m[1] * m[2];
  })();
  const closed = 0.5 * Math.log(detIplusSCinv);
  assert.equal(layer.covariance, "full");
  assert.deepEqual([layer.inputs, layer.draws, layer.rows], [String(n), String(draws), String(n * draws)]);
  assert.ok(
    (layer.lower as number) < closed && closed < (layer.upper as number),
    `${layer.lower} ${closed} ${layer.upper}`,
  );
  // The estimated moments give nearly the bounds of the true ones (means off by C / R, covariances by ~sqrt(2 / R)).
  const truth = fullBounds(Float64Array.from(mu.flat()), new Float64Array(4 * n).map((_, k) => C[k % 4]), n, 2);
  assert.ok(Math.abs((layer.lower as number) - truth.lower) < 0.05, `lower ${layer.lower} vs ${truth.lower}`);
  assert.ok(Math.abs((layer.upper as number) - truth.upper) < 0.05, `upper ${layer.upper} vs ${truth.upper}`);
  for (const a of [0, 1]) {
    const r = rows.find((x) => x.level === "neuron" && x.neuron === a)!;
    const one = 0.5 * Math.log1p(S[3 * a] / C[3 * a]);
    assert.ok((r.lower as number) < one && one < (r.upper as number), `neuron ${a}: ${r.lower} ${one} ${r.upper}`);
    assert.ok(Math.abs((r.noise_var as number) - C[3 * a]) < 0.05 * C[3 * a], `noise_var ${r.noise_var}`);
  }
  assert.equal(layer.log_n, Math.log(n));
});

Deno.test("effective-info: weight noise on a linear layer matches the bounds of the exact z | x moments", async () => {
  // z = x W, W = W* + sigma E with E drawn once per draw (shared by every input, as a producer does).
  const rng = new Rng(32), n = 80, draws = 400, din = 3, dout = 2, sigma = 0.3;
  const x = Array.from({ length: n }, () => Array.from({ length: din }, () => rng.normal()));
  const w = Array.from({ length: din * dout }, () => rng.normal());
  const noise = Array.from({ length: draws }, () => Array.from({ length: din * dout }, () => sigma * rng.normal()));
  const batches = drawBatches(n, draws, { lin: dout }, (i, r) => ({
    lin: Array.from({ length: dout }, (_, o) => {
      let s = 0;
      for (let k = 0; k < din; k++) s += x[i][k] * (w[k * dout + o] + noise[r][k * dout + o]);
      return s;
    }),
  }));
  const { results } = await runPlugin(effectiveInfoPlugin, {}, batches);
  const layer = rowsOf(results.effective_info).find((r) => r.level === "layer")!;
  // Exact: mu_x = x W*, C_x = sigma^2 ||x||^2 I.
  const means = Float64Array.from(
    x.flatMap((xi) => Array.from({ length: dout }, (_, o) => xi.reduce((s, v, k) => s + v * w[k * dout + o], 0))),
  );
  const vars = Float64Array.from(x.flatMap((xi) => Array(dout).fill(sigma ** 2 * xi.reduce((s, v) => s + v * v, 0))));
  const exact = diagonalBounds(means, vars, n, dout);
  assert.equal(layer.covariance, "full");
  assert.ok(Math.abs((layer.lower as number) - exact.lower) < 0.03, `lower ${layer.lower} vs ${exact.lower}`);
  assert.ok(Math.abs((layer.upper as number) - exact.upper) < 0.03, `upper ${layer.upper} vs ${exact.upper}`);
  // More weight noise, less information (the paper's direction, here by construction of C_x).
  const noisier = drawBatches(n, 50, { lin: dout }, (i, r) => ({
    lin: Array.from({ length: dout }, (_, o) => {
      let s = 0;
      for (let k = 0; k < din; k++) s += x[i][k] * (w[k * dout + o] + 3 * noise[r][k * dout + o]);
      return s;
    }),
  }));
  const more = rowsOf((await runPlugin(effectiveInfoPlugin, {}, noisier)).results.effective_info).at(-1)!;
  assert.ok((more.upper as number) < (layer.lower as number), `${more.upper} < ${layer.lower}`);
});

Deno.test("effective-info: a noise-free neuron carries the entropy of its distinct means (variance floor)", async () => {
  const means = [0, 0, 1, 2];
  const batches = drawBatches(4, 3, { fc: 2 }, (i, r) => ({ fc: [means[i], means[i] + (r - 1) * 0.5] }));
  const { results, estimator } = await runPlugin(effectiveInfoPlugin, {}, batches);
  const rows = rowsOf(results.effective_info);
  const h = -(0.5 * Math.log(0.5) + 2 * 0.25 * Math.log(0.25));
  const r0 = rows.find((r) => r.neuron === 0)!;
  assert.ok(Math.abs((r0.lower as number) - h) < 1e-12 && Math.abs((r0.upper as number) - h) < 1e-12, `${r0.lower}`);
  assert.equal(r0.noise_var, 0);
  // The layer: 3 draws <= 2 neurons + 1 is enough for a full covariance, but neuron 0's is singular (ridge).
  const s = (estimator as unknown as { summary(): { floored: number; warnings: string[] } }).summary();
  assert.equal(s.floored, 4);
  assert.match(s.warnings[0], /4 per-input variance\(s\) raised/);
});

Deno.test("effective-info: options choose the covariance; too few draws for its bias fall back to the diagonal", async () => {
  const rng = new Rng(33);
  const batches = drawBatches(10, 120, { a: 3, b: 5 }, () => ({
    a: [rng.normal(), rng.normal(), rng.normal()],
    b: [1, 2, 3, 4, 5].map((k) => k * rng.normal()),
  }));
  const layers = async (o: Record<string, number | boolean>) =>
    rowsOf((await runPlugin(effectiveInfoPlugin, o, batches)).results.effective_info).filter((r) =>
      r.level === "layer"
    );
  const auto = await layers({});
  // a: KL bias (12 + 6 * 119 / 120) / (2 * 115) = 0.078 <= 0.1; b: (30 + 10 * 119 / 120) / (2 * 113) = 0.177.
  assert.deepEqual(auto.map((r) => r.covariance), ["full", "diagonal"]);
  assert.ok(Math.abs((auto[0].kl_bias as number) - klBias(3, 120, true)) < 1e-15);
  assert.ok(Math.abs((auto[1].kl_bias as number) - (5 * 239) / (120 * 117)) < 1e-15);
  assert.deepEqual((await layers({ "eff-cov-width": 0 })).map((r) => r.covariance), ["diagonal", "diagonal"]);
  assert.deepEqual((await layers({ "eff-cov-width": 2 })).map((r) => r.covariance), ["diagonal", "diagonal"]);
  const noNeurons = await runPlugin(effectiveInfoPlugin, { "eff-neurons": false }, batches);
  assert.equal(noNeurons.results.effective_info.numRows, 2);
});

Deno.test("effective-info: with identical inputs the bounds sit at about kl_bias (the finite-draws bias)", async () => {
  // True I(x; z) = 0: every input draws from N(0, 1) per neuron; what the bounds show is estimation noise.
  const rng = new Rng(34), draws = 40;
  const batches = drawBatches(300, draws, { fc: 4, pair: 2 }, () => ({
    fc: [rng.normal(), rng.normal(), rng.normal(), rng.normal()],
    pair: [rng.normal(), rng.normal()],
  }));
  const { results } = await runPlugin(effectiveInfoPlugin, { "eff-cov-width": 0 }, batches);
  const rows = rowsOf(results.effective_info);
  for (const r of rows) {
    const bias = r.kl_bias as number;
    assert.ok(Math.abs(bias - klBias(r.width as number, draws, false)) < 1e-15);
    // For small pairwise KLs, upper = log N - mean log1p(sum exp(-KL)) ~ E[KL]: the bias, within sampling noise.
    assert.ok(Math.abs((r.upper as number) - bias) < 0.25 * bias, `${r.layer} ${r.neuron}: ${r.upper} vs ${bias}`);
    assert.ok((r.lower as number) < (r.upper as number) / 2);
  }
  // A full 2 x 2 covariance at R = 40 would carry a KL bias of 0.14 nats (it grows as d^2 / R): diagonal instead.
  const full = rowsOf((await runPlugin(effectiveInfoPlugin, {}, batches)).results.effective_info);
  assert.equal(full.find((r) => r.layer === "pair" && r.level === "layer")!.covariance, "diagonal");
});

Deno.test("effective-info: activations without a draw column, or with changing layers, are refused", async () => {
  const plain = activationBatch(2, { fc: { width: 1, values: new Float32Array(2) } });
  await assert.rejects(
    () => runPlugin(effectiveInfoPlugin, {}, [plain]),
    /batch 0, column 'draw': Cannot estimate effective information as the activations need a 'draw' column/,
  );
  const a = drawBatches(2, 2, { fc: 1 }, () => ({ fc: [1] }), 1);
  const b = drawBatches(2, 2, { fc: 2 }, () => ({ fc: [1, 2] }), 1);
  await assert.rejects(
    () => runPlugin(effectiveInfoPlugin, {}, [...a, ...b]),
    /as the layers changed \(expected fc\[1\]\)/,
  );
});
