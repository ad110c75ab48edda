/**
 * WebAssembly kernel of `binRows` (./binning.ts), assembled at load time with the emitters of
 * `plugins/kernels/wasm.ts`: an operation-for-operation float64 transcription of the JavaScript loop, so counts,
 * non-finite and clipped totals are bit-identical (`_binning_wasm_test.ts`), with neurons four at a time in SIMD
 * lanes (float32, then float64, then scalar tiers, each exact); 1.6-2x the JavaScript loop. The exactness
 * argument, the tiers and the memory layout: docs/internals.md, "WebAssembly kernels".
 *
 * @module
 */
import {
  control,
  f32,
  f32x4,
  f64,
  f64x2,
  i32,
  i32x4,
  i8x16,
  instantiate,
  Locals,
  moduleBytes,
  type,
  v128,
} from "../kernels/wasm.ts";

/** Parameters: values, rows, width, bins, then byte offsets of lo, hi, scale, span, nonfinite, clipped, counts. */
const PARAMS = [
  "vals",
  "rows",
  "width",
  "bins",
  "loP",
  "hiP",
  "scP",
  "spP",
  "nfP",
  "clP",
  "cnt",
  "l32P",
  "s32P",
  "e32P",
];
const I32 = ["r", "j", "o", "k", "a8", "a4", "addr", "stride", "last"];
const F64 = ["x", "d", "t", "f", "binsF", "lastF"];
const V128 = [
  "X",
  "T0",
  "T1",
  "K0",
  "K1",
  "M",
  "OFFS",
  "LOW",
  "HIGH",
  "BINSI",
  "LOV",
  "SCV",
  "K2",
  "F",
  "E",
  "ONE",
  "LO32V",
  "SC32V",
  "EPSV",
];

