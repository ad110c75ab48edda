/**
 * Exact bin thresholds for the WebGPU histogram kernels (plugins/entropy/gpu_histogram.ts): for each bin the
 * smallest float32 the CPU's `binRows` (./binning.ts) puts there, found by binary search with
 * {@linkcode binValue} (the CPU's formula for one value), as ordered 32-bit keys ({@linkcode orderedKey}), so the
 * GPU bins with integer comparisons only and its counts equal the CPU's bit for bit. Why this is exact:
 * docs/bench/webgpu.md, "Why the counts are bit-equal without float64 on the GPU".
 *
 * @module
 */

/** Sentinel key above every finite float32's key: a threshold no finite value reaches. */
export const NEVER = 0xffffffff;

/** The ordered key of a float32 given by its bits (non-NaN values: `a < b` iff `key(a) < key(b)`). */
export function orderedKey(bits: number): number {
  if (bits === 0x80000000) bits = 0; // -0 -> +0
  return (bits & 0x80000000) !== 0 ? (~bits) >>> 0 : (bits | 0x80000000) >>> 0;
}

/** The float32 whose ordered key is `key`. */
export function fromKey(key: number): number {
  const bits = (key & 0x80000000) !== 0 ? (key & 0x7fffffff) >>> 0 : (~key) >>> 0;
  F32_U[0] = bits;
  return F32[0];
}

const F32 = new Float32Array(1);
const F32_U = new Uint32Array(F32.buffer);

/** The ordered key of a float32 value. */
export function keyOf(x: number): number {
  F32[0] = x;
  return orderedKey(F32_U[0]);
}

/** Keys of the largest negative and positive finite float32. */
const MIN_KEY = keyOf(-3.4028234663852886e38), MAX_KEY = keyOf(3.4028234663852886e38);

/**
 * The CPU's bin of one finite float32 value: `binRows` in ../_binning.ts, transcribed for a single value
 * (same operations in the same order). Returns `bin + B * clipped` (clipped: 0 or 1).
 */
export function binValue(x: number, lo: number, hi: number, bins: number): number {
  const span = hi > lo ? hi - lo : Infinity;
  const scale = bins / span, last = bins - 1;
  const d = x - lo;
  const t = d * scale;
  if (t >= 0 && t < bins) {
    let k = t | 0;
    const f = t - k;
    if (f < 1e-9 || f > 0.999999999) k = Math.min(last, Math.floor((d / span) * bins));
    return k | 0; // -0 -> 0
  } else if (t >= bins) {
    return last + (x > hi ? bins : 0);
  }
  return bins; // t < 0: bin 0, clipped
}

/** Smallest key in [from, MAX_KEY] where `pred` holds (pred monotone: false ... true), or NEVER. */
function firstKey(pred: (x: number) => boolean, from = MIN_KEY): number {
  let a = from, b = MAX_KEY + 1; // the answer is in [a, b]; b = none
  while (a < b) {
    const m = Math.floor((a + b) / 2);
    if (pred(fromKey(m))) b = m;
    else a = m + 1;
  }
  return a > MAX_KEY ? NEVER : a;
}

/**
 * Thresholds of one neuron's range as ordered keys, `B + 1` words: `[notClippedLow, clippedHigh, e_1 ..
 * e_{B-1}]`. On the GPU: clipped iff `key < w[0] || key >= w[1]`; bin = number of `e_k <= key`.
 */
export function thresholds(lo: number, hi: number, bins: number, out = new Uint32Array(bins + 1), at = 0): Uint32Array {
  const clipped = (x: number) => binValue(x, lo, hi, bins) >= bins;
  out[at] = firstKey((x) => !(x < lo && clipped(x)));
  out[at + 1] = firstKey((x) => x >= lo && clipped(x));
  let from = MIN_KEY;
  for (let k = 1; k < bins; k++) {
    // Thresholds increase with k, so each search starts at the previous one.
    const e = firstKey((x) => binValue(x, lo, hi, bins) % bins >= k, from);
    out[at + 1 + k] = e;
    if (e !== NEVER) from = e;
  }
  return out;
}
