/**
 * Colored MNIST (Bansal, Pruthi, Belinkov, NeurIPS 2022; colouring as in the IRM code of Arjovsky et al.):
 * heuristic memorization lowers neuron entropy and raises neuron MI.
 *
 * Binary label `digit < 5` with 25% of the labels flipped; the 14 x 14 image is put into one of 2 channels, the
 * colour, which agrees with the (noisy) label except with probability rho. Small rho: the colour is a stronger
 * spurious feature than the digit (75% predictive). One MLP per rho in {0, .125, .25, .375, .5}, same seed,
 * same label noise, same initial weights; the hidden pre-activations on a held-out set with rho = 0.5 (colour
 * independent of the label) go through `entropy` (100 global bins) and KSG `mi` (k = 3, pairs within layers).
 * Expected (paper): smaller rho -> lower mean entropy, higher mean MI. The trend is reported as Kendall's tau
 * between rho and each measure (expected: tau(rho, entropy) > 0, tau(rho, MI) < 0).
 *
 * Usage: `deno task exp:colored [--fast] [--seed S] [--out DIR]` (results in `experiments/colored_mnist/`).
 *
 * @module
 */
import { loadDigits } from "../examples/mnist.ts";
import { type Diversity, experimentArgs, pool14, printTrend, rng, trendExperiment } from "./_common.ts";

/** Sizes and settings of {@linkcode coloredMnist}. */
export interface ColoredOptions {
  seed?: number;
  /** Small sizes (seconds): 3 x 32 hidden, 3,000 training digits, 600 held out. */
  fast?: boolean;
  out?: string;
  rhos?: number[];
  hidden?: number;
  depth?: number;
  trainN?: number;
  heldOutN?: number;
  epochs?: number;
  miSamples?: number;
  verbose?: boolean;
}

/** One model's figures. */
export interface ColoredRow extends Diversity {
  rho: number;
  /** Accuracy on the (noisy) training labels. */
  trainAccuracy: number;
  /** Held-out (rho = 0.5) accuracy against the clean label `digit < 5`. */
  heldOutAccuracy: number;
  dir: string;
}

/** Result of {@linkcode coloredMnist}. */
export interface ColoredResult {
  rows: ColoredRow[];
  /** Kendall tau-b of rho vs mean entropy (expected > 0) and vs mean MI (expected < 0). */
  tauEntropy: number;
  tauMi: number;
  settings: Record<string, number | string>;
  seconds: number;
  markdown: string;
}

/** Colours digits: channel `colour` holds the 14 x 14 image, the other channel is zero. */
function colour(img14: Float32Array, n: number, colours: Int32Array): Float32Array {
  const x = new Float32Array(n * 392);
  for (let s = 0; s < n; s++) x.set(img14.subarray(s * 196, s * 196 + 196), s * 392 + colours[s] * 196);
  return x;
}

/** Runs the experiment. */
export async function coloredMnist(o: ColoredOptions = {}): Promise<ColoredResult> {
  const t0 = performance.now();
  const fast = o.fast ?? false, seed = o.seed ?? 0;
  const rhos = o.rhos ?? [0, 0.125, 0.25, 0.375, 0.5];
  const hidden = o.hidden ?? (fast ? 32 : 256), depth = o.depth ?? 3;
  const trainN = o.trainN ?? (fast ? 3000 : 8000), heldOutN = o.heldOutN ?? (fast ? 600 : 2000);
  const epochs = o.epochs ?? (fast ? 3 : 10), miSamples = o.miSamples ?? (fast ? 600 : 1000);
  const out = o.out ?? `experiments/colored_mnist${fast ? "_fast" : ""}`;
  const digits = await loadDigits(seed);
  if (trainN + heldOutN > digits.n) {
    throw new Error(
      `Cannot split ${digits.n} digits into train and held-out sets: current value is ${trainN + heldOutN}`,
    );
  }
  const img = pool14(digits.images, trainN + heldOutN);
  const rand = rng(seed + 1);
  // Noisy binary labels (25% flipped) and one uniform draw per digit for its colour flip (shared by all rho).
  const noisy = new Int32Array(trainN + heldOutN), clean = new Int32Array(trainN + heldOutN);
  const u = new Float64Array(trainN + heldOutN);
  for (let i = 0; i < trainN + heldOutN; i++) {
    clean[i] = digits.labels[i] < 5 ? 1 : 0;
    noisy[i] = rand() < 0.25 ? 1 - clean[i] : clean[i];
    u[i] = rand();
  }
  const colours = (rho: number, from: number, n: number) =>
    Int32Array.from({ length: n }, (_, i) => (u[from + i] < rho ? 1 - noisy[from + i] : noisy[from + i]));
  const heldX = colour(img.subarray(trainN * 196), heldOutN, colours(0.5, trainN, heldOutN));
  const heldClean = clean.slice(trainN), heldNoisy = noisy.slice(trainN);
  const trainY = noisy.slice(0, trainN);
  const settings = {
    seed,
    mlp: `392-${Array(depth).fill(hidden).join("-")}-2`,
    train: trainN,
    heldOut: heldOutN,
    epochs,
    miSamples,
  };
  return await trendExperiment({ name: "rho", values: rhos, digits: 3 }, (rho) => ({
    sizes: [392, ...Array(depth).fill(hidden), 2],
    trainX: colour(img, trainN, colours(rho, 0, trainN)),
    trainY,
    heldX,
    heldY: heldClean,
    dumpY: heldNoisy,
  }), {
    out,
    seed,
    epochs,
    miSamples,
    accuracy: ["train acc (noisy)", "held-out acc (clean)"],
    settings,
    t0,
    verbose: o.verbose,
  });
}

if (import.meta.main) {
  const r = await coloredMnist({ ...experimentArgs(Deno.args), verbose: true });
  await printTrend("Colored MNIST", r);
}
