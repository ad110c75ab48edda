/**
 * Fisher information over training (Achille, Rovere, Soatto, "Critical Learning Periods in Deep Networks",
 * ICLR 2019; ../shared/SCIENCE.md section 2): the trace of the TRUE Fisher (labels sampled from the model) per
 * layer rises early in training, then falls; a deficit (blurred inputs) early in training hurts the final
 * accuracy more than the same deficit later.
 *
 * - An MLP on 14 x 14 digits is trained with plain SGD. Every `every` steps, per-sample gradients of
 *   `log p(y|x)` on a fixed held-out probe set (labels drawn from the model: true Fisher) are streamed LIVE to an
 *   in-process `serve` running the `fisher` estimator per step (`pipeline/producers/tfjs/gradients.ts`,
 *   `ServeHandle.local()`); the final `fisher.parquet` is the trace-over-training curve.
 * - Deficit: the training inputs are blurred (2 x 2 average-pooled to 7 x 7, then upsampled) during a window
 *   of `deficit` steps starting at step 1 (early) or at the middle of training (late); each run then trains on
 *   clean inputs until the same total number of steps. Reported: held-out accuracy at the end, and the peak of
 *   the Fisher trace.
 *
 * Trend statistics: Kendall tau of step vs trace before the peak (expected > 0: rise) and after it (expected
 * < 0: fall), and the peak's position (expected strictly inside the run).
 *
 * Usage: `deno task exp:fisher [--fast] [--seed S] [--out DIR]` (results in `experiments/fisher_training/`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import type * as TF from "@tensorflow/tfjs-core";
import { loadDigits } from "../examples/mnist.ts";
import { kendallTau } from "../../pipeline/report/kendall.ts";
import { serve } from "../../pipeline/serve/serve.ts";
import { tfjsGradientBatch } from "../../pipeline/producers/tfjs/gradients.ts";
import { readResults } from "../../pipeline/report/results.ts";
import { accuracy, makeMlp, markdownTable, pool14, since, train } from "./_common.ts";

/** Sizes and settings of {@linkcode fisherTraining}. */
export interface FisherOptions {
  seed?: number;
  /** Small sizes (seconds). */
  fast?: boolean;
  out?: string;
  hidden?: number;
  trainN?: number;
  probeN?: number;
  steps?: number;
  every?: number;
  /** Deficit window length in steps. */
  deficit?: number;
  lr?: number;
  batch?: number;
  /** True Fisher: labels drawn per probe input (with `fisher: "sampled"`). */
  draws?: number;
  /** `exact` (default): one row per class weighted by p(y|x), no label-sampling noise; `sampled`: `draws` labels. */
  fisher?: "exact" | "sampled";
  /** Also run the early and late deficit (default true). */
  deficits?: boolean;
  verbose?: boolean;
}

/** The Fisher trace curve of one run. */
export interface FisherCurve {
  steps: number[];
  /** Layer name -> trace per recorded step; `total` is the whole network. */
  trace: Record<string, number[]>;
}

/** One run (no deficit, early deficit, late deficit). */
export interface FisherRun {
  name: string;
  /** Deficit window [from, to] in steps (inclusive), or null. */
  window: [number, number] | null;
  heldOutAccuracy: number;
  curve: FisherCurve;
  peakStep: number;
  peakTrace: number;
  finalTrace: number;
  dir: string;
}

/** Result of {@linkcode fisherTraining}. */
export interface FisherResult {
  runs: FisherRun[];
  /** Kendall tau of step vs total trace up to the peak (rise, expected > 0) and from the peak on (fall, < 0). */
  tauRise: number;
  tauFall: number;
  settings: Record<string, number | string>;
  seconds: number;
  markdown: string;
}

/** Blur as a 196 x 196 matrix: 2 x 2 average pooling to 7 x 7, then nearest upsampling to 14 x 14. */
function blurMatrix(): Float32Array {
  const m = new Float32Array(196 * 196);
  for (let r = 0; r < 14; r++) {
    for (let c = 0; c < 14; c++) {
      const br = r >> 1, bc = c >> 1;
      for (const [dr, dc] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
        m[((2 * br + dr) * 14 + 2 * bc + dc) * 196 + r * 14 + c] = 0.25;
      }
    }
  }
  return m;
}

