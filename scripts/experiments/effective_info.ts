/**
 * Effective information in the activations vs information in the weights (Achille, Paolini, Soatto, "Where is
 * the information in a deep network?", 2019, Def. 3.1; docs/science.md section 2, docs/effective_info.md): less
 * information in the weights (larger beta) goes with less effective information in the activations.
 *
 * For each seed and beta: an MLP on 14 x 14 digits is trained with the prior's part of the KL term as weight decay
 * (`beta / lambda^2` on every parameter, mean loss); the exact true Fisher on training digits and the weights w*
 * go through the `fisher` estimator (`--prior-var lambda^2 --beta beta`: `info_weights` with its `||w*||^2`
 * term); the weights are drawn R times from `N(w*, Sigma*)`, `Sigma* = diag(F / beta + 1 / lambda^2)^-1`
 * (`pipeline/producers/tfjs/weight_noise.ts`), and the pre-activations of every layer on N held-out digits
 * under each draw go through `effective-info` (bounds on I(x; z), x uniform over the N digits).
 *
 * Trend statistics: per seed and layer, Kendall tau of beta vs the effective information (the mean of the two
 * bounds; expected < 0) and of beta vs `info_weights` (expected < 0).
 *
 * Usage: `deno task exp:effinfo [--fast] [--seed S] [--seeds N] [--out DIR]` (results in
 * `experiments/effective_info/seed_S/beta_B/`).
 *
 * @module
 */
import { loadDigits } from "../examples/mnist.ts";
import { kendallTau } from "../../pipeline/report/kendall.ts";
import { analyze } from "../../pipeline/analyze/run.ts";
import { writeBatches } from "../../pipeline/producers/produce.ts";
import { tfjsGradientBatch } from "../../pipeline/producers/tfjs/gradients.ts";
import { fisherDiagonal, noisyActivationBatches, posteriorStd } from "../../pipeline/producers/tfjs/weight_noise.ts";
import type * as arrow from "apache-arrow";
import { accuracy, makeMlp, markdownTable, pool14, seedArgs, since, train } from "./_common.ts";

/** Sizes and settings of {@linkcode effectiveInfo}. */
export interface EffectiveInfoOptions {
  /** First seed; the runs use `seed, seed + 1, ...`. */
  seed?: number;
  seeds?: number;
  /** Small sizes (seconds). */
  fast?: boolean;
  out?: string;
  betas?: number[];
  /** lambda^2, the prior's variance. */
  priorVar?: number;
  hidden?: number;
  trainN?: number;
  steps?: number;
  lr?: number;
  /** Training digits the Fisher is taken on. */
  fisherN?: number;
  /** Held-out digits x the effective information is about (N). */
  probeN?: number;
  /** Weight draws per digit (R). */
  draws?: number;
  verbose?: boolean;
}

/** One trained model. */
export interface EffectiveInfoRow {
  seed: number;
  beta: number;
  heldOutAccuracy: number;
  /** Total `info_weights` (nats) and its weights term. */
  infoWeights: number;
  weightsTerm: number;
  /**
   * Per layer: bounds on I(x; z) (nats), the covariance used and its finite-draws KL bias; the mean over the
   * layer's neurons of the per-neuron bounds.
   */
  layers: {
    layer: string;
    lower: number;
    upper: number;
    covariance: string;
    klBias: number;
    neuronLower: number;
    neuronUpper: number;
  }[];
  dir: string;
}

/** Result of {@linkcode effectiveInfo}. */
export interface EffectiveInfoResult {
  rows: EffectiveInfoRow[];
  /**
   * Per seed: Kendall tau of beta vs info_weights, and per layer vs the mean of the layer's two bounds (`layers`)
   * and vs the mean over its neurons of the per-neuron bounds' midpoint (`neurons`).
   */
  taus: { seed: number; infoWeights: number; layers: Record<string, number>; neurons: Record<string, number> }[];
  settings: Record<string, number | string>;
  seconds: number;
  markdown: string;
}

/** A table's rows as plain objects. */
const rowsOf = (t: arrow.Table) => t.toArray().map((r) => r.toJSON() as Record<string, unknown>);

