/**
 * KSG mutual information of many neuron pairs on WebGPU, with the same neighbour counts as the CPU kernel
 * (`plugins/mi/ksg.ts`, docs/science.md section 1): Chebyshev k-th neighbour distance `r_i` among the
 * other samples, `n_x = #{j != i : |x_i - x_j| < r_i}` (`== 0` when `r_i = 0`), likewise `n_y`, and
 * `I = psi(n) + psi(k) - mean(psi(n_x + 1) + psi(n_y + 1))`.
 *
 * Design (docs/bench/webgpu_ksg.md):
 * - Host, once per neuron: values sorted ascending (ties by sample index, `-0 == +0`) and the permutation; the
 *   neuron's largest tie group (e.g. ReLU zeros) when it holds at least {@linkcode BIG_GROUP} samples.
 * - Per pair `(a, b)` (oriented so that `a`, the scan axis, has the cheaper remaining ties), an order kernel
 *   writes the samples as `(x, y)` in `a`'s sorted order, the largest tie group of `a` re-sorted by `y` (a stable
 *   compaction of `b`'s sorted order, one workgroup per pair).
 * - A scan kernel, one invocation per sample and pair: walks outward from its position in `x` order, always
 *   taking the side with the smaller `|dx|`, keeping the `k` smallest exact `max(|dx|, |dy|)`, and stops when
 *   `|dx|` exceeds the current k-th distance; inside the re-sorted tie group (constant `x`) it leaves the group
 *   (or skips to the useful `y` range by binary search) once `|dy|` exceeds it. Then `n_x`, `n_y` by binary
 *   searches in the sorted marginals. Cost about `2 sqrt(k n)` steps per sample for independent data.
 * - Exact comparisons without float64: the difference of two float32 is exactly a float32 pair `(hi, lo)`
 *   (TwoSum; `hi` = the rounded difference); pairs compare by `hi`, then `lo`. A float32 rounded difference is
 *   monotone in the exact one, so the cheap filters (`fl(|dx|) > fl(r)` implies `|dx| > r`) are exact too.
 *   Intermediate sums pass through an opaque identity (XOR with a run-time zero) so that shader compilers cannot
 *   simplify `(a - b) + b` to `a`. Values must be 0 or of magnitude in `[2^-100, 2^125]` (no subnormal
 *   differences, which GPUs may flush to zero, and no overflow): other neurons go to the CPU kernel.
 * - Per pair, `sum over samples of psi(n_x + 1) + psi(n_y + 1)` is accumulated as a 64-bit two's-complement
 *   integer of `psi` in units of `2^-36` (`fixedPsi` of plugins/mi/ksg.ts: the CPU's float64 table, rounded once
 *   per entry), by workgroup reduction and one 64-bit atomic add (two u32 atomics with carry) per workgroup:
 *   integer, so exact and independent of order. Read back once, at the end; the estimate is `ksgFromSum`.
 *
 * Versus the CPU: bit-equal. The CPU kernels (JavaScript and WebAssembly) sum the same fixed-point integers
 * exactly and end in the same `ksgFromSum`, and their float64 differences of float32 values are exact whenever a
 * neuron's non-zero magnitudes have float32 exponents at most 28 apart, so their counts equal these exact ones:
 * the GPU takes only such neurons ({@linkcode gpuKsgPairs} sends the others to the CPU kernel). Versus float64
 * `psi` terms, the fixed-point sum errs by at most `2^-37` per term, so the estimate by at most `2^-36` nats
 * (plus the final rounding).
 *
 * @example
 * ```ts ignore
 * import { gpuKsgPairs } from "./gpu_ksg.ts";
 * import { gpuContext } from "../kernels/gpu/context.ts";
 * const cols = new Float32Array(2 * 100).map(() => Math.random());
 * const { mi } = await gpuKsgPairs(await gpuContext(), cols, 100, new Int32Array([0, 1]), 3);
 * ```
 *
 * @module
 */
import type { GpuContext } from "../kernels/gpu/context.ts";
import { computePipeline, readBuffers, storageBuffer, uniformWords } from "../kernels/gpu/util.ts";
import { digammaTable, fixedPsi, ksgFromSum } from "./ksg.ts";
import { ksgPairs } from "./ksg_pairs.ts";

