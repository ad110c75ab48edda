/**
 * Dataset summarisation with unique information (Harutyunyan et al., ICLR 2021, section 5; ../shared/SCIENCE.md
 * section 3 in the project's words: docs/science.md): rank the training samples by their SI, remove the x% of
 * lowest SI or a random x%, retrain, and compare test accuracy (the paper: removing the least informative samples
 * costs far less accuracy than removing random ones).
 *
 * - Data: MNIST digits (10 classes, 14 x 14 average-pooled), n training samples, a held-out test set.
 * - SI: function SI (`si_function`) of each training sample at the network's initial weights `w0` (one-hidden-layer
 *   ReLU MLP, k = 10 outputs, Jacobians from `pipeline/producers/tfjs/jacobians.ts`), at finite training time
 *   without ridge: `--si-t T --si-lr 1/lambda_max(Theta) --si-lambda 0` (docs/unique_info.md), with `--si-summary`
 *   (the cumulative SI share by fraction of samples kept is in `unique_information_summary`).
 * - Retraining: the same MLP from the same `w0`, softmax cross-entropy, Adam 1e-3, batch 32, a fixed number of
 *   steps, on the kept samples; test accuracy. Random removal: the mean of `draws` random subsets.
 *
 * Usage: `deno task exp:summarise [--fast] [--seed S] [--out DIR]` (results in `experiments/summarise/`: the SI
 * run's tables, `summary.json`, and `accuracy.vl.json`, a Vega-Lite plot of test accuracy against x).
 *
 * @module
 */
import { parseArgs } from "node:util";
import type * as TF from "@tensorflow/tfjs-core";
import { loadDigits } from "../examples/mnist.ts";
import { accuracy, makeMlp, markdownTable, type Mlp, pool14, rng, since, train } from "./_common.ts";
import { type Net, siOf } from "./unique_info.ts";

/** Sizes and settings of {@linkcode summarise}. */
export interface SummariseOptions {
  seed?: number;
  fast?: boolean;
  out?: string;
  n?: number;
  testN?: number;
  hidden?: number;
  /** Training steps T of the SI (finite time). */
  siSteps?: number;
  /** Adam steps of each retraining. */
  trainSteps?: number;
  /** Fractions removed. */
  fractions?: number[];
  /** Random subsets per fraction. */
  draws?: number;
  verbose?: boolean;
}

/** One fraction: test accuracy after removing the lowest-SI x% and random x%. */
export interface SummariseRow {
  removed: number;
  kept: number;
  siAccuracy: number;
  randomAccuracy: number;
  randomSd: number;
  /** Share of the total F-SI held by the kept samples. */
  siShareKept: number;
}

/** Result of {@linkcode summarise}. */
export interface SummariseResult {
  fullAccuracy: number;
  rows: SummariseRow[];
  /** Mean over fractions of (SI-ranked accuracy - random accuracy). */
  meanGap: number;
  settings: Record<string, number | string>;
  seconds: number;
  markdown: string;
}

/** The MLP's initial weights as a {@linkcode Net} (parameters `fc1.weight`, `fc1.bias`, `out.weight`, `out.bias`). */
function netOf(mlp: Mlp): Net {
  const tf = mlp.tf;
  const w0 = mlp.layers.flatMap((l) => [
    { name: `${l.name}.weight`, shape: l.w.shape, values: l.w.dataSync() as Float32Array },
    { name: `${l.name}.bias`, shape: l.b.shape, values: l.b.dataSync() as Float32Array },
  ]);
  return {
    tf,
    w0,
    apply: (ps, x) => {
      let a = x as TF.Tensor2D;
      for (let i = 0; i < ps.length; i += 2) {
        const z = tf.add(tf.matMul(a, ps[i] as TF.Tensor2D), ps[i + 1]) as TF.Tensor2D;
        a = i + 2 < ps.length ? tf.relu(z) : z;
      }
      return a;
    },
  };
}

