/**
 * Shared helpers of the paper reproductions (`scripts/experiments/*.ts`): a seeded random generator, a dense
 * ReLU MLP in tfjs-core (trained with an optimizer, as `scripts/examples/make_example.ts`), activation dumps of its
 * hidden pre-activations (`activations/v1`), the entropy + KSG MI analysis through `analyze()`, and table
 * printing.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { kendallTau } from "../../pipeline/report/kendall.ts";
import { compareRuns, formatComparison } from "../../pipeline/report/compare.ts";
import type * as TF from "@tensorflow/tfjs-core";
import type * as arrow from "apache-arrow";
import { initTf, registerWasmBackend } from "../../pipeline/producers/tfjs/setup.ts";
import { makeRecordBatch, writeBatches } from "../../pipeline/producers/produce.ts";
import { analyze } from "../../pipeline/analyze/run.ts";
import { mulberry32 } from "../../pipeline/core/random.ts";
import type { DenseLayer, TfModel } from "../../pipeline/producers/tfjs/gradients.ts";
import { denseModel } from "../../pipeline/producers/tfjs/gradients.ts";

/** mulberry32: seeded uniform numbers in [0, 1) (`pipeline/core/random.ts`). */
export const rng: (seed: number) => () => number = mulberry32;

/** Average-pools 28 x 28 images to 14 x 14 (2 x 2 blocks), as the IRM Colored MNIST code does. */
export function pool14(images: Float32Array, n: number): Float32Array {
  const out = new Float32Array(n * 196);
  for (let s = 0; s < n; s++) {
    for (let r = 0; r < 14; r++) {
      for (let c = 0; c < 14; c++) {
        const a = s * 784 + 2 * r * 28 + 2 * c;
        out[s * 196 + r * 14 + c] = (images[a] + images[a + 1] + images[a + 28] + images[a + 29]) / 4;
      }
    }
  }
  return out;
}

/**
 * Starts TensorFlow.js on the WebAssembly backend (XNNPACK SIMD, one thread: the threaded build cannot start
 * its workers in Deno), measured 4-6x faster than the `cpu` backend for these MLPs; `cpu` when asked.
 */
export async function initBackend(backend: "wasm" | "cpu" = "wasm"): Promise<typeof TF> {
  const tf = await initTf("cpu");
  if (backend === "cpu" || tf.getBackend() === "wasm") return tf;
  await registerWasmBackend();
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
  if (!(await tf.setBackend("wasm"))) {
    throw new Error("Cannot use the TensorFlow.js backend as it failed to start: current value is 'wasm'");
  }
  await tf.ready();
  return tf;
}

/** A dense MLP: hidden layers `fc1..fcL` (ReLU), output layer `out` (logits). */
export interface Mlp {
  tf: typeof TF;
  sizes: number[];
  layers: { name: string; w: TF.Variable; b: TF.Variable }[];
  /** Hidden pre-activations and logits of `x`. */
  forward(x: TF.Tensor2D): { pre: TF.Tensor2D[]; logits: TF.Tensor2D };
  /** The model in `pipeline/producers/tfjs/gradients.ts` form (per-sample gradients for the `fisher` estimator). */
  dense(): TfModel;
  dispose(): void;
}