/** Largest `k` the GPU kernel takes (the neighbour list lives in registers); larger `k` runs on the CPU. */
export const KSG_GPU_MAX_K = 8;
/** Smallest tie group re-sorted by the other neuron per pair. */
export const BIG_GROUP = 32;
/**
 * Values outside `[2^-100, 2^125]` in magnitude (other than 0) send their neuron to the CPU, and so do non-zero
 * magnitudes whose float32 exponents lie more than {@linkcode MAX_SPAN} apart.
 */
const MIN_ABS = 2 ** -100, MAX_ABS = 2 ** 125;
/**
 * Largest exponent span of a neuron's non-zero values on the GPU: float32 values with exponents `e_min..e_max`
 * are multiples of `2^(e_min - 23)` below `2^(e_max + 1)`, so their differences need at most
 * `e_max - e_min + 25` bits: exact in float64, as the CPU kernel computes them, when the span is at most 28.
 */
const MAX_SPAN = 28;
const SCAN_WG = 128, ORDER_WG = 256;
/** Samples per scan invocation (taken one after another: evens out the lanes of a warp). */
const SCAN_M = 8;

/** WGSL of the order kernel: per pair, `(x, y)` in `a`'s order, its largest tie group re-sorted by `y`. */
export const ORDER_WGSL = /* wgsl */ `
struct Params { n: u32, p0: u32, zero: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> vals: array<f32>;
@group(0) @binding(1) var<storage, read> sorted: array<f32>;
@group(0) @binding(2) var<storage, read> perm: array<u32>;
@group(0) @binding(3) var<storage, read> info: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> xy: array<vec2<f32>>;
@group(0) @binding(5) var<uniform> p: Params;
var<workgroup> cnt: array<u32, ${ORDER_WG}>;

@compute @workgroup_size(${ORDER_WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let n = p.n;
  let pl = wg.x;
  let inf = info[p.p0 + pl];
  let oa = inf.x * n;
  let ob = inf.y * n;
  let gS = inf.z;
  let gE = inf.w;
  let base = pl * n;
  for (var t = li; t < n; t += ${ORDER_WG}u) {
    if (t < gS || t >= gE) { xy[base + t] = vec2<f32>(sorted[oa + t], vals[ob + perm[oa + t]]); }
  }
  // The tie group [gS, gE) of a: a stable compaction of b's sorted order (y ascending).
  let chunk = (n + ${ORDER_WG - 1}u) / ${ORDER_WG}u;
  let t0 = min(n, li * chunk);
  let t1 = min(n, t0 + chunk);
  var c = 0u;
  var gv = 0.0;
  if (gE > gS) {
    gv = sorted[oa + gS];
    for (var t = t0; t < t1; t++) {
      if (vals[oa + perm[ob + t]] == gv) { c++; }
    }
  }
  cnt[li] = c;
  workgroupBarrier();
  for (var s = 1u; s < ${ORDER_WG}u; s <<= 1u) {
    var v = 0u;
    if (li >= s) { v = cnt[li - s]; }
    workgroupBarrier();
    cnt[li] += v;
    workgroupBarrier();
  }
  if (gE > gS) {
    var at = gS + cnt[li] - c;
    for (var t = t0; t < t1; t++) {
      if (vals[oa + perm[ob + t]] == gv) {
        xy[base + at] = vec2<f32>(gv, sorted[ob + t]);
        at++;
      }
    }
  }
}
`;

