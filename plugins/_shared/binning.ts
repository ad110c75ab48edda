/**
 * Equal-width binning shared by the estimators that histogram neurons (entropy, binned MI, label MI).
 *
 * Convention (docs/science.md section 1, `numpy.histogram`): bin `k = floor((x - lo) / (hi - lo) * B)`,
 * clipped to `[0, B-1]` (the last bin is closed). A neuron with `lo == hi` (constant) puts every value in bin 0.
 * Non-finite values (NaN, +-Inf) are excluded and counted; values outside a user-given range are clipped into
 * the edge bins and counted.
 *
 * @module
 */
import type { Batch } from "../../schemas/batch.ts";
import type { EstimatorContext, OptionValues, Scanner, StateValue } from "../../pipeline/core/plugin.ts";
import { binRowsWasm, binWasmAvailable } from "./binning_wasm.ts";

/** The bin range of every neuron of one layer: one `[lo, hi]` shared, or per neuron. */
export interface LayerRange {
  lo: Float64Array;
  hi: Float64Array;
}

/** Result of a range scan: the global range and per-layer, per-neuron ranges. */
export interface RangeScan {
  /** Global `[min, max]` over all finite values of all analysed layers (NaN when none). */
  lo: number;
  hi: number;
  /** Per layer name: per-neuron min and max. */
  layers: Record<string, { lo: Float64Array; hi: Float64Array }>;
}

/** A first pass collecting min and max per neuron (and so globally), ignoring non-finite values. */
export class RangeScanner implements Scanner {
  #layers = new Map<string, { lo: Float64Array; hi: Float64Array }>();

  update(batch: Batch): void {
    for (const col of batch.columns) {
      let r = this.#layers.get(col.name);
      if (!r) {
        r = { lo: new Float64Array(col.width).fill(Infinity), hi: new Float64Array(col.width).fill(-Infinity) };
        this.#layers.set(col.name, r);
      }
      const { lo, hi } = r;
      const v = col.values, w = col.width, n = batch.numRows;
      for (let i = 0; i < n; i++) {
        const base = i * w;
        for (let j = 0; j < w; j++) {
          const x = v[base + j];
          // NaN fails both comparisons; infinities are filtered below.
          if (x < lo[j] && x !== -Infinity) lo[j] = x;
          if (x > hi[j] && x !== Infinity) hi[j] = x;
        }
      }
    }
  }

  result(): StateValue {
    let lo = Infinity, hi = -Infinity;
    const layers: Record<string, { lo: Float64Array; hi: Float64Array }> = {};
    for (const [name, r] of this.#layers) {
      for (let j = 0; j < r.lo.length; j++) {
        if (r.lo[j] < lo) lo = r.lo[j];
        if (r.hi[j] > hi) hi = r.hi[j];
      }
      layers[name] = r;
    }
    return { lo: lo <= hi ? lo : NaN, hi: lo <= hi ? hi : NaN, layers } as unknown as StateValue;
  }
}

/** Merges two {@linkcode RangeScanner} results (element-wise min and max). */
export function mergeRangeScans(a: StateValue, b: StateValue): StateValue {
  const x = a as unknown as RangeScan, y = b as unknown as RangeScan;
  const layers: RangeScan["layers"] = {};
  for (const name of new Set([...Object.keys(x.layers), ...Object.keys(y.layers)])) {
    const p = x.layers[name], q = y.layers[name];
    if (!p || !q) {
      layers[name] = p ?? q;
      continue;
    }
    const lo = new Float64Array(p.lo.length), hi = new Float64Array(p.lo.length);
    for (let j = 0; j < lo.length; j++) {
      lo[j] = Math.min(p.lo[j], q.lo[j]);
      hi[j] = Math.max(p.hi[j], q.hi[j]);
    }
    layers[name] = { lo, hi };
  }
  const lo = Math.min(...[x.lo, y.lo].filter((v) => !Number.isNaN(v)));
  const hi = Math.max(...[x.hi, y.hi].filter((v) => !Number.isNaN(v)));
  return { lo: Number.isFinite(lo) ? lo : NaN, hi: Number.isFinite(hi) ? hi : NaN, layers } as unknown as StateValue;
}