/** Builds an MLP with layer sizes `[in, h1, ..., hL, classes]`, He-normal weights from `seed`, zero biases. */
export async function makeMlp(sizes: number[], seed: number): Promise<Mlp> {
  const tf = await initBackend();
  // tfjs treats a seed of 0 as "no seed" (Math.random): every layer's seed is >= 1.
  const layers = sizes.slice(1).map((out, i) => ({
    name: i === sizes.length - 2 ? "out" : `fc${i + 1}`,
    w: tf.variable(tf.randomNormal([sizes[i], out], 0, Math.sqrt(2 / sizes[i]), "float32", seed * 101 + i + 1)),
    b: tf.variable(tf.zeros([out])),
  }));
  return {
    tf,
    sizes,
    layers,
    forward(x) {
      const pre: TF.Tensor2D[] = [];
      let a: TF.Tensor2D = x;
      for (let i = 0; i < layers.length; i++) {
        const z = tf.add(tf.matMul(a, layers[i].w), layers[i].b) as TF.Tensor2D;
        if (i === layers.length - 1) return { pre, logits: z };
        pre.push(z);
        a = tf.relu(z);
      }
      throw new Error("unreachable");
    },
    dense() {
      return denseModel(layers.map((l, i): DenseLayer => ({
        name: l.name,
        weight: l.w,
        bias: l.b,
        activation: i === layers.length - 1 ? "linear" : "relu",
      })));
    },
    dispose() {
      for (const l of layers) tf.dispose([l.w, l.b]);
    },
  };
}

/** Training options of {@linkcode train}. */
export interface TrainOptions {
  epochs: number;
  batch?: number;
  lr?: number;
  optimizer?: "adam" | "sgd" | "momentum";
  seed?: number;
  /** Stop after this many steps (default: all epochs). */
  maxSteps?: number;
  /** Called after every step (1-based) with the step number; may return a promise. */
  onStep?: (step: number) => unknown;
  /** Input transform per step (e.g. a blur deficit); `step` is the step about to be taken (1-based). */
  transform?: (x: TF.Tensor2D, step: number) => TF.Tensor2D;
  /** Adds `weightDecay / 2 * ||w||^2` (every parameter, biases included) to the mean loss. */
  weightDecay?: number;
}

/** Minibatch training with softmax cross-entropy; returns the number of steps taken. */
export async function train(
  mlp: Mlp,
  x: Float32Array,
  y: Int32Array,
  o: TrainOptions,
): Promise<number> {
  const tf = mlp.tf, dim = mlp.sizes[0], classes = mlp.sizes[mlp.sizes.length - 1], n = y.length;
  const bs = Math.min(o.batch ?? 128, n), lr = o.lr ?? 1e-3;
  const opt = o.optimizer === "sgd"
    ? tf.train.sgd(lr)
    : o.optimizer === "momentum"
    ? tf.train.momentum(lr, 0.9)
    : tf.train.adam(lr);
  const X = tf.tensor2d(x, [n, dim]);
  const Y = tf.oneHot(tf.tensor1d(y, "int32"), classes);
  const rand = rng((o.seed ?? 0) + 17);
  const vars = mlp.layers.flatMap((l) => [l.w, l.b]);
  let step = 0;
  for (let e = 0; e < o.epochs; e++) {
    const order = Int32Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (let at = 0; at + bs <= n; at += bs) {
      if (o.maxSteps !== undefined && step >= o.maxSteps) break;
      step++;
      tf.tidy(() => {
        const idx = tf.tensor1d(order.subarray(at, at + bs), "int32");
        let xb = tf.gather(X, idx) as TF.Tensor2D;
        if (o.transform) xb = o.transform(xb, step);
        const yb = tf.gather(Y, idx);
        const wd = o.weightDecay ?? 0;
        opt.minimize(
          () => {
            const loss = tf.losses.softmaxCrossEntropy(yb, mlp.forward(xb).logits) as TF.Scalar;
            if (!wd) return loss;
            return tf.add(loss, tf.mul(wd / 2, tf.addN(vars.map((v) => tf.sum(tf.square(v)))))) as TF.Scalar;
          },
          false,
          vars,
        );
      });
      if (o.onStep) await o.onStep(step);
    }
  }
  tf.dispose([X, Y]);
  opt.dispose();
  return step;
}