/** Reads the per-step trace per layer (and total) from a `fisher` table. */
async function readCurve(dir: string): Promise<FisherCurve> {
  const t = (await readResults(dir)).tables.fisher;
  if (!t) throw new Error(`Cannot read the Fisher curve as the run wrote no fisher table: current value is '${dir}'`);
  const bySteps = new Map<number, Record<string, number>>();
  for (const r of t.rows) {
    if (r.level === "parameter") continue;
    const s = Number(r.step);
    const row = bySteps.get(s) ?? {};
    row[r.level === "total" ? "total" : String(r.parameter)] = r.trace as number;
    bySteps.set(s, row);
  }
  const steps = [...bySteps.keys()].sort((a, b) => a - b);
  const names = Object.keys(bySteps.get(steps[0])!);
  return { steps, trace: Object.fromEntries(names.map((n) => [n, steps.map((s) => bySteps.get(s)![n])])) };
}

/** Runs the experiment. */
export async function fisherTraining(o: FisherOptions = {}): Promise<FisherResult> {
  const t0 = performance.now();
  const fast = o.fast ?? false, seed = o.seed ?? 0;
  const hidden = o.hidden ?? (fast ? 32 : 100), trainN = o.trainN ?? (fast ? 2000 : 8000);
  const probeN = o.probeN ?? (fast ? 100 : 500), steps = o.steps ?? (fast ? 240 : 3000);
  const every = o.every ?? (fast ? 20 : 100), deficit = o.deficit ?? Math.round(steps / 3);
  const lr = o.lr ?? 0.05, batch = o.batch ?? 32, draws = o.draws ?? 1, fisher = o.fisher ?? "exact";
  const out = o.out ?? `experiments/fisher_training${fast ? "_fast" : ""}`;
  const digits = await loadDigits(seed);
  const x = pool14(digits.images, digits.n);
  const trainX = x.subarray(0, trainN * 196), trainY = digits.labels.slice(0, trainN);
  const heldN = digits.n - trainN;
  const heldX = x.subarray(trainN * 196), heldY = digits.labels.slice(trainN);
  const probeX = heldX.subarray(0, probeN * 196);
  const epochs = Math.ceil(steps / Math.floor(trainN / batch));
  const runs: FisherRun[] = [];
  const late = Math.floor(steps / 2);
  const all: { name: string; window: [number, number] | null }[] = [
    { name: "no deficit", window: null },
    { name: "early deficit", window: [1, deficit] },
    { name: "late deficit", window: [late + 1, late + deficit] },
  ];
  const plan = all.slice(0, o.deficits === false ? 1 : 3);
  let blur: TF.Tensor2D | null = null;
  for (const p of plan) {
    const t1 = performance.now();
    const mlp = await makeMlp([196, hidden, hidden, 10], seed);
    const tf = mlp.tf;
    blur ??= tf.tensor2d(blurMatrix(), [196, 196]);
    const dir = `${out}/${p.name.replace(/ /g, "_")}`;
    await Deno.mkdir(dir, { recursive: true });
    const server = await serve({
      listen: null,
      out: dir,
      estimators: ["fisher"],
      options: { "fisher-rank": 0 },
      byStep: true,
      seed,
      log: () => {},
      extra: { experiment: "fisher_training", run: p.name },
    });
    const producer = server.local();
    // The probe in chunks of 50 inputs: the exact Fisher has one row per class.
    const chunks = Array.from({ length: Math.ceil(probeN / 50) }, (_, c) => {
      const i0 = c * 50, i1 = Math.min(probeN, i0 + 50);
      return {
        x: tf.tensor2d(probeX.subarray(i0 * 196, i1 * 196), [i1 - i0, 196]),
        sampleId: BigInt64Array.from({ length: i1 - i0 }, (_, i) => BigInt(i0 + i)),
      };
    });
    const model = mlp.dense();
    const record = async (step: number) => {
      for (const { x, sampleId } of chunks) {
        const o = fisher === "exact" ? { fisher, step, sampleId } as const : { seed, step, draws, sampleId };
        await producer.write(await tfjsGradientBatch(model, x, o));
      }
    };
    await record(0);
    const w = p.window, B = blur;
    await train(mlp, trainX, trainY, {
      epochs,
      batch,
      lr,
      optimizer: "sgd",
      seed,
      maxSteps: steps,
      transform: w ? (xb, step) => (step >= w[0] && step <= w[1] ? tf.matMul(xb, B) : xb) : undefined,
      onStep: (step) => (step % every === 0 ? record(step) : undefined),
    });
    await producer.close();
    await server.stop();
    const heldOutAccuracy = accuracy(mlp, heldX, heldY);
    for (const c of chunks) c.x.dispose();
    mlp.dispose();
    const curve = await readCurve(dir);
    const total = curve.trace.total;
    const at = total.indexOf(Math.max(...total));
    runs.push({
      name: p.name,
      window: p.window,
      heldOutAccuracy,
      curve,
      peakStep: curve.steps[at],
      peakTrace: total[at],
      finalTrace: total[total.length - 1],
      dir,
    });
    if (o.verbose) {
      console.error(
        `${p.name}: held-out acc ${heldOutAccuracy.toFixed(4)} (${heldN} digits), Fisher trace peak ${
          total[at].toFixed(3)
        } at step ${curve.steps[at]}, final ${total[total.length - 1].toFixed(3)} (${since(t1).toFixed(1)} s)`,
      );
    }
  }
  blur?.dispose();
  const base = runs[0], total = base.curve.trace.total, at = base.curve.steps.indexOf(base.peakStep);
  const tauRise = kendallTau(base.curve.steps.slice(0, at + 1), total.slice(0, at + 1));
  const tauFall = kendallTau(base.curve.steps.slice(at), total.slice(at));
  const layers = Object.keys(base.curve.trace);
  const settings = {
    seed,
    mlp: `196-${hidden}-${hidden}-10`,
    train: trainN,
    probe: probeN,
    steps,
    every,
    batch,
    lr,
    optimizer: "sgd",
    draws,
    deficit,
  };
  const markdown = [
    "True-Fisher trace per layer over training (no deficit):",
    "",
    markdownTable(
      ["step", ...layers],
      base.curve.steps.map((s, i) => [String(s), ...layers.map((l) => base.curve.trace[l][i])]),
    ),
    "",
    `Peak of the total trace at step ${base.peakStep} of ${steps}; Kendall tau (step vs trace) up to the peak = ${
      tauRise.toFixed(3)
    } (expected > 0), from the peak on = ${tauFall.toFixed(3)} (expected < 0).`,
    "",
    markdownTable(
      ["run", "blurred steps", "held-out acc", "peak trace", "peak step", "final trace"],
      runs.map((r) => [
        r.name,
        r.window ? `${r.window[0]}-${r.window[1]}` : "none",
        r.heldOutAccuracy,
        r.peakTrace,
        String(r.peakStep),
        r.finalTrace,
      ]),
      4,
    ),
  ].join("\n");
  const result = { runs, tauRise, tauFall, settings, seconds: since(t0), markdown };
  await Deno.writeTextFile(`${out}/summary.json`, JSON.stringify(result, null, 2));
  return result;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { fast: { type: "boolean" }, seed: { type: "string" }, out: { type: "string" } },
  });
  const r = await fisherTraining({
    fast: values.fast,
    seed: values.seed ? Number(values.seed) : undefined,
    out: values.out,
    verbose: true,
  });
  console.log(`Fisher over training (${JSON.stringify(r.settings)})\n\n${r.markdown}\n`);
  console.log(`runtime ${r.seconds.toFixed(0)} s; tables in ${r.runs[0].dir.replace(/\/[^/]*$/, "")}/`);
}
