/**
 * The binning options shared by `entropy` and `label-mi` (`--bins`, `--binning`, `--range`), and the hint that
 * `--range` skips their first pass. The registry rejects one flag declared differently by two plugins, so both
 * use these very objects.
 *
 * @module
 */
import type { LiveHint, OptionSpec, OptionValues } from "../../pipeline/core/plugin.ts";

/** `--bins`, `--binning`, `--range`. */
export const BINNING_OPTIONS: Record<"bins" | "binning" | "range", OptionSpec> = {
  bins: { type: "integer", default: 100, min: 1, description: "number of equal-width bins per neuron" },
  binning: {
    type: "string",
    default: "global",
    choices: ["global", "neuron"],
    description: "global: one [min,max] over all analysed layers (paper's code); neuron: each neuron's own [min,max]",
  },
  range: {
    type: "range",
    description: "LO,HI: fixed global bin range (skips the first pass; values outside are clipped and counted)",
  },
};

/** `--range` skips the first pass (binning over the data's global range), which a live stream cannot make. */
export const RANGE_HINT: LiveHint = { option: "range", usage: "--range LO,HI (with --binning global)" };

/** Rejects `--range` with `--binning neuron`. */
export function validateBinning(o: OptionValues): void {
  if (o.range && o.binning === "neuron") {
    throw new Error(
      "Cannot use --range with --binning neuron as per-neuron ranges come from the data: current value is " +
        String(o.range),
    );
  }
}
