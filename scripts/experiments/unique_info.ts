/**
 * Per-sample unique information (Harutyunyan et al., ICLR 2021; docs/science.md section 3): the linearised
 * prediction of how much the weights and the function change when one training sample is left out, from
 * Jacobians at `w0` streamed into `unique-info` ({@linkcode siOf}), checked against actual retraining of the real
 * network (Pearson and Kendall tau), and used to find flipped labels among the most informative samples. `--paper`:
 * the paper's own setting (no ridge, T plain gradient-descent steps, `--si-t`). Setting, figures and how they
 * compare with the paper: docs/REPRODUCTION.md, section 4.
 *
 * `--paper` follows the official code (awslabs/aws-cv-unique-information, `mnist4vs9_fullbatch_noreg_n1024_mlp`):
 * one output, 1,024 hidden units, no ridge, T plain steps at lr 0.001 on the mean loss, retrained in float64.
 *
 * Usage: `deno task exp:unique [--fast] [--paper] [--hidden H] [--steps T] [--lr LR] [--check C] [--seed S] [--out DIR]`
 * (results in `experiments/unique_info/`, or `experiments/unique_info_paper/`).
 *
 * @module
 */
import type * as TF from "@tensorflow/tfjs-core";
import { loadDigits } from "../examples/mnist.ts";
import { kendallTau } from "../../pipeline/report/kendall.ts";
import { serve } from "../../pipeline/serve/serve.ts";
import { tfjsJacobians } from "../../pipeline/producers/tfjs/jacobians.ts";
import { readResults } from "../../pipeline/report/results.ts";
import { gemm, matrix, sharedF64, transpose } from "../../plugins/kernels/linalg/mod.ts";
import { defaultThreads } from "../../plugins/kernels/threads.ts";
import { experimentArgs, initBackend, markdownTable, pool14, rng, since } from "./_common.ts";

/** Sizes and settings of {@linkcode uniqueInfo}. */
export interface UniqueOptions {
  seed?: number;
  /** Small sizes (seconds). */
  fast?: boolean;
  out?: string;
  /** Training samples (paper: 1,000). */
  n?: number;
  testN?: number;
  hidden?: number;
  /** Samples retrained without (paper: 50). */
  check?: number;
  /** Gradient-descent steps of each retraining. */
  steps?: number;
  /** lambda as a fraction of the largest eigenvalue of Theta. */
  lambdaScale?: number;
  /** "ridge" (default: lambda = lambdaScale x lambda_max, converged) or "paper" (the official code's setting). */
  setting?: "ridge" | "paper";
  /** The paper setting's learning rate on the mean loss (official: 0.001); eta = lr / n. */
  lr?: number;
  /** Fraction of flipped labels in the mislabeled-sample part (0 skips it). */
  flip?: number;
  /** lambda scales of the mislabeled-sample part (default 0.1 and 0.01). */
  flipScales?: number[];
  verbose?: boolean;
}

/** Result of {@linkcode uniqueInfo}. */
export interface UniqueResult {
  /** Predicted (linearised) and actual (retrained) SI of the checked samples. */
  checked: { sampleId: number; siWeights: number; actualWeights: number; siFunction: number; actualFunction: number }[];
  pearsonWeights: number;
  pearsonFunction: number;
  tauWeights: number;
  tauFunction: number;
  lambda: number;
  /** ||w_T - w_{T/2}||^2 of the full run over the median actual weight SI (convergence check; small is good). */
  convergence: number;
  /** ||w_T - w0|| / ||w0|| of the full run (how far training left the linearisation point). */
  relativeMove: number;
  /** Flipped samples among the top `flip` fraction by weight SI and by function SI, and the numbers of each. */
  flipped: { lambdaScale: number; flipped: number; top: number; inTopWeights: number; inTopFunction: number }[] | null;
  settings: Record<string, number | string>;
  seconds: number;
  markdown: string;
}

/** Pearson correlation. */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  let mx = 0, my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i] / n;
    my += y[i] / n;
  }
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
    syy += (y[i] - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}