/** The kernel; `uniform`: every neuron has neuron 0's lo and scale (kept in registers, not loaded per neuron). */
function kernelBody(uniform: boolean): number[] {
  const l = new Locals(PARAMS, { i32: I32, f64: F64, v128: V128 });
  const get = (n: string) => l.get(n), set = (n: string) => l.set(n), tee = (n: string) => l.tee(n);
  const vload = (addr: number[], offset = 0) => [...addr, ...v128.load(offset)];
  const f64load = (addr: number[]) => [...addr, ...f64.load()];
  const f32load = (addr: number[]) => [...addr, ...f32.load()];
  /** per-neuron float64 at byte offset `base + 8 j` */
  const perNeuron = (base: string) => f64load([...get(base), ...get("a8"), ...i32.add]);
  /** counts[addr] += 1 where addr is a byte address */
  const incAt = (addr: number[]) => [
    ...addr,
    ...tee("addr"),
    ...get("addr"),
    ...i32.load(),
    ...i32.const(1),
    ...i32.add,
    ...i32.store(),
  ];
  /** per-neuron float64 += 1 */
  const incF = (base: string) => [
    ...get(base),
    ...get("a8"),
    ...i32.add,
    ...tee("addr"),
    ...get("addr"),
    ...f64.load(),
    ...f64.const(1),
    ...f64.add,
    ...f64.store(),
  ];

  const value = [
    // x = f64(values[p]); d = x - lo[j]; t = d * scale[j]  (p = vals, advanced by 4 per value)
    ...get("j"),
    ...i32.const(3),
    ...i32.shl,
    ...set("a8"),
    ...get("vals"),
    ...f32.load(),
    ...f64.promote_f32,
    ...tee("x"),
    ...perNeuron("loP"),
    ...f64.sub,
    ...tee("d"),
    ...perNeuron("scP"),
    ...f64.mul,
    ...set("t"),
    ...control.block, // end
    ...control.block, // slow
    ...get("t"),
    ...f64.const(0),
    ...f64.ge,
    ...i32.eqz,
    ...control.brIf(0),
    ...get("t"),
    ...get("binsF"),
    ...f64.lt,
    ...i32.eqz,
    ...control.brIf(0),
    // k = trunc(t); f = t - k; near an edge: k = min(last, floor(d / span * bins))
    ...control.block, // inc
    ...control.block, // fix
    ...get("t"),
    ...get("t"),
    ...i32.trunc_f64_s,
    ...tee("k"),
    ...f64.convert_i32_s,
    ...f64.sub,
    ...tee("f"),
    ...f64.const(1e-9),
    ...f64.lt,
    ...control.brIf(0),
    ...get("f"),
    ...f64.const(0.999999999),
    ...f64.gt,
    ...control.brIf(0),
    ...control.br(1),
    ...control.end, // fix
    ...get("lastF"),
    ...get("d"),
    ...perNeuron("spP"),
    ...f64.div,
    ...get("binsF"),
    ...f64.mul,
    ...f64.floor,
    ...f64.min,
    ...i32.trunc_f64_s,
    ...set("k"),
    ...control.end, // inc
    ...incAt([...get("o"), ...get("k"), ...i32.const(2), ...i32.shl, ...i32.add]),
    ...control.br(1),
    ...control.end, // slow
    // t >= bins && x != +inf: last bin, clipped when x > hi
    ...get("t"),
    ...get("binsF"),
    ...f64.ge,
    ...get("x"),
    ...f64.const(Infinity),
    ...f64.ne,
    ...i32.and,
    ...control.if,
    ...incAt([...get("o"), ...get("last"), ...i32.const(2), ...i32.shl, ...i32.add]),
    ...get("x"),
    ...perNeuron("hiP"),
    ...f64.gt,
    ...control.if,
    ...incF("clP"),
    ...control.end,
    ...control.else,
    // t < 0 && x != -inf: bin 0, clipped
    ...get("t"),
    ...f64.const(0),
    ...f64.lt,
    ...get("x"),
    ...f64.const(-Infinity),
    ...f64.ne,
    ...i32.and,
    ...control.if,
    ...incAt(get("o")),
    ...incF("clP"),
    ...control.else,
    ...incF("nfP"),
    ...control.end,
    ...control.end,
    ...control.end,
  ];

  const advance = (n: number) => [
    ...get("vals"),
    ...i32.const(4 * n),
    ...i32.add,
    ...set("vals"),
    ...get("o"),
    ...get("stride"),
    ...i32.const(n),
    ...i32.mul,
    ...i32.add,
    ...set("o"),
    ...get("j"),
    ...i32.const(n),
    ...i32.add,
    ...set("j"),
  ];
  /** The four neurons' bins are the lanes of `K`: counts[o + 4 bins lane + 4 K[lane]] += 1, then the next four. */
  const countFour = (K: string) => [
    ...[...get(K), ...i32.const(2), ...i32x4.shl, ...get("o"), ...i32x4.splat, ...get("OFFS"), ...i32x4.add],
    ...[...i32x4.add, ...tee(K)],
    ...[0, 1, 2, 3].flatMap((lane) => [...(lane ? get(K) : []), ...i32x4.extract_lane(lane), ...incAt([])]),
    ...advance(4),
  ];
  /** Two lanes' `f = t - k` (into T) and whether each lies in [1e-9, 0.999999999] (false for NaN). */
  const inBand = (T: string, K: string) => [
    ...[...get(T), ...get(K), ...f64x2.convert_low_i32x4_s, ...f64x2.sub, ...tee(T)],
    ...[...get("LOW"), ...f64x2.ge, ...get(T), ...get("HIGH"), ...f64x2.le, ...v128.and],
  ];
  const code: number[] = [
    ...f32load(get("l32P")),
    ...f32x4.splat,
    ...set("LO32V"),
    ...f32load(get("s32P")),
    ...f32x4.splat,
    ...set("SC32V"),
    ...f32load(get("e32P")),
    ...f32x4.splat,
    ...set("EPSV"),
    ...f32.const(1),
    ...f32x4.splat,
    ...set("ONE"),
    ...f64load(get("loP")),
    ...f64x2.splat,
    ...set("LOV"),
    ...f64load(get("scP")),
    ...f64x2.splat,
    ...set("SCV"),
    ...get("bins"),
    ...i32x4.splat,
    ...set("BINSI"),
    ...f64.const(1e-9),
    ...f64x2.splat,
    ...set("LOW"),
    ...f64.const(0.999999999),
    ...f64x2.splat,
    ...set("HIGH"),
    ...get("bins"),
    ...i32.const(2),
    ...i32.shl,
    ...i32x4.splat,
    ...v128.const([0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]), // i32x4 [0, 1, 2, 3]
    ...i32x4.mul,
    ...set("OFFS"),
    ...get("bins"),
    ...f64.convert_i32_s,
    ...set("binsF"),
    ...get("bins"),
    ...i32.const(1),
    ...i32.sub,
    ...tee("last"),
    ...f64.convert_i32_s,
    ...set("lastF"),
    ...get("bins"),
    ...i32.const(2),
    ...i32.shl,
    ...set("stride"),
    ...i32.const(0),
    ...set("r"),
    ...control.loopUntil([...get("r"), ...get("rows"), ...i32.ge_s], [
      ...i32.const(0),
      ...set("j"),
      ...get("cnt"),
      ...set("o"),
      // four neurons at a time: the four bins in float64 lanes; when any of the four needs the slow path (near an
      // edge, out of [0, bins), non-finite), the four take the scalar path in order
      ...control.loopUntil([...get("j"), ...i32.const(4), ...i32.add, ...get("width"), ...i32.gt_s], [
        ...get("j"),
        ...i32.const(3),
        ...i32.shl,
        ...set("a8"),
        ...vload(get("vals")),
        ...tee("X"),
        // float32 lanes first: t32 = (x - lo32) * scale32 with k = trunc(t32) is the bin when t32's fraction is at
        // least eps from 0 and 1 (eps bounds |t32 - t| plus the 1e-9 band; see binRowsWasm)
        ...get("j"),
        ...i32.const(2),
        ...i32.shl,
        ...set("a4"),
        ...(uniform ? get("LO32V") : vload([...get("l32P"), ...get("a4"), ...i32.add])),
        ...f32x4.sub,
        ...(uniform ? get("SC32V") : vload([...get("s32P"), ...get("a4"), ...i32.add])),
        ...f32x4.mul,
        ...tee("F"),
        ...i32x4.trunc_sat_f32x4_s,
        ...set("K2"),
        ...get("F"),
        ...get("K2"),
        ...f32x4.convert_i32x4_s,
        ...f32x4.sub,
        ...set("F"),
        ...(uniform ? get("EPSV") : vload([...get("e32P"), ...get("a4"), ...i32.add])),
        ...tee("E"),
        ...get("F"),
        ...f32x4.le, // f32x4.le: eps <= f
        ...get("E"),
        ...get("ONE"),
        ...get("F"),
        ...f32x4.sub,
        ...f32x4.le, // eps <= 1 - f
        ...v128.and,
        ...get("K2"),
        ...get("BINSI"),
        ...i32x4.lt_u,
        ...v128.and,
        ...i32x4.all_true,
        ...control.if,
        ...countFour("K2"),
        ...control.else,
        ...get("X"),
        ...f64x2.promote_low_f32x4,
        ...(uniform ? get("LOV") : vload([...get("loP"), ...get("a8"), ...i32.add])),
        ...f64x2.sub,
        ...(uniform ? get("SCV") : vload([...get("scP"), ...get("a8"), ...i32.add])),
        ...f64x2.mul,
        ...set("T0"),
        ...get("X"),
        ...get("X"),
        ...i8x16.shuffle([8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7]), // i8x16.shuffle: high half to low
        ...f64x2.promote_low_f32x4,
        ...(uniform ? get("LOV") : vload([...get("loP"), ...get("a8"), ...i32.add], 16)),
        ...f64x2.sub,
        ...(uniform ? get("SCV") : vload([...get("scP"), ...get("a8"), ...i32.add], 16)),
        ...f64x2.mul,
        ...set("T1"),
        ...get("T0"),
        ...i32x4.trunc_sat_f64x2_s_zero,
        ...set("K0"),
        ...get("T1"),
        ...i32x4.trunc_sat_f64x2_s_zero,
        ...set("K1"),
        // f = t - k in [1e-9, 0.999999999] (false for NaN) for the four
        ...inBand("T0", "K0"),
        ...inBand("T1", "K1"),
        ...v128.and,
        ...set("M"),
        // k in [0, bins) (unsigned compare: saturated negatives are large)
        ...get("K0"),
        ...get("K1"),
        ...i8x16.shuffle([0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]), // [k0, k1, k2, k3]
        ...tee("K0"),
        ...get("BINSI"),
        ...i32x4.lt_u,
        ...get("M"),
        ...v128.and,
        ...i32x4.all_true,
        ...control.if,
        ...countFour("K0"),
        ...control.else,
        ...value,
        ...advance(1),
        ...value,
        ...advance(1),
        ...value,
        ...advance(1),
        ...value,
        ...advance(1),
        ...control.end,
        ...control.end,
      ]),
      // the rest one at a time
      ...control.loopUntil([...get("j"), ...get("width"), ...i32.ge_s], [...value, ...advance(1)]),
      ...get("r"),
      ...i32.const(1),
      ...i32.add,
      ...set("r"),
    ]),
    ...control.end,
  ];
  return l.body(code);
}