/** WGSL shared by the scan and count kernels: parameters, exact differences, pair order. */
const COMMON_WGSL = /* wgsl */ `
struct Params { n: u32, p0: u32, zero: u32, pad: u32 }
// An identity the compiler cannot see through (p.zero is 0 at run time): shader compilers may simplify
// (a - b) + b to a when floats are not marked exact, which would erase TwoSum's error term.
fn opaque(x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(x) ^ p.zero); }

// a - b exactly, as (rounded difference, error) (Knuth's TwoSum of a and -b).
fn diff(a: f32, b: f32) -> vec2<f32> {
  let s = opaque(a - b);
  let ap = opaque(s + b);
  let cp = opaque(s - ap);
  return vec2<f32>(s, (a - ap) - (b + cp));
}
fn pabs(d: vec2<f32>) -> vec2<f32> { return select(d, -d, d.x < 0.0); }
// exact order of pairs (hi is the rounded value, so hi decides unless equal)
fn lt(u: vec2<f32>, v: vec2<f32>) -> bool { return u.x < v.x || (u.x == v.x && u.y < v.y); }
// |d| within radius r: d < r, or d == 0 (the radius-0 case counts exact ties)
fn within(d: vec2<f32>, r: vec2<f32>) -> bool { return d.x == 0.0 || lt(d, r); }
fn add64(u: vec2<u32>, v: vec2<u32>) -> vec2<u32> {
  let lo = u.x + v.x;
  return vec2<u32>(lo, u.y + v.y + select(0u, 1u, lo < u.x));
}

`;

/** WGSL of the count kernel: per (sample, pair), n_x and n_y inside the radius, psi sums added per pair. */
export const COUNT_WGSL = /* wgsl */ `
${COMMON_WGSL}
@group(0) @binding(0) var<storage, read> xy: array<vec2<f32>>;
@group(0) @binding(1) var<storage, read> sorted: array<f32>;
@group(0) @binding(2) var<storage, read> info: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> acc: array<atomic<u32>>;
@group(0) @binding(4) var<storage, read> psi: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read> radius: array<vec2<f32>>;
@group(0) @binding(6) var<uniform> p: Params;
var<workgroup> red: array<vec2<u32>, ${SCAN_WG}>;

// psi(n_x + 1) + psi(n_y + 1) of the sample at position t of the pair (x order at base, b's sorted values at ob)
fn counts(base: u32, ob: u32, n: u32, t: u32, x: f32, y: f32, rk: vec2<f32>) -> vec2<u32> {
  // n_x: positions within the radius around t in x order
  var lo = 0u;
  var hi = t;
  while (lo < hi) {
    let m = (lo + hi) / 2u;
    if (within(pabs(diff(x, xy[base + m].x)), rk)) { hi = m; } else { lo = m + 1u; }
  }
  let xl = lo;
  lo = t + 1u;
  hi = n;
  while (lo < hi) {
    let m = (lo + hi) / 2u;
    if (within(pabs(diff(xy[base + m].x, x)), rk)) { lo = m + 1u; } else { hi = m; }
  }
  let nx = lo - xl - 1u;
  // n_y: in b's sorted values
  lo = 0u;
  hi = n;
  while (lo < hi) {
    let m = (lo + hi) / 2u;
    let v = sorted[ob + m];
    if (v < y && !within(pabs(diff(y, v)), rk)) { lo = m + 1u; } else { hi = m; }
  }
  let yl = lo;
  hi = n;
  while (lo < hi) {
    let m = (lo + hi) / 2u;
    let v = sorted[ob + m];
    if (v > y && !within(pabs(diff(v, y)), rk)) { hi = m; } else { lo = m + 1u; }
  }
  let ny = lo - yl - 1u;
  return add64(psi[nx + 1u], psi[ny + 1u]);
}

@compute @workgroup_size(${SCAN_WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let n = p.n;
  let t = wg.x * ${SCAN_WG}u + li;
  let pl = wg.y;
  let base = pl * n;
  var part = vec2<u32>(0u, 0u);
  if (t < n) {
    let me = xy[base + t];
    part = counts(base, info[p.p0 + pl].y * n, n, t, me.x, me.y, radius[base + t]);
  }
  red[li] = part;
  workgroupBarrier();
  for (var s = ${SCAN_WG / 2}u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] = add64(red[li], red[li + s]); }
    workgroupBarrier();
  }
  if (li == 0u) {
    let v = red[0];
    let g = 2u * (p.p0 + pl);
    let old = atomicAdd(&acc[g], v.x);
    atomicAdd(&acc[g + 1u], v.y + select(0u, 1u, old + v.x < old));
  }
}
`;