/** Runs the experiment. */
export async function effectiveInfo(o: EffectiveInfoOptions = {}): Promise<EffectiveInfoResult> {
  const t0 = performance.now();
  const fast = o.fast ?? false, seed0 = o.seed ?? 0, seeds = o.seeds ?? 3;
  const betas = o.betas ?? [1e-4, 3e-4, 1e-3, 3e-3];
  const priorVar = o.priorVar ?? 0.1, hidden = o.hidden ?? (fast ? 32 : 64);
  const trainN = o.trainN ?? (fast ? 2000 : 8000), steps = o.steps ?? (fast ? 400 : 1500), lr = o.lr ?? 0.1;
  const fisherN = o.fisherN ?? (fast ? 100 : 300), probeN = o.probeN ?? (fast ? 60 : 200);
  const draws = o.draws ?? (fast ? 200 : 400);
  const out = o.out ?? `experiments/effective_info${fast ? "_fast" : ""}`;
  const rows: EffectiveInfoRow[] = [];
  for (let seed = seed0; seed < seed0 + seeds; seed++) {
    const digits = await loadDigits(seed);
    const x = pool14(digits.images, digits.n);
    const trainX = x.subarray(0, trainN * 196), trainY = digits.labels.slice(0, trainN);
    const heldX = x.subarray(trainN * 196), heldY = digits.labels.slice(trainN);
    for (const beta of betas) {
      const t1 = performance.now();
      const dir = `${out}/seed_${seed}/beta_${beta}`;
      await Deno.mkdir(dir, { recursive: true });
      const mlp = await makeMlp([196, hidden, hidden, 10], seed);
      const tf = mlp.tf;
      await train(mlp, trainX, trainY, {
        epochs: Math.ceil(steps / Math.floor(trainN / 32)),
        batch: 32,
        lr,
        optimizer: "sgd",
        seed,
        maxSteps: steps,
        weightDecay: beta / priorVar,
      });
      const heldOutAccuracy = accuracy(mlp, heldX, heldY);
      const model = mlp.dense();
      // The exact true Fisher on training digits, and w* (a weights row): info_weights with its norm term.
      const fx = tf.tensor2d(trainX.subarray(0, fisherN * 196), [fisherN, 196]);
      await writeBatches(`${dir}/gradients.arrows`, [
        await tfjsGradientBatch(model, fx, { fisher: "exact", sendWeights: true }),
      ]);
      fx.dispose();
      const fr = await analyze({
        inputs: [`${dir}/gradients.arrows`],
        estimators: ["fisher"],
        options: { "prior-var": priorVar, beta, "fisher-rank": 0, "fisher-diag": true },
        seed,
        out: dir,
        progress: false,
      });
      if (!fr.complete) throw new Error(`Cannot compute the Fisher as the run stopped: current value is ${fr.error}`);
      const total = rowsOf(fr.tables.fisher).at(-1)!;
      // Weights from N(w*, Sigma*); every layer's pre-activations on the held-out probe under each draw.
      const std = posteriorStd(fisherDiagonal(fr.tables.fisher_diag), { priorVar, beta });
      const px = tf.tensor2d(heldX.subarray(0, probeN * 196), [probeN, 196]);
      const acts = await noisyActivationBatches(model, px, std, {
        draws,
        seed,
        metadata: { "infotap.experiment": "effective_info", "infotap.beta": String(beta) },
      });
      px.dispose();
      await writeBatches(`${dir}/activations.arrows`, acts);
      const er = await analyze({
        inputs: [`${dir}/activations.arrows`],
        estimators: ["effective-info"],
        options: {},
        seed,
        out: dir,
        progress: false,
      });
      if (!er.complete) {
        throw new Error(`Cannot compute effective information as the run stopped: current value is ${er.error}`);
      }
      mlp.dispose();
      const eff = rowsOf(er.tables.effective_info);
      const neuronMean = (layer: string, k: "lower" | "upper") => {
        const v = eff.filter((r) => r.level === "neuron" && r.layer === layer).map((r) => r[k] as number);
        return v.reduce((a, b) => a + b, 0) / v.length;
      };
      const layers = eff.filter((r) => r.level === "layer").map((r) => ({
        layer: r.layer as string,
        lower: r.lower as number,
        upper: r.upper as number,
        covariance: r.covariance as string,
        klBias: r.kl_bias as number,
        neuronLower: neuronMean(r.layer as string, "lower"),
        neuronUpper: neuronMean(r.layer as string, "upper"),
      }));
      rows.push({
        seed,
        beta,
        heldOutAccuracy,
        infoWeights: total.info_weights as number,
        weightsTerm: total.weights_term as number,
        layers,
        dir,
      });
      if (o.verbose) {
        console.error(
          `seed ${seed}, beta ${beta}: held-out acc ${heldOutAccuracy.toFixed(4)}, info_weights ${
            (total.info_weights as number).toFixed(1)
          } nats, effective info ${
            layers.map((l) => `${l.layer} ${l.lower.toFixed(3)}-${l.upper.toFixed(3)}`).join(", ")
          } (${since(t1).toFixed(1)} s)`,
        );
      }
    }
  }
  const layerNames = rows[0].layers.map((l) => l.layer);
  const taus = [];
  for (let seed = seed0; seed < seed0 + seeds; seed++) {
    const mine = rows.filter((r) => r.seed === seed), b = mine.map((r) => r.beta);
    taus.push({
      seed,
      infoWeights: kendallTau(b, mine.map((r) => r.infoWeights)),
      layers: Object.fromEntries(layerNames.map((l, i) => [
        l,
        kendallTau(b, mine.map((r) => (r.layers[i].lower + r.layers[i].upper) / 2)),
      ])),
      neurons: Object.fromEntries(layerNames.map((l, i) => [
        l,
        kendallTau(b, mine.map((r) => (r.layers[i].neuronLower + r.layers[i].neuronUpper) / 2)),
      ])),
    });
  }
  const settings = {
    seeds: `${seed0}-${seed0 + seeds - 1}`,
    mlp: `196-${hidden}-${hidden}-10`,
    train: trainN,
    steps,
    lr,
    optimizer: "sgd, weight decay beta / lambda^2",
    prior_var: priorVar,
    fisher: `exact, ${fisherN} training digits`,
    inputs: probeN,
    draws,
  };
  const markdown = [
    markdownTable(
      [
        "seed",
        "beta",
        "held-out acc",
        "info_weights",
        "of which ||w||^2/(2 lambda^2)",
        ...layerNames.map((l) => `${l} I_eff (lower-upper)`),
        ...layerNames.map((l) => `${l} neuron mean`),
      ],
      rows.map((r) => [
        String(r.seed),
        String(r.beta),
        r.heldOutAccuracy,
        r.infoWeights,
        r.weightsTerm,
        ...r.layers.map((l) => `${l.lower.toFixed(3)}-${l.upper.toFixed(3)}`),
        ...r.layers.map((l) => `${l.neuronLower.toFixed(3)}-${l.neuronUpper.toFixed(3)}`),
      ]),
    ),
    "",
    `Effective information in nats (x uniform over ${probeN} held-out digits: at most log ${probeN} = ${
      Math.log(probeN).toFixed(3)
    }); per layer with the ${rows[0].layers.map((l) => `${l.layer} ${l.covariance}`).join(", ")} covariance ` +
    `(finite-draws KL bias ${rows[0].layers.map((l) => `${l.layer} ${l.klBias.toFixed(3)}`).join(", ")} nats), ` +
    "and the mean over each layer's neurons of the per-neuron bounds.",
    "",
    markdownTable(
      [
        "seed",
        "tau(beta, info_weights)",
        ...layerNames.map((l) => `tau(beta, ${l} I_eff)`),
        ...layerNames.map((l) => `tau(beta, ${l} neuron mean)`),
      ],
      taus.map((t) => [
        String(t.seed),
        t.infoWeights,
        ...layerNames.map((l) => t.layers[l]),
        ...layerNames.map((l) => t.neurons[l]),
      ]),
    ),
    "",
    "Expected: every tau < 0 (larger beta, less information in the weights and in the activations).",
  ].join("\n");
  const result = { rows, taus, settings, seconds: since(t0), markdown };
  await Deno.writeTextFile(`${out}/summary.json`, JSON.stringify(result, null, 2));
  return result;
}

if (import.meta.main) {
  const r = await effectiveInfo({ ...seedArgs(Deno.args), verbose: true });
  console.log(`Effective information vs beta (${JSON.stringify(r.settings)})\n\n${r.markdown}\n`);
  console.log(`runtime ${r.seconds.toFixed(0)} s; tables in ${r.rows[0].dir.replace(/\/seed_[^/]*\/[^/]*$/, "")}/`);
}