/** A network at its initial weights `w0` and how to apply it to given parameters. */
export interface Net {
  tf: typeof TF;
  w0: { name: string; shape: number[]; values: Float32Array }[];
  apply: (ps: TF.Tensor[], x: TF.Tensor) => TF.Tensor;
}

/**
 * One hidden ReLU layer with `k` outputs; parameters `fc1.weight` [d, h], `fc1.bias`, `out.weight` [h, k],
 * `out.bias`. `init`: "he" (normal, std sqrt(2 / d) and sqrt(1 / h), zero biases) or "torch" (PyTorch's default
 * for nn.Linear: weights and biases uniform in +-1 / sqrt(fan_in)).
 */
async function makeNet(d: number, h: number, seed: number, k = 2, init: "he" | "torch" = "he"): Promise<Net> {
  const tf = await initBackend();
  const normal = (shape: number[], std: number, s: number) =>
    tf.tidy(() => tf.randomNormal(shape, 0, std, "float32", s).dataSync() as Float32Array);
  const uniform = (shape: number[], fanIn: number, s: number) =>
    tf.tidy(() => {
      const u = 1 / Math.sqrt(fanIn);
      return tf.randomUniform(shape, -u, u, "float32", s).dataSync() as Float32Array;
    });
  const torch = init === "torch";
  return {
    tf,
    w0: [
      {
        name: "fc1.weight",
        shape: [d, h],
        values: torch ? uniform([d, h], d, seed * 7 + 1) : normal([d, h], Math.sqrt(2 / d), seed * 7 + 1),
      },
      { name: "fc1.bias", shape: [h], values: torch ? uniform([h], d, seed * 7 + 3) : new Float32Array(h) },
      {
        name: "out.weight",
        shape: [h, k],
        values: torch ? uniform([h, k], h, seed * 7 + 2) : normal([h, k], Math.sqrt(1 / h), seed * 7 + 2),
      },
      { name: "out.bias", shape: [k], values: torch ? uniform([k], h, seed * 7 + 4) : new Float32Array(k) },
    ],
    apply: ([w1, b1, w2, b2], x) =>
      tf.add(
        tf.matMul(
          tf.relu(tf.add(tf.matMul(x as TF.Tensor2D, w1 as TF.Tensor2D), b1)) as TF.Tensor2D,
          w2 as TF.Tensor2D,
        ),
        b2,
      ),
  };
}

/**
 * Full-batch plain gradient descent on the one-hidden-layer ReLU network of {@linkcode makeNet} in float64: `steps`
 * steps of size `lr` on `sum_i mask_i ||f(x_i) - y_i||^2 / 2` from `w0`. `x` (n x d) and `xt` (its transpose, d x n)
 * in shared memory; returns the flattened weights (the order of `w0`) and the outputs on `testX` (row-major).
 * The two products per step (forward `X W1`, gradient `G^T X`) run on the linear-algebra kernels' gemm (threads).
 */