/**
 * The bin ranges for one layer of `width` neurons: `global` uses `[lo, hi]` for all; `neuron` uses each
 * neuron's own `[min, max]` from the scan. Neurons with no finite value get `[0, 0]`.
 */
export function layerRange(
  binning: "global" | "neuron",
  width: number,
  global: [number, number] | null,
  scanned: { lo: Float64Array; hi: Float64Array } | undefined,
): LayerRange {
  const lo = new Float64Array(width), hi = new Float64Array(width);
  for (let j = 0; j < width; j++) {
    if (binning === "global") {
      lo[j] = global ? global[0] : 0;
      hi[j] = global ? global[1] : 0;
    } else if (scanned && scanned.lo[j] <= scanned.hi[j]) {
      lo[j] = scanned.lo[j];
      hi[j] = scanned.hi[j];
    }
  }
  return { lo, hi };
}

/**
 * Bin ranges of the layers one binned estimator sees (`--bins`, `--binning`, `--range` and the first pass),
 * created per layer on first sight. Estimators that histogram neurons extend it.
 */
export class LayerBinning {
  readonly bins: number;
  readonly binning: "global" | "neuron";
  /** The global `[lo, hi]`: `--range`, or the first pass's `[min, max]`; null when neither is known. */
  readonly global: [number, number] | null;
  readonly scan: RangeScan | undefined;
  /** Layers in the order first seen. */
  layers: { name: string; width: number }[] = [];
  ranges = new Map<string, LayerRange>();

  constructor(options: OptionValues, context: EstimatorContext) {
    this.bins = options.bins as number;
    this.binning = options.binning as "global" | "neuron";
    this.scan = context.scan as unknown as RangeScan | undefined;
    const r = options.range as [number, number] | undefined;
    if (r) this.global = r;
    else if (this.scan && Number.isFinite(this.scan.lo)) this.global = [this.scan.lo, this.scan.hi];
    else this.global = null;
  }

  /** The bin ranges of a layer (registering the layer on first sight). */
  range(name: string, width: number): LayerRange {
    let r = this.ranges.get(name);
    if (!r) {
      if (this.binning === "global" && this.global === null && this.scan === undefined) {
        throw new Error("Cannot bin as no range is known (no first pass and no --range): current value is missing");
      }
      r = layerRange(this.binning, width, this.global, this.scan?.layers[name]);
      this.ranges.set(name, r);
      if (!this.layers.some((l) => l.name === name)) this.layers.push({ name, width });
    }
    return r;
  }
}

/**
 * Set `useWasm` to false to force the JavaScript kernel of {@linkcode binRows} (tests, benchmarks). The default is
 * the WebAssembly kernel where it compiled, unless the environment variable `INFOTAP_BIN_WASM` is `0` (read when
 * permitted, at load: worker threads read it too, so it switches the kernel of a whole threaded run).
 */
export const binKernels: { useWasm: boolean } = { useWasm: binWasmAvailable && envAllowsWasm() };

function envAllowsWasm(): boolean {
  try {
    const d = globalThis.Deno;
    if (d?.permissions.querySync({ name: "env", variable: "INFOTAP_BIN_WASM" }).state === "granted") {
      return d.env.get("INFOTAP_BIN_WASM") !== "0"; // never prompts
    }
  } catch {
    // no Deno namespace or no permission API: the default
  }
  return true;
}

/** Rows a Uint32 working histogram may take before it must be flushed into float64 totals. */
export const FLUSH_ROWS = 2 ** 31;

/**
 * Bins rows `[r0, r1)` of a row-major column into `counts[j * bins + k]` (neuron j, bin k), adding to
 * `nonfinite[j]` and `clipped[j]`. Counts are Uint32 (fast increments): callers flush them into float64
 * totals before {@linkcode FLUSH_ROWS} rows. Reads the batch row by row (sequentially in memory).
 *
 * Exactness: the bin is `floor((x - lo) / (hi - lo) * bins)` as docs/science.md defines it. The loop multiplies
 * by `bins / (hi - lo)` instead of dividing, and recomputes with the division whenever the product lies
 * within 1e-9 of a bin edge (the two differ by a few ulps at most), so every value lands in the defined bin.
 * A constant neuron (`lo == hi`) puts its finite values in bin 0.
 *
 * Large enough calls run on a WebAssembly transcription of this loop (./binning_wasm.ts, bit-identical
 * results); {@linkcode binKernels} switches it off.
 */
