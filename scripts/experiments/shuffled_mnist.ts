/**
 * Shuffled MNIST (Bansal, Pruthi, Belinkov, NeurIPS 2022): example-level memorization (label noise) raises
 * neuron entropy and lowers neuron MI.
 *
 * A fraction beta in {0, .25, .5, .75, 1} of the training labels is replaced by uniformly random digits; one
 * MLP per beta (same seed, same initial weights, same digits) is trained long enough to fit its labels; the
 * hidden pre-activations on held-out digits go through `entropy` (100 global bins) and KSG `mi` (k = 3, pairs
 * within layers). Expected (paper): larger beta -> higher mean entropy, lower mean MI, i.e. Kendall tau
 * (beta, entropy) > 0 and tau(beta, MI) < 0.
 *
 * Usage: `deno task exp:shuffled [--fast] [--seed S] [--out DIR]` (results in `experiments/shuffled_mnist/`).
 *
 * @module
 */
import { loadDigits, PIXELS } from "../examples/mnist.ts";
import { type Diversity, experimentArgs, pool14, printTrend, rng, trendExperiment } from "./_common.ts";

/** Sizes and settings of {@linkcode shuffledMnist}. */
export interface ShuffledOptions {
  seed?: number;
  /** Small sizes (seconds): 14 x 14 inputs, 3 x 32 hidden, 1,000 training digits, 500 held out. */
  fast?: boolean;
  out?: string;
  betas?: number[];
  hidden?: number;
  depth?: number;
  trainN?: number;
  heldOutN?: number;
  epochs?: number;
  miSamples?: number;
  /** Average-pool the digits to 14 x 14 (default: in --fast only). */
  pool?: boolean;
  verbose?: boolean;
}

/** One model's figures. */
export interface ShuffledRow extends Diversity {
  beta: number;
  /** Accuracy on the training labels it was given (memorization). */
  trainAccuracy: number;
  /** Held-out accuracy (true labels). */
  heldOutAccuracy: number;
  dir: string;
}

/** Result of {@linkcode shuffledMnist}. */
export interface ShuffledResult {
  rows: ShuffledRow[];
  /** Kendall tau-b of beta vs mean entropy (expected > 0) and vs mean MI (expected < 0). */
  tauEntropy: number;
  tauMi: number;
  settings: Record<string, number | string>;
  seconds: number;
  markdown: string;
}

/** Runs the experiment. */
export async function shuffledMnist(o: ShuffledOptions = {}): Promise<ShuffledResult> {
  const t0 = performance.now();
  const fast = o.fast ?? false, seed = o.seed ?? 0;
  const betas = o.betas ?? [0, 0.25, 0.5, 0.75, 1];
  const hidden = o.hidden ?? (fast ? 32 : 256), depth = o.depth ?? 3, pool = o.pool ?? fast;
  const trainN = o.trainN ?? (fast ? 1000 : 3000), heldOutN = o.heldOutN ?? (fast ? 500 : 2000);
  const epochs = o.epochs ?? (fast ? 30 : 40), miSamples = o.miSamples ?? (fast ? 500 : 1000);
  const out = o.out ?? `experiments/shuffled_mnist${fast ? "_fast" : ""}`;
  const digits = await loadDigits(seed);
  if (trainN + heldOutN > digits.n) {
    throw new Error(
      `Cannot split ${digits.n} digits into train and held-out sets: current value is ${trainN + heldOutN}`,
    );
  }
  const dim = pool ? 196 : PIXELS;
  const x = pool ? pool14(digits.images, trainN + heldOutN) : digits.images.slice(0, (trainN + heldOutN) * PIXELS);
  const trainX = x.subarray(0, trainN * dim), heldX = x.subarray(trainN * dim, (trainN + heldOutN) * dim);
  const heldY = digits.labels.slice(trainN, trainN + heldOutN);
  // One uniform draw and one random label per digit, shared by all beta (label i is random when u[i] < beta).
  const rand = rng(seed + 2);
  const u = Float64Array.from({ length: trainN }, () => rand());
  const randomLabel = Int32Array.from({ length: trainN }, () => Math.floor(rand() * 10));
  const settings = {
    seed,
    mlp: `${dim}-${Array(depth).fill(hidden).join("-")}-10`,
    train: trainN,
    heldOut: heldOutN,
    epochs,
    miSamples,
  };
  return await trendExperiment({ name: "beta", values: betas, digits: 2 }, (beta) => ({
    sizes: [dim, ...Array(depth).fill(hidden), 10],
    trainX,
    trainY: Int32Array.from({ length: trainN }, (_, i) => (u[i] < beta ? randomLabel[i] : digits.labels[i])),
    heldX,
    heldY,
  }), {
    out,
    seed,
    epochs,
    miSamples,
    accuracy: ["train acc (given labels)", "held-out acc"],
    settings,
    t0,
    verbose: o.verbose,
  });
}

if (import.meta.main) {
  const r = await shuffledMnist({ ...experimentArgs(Deno.args), verbose: true });
  await printTrend("Shuffled MNIST", r);
}