function wasmModule(): Uint8Array<ArrayBuffer> {
  return moduleBytes(PARAMS.map(() => type.i32), [], [
    { name: "bin", body: kernelBody(false) },
    { name: "binUniform", body: kernelBody(true) },
  ]);
}

type BinKernel = (
  vals: number,
  rows: number,
  width: number,
  bins: number,
  loP: number,
  hiP: number,
  scP: number,
  spP: number,
  nfP: number,
  clP: number,
  cnt: number,
  l32P: number,
  s32P: number,
  e32P: number,
) => void;

const WASM: { bin: BinKernel; binUniform: BinKernel; mem: WebAssembly.Memory } | null = (() => {
  const w = instantiate<{ bin: BinKernel; binUniform: BinKernel }>(wasmModule(), 16);
  if (!w) return null;
  try {
    const { mem, exports: { bin, binUniform } } = w;
    // V8 starts WebAssembly in its baseline compiler (Liftoff) and tiers a function up to the optimising compiler
    // after enough calls; our calls are few and long, so a few thousand tiny calls trigger the tier-up now.
    // four neurons: lo, hi, scale, span, nonfinite, clipped (4 each), counts (2 bins) at 192, one row at 256
    const f = new Float64Array(mem.buffer, 0, 24);
    f.fill(0, 0, 4).fill(1, 4, 8).fill(2, 8, 12).fill(0.5, 12, 16);
    new Float32Array(mem.buffer, 256, 4).set([0.1, 0.7, 0.3, 0.9]);
    new Float32Array(mem.buffer, 320, 12).set([0, 0, 0, 0, 2, 2, 2, 2, 1e-3, 1e-3, 1e-3, 1e-3]); // lo32, sc32, eps
    for (let i = 0; i < 3000; i++) {
      bin(256, 1, 4, 2, 0, 32, 64, 96, 128, 160, 192, 320, 336, 352);
      binUniform(256, 1, 4, 2, 0, 32, 64, 96, 128, 160, 192, 320, 336, 352);
    }
    return { bin, binUniform, mem };
  } catch {
    return null;
  }
})();

