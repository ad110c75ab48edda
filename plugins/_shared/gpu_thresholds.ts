/**
 * Exact bin thresholds for the WebGPU histogram kernels (plugins/entropy/gpu_histogram.ts).
 *
 * The CPU bins a float32 value `x` by `floor((x - lo) / (hi - lo) * B)` in float64 (`binRows` in
 * ../_binning.ts); WGSL has no float64. The argument that the GPU counts are nevertheless bit-equal:
 *
 * 1. Over the finite float32 values, the CPU's bin `k(x)` is a non-decreasing step function of `x`: every
 *    operation in it (subtract, multiply/divide by a positive constant, floor, clip to `[0, B-1]`) is monotone,
 *    and IEEE rounding is monotone. (The multiply-then-fix-up shortcut of `binRows` equals the division
 *    formula whenever it is taken, for B below about 10^6.) Likewise "clipped low" (`x < lo`) is true exactly
 *    below some value, and "clipped high" (the CPU's `t >= B && x > hi`) exactly from some value on.
 * 2. So for each `k = 1 .. B-1` there is a smallest float32 `e_k` with `k(x) >= k`, found here by binary
 *    search over the ordered float32 values, evaluating the CPU's own formula ({@linkcode binValue}, a
 *    scalar transcription of `binRows` tested equal to it value by value).
 * 3. The GPU maps each float32 to a totally ordered 32-bit key ({@linkcode orderedKey}: flip the sign bit of
 *    non-negatives, all bits of negatives; -0 taken as +0) and counts the thresholds `<= key(x)`: integer
 *    comparisons only, so no float rounding on the GPU at all, and NaN/Inf are recognised from their
 *    exponent bits (WGSL compilers may assume floats are finite).
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