/** Fraction of rows whose arg-max logit equals `y`. */
export function accuracy(mlp: Mlp, x: Float32Array, y: Int32Array): number {
  const tf = mlp.tf, n = y.length;
  const pred = tf.tidy(() => tf.argMax(mlp.forward(tf.tensor2d(x, [n, mlp.sizes[0]])).logits, 1));
  const p = pred.dataSync();
  pred.dispose();
  let ok = 0;
  for (let i = 0; i < n; i++) if (p[i] === y[i]) ok++;
  return ok / n;
}

/** One `activations/v1` batch of the hidden pre-activations (`fc1..fcL`) on `x`, with labels. */
export function hiddenBatch(
  mlp: Mlp,
  x: Float32Array,
  labels: Int32Array,
  meta: Record<string, string> = {},
  step?: number,
): arrow.RecordBatch {
  const tf = mlp.tf, n = labels.length;
  const { pre, logits } = tf.tidy(() => mlp.forward(tf.tensor2d(x, [n, mlp.sizes[0]])));
  const tensors = pre.map((t, i) => ({
    name: mlp.layers[i].name,
    width: t.shape[1],
    values: t.dataSync() as Float32Array,
  }));
  tf.dispose([...pre, logits]);
  return makeRecordBatch({
    kind: "activations/v1",
    sampleId: BigInt64Array.from({ length: n }, (_, i) => BigInt(i)),
    step: step === undefined ? undefined : new BigInt64Array(n).fill(BigInt(step)),
    label: labels,
    tensors,
    metadata: {
      "infotap.tapped": `pre-activation of hidden Linear layers (MLP ${mlp.sizes.join("-")}, tfjs)`,
      ...meta,
    },
  });
}

/** Diversity of one run: mean neuron entropy and mean pairwise KSG MI, per layer and over all neurons/pairs. */
export interface Diversity {
  layers: { layer: string; neurons: number; entropy: number; mi: number }[];
  /** Mean entropy over all neurons (nats). */
  entropy: number;
  /** Mean MI over all within-layer pairs (nats). */
  mi: number;
}

/** Writes the dump `dir/activations.arrows`, runs `entropy` + KSG `mi` on it into `dir`, returns the means. */
export async function diversityOf(
  dir: string,
  batch: arrow.RecordBatch,
  o: { miSamples: number; seed: number },
): Promise<Diversity> {
  await Deno.mkdir(dir, { recursive: true });
  const dump = `${dir}/activations.arrows`;
  await writeBatches(dump, [batch]);
  const r = await analyze({
    inputs: [dump],
    estimators: ["entropy", "mi"],
    options: { "mi-samples": o.miSamples },
    seed: o.seed,
    out: dir,
    progress: false,
  });
  if (!r.complete) throw new Error(`Cannot analyze ${dump} as the run stopped: current value is ${r.error}`);
  const ls = r.tables.layer_summary;
  const layers = [];
  let eSum = 0, eN = 0, mSum = 0, mN = 0;
  for (let i = 0; i < ls.numRows; i++) {
    const neurons = ls.getChild("neurons")!.get(i) as number;
    const e = ls.getChild("entropy_mean")!.get(i) as number, m = ls.getChild("mi_mean")!.get(i) as number;
    layers.push({ layer: ls.getChild("layer")!.get(i) as string, neurons, entropy: e, mi: m });
    const pairs = (neurons * (neurons - 1)) / 2;
    eSum += e * neurons;
    eN += neurons;
    mSum += m * pairs;
    mN += pairs;
  }
  return { layers, entropy: eSum / eN, mi: mSum / mN };
}

