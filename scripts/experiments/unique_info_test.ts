import assert from "node:assert/strict";
import { pearson, retrain64, uniqueInfo } from "./unique_info.ts";
import { initBackend } from "./_common.ts";
import { sharedF64 } from "../../plugins/kernels/linalg/mod.ts";

Deno.test("pearson: known values", () => {
  assert.ok(Math.abs(pearson([1, 2, 3], [2, 4, 6]) - 1) < 1e-15);
  assert.ok(Math.abs(pearson([1, 2, 3], [3, 2, 1]) + 1) < 1e-15);
  // numpy.corrcoef([1, 2, 3, 4], [1, 3, 2, 4])[0, 1] == 0.8
  assert.ok(Math.abs(pearson([1, 2, 3, 4], [1, 3, 2, 4]) - 0.8) < 1e-15);
});

Deno.test("Unique information (fast): SI predicts actual retraining; flipped labels have high SI", async () => {
  const out = await Deno.makeTempDir();
  const r = await uniqueInfo({ fast: true, check: 10, flipScales: [0.01], out });
  assert.ok(r.convergence < 0.05, `retraining not converged: ${r.convergence}`);
  assert.ok(r.pearsonWeights > 0.8, `weights: Pearson ${r.pearsonWeights}`);
  assert.ok(r.pearsonFunction > 0.9, `function: Pearson ${r.pearsonFunction}`);
  const f = r.flipped![0];
  const chance = f.flipped * 0.1;
  assert.ok(f.inTopWeights > 2 * chance, `${f.inTopWeights} flipped in the top 10% (chance ${chance})`);
});

Deno.test("Unique information (fast, the official setting: lambda = 0, T plain steps): SI predicts retraining by T steps", async () => {
  const out = await Deno.makeTempDir();
  const r = await uniqueInfo({ fast: true, setting: "paper", check: 10, flip: 0, out });
  // measured 0.990 / 0.996 (n = 150, 196-128-1, T = 100)
  assert.ok(r.pearsonWeights > 0.95, `weights: Pearson ${r.pearsonWeights}`);
  assert.ok(r.pearsonFunction > 0.95, `function: Pearson ${r.pearsonFunction}`);
  assert.equal(r.lambda, 0);
  await Deno.remove(out, { recursive: true });
});

Deno.test("retrain64: plain gradient descent equals tfjs' autodiff steps on the same network", async () => {
  const tf = await initBackend();
  for (const k of [1, 2]) {
    const n = 9, d = 5, h = 7, nt = 3, lr = 0.05, steps = 4;
    const rnd = (len: number, s: number) =>
      tf.tidy(() => tf.randomUniform([len], -1, 1, "float32", s).dataSync() as Float32Array);
    const w0 = [
      { name: "fc1.weight", shape: [d, h], values: rnd(d * h, 1) },
      { name: "fc1.bias", shape: [h], values: rnd(h, 2) },
      { name: "out.weight", shape: [h, k], values: rnd(h * k, 3) },
      { name: "out.bias", shape: [k], values: rnd(k, 4) },
    ];
    const xv = rnd(n * d, 5), yv = rnd(n * k, 6), tv = rnd(nt * d, 7);
    const mask = Float64Array.from({ length: n }, (_, i) => (i === 4 ? 0 : 1));
    const x = sharedF64(n * d), xt = sharedF64(d * n), tx = sharedF64(nt * d);
    for (let i = 0; i < n; i++) for (let a = 0; a < d; a++) x[i * d + a] = xt[a * n + i] = xv[i * d + a];
    tx.set(tv);
    const got = retrain64(w0, x, xt, Float64Array.from(yv), mask, tx, lr, steps, 1);
    // tfjs: sum of masked squared errors / 2, plain SGD on the full batch
    const vars = w0.map((p) => tf.variable(tf.tensor(p.values, p.shape)));
    const X = tf.tensor2d(xv, [n, d]), Y = tf.tensor2d(yv, [n, k]), M = tf.tensor2d(Float32Array.from(mask), [n, 1]);
    const f = (xs: typeof X) =>
      tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(xs, vars[0] as typeof X), vars[1])), vars[2] as typeof X), vars[3]);
    const opt = tf.train.sgd(lr);
    for (let s = 0; s < steps; s++) {
      opt.minimize(() => tf.mul(0.5, tf.sum(tf.mul(M, tf.square(tf.sub(f(X), Y))))) as ReturnType<typeof tf.scalar>);
    }
    const want = vars.flatMap((v) => [...(v.dataSync() as Float32Array)]);
    const wantF = f(tf.tensor2d(tv, [nt, d])).dataSync();
    let moved = 0;
    want.forEach((v, j) => (moved = Math.max(moved, Math.abs(v - w0.flatMap((p) => [...p.values])[j]))));
    assert.ok(moved > 1e-3, `training moved the weights by ${moved}`);
    want.forEach((v, j) => assert.ok(Math.abs(got.w[j] - v) < 2e-5, `k = ${k}, weight ${j}: ${got.w[j]} vs ${v}`));
    wantF.forEach((v, j) => assert.ok(Math.abs(got.f[j] - v) < 2e-5, `k = ${k}, output ${j}: ${got.f[j]} vs ${v}`));
    tf.dispose([...vars, X, Y, M]);
  }
});