/** WGSL of the scan kernel for `k` neighbours, `M` samples per invocation. */
export function scanShader(k: number, M = SCAN_M): string {
  const b = (i: number) => `b${i}`;
  const K1 = b(k - 1);
  const decl = Array.from({ length: k }, (_, i) => `  var ${b(i)} = vec2<f32>(BIG, 0.0);`).join("\n");
  const reset = Array.from({ length: k }, (_, i) => `      ${b(i)} = vec2<f32>(BIG, 0.0);`).join("\n");
  // insertion of d (< b[k-1]) by conditional swaps from the end
  const swaps = Array.from({ length: k - 1 }, (_, j) => {
    const i = k - 1 - j;
    return `            { let sw = lt(${b(i)}, ${b(i - 1)}); let lo = select(${b(i - 1)}, ${b(i)}, sw); ${
      b(i)
    } = select(${b(i)}, ${b(i - 1)}, sw); ${b(i - 1)} = lo; }`;
  }).join("\n");
  return /* wgsl */ `
${COMMON_WGSL}
@group(0) @binding(0) var<storage, read> xy: array<vec2<f32>>;
@group(0) @binding(1) var<storage, read> info: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> radius: array<vec2<f32>>;
@group(0) @binding(3) var<uniform> p: Params;
const BIG = 1.7014118e38; // 2^127: above every distance (values are at most 2^125 in magnitude)

@compute @workgroup_size(${SCAN_WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  // Each invocation takes the samples t0 + li + m WG (m < M) one after another in one loop, so a warp's lanes stay
  // busy until their last sample instead of waiting for the slowest sample of each round (warp divergence).
  let n = p.n;
  let pl = wg.y;
  let inf = info[p.p0 + pl];
  let base = pl * n;
  let gS = i32(inf.z);
  let gE = i32(inf.w);
  let ni = i32(n);
  var t = wg.x * ${SCAN_WG * M}u + li;
  var left_ = ${M}u;
  var x = 0.0;
  var y = 0.0;
${decl}
  var l = 0;
  var r = 0;
  var cl = vec2<f32>(0.0, 0.0);
  var cr = vec2<f32>(0.0, 0.0);
  if (t < n) {
    let me = xy[base + t];
    x = me.x;
    y = me.y;
    l = i32(t) - 1;
    r = i32(t) + 1;
    cl = xy[base + u32(max(l, 0))];
    cr = xy[base + u32(min(r, ni - 1))];
  }
  loop {
    if (t >= n || left_ == 0u) { break; }
    let dl = select(BIG, x - cl.x, l >= 0);
    let dr = select(BIG, cr.x - x, r < ni);
    let left = dl <= dr;
    let dx = min(dl, dr);
    if (dx >= BIG || dx > ${K1}.x) {
      radius[base + t] = ${K1};
      t += ${SCAN_WG}u;
      left_ -= 1u;
      if (t < n && left_ > 0u) {
        let me = xy[base + t];
        x = me.x;
        y = me.y;
${reset}
        l = i32(t) - 1;
        r = i32(t) + 1;
        cl = xy[base + u32(max(l, 0))];
        cr = xy[base + u32(min(r, ni - 1))];
      }
      continue;
    }
    let j = select(r, l, left);
    let c = select(cr, cl, left);
    let dyf = abs(c.y - y);
    var next = select(j + 1, j - 1, left);
    if (max(dx, dyf) <= ${K1}.x) {
      let ex = pabs(diff(c.x, x));
      let ey = pabs(diff(c.y, y));
      let d = select(ex, ey, lt(ex, ey));
      if (lt(d, ${K1})) {
        ${K1} = d;
${swaps}
      }
    } else if (j >= gS && j < gE) {
      // in a's re-sorted tie group (x constant, y ascending), |dy| > r: skip what cannot be nearer
      let kh = ${K1}.x;
      if (left) {
        if (c.y > y) {
          // first m in [gS, j) with y_m - y > kh; everything before it is kept
          var lo = gS;
          var hi = j;
          while (lo < hi) {
            let m = (lo + hi) / 2;
            if (xy[base + u32(m)].y - y > kh) { hi = m; } else { lo = m + 1; }
          }
          next = lo - 1;
        } else {
          next = gS - 1;
        }
      } else {
        if (c.y < y) {
          // first m in (j, gE) with y - y_m <= kh
          var lo = j + 1;
          var hi = gE;
          while (lo < hi) {
            let m = (lo + hi) / 2;
            if (y - xy[base + u32(m)].y <= kh) { hi = m; } else { lo = m + 1; }
          }
          next = lo;
        } else {
          next = gE;
        }
      }
    }
    // advance the side taken (one load, no branch)
    let nv = xy[base + u32(clamp(next, 0, ni - 1))];
    l = select(l, next, left);
    r = select(next, r, left);
    cl = select(cl, nv, left);
    cr = select(nv, cr, left);
  }
}
`;
}