export function retrain64(
  w0: Net["w0"],
  x: Float64Array,
  xt: Float64Array,
  y: Float64Array,
  mask: Float64Array,
  testX: Float64Array,
  lr: number,
  steps: number,
  threads: number = defaultThreads(),
  keepAt?: number,
): { w: Float64Array; f: Float64Array; wAt?: Float64Array } {
  const [d, h] = w0[0].shape, k = w0[2].shape[1], n = mask.length, nt = testX.length / d;
  const w1t = sharedF64(h * d); // W1^T, h x d
  for (let a = 0; a < d; a++) for (let j = 0; j < h; j++) w1t[j * d + a] = w0[0].values[a * h + j];
  const b1 = Float64Array.from(w0[1].values),
    w2 = Float64Array.from(w0[2].values),
    b2 = Float64Array.from(w0[3].values);
  // one buffer of pre-activations per row count, reused every step: a new SharedArrayBuffer a step (8 MB at n =
  // 1,000, h = 1,024) outran V8's collection of them and took the 51 retrainings of `--paper` to 22 GB
  const zs = new Map<number, Float64Array>();
  /** Hidden pre-activations (m x h, in place) and outputs (m x k) of the rows of `xs`. */
  const forward = (xs: Float64Array, m: number) => {
    let z = zs.get(m);
    if (z === undefined) zs.set(m, z = sharedF64(m * h));
    else z.fill(0); // gemm adds to its output
    const f = new Float64Array(m * k);
    gemm(matrix(z, m, h), matrix(xs, m, d), transpose(matrix(w1t, h, d)), { threads });
    for (let i = 0; i < m; i++) {
      for (let c = 0; c < k; c++) f[i * k + c] = b2[c];
      for (let j = 0; j < h; j++) {
        const v = z[i * h + j] + b1[j];
        z[i * h + j] = v;
        if (v > 0) { for (let c = 0; c < k; c++) f[i * k + c] += v * w2[j * k + c]; }
      }
    }
    return { z, f };
  };
  const gt = sharedF64(h * n), g1 = sharedF64(h * d), e = new Float64Array(n * k);
  const gw2 = new Float64Array(h * k), gb1 = new Float64Array(h), gb2 = new Float64Array(k);
  const B = 64; // tile of the transposed writes of G
  const flat = () => {
    const w = new Float64Array(h * d + h + h * k + k);
    for (let a = 0; a < d; a++) for (let j = 0; j < h; j++) w[a * h + j] = w1t[j * d + a];
    w.set(b1, h * d);
    w.set(w2, h * d + h);
    w.set(b2, h * d + h + h * k);
    return w;
  };
  let wAt: Float64Array | undefined;
  for (let s = 0; s < steps; s++) {
    if (s === keepAt) wAt = flat();
    const { z, f } = forward(x, n);
    for (let i = 0; i < n * k; i++) e[i] = mask[(i / k) | 0] * (f[i] - y[i]);
    gw2.fill(0), gb1.fill(0), gb2.fill(0);
    for (let i0 = 0; i0 < n; i0 += B) {
      for (let j0 = 0; j0 < h; j0 += B) {
        for (let i = i0; i < Math.min(n, i0 + B); i++) {
          for (let j = j0; j < Math.min(h, j0 + B); j++) {
            const v = z[i * h + j];
            let g = 0;
            if (v > 0) {
              for (let c = 0; c < k; c++) gw2[j * k + c] += v * e[i * k + c], g += e[i * k + c] * w2[j * k + c];
            }
            gt[j * n + i] = g;
            gb1[j] += g;
          }
        }
      }
    }
    for (let i = 0; i < n; i++) for (let c = 0; c < k; c++) gb2[c] += e[i * k + c];
    g1.fill(0);
    gemm(matrix(g1, h, d), matrix(gt, h, n), transpose(matrix(xt, d, n)), { threads });
    for (let i = 0; i < h * d; i++) w1t[i] -= lr * g1[i];
    for (let j = 0; j < h; j++) b1[j] -= lr * gb1[j];
    for (let i = 0; i < h * k; i++) w2[i] -= lr * gw2[i];
    for (let c = 0; c < k; c++) b2[c] -= lr * gb2[c];
  }
  return { w: flat(), f: forward(testX, nt).f, wAt };
}

/** Largest eigenvalue of `Theta = J J^T` from the Jacobian rows (power iteration on `J^T J`). */
function topEigen(rows: Float32Array[], width: number, iters = 30): number {
  let v = new Float64Array(width).map((_, i) => Math.sin(i + 1));
  let lam = 0;
  for (let t = 0; t < iters; t++) {
    const u = new Float64Array(width);
    for (const r of rows) {
      let dot = 0;
      for (let j = 0; j < width; j++) dot += r[j] * v[j];
      for (let j = 0; j < width; j++) u[j] += dot * r[j];
    }
    let norm = 0;
    for (let j = 0; j < width; j++) norm += u[j] * u[j];
    norm = Math.sqrt(norm);
    lam = norm; // ||J^T J v|| with ||v|| = 1
    v = u.map((x) => x / norm);
  }
  return lam;
}

