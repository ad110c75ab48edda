/**
 * Fisher information over training (Achille, Rovere, Soatto, "Critical Learning Periods in Deep Networks",
 * ICLR 2019; docs/science.md section 2): the trace of the TRUE Fisher per layer rises early in training, then
 * falls; a deficit (blurred inputs) early in training hurts the final accuracy more than the same deficit later.
 *
 * - An MLP on 14 x 14 digits is trained with plain SGD, once per seed (`seeds`, default 5: the seed sets the data
 *   split, the initial weights and the minibatch order). Every `every` steps, per-sample gradients of
 *   `log p(y|x)` on a fixed held-out probe set are streamed LIVE to an in-process `serve` running the `fisher`
 *   estimator per step (`pipeline/producers/tfjs/gradients.ts`, `ServeHandle.local()`): by default the EXACT
 *   expectation over the model's labels (one row per class weighted by p(y|x)), so the curve carries no
 *   label-sampling noise; `fisher: "sampled"` draws `draws` labels instead. Reported: the median of the total
 *   trace over seeds at each record and its band (min to max), and each seed's peak.
 * - Deficit: the training inputs are blurred (2 x 2 average-pooled to 7 x 7, then upsampled) during a window
 *   of `deficit` steps starting at step 1 (early) or at the middle of training (late); each run then trains on
 *   clean inputs until the same total number of steps. Reported: held-out accuracy at the end, and the peak of
 *   the Fisher trace.
 *
 * - Deficits run for the first seed only (two more runs).
 *
 * Trend statistics: Kendall tau of step vs the median trace before its peak (expected > 0: rise) and after it
 * (expected < 0: fall), and each seed's peak position (expected strictly inside the run).
 *
 * Usage: `deno task exp:fisher [--fast] [--seed S] [--seeds N] [--out DIR]` (results in
 * `experiments/fisher_training/seed_S/<run>/`).
 *
 * @module
 */
import { loadDigits } from "../examples/mnist.ts";
import { kendallTau } from "../../pipeline/report/kendall.ts";
import { serve } from "../../pipeline/serve/serve.ts";
import { tfjsGradientBatch } from "../../pipeline/producers/tfjs/gradients.ts";
import { readResults } from "../../pipeline/report/results.ts";
import { renderReport } from "../../pipeline/report/report.ts";
import { tableFromColumns } from "../../pipeline/core/table.ts";
import { writeTables } from "../../pipeline/core/write.ts";
import { accuracy, makeMlp, markdownTable, pool14, seedArgs, since, train } from "./_common.ts";
import { percentile } from "../../pipeline/core/stats.ts";

/** Sizes and settings of {@linkcode fisherTraining}. */
export interface FisherOptions {
  /** First seed; the runs use `seed, seed + 1, ...`. */
  seed?: number;
  /** Seeds (no-deficit runs), default 5. */
  seeds?: number;
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
  /** `exact` (default): one row per class weighted by p(y|x), no label-sampling noise; `sampled`: `draws` labels. */
  fisher?: "exact" | "sampled";
  /** True Fisher: labels drawn per probe input (with `fisher: "sampled"`). */
  draws?: number;
  /** Also run the early and late deficit, for the first seed (default true). */
  deficits?: boolean;
  verbose?: boolean;
}

/** The Fisher trace curve of one run. */
export interface FisherCurve {
  steps: number[];
  /** Layer name -> trace per recorded step; `total` is the whole network. */
  trace: Record<string, number[]>;
}

/** One run (no deficit, early deficit, late deficit) of one seed. */
export interface FisherRun {
  name: string;
  seed: number;
  /** Deficit window [from, to] in steps (inclusive), or null. */
  window: [number, number] | null;
  heldOutAccuracy: number;
  curve: FisherCurve;
  peakStep: number;
  peakTrace: number;
  finalTrace: number;
  /** Kendall tau of step vs total trace up to the peak and from the peak on. */
  tauRise: number;
  tauFall: number;
  dir: string;
}

/** The total trace over seeds at each recorded step. */
export interface FisherBand {
  steps: number[];
  median: number[];
  min: number[];
  max: number[];
  /** Layer name -> median trace per step. */
  layers: Record<string, number[]>;
}