export function binRows(
  values: Float32Array,
  width: number,
  r0: number,
  r1: number,
  range: LayerRange,
  bins: number,
  counts: Uint32Array,
  nonfinite: Float64Array,
  clipped: Float64Array,
): void {
  const { lo, hi } = range;
  const rows = r1 - r0;
  // The kernel copies the counts in and out: worth it when rows outnumber bins; layers whose counts pass 64 MiB
  // stay in JavaScript (the kernel's memory never shrinks).
  if (
    binKernels.useWasm && rows >= 32 && rows * 2 >= bins && rows * width >= 8192 && width * bins <= 1 << 24 &&
    binRowsWasm(values, width, r0, r1, lo, hi, bins, counts, nonfinite, clipped)
  ) return;
  let uniform = true;
  for (let j = 1; j < width; j++) if (lo[j] !== lo[0] || hi[j] !== hi[0]) uniform = false;
  if (uniform && width > 0 && hi[0] > lo[0]) {
    binUniform(values, width, r0, r1, lo[0], hi[0], bins, counts, nonfinite, clipped);
    return;
  }
  const last = bins - 1;
  // A zero span becomes +Infinity so that every finite value maps to t = 0 and +-Inf to NaN.
  const span = new Float64Array(width), scale = new Float64Array(width);
  for (let j = 0; j < width; j++) {
    span[j] = hi[j] > lo[j] ? hi[j] - lo[j] : Infinity;
    scale[j] = bins / span[j];
  }
  for (let r = r0; r < r1; r++) {
    const base = r * width;
    for (let j = 0, o = 0; j < width; j++, o += bins) {
      const x = values[base + j];
      const d = x - lo[j];
      const t = d * scale[j];
      if (t >= 0 && t < bins) {
        let k = t | 0;
        const f = t - k;
        if (f < 1e-9 || f > 0.999999999) k = Math.min(last, Math.floor((d / span[j]) * bins));
        counts[o + k]++;
      } else if (t >= bins && x !== Infinity) {
        // x == hi lands here (the last bin is closed); x > hi only with a user-given range.
        counts[o + last]++;
        if (x > hi[j]) clipped[j]++;
      } else if (t < 0 && x !== -Infinity) {
        counts[o]++;
        clipped[j]++;
      } else {
        nonfinite[j]++;
      }
    }
  }
}

/** {@linkcode binRows} when every neuron shares one range `[lo, hi]` with `hi > lo` (global binning). */
function binUniform(
  values: Float32Array,
  width: number,
  r0: number,
  r1: number,
  lo: number,
  hi: number,
  bins: number,
  counts: Uint32Array,
  nonfinite: Float64Array,
  clipped: Float64Array,
): void {
  const span = hi - lo, scale = bins / span, last = bins - 1;
  for (let r = r0; r < r1; r++) {
    const base = r * width;
    for (let j = 0, o = 0; j < width; j++, o += bins) {
      const x = values[base + j];
      const d = x - lo;
      const t = d * scale;
      if (t >= 0 && t < bins) {
        let k = t | 0;
        const f = t - k;
        if (f < 1e-9 || f > 0.999999999) k = Math.min(last, Math.floor((d / span) * bins));
        counts[o + k]++;
      } else if (t >= bins && x !== Infinity) {
        counts[o + last]++;
        if (x > hi) clipped[j]++;
      } else if (t < 0 && x !== -Infinity) {
        counts[o]++;
        clipped[j]++;
      } else {
        nonfinite[j]++;
      }
    }
  }
}

/** Plug-in entropy in nats of one histogram `counts[off .. off+bins)`; NaN when it is empty. */
export function entropyOf(counts: Float64Array, off: number, bins: number): number {
  let n = 0;
  for (let k = 0; k < bins; k++) n += counts[off + k];
  if (n === 0) return NaN;
  let h = 0;
  for (let k = 0; k < bins; k++) {
    const c = counts[off + k];
    if (c > 0) h -= (c / n) * Math.log(c / n);
  }
  return h;
}