/** Full-batch gradient descent on the real network; returns the flattened weights and test outputs. */
function retrain(
  net: Net,
  X: TF.Tensor2D,
  Y: TF.Tensor2D,
  mask: Float32Array,
  testX: TF.Tensor2D,
  lambda: number,
  lr: number,
  momentum: number,
  steps: number,
  keepAt?: number,
): { w: Float32Array; f: Float32Array; wAt?: Float32Array } {
  const tf = net.tf;
  const w0 = net.w0.map((p) => tf.tensor(p.values, p.shape));
  const vars = w0.map((t) => tf.variable(t.clone()));
  const m = tf.tensor2d(mask, [mask.length, 1]);
  const opt = tf.train.momentum(lr, momentum);
  const flat = () => tf.tidy(() => tf.concat(vars.map((v) => tf.reshape(v, [-1]))).dataSync() as Float32Array);
  let wAt: Float32Array | undefined;
  for (let s = 1; s <= steps; s++) {
    tf.tidy(() => {
      opt.minimize(
        () => {
          const r = tf.sub(net.apply(vars, X), Y);
          let loss = tf.mul(0.5, tf.sum(tf.mul(m, tf.square(r))));
          for (let i = 0; i < vars.length; i++) {
            loss = tf.add(loss, tf.mul(lambda / 2, tf.sum(tf.square(tf.sub(vars[i], w0[i])))));
          }
          return loss as TF.Scalar;
        },
        false,
        vars,
      );
    });
    if (s === keepAt) wAt = flat();
  }
  const w = flat();
  const f = tf.tidy(() => net.apply(vars, testX).dataSync() as Float32Array);
  tf.dispose([...w0, ...vars, m]);
  opt.dispose();
  return { w, f, wAt };
}

/**
 * SI of every training sample through `unique-info` (in-process serve); one run per lambda scale (`finite` adds
 * the finite-time options from lambda_max); `y` are class indices (one-hot targets, k = the net's outputs).
 */
export async function siOf(
  net: Net,
  x: Float32Array,
  y: Int32Array,
  testX: Float32Array,
  d: number,
  out: string,
  seed: number,
  lambdaScales: number[],
  finite?: (top: number) => Record<string, number | boolean>,
): Promise<{ siW: Float64Array; siF: Float64Array; lambda: number; top: number }[]> {
  const n = y.length, testN = testX.length / d, k = net.w0[net.w0.length - 1].values.length;
  const inputs = new Float32Array((n + testN) * d);
  inputs.set(x);
  inputs.set(testX, n * d);
  const targets = new Float32Array((n + testN) * k).fill(NaN);
  // one-hot targets; one output: the class index itself (0 or 1)
  for (let i = 0; i < n; i++) for (let c = 0; c < k; c++) targets[k * i + c] = k === 1 ? y[i] : y[i] === c ? 1 : 0;
  const batches = [];
  for await (
    const rb of tfjsJacobians({
      params: net.w0,
      apply: net.apply,
      inputs,
      inputShape: [d],
      targets,
      sampleIds: BigInt64Array.from({ length: n + testN }, (_, i) => BigInt(i < n ? i : i - n)),
      split: Array.from({ length: n + testN }, (_, i) => (i < n ? "train" : "test")),
      backend: "wasm",
      samplesPerBatch: 100,
    })
  ) batches.push(rb);
  // lambda from the spectrum of the train rows' kernel.
  const rows: Float32Array[] = [];
  const width = net.w0.reduce((a, p) => a + p.values.length, 0);
  for (const rb of batches) {
    const split = rb.getChild("split")!;
    const cols = net.w0.map((p) => rb.getChild(p.name)!);
    for (let r = 0; r < rb.numRows; r++) {
      if (split.get(r) !== "train") continue;
      const row = new Float32Array(width);
      let at = 0;
      for (let c = 0; c < cols.length; c++) {
        const v = cols[c].get(r) as { toArray(): Float32Array } | Float32Array;
        const arr = v instanceof Float32Array ? v : v.toArray();
        row.set(arr, at);
        at += arr.length;
      }
      rows.push(row);
    }
  }
  const top = topEigen(rows, width);
  const results = [];
  for (const scale of lambdaScales) {
    const lambda = scale * top;
    const dir = lambdaScales.length > 1 ? `${out}/lambda_${scale}` : out;
    await Deno.mkdir(dir, { recursive: true });
    const server = await serve({
      listen: null,
      out: dir,
      estimators: ["unique-info"],
      options: { "si-lambda": lambda, ...(finite ? finite(top) : {}) },
      seed,
      log: () => {},
      extra: { experiment: "unique_info" },
    });
    const producer = server.local();
    for (const rb of batches) await producer.write(rb);
    await producer.close();
    await server.stop();
    const t = (await readResults(dir)).tables.unique_information;
    if (!t) throw new Error(`Cannot read SI as the run wrote no unique_information table: current value is '${dir}'`);
    const siW = new Float64Array(n), siF = new Float64Array(n);
    for (const r of t.rows) {
      siW[Number(r.sample_id)] = r.si_weights as number;
      siF[Number(r.sample_id)] = r.si_function as number;
    }
    results.push({ siW, siF, lambda, top });
  }
  return results;
}