/** `fixedPsi(n)` (`round(psi(m) * 2^36)`, `m = 0..n+1`) as two's-complement (lo, hi) u32 words. */
function psiWords(n: number): Uint32Array<ArrayBuffer> {
  const u = new BigUint64Array(fixedPsi(n).values.buffer), words = new Uint32Array(2 * u.length);
  for (let m = 0; m < u.length; m++) {
    words[2 * m] = Number(u[m] & 0xffffffffn);
    words[2 * m + 1] = Number(u[m] >> 32n);
  }
  return words;
}

/** One neuron's host preparation: sorted values, permutation, largest tie group, cost of the other ties. */
interface Prep {
  sorted: Float32Array;
  perm: Uint32Array;
  gS: number;
  gE: number;
  /** Sum of squared sizes of the tie groups not re-sorted (the scan's extra work along this axis). */
  cost: number;
}

const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);

/** Sorts `n` values (ties by sample index, `-0 == +0`). */
function prepare(x: Float32Array): Prep {
  const n = x.length;
  // keys: order-preserving u32 of the value (so -0 == +0) * 2^21 + index, sorted as float64 (exact: < 2^53)
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    f32[0] = x[i] === 0 ? 0 : x[i];
    const bits = u32[0];
    const key = bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
    keys[i] = key * 2097152 + i;
  }
  keys.sort();
  const sorted = new Float32Array(n), perm = new Uint32Array(n);
  for (let t = 0; t < n; t++) {
    const i = keys[t] % 2097152;
    perm[t] = i;
    sorted[t] = x[i];
  }
  let gS = 0, gE = 0, cost = 0;
  for (let t = 0; t < n;) {
    let e = t + 1;
    while (e < n && sorted[e] === sorted[t]) e++;
    const m = e - t;
    cost += m > 1 ? m * m : 0;
    if (m > gE - gS) [gS, gE] = [t, e];
    t = e;
  }
  const big = gE - gS;
  if (big >= BIG_GROUP) cost -= big * big;
  else gS = gE = 0;
  return { sorted, perm, gS, gE, cost };
}

/**
 * True when the GPU kernel takes this neuron: finite, every non-zero magnitude in `[2^-100, 2^125]`, and their
 * float32 exponents at most {@linkcode MAX_SPAN} apart (so that the CPU's float64 differences are exact too).
 */
function gpuOk(x: Float32Array): boolean {
  let lo = Infinity, hi = 0;
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(x[i]);
    if (!(a <= MAX_ABS) || (a !== 0 && a < MIN_ABS)) return false;
    if (a !== 0) {
      lo = a < lo ? a : lo;
      hi = a > hi ? a : hi;
    }
  }
  if (hi === 0) return true;
  const exponent = (v: number) => (f32[0] = v, (u32[0] >>> 23) & 0xff); // normal: MIN_ABS > 2^-126
  return exponent(hi) - exponent(lo) <= MAX_SPAN;
}

/** Wall-time split of {@linkcode gpuKsgPairs} (seconds) and how many pairs went where. */
export interface KsgGpuTiming {
  /** Host preparation: per-neuron sorts, pair orientation, `psi` table. */
  prep: number;
  /** Buffer creation and upload of the neuron arrays. */
  upload: number;
  /** Order and scan kernels of every pair, from the first submit to completion. */
  kernel: number;
  /** Read-back of the per-pair sums. */
  read: number;
  /** Pairs that ran on the CPU kernel (non-finite, out-of-range or too spread values, `k` too large, `n <= k`). */
  cpu: number;
  /** Seconds on the CPU kernel. */
  cpuSeconds: number;
  gpuPairs: number;
}