/** Whether the WebAssembly kernel compiled (else `binRows` uses its JavaScript loop only). */
export const binWasmAvailable: boolean = WASM !== null;

/** Bytes of values copied into WebAssembly memory per kernel call (a chunk of rows that stays in cache). */
const CHUNK_BYTES = 256 << 10;

/**
 * The float32 lanes' margin for one neuron: the kernel takes `k = trunc(t32)` with `t32 = (x - lo32) * scale32`
 * in float32 (`lo32`, `scale32` rounded from the float64 `lo`, `scale`) when `t32`'s fraction lies in
 * `[eps, 1 - eps]` and `0 <= k < B`. With `u = 2^-24`, `T = (x - lo) * scale` exact, `|T| <= B + 1` there:
 * `|t32 - T| <= |lo| scale u (1 + 4u) + (|T| + |lo| scale u) 3.01 u` (lo rounding, then three roundings of
 * subtract, scale and multiply; plus `scale * 2^-149` should the difference be subnormal), and the float64
 * `t` of binRows is within `2.3e-16 |T|` of `T`. So `eps` = 1.25 x that bound + 2e-9 puts `t`'s fraction in
 * `[1e-9, 1 - 1e-9]` with `trunc(t) = k`: binRows's own fast path, same bin, no clipping. Returns 2 (the float32
 * lanes never accept) when the bound is not small or `lo32`, `scale32` are not finite normal numbers, and -1
 * (accept) for a constant neuron.
 */