/** Runs the experiment. */
export async function uniqueInfo(o: UniqueOptions = {}): Promise<UniqueResult> {
  const t0 = performance.now();
  const fast = o.fast ?? false, seed = o.seed ?? 0;
  const paper = o.setting === "paper";
  const n = o.n ?? (fast ? 150 : 1000), testN = o.testN ?? (fast ? 100 : 200);
  const hidden = o.hidden ?? (paper ? (fast ? 128 : 1024) : (fast ? 32 : 128));
  const check = o.check ?? (fast ? 15 : 50), steps = o.steps ?? (paper ? (fast ? 100 : 200) : (fast ? 150 : 300));
  const lambdaScale = paper ? 0 : o.lambdaScale ?? 0.1, flip = o.flip ?? 0.1;
  const flipScales = paper ? [0] : o.flipScales ?? [0.1, 0.01];
  // the official code's setting: T plain full-batch steps, lr on the mean loss = eta n on the sum, no ridge
  const lrMean = o.lr ?? 0.001, eta = lrMean / n;
  const finite = paper ? () => ({ "si-t": steps, "si-lr": eta }) : undefined;
  const out = o.out ?? `experiments/unique_info${paper ? "_paper" : ""}${fast ? "_fast" : ""}`;
  const digits = await loadDigits(seed);
  // 4 vs 9: label 0 for a 4, 1 for a 9.
  const idx: number[] = [];
  for (let i = 0; i < digits.n; i++) if (digits.labels[i] === 4 || digits.labels[i] === 9) idx.push(i);
  const need = n + testN;
  if (idx.length < need) {
    throw new Error(`Cannot take ${need} 4s and 9s as the digits hold ${idx.length}: current value is ${need}`);
  }
  const d = 196;
  const img = pool14(digits.images, digits.n);
  // the official code's inputs: ToTensor then Normalize(0.456, 0.224)
  const norm = paper ? (v: number) => (v - 0.456) / 0.224 : (v: number) => v;
  const take = (from: number, count: number) => {
    const x = new Float32Array(count * d), y = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      for (let a = 0; a < d; a++) x[i * d + a] = norm(img[idx[from + i] * d + a]);
      y[i] = digits.labels[idx[from + i]] === 9 ? 1 : 0;
    }
    return { x, y };
  };
  const train = take(0, n), test = take(n, testN), second = train;
  const net = paper ? await makeNet(d, hidden, seed, 1, "torch") : await makeNet(d, hidden, seed);
  const k = paper ? 1 : 2;
  const tf = net.tf;
  const t1 = performance.now();
  const [si] = await siOf(net, train.x, train.y, test.x, d, `${out}/clean`, seed, [lambdaScale], finite);
  if (o.verbose) console.error(`SI of ${n} samples: lambda ${si.lambda.toPrecision(4)} (${since(t1).toFixed(1)} s)`);

  // Actual retraining.
  const t2 = performance.now();
  let retrainOne: (
    mask: Float32Array,
    keepAt?: number,
  ) => { w: ArrayLike<number>; f: ArrayLike<number>; wAt?: ArrayLike<number> };
  let lr: number, momentum: number;
  const dispose: TF.Tensor[] = [];
  if (paper) {
    // T plain steps of eta on the sum of losses, float64
    lr = eta, momentum = 0;
    const x64 = sharedF64(n * d), xt = sharedF64(d * n), tx = sharedF64(testN * d), y64 = new Float64Array(n * k);
    for (let i = 0; i < n; i++) for (let a = 0; a < d; a++) x64[i * d + a] = xt[a * n + i] = train.x[i * d + a];
    tx.set(test.x);
    for (let i = 0; i < n; i++) y64[i] = train.y[i];
    retrainOne = (mask, keepAt) =>
      retrain64(net.w0, x64, xt, y64, Float64Array.from(mask), tx, eta, steps, defaultThreads(), keepAt);
  } else {
    // Heavy ball with Polyak's optimal step and momentum for a quadratic with curvatures in [lambda, L], L =
    // 2 (lambda_max + lambda) (margin for the non-linear terms): error falls by (sqrt(k) - 1) / (sqrt(k) + 1) a step.
    const L = 2 * (si.top + si.lambda), mu = si.lambda;
    lr = 4 / (Math.sqrt(L) + Math.sqrt(mu)) ** 2;
    momentum = ((Math.sqrt(L / mu) - 1) / (Math.sqrt(L / mu) + 1)) ** 2;
    const X = tf.tensor2d(train.x, [n, d]), testX = tf.tensor2d(test.x, [testN, d]);
    const Y = tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(train.y, "int32"), 2), "float32")) as TF.Tensor2D;
    dispose.push(X, Y, testX);
    retrainOne = (mask, keepAt) => retrain(net, X, Y, mask, testX, si.lambda, lr, momentum, steps, keepAt);
  }
  const full = retrainOne(new Float32Array(n).fill(1), Math.floor(steps / 2));
  const rand = rng(seed + 3);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const checked: UniqueResult["checked"] = [];
  for (const i of order.slice(0, check)) {
    const mask = new Float32Array(n).fill(1);
    mask[i] = 0;
    const loo = retrainOne(mask);
    let dw = 0, df = 0;
    for (let j = 0; j < loo.w.length; j++) dw += (full.w[j] - loo.w[j]) ** 2;
    for (let j = 0; j < loo.f.length; j++) df += (full.f[j] - loo.f[j]) ** 2;
    checked.push({
      sampleId: i,
      siWeights: si.siW[i],
      actualWeights: dw,
      siFunction: si.siF[i],
      actualFunction: df / testN,
    });
  }
  tf.dispose(dispose);
  let conv = 0;
  for (let j = 0; j < full.w.length; j++) conv += (full.w[j] - full.wAt![j]) ** 2;
  let moved = 0, size = 0;
  const w0flat = net.w0.flatMap((p) => [...p.values]);
  for (let j = 0; j < full.w.length; j++) moved += (full.w[j] - w0flat[j]) ** 2, size += w0flat[j] ** 2;
  const sortedActual = checked.map((c) => c.actualWeights).sort((a, b) => a - b);
  const convergence = conv / sortedActual[Math.floor(sortedActual.length / 2)];
  if (o.verbose) console.error(`retrained ${check} + 1 times, ${steps} steps each (${since(t2).toFixed(1)} s)`);

  // Mislabeled samples.
  let flipped: UniqueResult["flipped"] = null;
  if (flip > 0) {
    const t3 = performance.now();
    const r2 = rng(seed + 4);
    const isFlipped = Array.from({ length: n }, () => r2() < flip);
    const y2 = second.y.map((v, i) => (isFlipped[i] ? 1 - v : v));
    const si2 = await siOf(net, second.x, y2, test.x, d, `${out}/flipped`, seed, flipScales, finite);
    const top = Math.round(flip * n);
    const topBy = (s: Float64Array) =>
      Array.from({ length: n }, (_, i) => i).sort((a, b) => s[b] - s[a]).slice(0, top).filter((i) => isFlipped[i])
        .length;
    flipped = si2.map((r, j) => ({
      lambdaScale: flipScales[j],
      flipped: isFlipped.filter(Boolean).length,
      top,
      inTopWeights: topBy(r.siW),
      inTopFunction: topBy(r.siF),
    }));
    if (o.verbose) console.error(`flipped-label SI (${since(t3).toFixed(1)} s)`);
  }
  const pW = checked.map((c) => c.siWeights), aW = checked.map((c) => c.actualWeights);
  const pF = checked.map((c) => c.siFunction), aF = checked.map((c) => c.actualFunction);
  const res = {
    checked,
    pearsonWeights: pearson(pW, aW),
    pearsonFunction: pearson(pF, aF),
    tauWeights: kendallTau(pW, aW),
    tauFunction: kendallTau(pF, aF),
    lambda: si.lambda,
    convergence,
    relativeMove: Math.sqrt(moved / size),
    flipped,
  };
  const settings = {
    seed,
    data: `MNIST 4 vs 9, 14 x 14${paper ? ", normalised (x - 0.456) / 0.224" : ""}`,
    mlp: `196-${hidden}-${k} (ReLU${paper ? ", PyTorch's default initialisation" : ""})`,
    n,
    test: testN,
    check,
    steps,
    lambda: `${lambdaScale} x lambda_max(Theta) = ${si.lambda.toPrecision(4)}`,
    optimizer: paper
      ? `T = ${steps} full-batch plain gradient-descent steps (float64), lr ${lrMean} on the mean loss = eta ${
        eta.toPrecision(4)
      } on the sum (eta lambda_max(Theta) = ${(eta * si.top).toFixed(3)})`
      : `full-batch heavy ball, lr ${lr.toPrecision(4)}, momentum ${momentum.toFixed(3)}`,
  };
  const markdown = [
    markdownTable(
      ["", "Pearson (predicted vs actual)", "Kendall tau"],
      [
        ["weight SI (squared weight change)", res.pearsonWeights, res.tauWeights],
        ["function SI (mean squared output change on the test set)", res.pearsonFunction, res.tauFunction],
      ],
    ),
    "",
    `${
      paper
        ? "Movement in the second half of training (finite T, not converged by design)"
        : "Convergence of the retraining"
    }: squared distance of w_T to w_{T/2} over the median actual weight SI = ${
      convergence.toExponential(2)
    }; ||w_T - w0|| / ||w0|| = ${res.relativeMove.toExponential(2)}.`,
    ...(flipped
      ? [
        "",
        markdownTable(
          ["lambda / lambda_max", "SI", "flipped samples", "top-10% size", "flipped in top 10%", "chance"],
          flipped.flatMap((f) => [
            [
              String(f.lambdaScale),
              "weights",
              String(f.flipped),
              String(f.top),
              String(f.inTopWeights),
              (f.flipped * flip).toFixed(1),
            ],
            [
              String(f.lambdaScale),
              "function",
              String(f.flipped),
              String(f.top),
              String(f.inTopFunction),
              (f.flipped * flip).toFixed(1),
            ],
          ]),
        ),
      ]
      : []),
  ].join("\n");
  const result = { ...res, settings, seconds: since(t0), markdown };
  await Deno.writeTextFile(`${out}/summary.json`, JSON.stringify(result, null, 2));
  return result;
}

if (import.meta.main) {
  const args = experimentArgs(Deno.args, { ints: ["hidden", "steps", "check"], flags: ["paper"], nums: ["lr"] });
  const r = await uniqueInfo({ ...args, setting: args.paper ? "paper" : "ridge", verbose: true });
  console.log(`Unique information (${JSON.stringify(r.settings)})\n\n${r.markdown}\n`);
  const dir = args.out ?? `experiments/unique_info${args.paper ? "_paper" : ""}${args.fast ? "_fast" : ""}`;
  console.log(`runtime ${r.seconds.toFixed(0)} s; tables in ${dir}/`);
}