/** A Markdown table from a header and rows (numbers with `digits` decimals; pass counts as strings). */
export function markdownTable(header: string[], rows: (string | number)[][], digits = 3): string {
  const cell = (v: string | number) => (typeof v === "number" ? v.toFixed(digits) : v);
  return [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.map(cell).join(" | ")} |`),
  ].join("\n");
}

/** One model of an experiment that varies one setting (rho, beta): accuracies, its results directory, diversity. */
export interface TrendRow extends Diversity {
  trainAccuracy: number;
  heldOutAccuracy: number;
  dir: string;
}

/**
 * Kendall tau-b of the setting against mean entropy and mean MI, and the Markdown table of the models
 * (setting, accuracies, means, per-layer entropy and MI). `accuracy` names the two accuracy columns.
 */
export function diversityTrend(
  setting: { name: string; values: number[]; digits: number },
  rows: TrendRow[],
  accuracy: [string, string],
): { tauEntropy: number; tauMi: number; markdown: string } {
  const tauEntropy = kendallTau(setting.values, rows.map((r) => r.entropy));
  const tauMi = kendallTau(setting.values, rows.map((r) => r.mi));
  const layerNames = rows[0].layers.map((l) => l.layer);
  const markdown = [
    markdownTable(
      [setting.name, ...accuracy, "mean entropy", "mean MI", ...layerNames.flatMap((l) => [`${l} H`, `${l} MI`])],
      rows.map((r, i) => [
        setting.values[i].toFixed(setting.digits),
        r.trainAccuracy,
        r.heldOutAccuracy,
        r.entropy,
        r.mi,
        ...r.layers.flatMap((l) => [l.entropy, l.mi]),
      ]),
      4,
    ),
    "",
    `Kendall tau-b (${setting.name} vs mean entropy) = ${tauEntropy.toFixed(3)} (expected > 0); ` +
    `(${setting.name} vs mean MI) = ${tauMi.toFixed(3)} (expected < 0).`,
  ].join("\n");
  return { tauEntropy, tauMi, markdown };
}

/** The command-line tail of a trend experiment: its table, then `compare` of the models by held-out accuracy. */
export async function printTrend(
  title: string,
  r: { settings: unknown; markdown: string; rows: TrendRow[]; seconds: number },
): Promise<void> {
  console.log(`${title} (${JSON.stringify(r.settings)})\n\n${r.markdown}\n`);
  const cmp = await compareRuns(
    r.rows.map((x) => x.dir),
    [{ name: "held-out accuracy", values: new Map(r.rows.map((x) => [x.dir, x.heldOutAccuracy])) }],
  );
  console.log(formatComparison(cmp));
  console.log(`\nruntime ${r.seconds.toFixed(0)} s; tables in ${r.rows[0].dir.replace(/\/[^/]*$/, "")}/`);
}

/** What a trend experiment trains at one value of its setting, and the held-out data it measures. */
export interface TrendData {
  /** Layer sizes of the MLP, `[in, hidden..., classes]`. */
  sizes: number[];
  trainX: Float32Array;
  trainY: Int32Array;
  heldX: Float32Array;
  /** Labels the held-out accuracy is measured against. */
  heldY: Int32Array;
  /** Labels written into the held-out dump (default `heldY`). */
  dumpY?: Int32Array;
}

/** The result of {@linkcode trendExperiment}, as `summary.json` holds it. */
export interface TrendResult<K extends string> {
  rows: (TrendRow & Record<K, number>)[];
  tauEntropy: number;
  tauMi: number;
  settings: Record<string, number | string>;
  seconds: number;
  markdown: string;
}

/**
 * A trend experiment (Colored and Shuffled MNIST): for each value of `setting`, an MLP trained on `data(value)`
 * (seeded, 64 per batch, learning rate 1e-3), its accuracies, and the mean entropy and MI of its hidden
 * pre-activations on the held-out data (`diversityOf` into `out/<name>_<value>`); then Kendall's tau of the
 * setting against both ({@linkcode diversityTrend}), written with `settings` to `out/summary.json`.
 */
export async function trendExperiment<K extends string>(
  setting: { name: K; values: number[]; digits: number },
  data: (value: number) => TrendData,
  o: {
    out: string;
    seed: number;
    epochs: number;
    miSamples: number;
    accuracy: [string, string];
    settings: Record<string, number | string>;
    /** When the experiment began (performance.now()). */
    t0: number;
    verbose?: boolean;
  },
): Promise<TrendResult<K>> {
  const { name } = setting, seed = o.seed;
  const rows: (TrendRow & Record<K, number>)[] = [];
  for (const value of setting.values) {
    const t1 = performance.now();
    const d = data(value);
    const mlp = await makeMlp(d.sizes, seed);
    await train(mlp, d.trainX, d.trainY, { epochs: o.epochs, batch: 64, lr: 1e-3, seed });
    const trainAccuracy = accuracy(mlp, d.trainX, d.trainY), heldOutAccuracy = accuracy(mlp, d.heldX, d.heldY);
    const dir = `${o.out}/${name}_${value}`;
    const batch = hiddenBatch(mlp, d.heldX, d.dumpY ?? d.heldY, { [`infotap.${name}`]: String(value) });
    const div = await diversityOf(dir, batch, { miSamples: o.miSamples, seed });
    mlp.dispose();
    rows.push({ [name]: value, trainAccuracy, heldOutAccuracy, dir, ...div } as TrendRow & Record<K, number>);
    if (o.verbose) {
      console.error(
        `${name} ${value}: train acc ${trainAccuracy.toFixed(3)}, held-out acc ${heldOutAccuracy.toFixed(3)}, entropy ${
          div.entropy.toFixed(4)
        }, MI ${div.mi.toFixed(4)} (${since(t1).toFixed(1)} s)`,
      );
    }
  }
  const { tauEntropy, tauMi, markdown } = diversityTrend(setting, rows, o.accuracy);
  const result = { rows, tauEntropy, tauMi, settings: o.settings, seconds: since(o.t0), markdown };
  await Deno.writeTextFile(`${o.out}/summary.json`, JSON.stringify(result, null, 2));
  return result;
}

/**
 * The command line of an experiment: `--fast`, `--seed S`, `--out DIR`, and the integer flags `ints` (e.g. `seeds`,
 * `hidden`; each >= 0) and boolean flags `flags` it adds.
 */
export function experimentArgs<
  I extends string = never,
  F extends string = never,
  N extends string = never,
>(
  args: string[],
  more: { ints?: readonly I[]; flags?: readonly F[]; nums?: readonly N[] } = {},
): NoInfer<
  { fast?: boolean; seed?: number; out?: string } & { [k in I | N]?: number } & { [k in F]?: boolean }
> {
  const ints: readonly string[] = more.ints ?? [], flags: readonly string[] = more.flags ?? [];
  const nums: readonly string[] = more.nums ?? [];
  const options: Record<string, { type: "string" | "boolean" }> = {
    fast: { type: "boolean" },
    seed: { type: "string" },
    out: { type: "string" },
  };
  for (const name of ints) options[name] = { type: "string" };
  for (const name of flags) options[name] = { type: "boolean" };
  for (const name of nums) options[name] = { type: "string" };
  const { values } = parseArgs({ args, options });
  const int = (v: unknown, name: string) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) {
      throw new Error(`Cannot use --${name} as it must be an integer >= 0: current value is '${v}'`);
    }
    return n;
  };
  const num = (v: unknown, name: string) => {
    if (v === undefined) return undefined;
    const x = Number(v);
    if (!Number.isFinite(x) || x <= 0) {
      throw new Error(`Cannot use --${name} as it must be a number > 0: current value is '${v}'`);
    }
    return x;
  };
  const r: Record<string, unknown> = { fast: values.fast, seed: int(values.seed, "seed"), out: values.out };
  for (const name of ints) r[name] = int(values[name], name);
  for (const name of nums) r[name] = num(values[name], name);
  for (const name of flags) r[name] = values[name];
  return r as { fast?: boolean; seed?: number; out?: string } & { [k in I | N]?: number } & { [k in F]?: boolean };
}

/** Seconds since `t0` (performance.now()). */
export function since(t0: number): number {
  return (performance.now() - t0) / 1000;
}