/** Runs the experiment. */
export async function summarise(o: SummariseOptions = {}): Promise<SummariseResult> {
  const t0 = performance.now();
  const fast = o.fast ?? false, seed = o.seed ?? 0;
  const n = o.n ?? (fast ? 60 : 200), testN = o.testN ?? (fast ? 200 : 1000), hidden = o.hidden ?? (fast ? 16 : 64);
  const siSteps = o.siSteps ?? (fast ? 100 : 300), trainSteps = o.trainSteps ?? (fast ? 100 : 400);
  const fractions = o.fractions ?? (fast ? [0.3, 0.6, 0.9] : [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
  const draws = o.draws ?? (fast ? 2 : 3);
  const out = o.out ?? `experiments/summarise${fast ? "_fast" : ""}`;
  const d = 196, classes = 10;
  const digits = await loadDigits(seed);
  if (digits.n < n + testN) {
    throw new Error(`Cannot take ${n + testN} digits as the data holds ${digits.n}: current value is ${n + testN}`);
  }
  const img = pool14(digits.images, digits.n);
  const take = (from: number, count: number) => ({
    x: img.slice(from * d, (from + count) * d),
    y: Int32Array.from(digits.labels.subarray(from, from + count)),
  });
  const tr = take(0, n), te = take(n, testN);
  const sizes = [d, hidden, classes];
  // SI at w0, finite time, no ridge
  const mlp0 = await makeMlp(sizes, seed + 1);
  const t1 = performance.now();
  const [si] = await siOf(
    netOf(mlp0),
    tr.x,
    tr.y,
    te.x,
    d,
    out,
    seed,
    [0],
    (top) => ({ "si-t": siSteps, "si-lr": 1 / top, "si-summary": true }),
  );
  mlp0.dispose();
  if (o.verbose) console.error(`F-SI of ${n} samples (${since(t1).toFixed(1)} s)`);
  const subset = (idx: number[]) => {
    const x = new Float32Array(idx.length * d), y = new Int32Array(idx.length);
    idx.forEach((i, r) => {
      x.set(tr.x.subarray(i * d, (i + 1) * d), r * d);
      y[r] = tr.y[i];
    });
    return { x, y };
  };
  const fit = async (idx: number[]) => {
    const m = await makeMlp(sizes, seed + 1); // the same w0 every time
    const s = subset(idx);
    await train(m, s.x, s.y, { epochs: 1e6, maxSteps: trainSteps, batch: Math.min(32, idx.length), seed });
    const acc = accuracy(m, te.x, te.y);
    m.dispose();
    return acc;
  };
  const all = Array.from({ length: n }, (_, i) => i);
  const fullAccuracy = await fit(all);
  const bySi = [...all].sort((a, b) => si.siF[b] - si.siF[a] || a - b); // descending
  const total = si.siF.reduce((a, b) => a + b, 0);
  const rand = rng(seed + 11);
  const rows: SummariseRow[] = [];
  for (const x of fractions) {
    const kept = Math.max(1, Math.round((1 - x) * n));
    const top = bySi.slice(0, kept);
    const siAccuracy = await fit(top);
    const accs: number[] = [];
    for (let r = 0; r < draws; r++) {
      const perm = [...all];
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [perm[i], perm[j]] = [perm[j], perm[i]];
      }
      accs.push(await fit(perm.slice(0, kept)));
    }
    const mean = accs.reduce((a, b) => a + b, 0) / draws;
    const sd = Math.sqrt(accs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, draws - 1));
    const share = top.reduce((a, i) => a + si.siF[i], 0) / total;
    rows.push({ removed: x, kept, siAccuracy, randomAccuracy: mean, randomSd: sd, siShareKept: share });
    if (o.verbose) console.error(`removed ${x}: SI-ranked ${siAccuracy.toFixed(3)}, random ${mean.toFixed(3)}`);
  }
  const meanGap = rows.reduce((a, r) => a + r.siAccuracy - r.randomAccuracy, 0) / rows.length;
  const settings = {
    seed,
    data: "MNIST digits (10 classes), 14 x 14",
    mlp: `196-${hidden}-10 (ReLU)`,
    n,
    test: testN,
    si: `function SI at w0, ${siSteps} GD steps of 1 / lambda_max(Theta), lambda = 0`,
    retraining: `Adam 1e-3, batch 32, ${trainSteps} steps, same w0`,
    draws,
  };
  const markdown = [
    markdownTable(
      ["removed", "kept", "F-SI share kept", "acc. (lowest SI removed)", "acc. (random removed)", "sd (random)"],
      rows.map((r) => [
        `${Math.round(r.removed * 100)}%`,
        String(r.kept),
        r.siShareKept,
        r.siAccuracy,
        r.randomAccuracy,
        r.randomSd,
      ]),
    ),
    "",
    `All ${n} samples: test accuracy ${fullAccuracy.toFixed(3)}; mean gain of SI-ranked over random removal ${
      meanGap >= 0 ? "+" : ""
    }${meanGap.toFixed(3)}.`,
  ].join("\n");
  const plot = {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: "Test accuracy after removing x% of the training set",
    data: {
      values: rows.flatMap((r) => [
        { removed: r.removed, accuracy: r.siAccuracy, removal: "lowest SI" },
        { removed: r.removed, accuracy: r.randomAccuracy, removal: "random" },
      ]),
    },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "removed", type: "quantitative", title: "fraction removed", axis: { format: "%" } },
      y: { field: "accuracy", type: "quantitative", title: "test accuracy", scale: { zero: false } },
      color: { field: "removal", type: "nominal" },
    },
  };
  const result = { fullAccuracy, rows, meanGap, settings, seconds: since(t0), markdown };
  await Deno.mkdir(out, { recursive: true });
  await Deno.writeTextFile(`${out}/summary.json`, JSON.stringify(result, null, 2));
  await Deno.writeTextFile(`${out}/accuracy.vl.json`, JSON.stringify(plot, null, 2));
  return result;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { fast: { type: "boolean" }, seed: { type: "string" }, out: { type: "string" } },
  });
  const r = await summarise({
    fast: values.fast,
    seed: values.seed ? Number(values.seed) : undefined,
    out: values.out,
    verbose: true,
  });
  console.log(`Dataset summarisation (${JSON.stringify(r.settings)})\n\n${r.markdown}\n`);
  console.log(
    `runtime ${r.seconds.toFixed(0)} s; tables in ${
      values.out ?? `experiments/summarise${values.fast ? "_fast" : ""}`
    }/`,
  );
}