/**
 * KSG estimates (nats) of `pairs` (`[a0, b0, a1, b1, ...]`) of the neuron-major `cols` (`n` rows each), on the
 * GPU where the kernel applies and on the CPU kernel (`ksgPairs`, `threads` threads) otherwise; `samples` as
 * `ksgPairs` reports them. `sums[p]` is the GPU's fixed-point `sum of psi(n_x+1) + psi(n_y+1)` (units of
 * `2^-36`; 0 for CPU pairs). `tilePairs` bounds the pairs per dispatch (tests); `perInvocation` sets the samples
 * each scan invocation takes in turn (default 8; benchmarks compare). When the neuron arrays (`4 cols.length`
 * bytes) exceed the adapter's storage binding size (or `maxBinding`, tests), every pair runs on the CPU kernel.
 */
export async function gpuKsgPairs(
  gpu: GpuContext,
  cols: Float32Array,
  n: number,
  pairs: Int32Array,
  k: number,
  opts: { threads?: number; tilePairs?: number; perInvocation?: number; maxBinding?: number } = {},
): Promise<{ mi: Float64Array; samples: Int32Array; sums: BigInt64Array; timing: KsgGpuTiming }> {
  const T0 = performance.now();
  const P = pairs.length / 2, neurons = n > 0 ? cols.length / n : 0;
  const mi = new Float64Array(P), samples = new Int32Array(P), sums = new BigInt64Array(P);
  const timing: KsgGpuTiming = { prep: 0, upload: 0, kernel: 0, read: 0, cpu: 0, cpuSeconds: 0, gpuPairs: 0 };
  const used = new Uint8Array(neurons);
  for (let i = 0; i < 2 * P; i++) used[pairs[i]] = 1;
  const gpuAll = k >= 1 && k <= KSG_GPU_MAX_K && n > k && n < 2 ** 21;
  const ok = new Uint8Array(neurons);
  const preps: (Prep | null)[] = new Array(neurons).fill(null);
  for (let a = 0; a < neurons; a++) {
    if (!used[a] || !gpuAll) continue;
    const x = cols.subarray(a * n, a * n + n);
    if (!gpuOk(x)) continue;
    ok[a] = 1;
    preps[a] = prepare(x);
  }
  let gpuIdx: number[] = [], cpuIdx: number[] = [];
  for (let p = 0; p < P; p++) (ok[pairs[2 * p]] && ok[pairs[2 * p + 1]] ? gpuIdx : cpuIdx).push(p);
  timing.prep = (performance.now() - T0) / 1000;
  const maxBind = Math.min(gpu.limits.maxStorageBufferBindingSize, opts.maxBinding ?? Infinity);
  if (gpuIdx.length > 0 && neurons * n * 4 > maxBind) {
    // the neuron arrays do not fit one binding: the CPU kernel gives the same bits
    cpuIdx = [...cpuIdx, ...gpuIdx].sort((p, q) => p - q);
    gpuIdx = [];
  }
  if (cpuIdx.length > 0) {
    const t = performance.now();
    const sub = new Int32Array(2 * cpuIdx.length);
    cpuIdx.forEach((p, i) => (sub[2 * i] = pairs[2 * p], sub[2 * i + 1] = pairs[2 * p + 1]));
    const r = ksgPairs(cols, n, sub, k, opts.threads ?? 1);
    cpuIdx.forEach((p, i) => (mi[p] = r.mi[i], samples[p] = r.samples[i]));
    timing.cpu = cpuIdx.length;
    timing.cpuSeconds = (performance.now() - t) / 1000;
  }
  const G = gpuIdx.length;
  timing.gpuPairs = G;
  if (G === 0) return { mi, samples, sums, timing };

  const T1 = performance.now();
  // pair info (scan neuron a, other b, a's re-sorted tie group), oriented for the cheaper scan
  const info = new Uint32Array(4 * G);
  for (let g = 0; g < G; g++) {
    let a = pairs[2 * gpuIdx[g]], b = pairs[2 * gpuIdx[g] + 1];
    if (preps[b]!.cost < preps[a]!.cost) [a, b] = [b, a];
    info.set([a, b, preps[a]!.gS, preps[a]!.gE], 4 * g);
  }
  const psi = psiWords(n);
  const vals = new Float32Array(neurons * n), sorted = new Float32Array(neurons * n);
  const perm = new Uint32Array(neurons * n);
  for (let a = 0; a < neurons; a++) {
    const pr = preps[a];
    if (!pr) continue;
    vals.set(cols.subarray(a * n, a * n + n), a * n);
    sorted.set(pr.sorted, a * n);
    perm.set(pr.perm, a * n);
  }
  timing.prep += (performance.now() - T1) / 1000;

  const T2 = performance.now();
  const device = gpu.device, soft = gpu.software;
  const tile = Math.max(
    1,
    Math.min(G, opts.tilePairs ?? G, 65535, Math.floor(Math.min(maxBind, soft ? 2 ** 24 : 2 ** 28) / (n * 8))),
  );
  const upload = (data: ArrayBufferView<ArrayBuffer>, label: string) => {
    const buf = storageBuffer(device, data.byteLength, label);
    device.queue.writeBuffer(buf, 0, data);
    return buf;
  };
  const bVals = upload(vals, "ksg values"), bSorted = upload(sorted, "ksg sorted"), bPerm = upload(perm, "ksg perm");
  const bInfo = upload(info, "ksg pairs"), bPsi = upload(psi, "ksg psi");
  const bAcc = storageBuffer(device, G * 8, "ksg sums");
  const bXy = storageBuffer(device, tile * n * 8, "ksg xy");
  const bRadius = storageBuffer(device, tile * n * 8, "ksg radius");
  const temps: GPUBuffer[] = [];
  await device.queue.onSubmittedWorkDone();
  timing.upload = (performance.now() - T2) / 1000;

  const T3 = performance.now();
  const M = opts.perInvocation ?? SCAN_M;
  const order = computePipeline(device, ORDER_WGSL), scan = computePipeline(device, scanShader(k, M));
  const count = computePipeline(device, COUNT_WGSL);
  try {
    for (let p0 = 0; p0 < G; p0 += tile) {
      const tp = Math.min(tile, G - p0);
      const params = uniformWords(device, [n, p0, 0, 0]);
      temps.push(params);
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(order);
      pass.setBindGroup(
        0,
        device.createBindGroup({
          layout: order.getBindGroupLayout(0),
          entries: [bVals, bSorted, bPerm, bInfo, bXy, params].map((buffer, binding) => ({
            binding,
            resource: { buffer },
          })),
        }),
      );
      pass.dispatchWorkgroups(tp);
      pass.setPipeline(scan);
      pass.setBindGroup(
        0,
        device.createBindGroup({
          layout: scan.getBindGroupLayout(0),
          entries: [bXy, bInfo, bRadius, params].map((buffer, binding) => ({ binding, resource: { buffer } })),
        }),
      );
      pass.dispatchWorkgroups(Math.ceil(n / (SCAN_WG * M)), tp);
      pass.setPipeline(count);
      pass.setBindGroup(
        0,
        device.createBindGroup({
          layout: count.getBindGroupLayout(0),
          entries: [bXy, bSorted, bInfo, bAcc, bPsi, bRadius, params].map((buffer, binding) => ({
            binding,
            resource: { buffer },
          })),
        }),
      );
      pass.dispatchWorkgroups(Math.ceil(n / SCAN_WG), tp);
      pass.end();
      device.queue.submit([enc.finish()]);
    }
    await device.queue.onSubmittedWorkDone();
    timing.kernel = (performance.now() - T3) / 1000;

    const T4 = performance.now();
    const [raw] = await readBuffers(device, [{ buffer: bAcc, bytes: G * 8 }]);
    timing.read = (performance.now() - T4) / 1000;
    const got = new BigInt64Array(raw);
    const psiF = digammaTable(n + 1);
    for (let g = 0; g < G; g++) {
      const p = gpuIdx[g];
      sums[p] = got[g];
      samples[p] = n;
      mi[p] = ksgFromSum(got[g], n, k, psiF);
    }
  } finally {
    for (const b of [bVals, bSorted, bPerm, bInfo, bPsi, bAcc, bXy, bRadius, ...temps]) b.destroy();
  }
  return { mi, samples, sums, timing };
}