/** Result of {@linkcode fisherTraining}. */
export interface FisherResult {
  /** The no-deficit run of every seed, then the deficit runs of the first seed. */
  runs: FisherRun[];
  band: FisherBand;
  /** Kendall tau of step vs the median total trace up to its peak (rise, expected > 0) and from it on (fall, < 0). */
  tauRise: number;
  tauFall: number;
  /** Step of the median curve's peak. */
  peakStep: number;
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

/**
 * Writes `out/fisher_band.parquet` (per step and layer, and the total: the median trace over the runs, the smallest
 * and the largest) and `out/report.html`, the report page that draws it (the fisher plugin's "fisher-band" section).
 */
async function bandReport(out: string, runs: FisherRun[], title: string): Promise<void> {
  const names = Object.keys(runs[0].curve.trace), steps = runs[0].curve.steps;
  const cols = {
    step: [] as number[],
    name: [] as string[],
    median: [] as number[],
    lo: [] as number[],
    hi: [] as number[],
  };
  for (const name of names) {
    steps.forEach((step, i) => {
      const v = runs.map((r) => r.curve.trace[name][i]);
      cols.step.push(step);
      cols.name.push(name);
      cols.median.push(percentile(v, 50));
      cols.lo.push(Math.min(...v));
      cols.hi.push(Math.max(...v));
    });
  }
  await writeTables(out, {
    fisher_band: tableFromColumns([
      { name: "step", type: "int64", values: cols.step },
      { name: "name", type: "utf8", values: cols.name },
      { name: "median", type: "float64", values: cols.median },
      { name: "lo", type: "float64", values: cols.lo },
      { name: "hi", type: "float64", values: cols.hi },
      { name: "runs", type: "int64", values: cols.step.map(() => runs.length) },
    ], { "infotap.units": "trace of the Fisher: median, smallest and largest over runs" }),
  }, "parquet");
  await Deno.writeTextFile(`${out}/report.html`, await renderReport(await readResults(out), { title }));
}

/** Step of the peak, and Kendall tau of step vs value up to it and from it on. */
function shape(steps: number[], v: number[]): { at: number; tauRise: number; tauFall: number } {
  const at = v.indexOf(Math.max(...v));
  return {
    at,
    tauRise: at > 0 ? kendallTau(steps.slice(0, at + 1), v.slice(0, at + 1)) : NaN,
    tauFall: at < v.length - 1 ? kendallTau(steps.slice(at), v.slice(at)) : NaN,
  };
}

/** Runs the experiment. */
export async function fisherTraining(o: FisherOptions = {}): Promise<FisherResult> {
  const t0 = performance.now();
  const fast = o.fast ?? false, seed0 = o.seed ?? 0, seeds = o.seeds ?? 5;
  const hidden = o.hidden ?? (fast ? 32 : 100), trainN = o.trainN ?? (fast ? 2000 : 8000);
  const probeN = o.probeN ?? (fast ? 100 : 500), steps = o.steps ?? (fast ? 600 : 3000);
  const every = o.every ?? (fast ? 50 : 100), deficit = o.deficit ?? Math.round(steps / 3);
  const lr = o.lr ?? (fast ? 0.1 : 0.05), batch = o.batch ?? 32, draws = o.draws ?? 1, fisher = o.fisher ?? "exact";
  const out = o.out ?? `experiments/fisher_training${fast ? "_fast" : ""}`;
  const late = Math.floor(steps / 2);
  const plan: { name: string; seed: number; window: [number, number] | null }[] = [];
  for (let s = seed0; s < seed0 + seeds; s++) plan.push({ name: "no deficit", seed: s, window: null });
  if (o.deficits !== false) {
    plan.push({ name: "early deficit", seed: seed0, window: [1, deficit] });
    plan.push({ name: "late deficit", seed: seed0, window: [late + 1, late + deficit] });
  }
  const runs: FisherRun[] = [];
  let heldN = 0;
  for (const p of plan) {
    const t1 = performance.now(), seed = p.seed;
    const digits = await loadDigits(seed);
    const x = pool14(digits.images, digits.n);
    const trainX = x.subarray(0, trainN * 196), trainY = digits.labels.slice(0, trainN);
    heldN = digits.n - trainN;
    const heldX = x.subarray(trainN * 196), heldY = digits.labels.slice(trainN);
    const probeX = heldX.subarray(0, probeN * 196);
    const epochs = Math.ceil(steps / Math.floor(trainN / batch));
    const mlp = await makeMlp([196, hidden, hidden, 10], seed);
    const tf = mlp.tf;
    const blur = p.window ? tf.tensor2d(blurMatrix(), [196, 196]) : null;
    const dir = `${out}/seed_${seed}/${p.name.replace(/ /g, "_")}`;
    await Deno.mkdir(dir, { recursive: true });
    const server = await serve({
      listen: null,
      out: dir,
      estimators: ["fisher"],
      options: { "fisher-rank": 0 },
      byStep: true,
      seed,
      log: () => {},
      extra: { experiment: "fisher_training", run: p.name, seed, fisher },
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
        const g = fisher === "exact" ? { fisher, step, sampleId } as const : { seed, step, draws, sampleId };
        await producer.write(await tfjsGradientBatch(model, x, g));
      }
    };
    await record(0);
    const w = p.window;
    await train(mlp, trainX, trainY, {
      epochs,
      batch,
      lr,
      optimizer: "sgd",
      seed,
      maxSteps: steps,
      transform: w && blur ? (xb, step) => (step >= w[0] && step <= w[1] ? tf.matMul(xb, blur) : xb) : undefined,
      onStep: (step) => (step % every === 0 ? record(step) : undefined),
    });
    await producer.close();
    await server.stop();
    const heldOutAccuracy = accuracy(mlp, heldX, heldY);
    for (const c of chunks) c.x.dispose();
    blur?.dispose();
    mlp.dispose();
    const curve = await readCurve(dir);
    const total = curve.trace.total;
    const sh = shape(curve.steps, total);
    runs.push({
      name: p.name,
      seed,
      window: p.window,
      heldOutAccuracy,
      curve,
      peakStep: curve.steps[sh.at],
      peakTrace: total[sh.at],
      finalTrace: total[total.length - 1],
      tauRise: sh.tauRise,
      tauFall: sh.tauFall,
      dir,
    });
    if (o.verbose) {
      console.error(
        `seed ${seed}, ${p.name}: held-out acc ${heldOutAccuracy.toFixed(4)} (${heldN} digits), Fisher trace peak ${
          total[sh.at].toFixed(3)
        } at step ${curve.steps[sh.at]}, final ${total[total.length - 1].toFixed(3)} (${since(t1).toFixed(1)} s)`,
      );
    }
  }
  // Median and band over the seeds' no-deficit curves (all recorded at the same steps).
  const base = runs.filter((r) => r.name === "no deficit");
  const stepsAt = base[0].curve.steps, layers = Object.keys(base[0].curve.trace);
  const over = (name: string, i: number) => base.map((r) => r.curve.trace[name][i]);
  const band: FisherBand = {
    steps: stepsAt,
    median: stepsAt.map((_, i) => percentile(over("total", i), 50)),
    min: stepsAt.map((_, i) => Math.min(...over("total", i))),
    max: stepsAt.map((_, i) => Math.max(...over("total", i))),
    layers: Object.fromEntries(layers.map((l) => [l, stepsAt.map((_, i) => percentile(over(l, i), 50))])),
  };
  const sh = shape(stepsAt, band.median);
  const settings = {
    seeds: `${seed0}-${seed0 + seeds - 1}`,
    mlp: `196-${hidden}-${hidden}-10`,
    train: trainN,
    probe: probeN,
    fisher: fisher === "exact" ? "exact (one row per class, weight p(y|x))" : `sampled (${draws} label(s) per input)`,
    steps,
    every,
    batch,
    lr,
    optimizer: "sgd",
    deficit,
  };
  const bandLayers = layers.filter((l) => l !== "total");
  const markdown = [
    `True-Fisher trace over training (no deficit), ${base.length} seeds: median and band (min to max) of the total, ` +
    "median per layer:",
    "",
    markdownTable(
      ["step", "median total", "min", "max", ...bandLayers.map((l) => `${l} (median)`)],
      stepsAt.map((
        s,
        i,
      ) => [String(s), band.median[i], band.min[i], band.max[i], ...bandLayers.map((l) => band.layers[l][i])]),
    ),
    "",
    `Peak of the median total trace at step ${stepsAt[sh.at]} of ${steps}; Kendall tau (step vs median trace) up to ` +
    `the peak = ${sh.tauRise.toFixed(3)} (expected > 0), from the peak on = ${sh.tauFall.toFixed(3)} (expected < 0).`,
    "",
    markdownTable(
      [
        "seed",
        "peak step",
        "peak trace",
        "step-0 trace",
        "final trace",
        "final / peak",
        "tau rise",
        "tau fall",
        "held-out acc",
      ],
      base.map((r) => [
        String(r.seed),
        String(r.peakStep),
        r.peakTrace,
        r.curve.trace.total[0],
        r.finalTrace,
        r.finalTrace / r.peakTrace,
        r.tauRise,
        r.tauFall,
        r.heldOutAccuracy,
      ]),
    ),
    ...(runs.length > base.length
      ? [
        "",
        `Deficits (seed ${seed0}):`,
        "",
        markdownTable(
          ["run", "blurred steps", "held-out acc", "peak trace", "peak step", "final trace"],
          runs.filter((r) => r.seed === seed0).map((r) => [
            r.name,
            r.window ? `${r.window[0]}-${r.window[1]}` : "none",
            r.heldOutAccuracy,
            r.peakTrace,
            String(r.peakStep),
            r.finalTrace,
          ]),
          4,
        ),
      ]
      : []),
  ].join("\n");
  const result = {
    runs,
    band,
    tauRise: sh.tauRise,
    tauFall: sh.tauFall,
    peakStep: stepsAt[sh.at],
    settings,
    seconds: since(t0),
    markdown,
  };
  await Deno.writeTextFile(`${out}/summary.json`, JSON.stringify(result, null, 2));
  await bandReport(out, base, `Fisher over training: ${base.length} seeds (${JSON.stringify(settings)})`);
  return result;
}

if (import.meta.main) {
  const r = await fisherTraining({ ...seedArgs(Deno.args), verbose: true });
  console.log(`Fisher over training (${JSON.stringify(r.settings)})\n\n${r.markdown}\n`);
  const out = r.runs[0].dir.replace(/\/seed_[^/]*\/[^/]*$/, "");
  console.log(`runtime ${r.seconds.toFixed(0)} s; tables in ${out}/, the median and band drawn in ${out}/report.html`);
}