function floatEps(lo: number, scale: number, bins: number, lo32: number, sc32: number): number {
  // A constant neuron (zero span, scale 0): t32 = (x - lo32) * 0 is 0 for every finite x (NaN otherwise, refused by
  // the lanes), and binRows puts every finite value in bin 0: any fraction is accepted.
  if (scale === 0 && Number.isFinite(lo32)) return -1;
  if (!Number.isFinite(lo32) || !Number.isFinite(sc32) || !(sc32 >= 2 ** -100)) return 2;
  const u = 2 ** -24, ls = Math.abs(lo) * scale;
  const bound = ls * u * 1.01 + (bins + 1 + ls * u) * 3.02 * u + (bins + 1) * 2.3e-16 + scale * 2 ** -148;
  const eps = Math.fround((1.25 * bound + 2e-9) * 1.001);
  return eps < 0.1 ? eps : 2;
}

/** Grows the kernel's memory to at least `bytes`; false when it cannot (the caller then uses JavaScript). */
function ensure(bytes: number): boolean {
  const mem = WASM!.mem;
  try {
    if (mem.buffer.byteLength < bytes) mem.grow(Math.ceil((bytes - mem.buffer.byteLength) / 65536));
    return true;
  } catch {
    return false;
  }
}

/**
 * `binRows` on the WebAssembly kernel: the same arguments and the same results, bit for bit. Copies the
 * counts, non-finite and clipped totals in and out (callers use it when rows outnumber bins enough to pay for it).
 * Returns false, having changed nothing, when the kernel's memory cannot grow to the layer's counts.
 */
export function binRowsWasm(
  values: Float32Array,
  width: number,
  r0: number,
  r1: number,
  lo: Float64Array,
  hi: Float64Array,
  bins: number,
  counts: Uint32Array,
  nonfinite: Float64Array,
  clipped: Float64Array,
): boolean {
  const { mem } = WASM!;
  const nc = width * bins;
  const chunkRows = Math.max(1, Math.floor(CHUNK_BYTES / (4 * width)));
  const l32P = 48 * width, cntP = (60 * width + 63) & ~63, valP = cntP + ((4 * nc + 63) & ~63);
  if (!ensure(valP + 4 * width * Math.min(chunkRows, r1 - r0))) return false;
  const buf = mem.buffer;
  const f = new Float64Array(buf, 0, 6 * width), f32 = new Float32Array(buf, l32P, 3 * width);
  let uniform = true;
  for (let j = 1; j < width; j++) if (lo[j] !== lo[0] || hi[j] !== hi[0]) uniform = false;
  const kernel = uniform ? WASM!.binUniform : WASM!.bin;
  for (let j = 0; j < width; j++) {
    // A zero span becomes +Infinity so that every finite value maps to t = 0 and +-Inf to NaN (as binRows).
    const span = hi[j] > lo[j] ? hi[j] - lo[j] : Infinity;
    f[j] = lo[j];
    f[width + j] = hi[j];
    f[2 * width + j] = bins / span;
    f[3 * width + j] = span;
    const scale = bins / span, lo32 = Math.fround(lo[j]), sc32 = Math.fround(scale);
    f32[j] = lo32;
    f32[width + j] = sc32;
    f32[2 * width + j] = floatEps(lo[j], scale, bins, lo32, sc32);
  }
  f.set(nonfinite.subarray(0, width), 4 * width);
  f.set(clipped.subarray(0, width), 5 * width);
  const c = new Uint32Array(buf, cntP, nc);
  c.set(counts.subarray(0, nc));
  const v = new Float32Array(buf, valP, width * Math.min(chunkRows, r1 - r0));
  for (let r = r0; r < r1; r += chunkRows) {
    const n = Math.min(chunkRows, r1 - r);
    v.set(values.subarray(r * width, (r + n) * width));
    kernel(
      valP,
      n,
      width,
      bins,
      0,
      8 * width,
      16 * width,
      24 * width,
      32 * width,
      40 * width,
      cntP,
      l32P,
      l32P + 4 * width,
      l32P + 8 * width,
    );
  }
  counts.set(c);
  nonfinite.set(f.subarray(4 * width, 5 * width));
  clipped.set(f.subarray(5 * width, 6 * width));
  return true;
}
