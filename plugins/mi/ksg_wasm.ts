/**
 * WebAssembly SIMD kernel of {@linkcode ksgPair} for k = 3, assembled at load time with the emitters of
 * `plugins/kernels/wasm.ts` (no toolchain, no dependency; as the binning and linear-algebra kernels).
 *
 * Why: the JavaScript kernel's neighbour search is bound by branch mispredictions (V8 compiles `Math.min`, `Math.max`
 * and float ternaries to branches, and keeping the k smallest distances takes data-dependent branches). Here the
 * candidates are scanned two at a time in float64 lanes and each lane keeps its 4 smallest distances (the sample
 * itself and its 3 nearest) with a branch-free `pmin`/`pmax` insertion network; the two lanes' lists are merged at
 * the end. Every distance is the same float64 `|a - b|`, the marginal counts are the same comparisons and the
 * `psi` terms are summed as exact integers, so the estimate is bit-identical to the JavaScript kernel's.
 *
 * Two functions run over one pair. `search`: the grid cells in the order given (Z order), each sample's block
 * of cells (3 x 3, reaching further along the narrow axis of elongated cells), the exact strip rectangle when the
 * block's border is nearer than the 3rd distance, "heavy" points (a point shared by more than k samples, stored
 * once outside the grid and checked by every sample: it lowers all 4 distances at once); it stores each sample's
 * radius. `counts`: for every sample in a straight loop (no data-dependent branch, so consecutive samples overlap
 * in the processor), the four marginal borders from the neurons' fence tables (a bucket lookup, over the values or
 * their float32 bits as `fenceBucket` in `plugins/mi/ksg.ts` says, checked against the sorted values at the window's
 * ends; the whole half range when the check fails) and three branch-free halvings (the whole-range binary search
 * when a window is longer than 8), then the sum of
 * `psi(n_x + 1) + psi(n_y + 1)` as i64 fixed-point integers (units of `2^-36`, `fixedPsi` in `plugins/mi/ksg.ts`):
 * exact, so any order gives the same sum.
 *
 * @module
 */
import {
  control,
  f32,
  f64,
  f64x2,
  i32,
  i64,
  i8x16,
  instantiate,
  Locals,
  moduleBytes,
  type,
  v128,
} from "../kernels/wasm.ts";

/**
 * Parameters of the kernel: i32 byte offsets into memory and counts, the fence tables' f64 origins and scales, then
 * the running total (i64, fixed point).
 */
const PARAMS_I32 = [
  "px",
  "py",
  "pxr",
  "pyr",
  "xs",
  "ys",
  "xe",
  "ye",
  "start",
  "psi",
  "heavy",
  "H",
  "tail",
  "Gx",
  "Gy",
  "xt",
  "yt",
  "n",
  "M1",
  "ord",
  "cells",
  "rad",
  "N",
];
const PARAMS_F64 = ["xlo", "xsc", "ylo", "ysc"];
const I32 = [
  "cy",
  "cx",
  "y0",
  "y1",
  "x0",
  "x1",
  "c0",
  "c1",
  "p",
  "gy",
  "q",
  "qa",
  "qb",
  "X0",
  "X1",
  "Y0",
  "Y1",
  "b1",
  "l1",
  "b2",
  "l2",
  "b3",
  "l3",
  "b4",
  "l4",
  "h1",
  "h2",
  "h3",
  "h4",
  "row",
  "ins",
  "h",
  "rk",
  "bk",
  "fa",
  "fz",
  "ok",
  "ci",
  "ax",
  "ay",
  "xbits",
  "ybits",
  "kt",
];
/** Count windows of at most FIXED positions (2^LEVELS) are searched in LEVELS branch-free steps. */
const LEVELS = 3, FIXED = 1 << LEVELS;
/** The block's reach: about REACH * sqrt(aspect) strips, at most MAX_REACH (see `reach` in the kernel). */
const REACH = 0.6, MAX_REACH = 2;
const F64 = ["xw", "yw", "x", "y", "kth", "yLoV", "yHiV", "xLoV", "xHiV", "r", "tv"];
const V128 = ["X", "Y", "XY", "B0", "B1", "B2", "B3", "D", "T", "LOV", "HIV"];

function kernelBodies(): { search: number[]; counts: number[] } {
  const l = new Locals([...PARAMS_I32, ...PARAMS_F64, "total"], { i32: I32, f64: F64, v128: V128 });
  const get = (n: string) => l.get(n), set = (n: string) => l.set(n);
  // loads: element i of the array at byte offset `base` (i32 element index on the stack)
  const at = (
    base: string,
    index: number[],
    log2: number,
  ) => [...get(base), ...index, ...i32.const(log2), ...i32.shl, ...i32.add];
  const ld32 = (base: string, index: number[]) => [...at(base, index, 2), ...i32.load()];
  const ld64 = (base: string, index: number[]) => [...at(base, index, 3), ...f64.load()];
  const ldI64 = (base: string, index: number[]) => [...at(base, index, 3), ...i64.load()];
  const vload = (addr: number[]) => [...addr, ...v128.load()];
  const SWAP = i8x16.shuffle([8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7]);
  const INF = f64.const(Infinity);
  const vINF = [...INF, ...f64x2.splat];

  /** Inserts the samples [qa, qb) into the lanes' sorted lists B0 <= B1 <= B2 <= B3, two at a time. */
  const scan = (): number[] => [
    ...get("qa"),
    ...set("q"),
    ...control.loopUntil([...get("q"), ...get("qb"), ...i32.ge_s], [
      // D = max(|X - px[q..q+1]|, |Y - py[q..q+1]|)
      ...get("X"),
      ...vload([...get("px"), ...get("q"), ...i32.const(3), ...i32.shl, ...i32.add]),
      ...f64x2.sub,
      ...f64x2.abs,
      ...get("Y"),
      ...vload([...get("py"), ...get("q"), ...i32.const(3), ...i32.shl, ...i32.add]),
      ...f64x2.sub,
      ...f64x2.abs,
      ...f64x2.pmax,
      // a lone last sample: lane 1 (the next range's sample) becomes +inf (tail table: (0, 0), (0, inf))
      ...vload([
        ...get("tail"),
        ...get("q"),
        ...i32.const(1),
        ...i32.add,
        ...get("qb"),
        ...i32.eq,
        ...i32.const(4),
        ...i32.shl,
        ...i32.add,
      ]),
      ...f64x2.pmax,
      ...set("D"),
      ...get("B0"),
      ...get("D"),
      ...f64x2.pmax,
      ...set("T"),
      ...get("B0"),
      ...get("D"),
      ...f64x2.pmin,
      ...set("B0"),
      ...get("B1"),
      ...get("T"),
      ...f64x2.pmax,
      ...set("D"),
      ...get("B1"),
      ...get("T"),
      ...f64x2.pmin,
      ...set("B1"),
      ...get("B2"),
      ...get("D"),
      ...f64x2.pmax,
      ...set("T"),
      ...get("B2"),
      ...get("D"),
      ...f64x2.pmin,
      ...set("B2"),
      ...get("B3"),
      ...get("T"),
      ...f64x2.pmin,
      ...set("B3"),
      ...get("q"),
      ...i32.const(2),
      ...i32.add,
      ...set("q"),
    ]),
  ];

  /** kth = the 4th smallest of the two lanes' lists: min(a3, b3, max(a0, b2), max(a1, b1), max(a2, b0)). */
  const merge = (): number[] => [
    ...get("B3"),
    ...get("B0"),
    ...get("B2"),
    ...get("B2"),
    ...SWAP,
    ...f64x2.pmax,
    ...f64x2.pmin,
    ...get("B1"),
    ...get("B1"),
    ...get("B1"),
    ...SWAP,
    ...f64x2.pmax,
    ...f64x2.pmin,
    ...set("T"),
    ...get("T"),
    ...get("T"),
    ...get("T"),
    ...SWAP,
    ...f64x2.pmin,
    ...f64x2.extract_lane(0),
    ...set("kth"),
  ];

  /** while (cond) body */
  const whileDo = (cond: number[], body: number[]) => control.loopUntil([...cond, ...i32.eqz], body);
  /** (a < b) ? a : b style select: [then, else, cond] */
  const sel = (a: number[], b: number[], cond: number[]) => [...a, ...b, ...cond, ...control.select];
  /** cond && test (both i32) */
  const and = (
    cond: number[],
    test: number[],
  ) => [...cond, ...control.ifI32, ...test, ...control.else, ...i32.const(0), ...control.end];
  const inc = (n: string, d: number) => [...get(n), ...i32.const(d), ...i32.add, ...set(n)];

  /**
   * Widens the strip range [lo, hi] of one axis while the next strip's border value is nearer to the sample's
   * coordinate `v` than kth: `s[e[lo] - 1]` below (lo > 0), `s[e[hi + 1]]` above (hi < G - 1).
   */
  const grow = (v: string, lo: string, hi: string, G: string, s: string, e: string) => [
    ...whileDo(
      and([...get(lo), ...i32.const(0), ...i32.gt_s], [
        ...[...get(v), ...ld64(s, [...ld32(e, get(lo)), ...i32.const(1), ...i32.sub]), ...f64.sub],
        ...[...get("kth"), ...f64.lt],
      ]),
      inc(lo, -1),
    ),
    ...whileDo(
      and([...get(hi), ...get(G), ...i32.const(1), ...i32.sub, ...i32.lt_s], [
        ...[...ld64(s, ld32(e, [...get(hi), ...i32.const(1), ...i32.add])), ...get(v), ...f64.sub],
        ...[...get("kth"), ...f64.lt],
      ]),
      inc(hi, 1),
    ),
  ];

  /**
   * The search windows of one axis's two marginal counts, from the neuron's fence table (`t`: `t[j]` is the first
   * sorted position whose bucket is >= j, buckets `clamp(trunc((v - lo) * sc), 0, M1)`): the bucket of `v + r`
   * (`v - r`) holds the upper (lower) border, unless float rounding put it one position outside, so each window is
   * verified against the sorted values at its ends and replaced by the whole half range when that fails. The
   * counts' binary search below then gives the same positions as a search over the whole sorted array.
   * Upper: `bHi` is a position with `s[bHi] - v < r` and the last such position lies in `[bHi, bHi + lHi)`.
   * Lower: the last position with `v - s[m] >= r` (if any) lies in `[bLo, bLo + lLo)`.
   */
  const windows = (
    v: string,
    ranks: string,
    s: string,
    t: string,
    lo: string,
    sc: string,
    bLo: string,
    lLo: string,
    bHi: string,
    lHi: string,
  ): number[] => {
    const P = (m: number[]) => [...ld64(s, m), ...get(v), ...f64.sub, ...get("r"), ...f64.lt]; // s[m] - v < r
    const Q = (m: number[]) => [...get(v), ...ld64(s, m), ...f64.sub, ...get("r"), ...f64.ge]; // v - s[m] >= r
    const faLess = [...get("fa"), ...i32.const(1), ...i32.sub];
    // a neuron whose fence is over its values' order-preserving bits (a negative scale in the call: `bits`)
    const bits = sc === "xsc" ? "xbits" : "ybits";
    const bucket = (target: number[]) => [
      ...target,
      ...set("tv"),
      ...get(bits),
      ...control.ifF64,
      ...[...get("tv"), ...f64.const(0), ...f64.add, ...f32.demote_f64, ...i32.reinterpret_f32, ...l.tee("kt")],
      ...[...get("kt"), ...i32.const(31), ...i32.shr_s, ...i32.const(-0x80000000), ...i32.or, ...i32.xor],
      ...f64.convert_i32_u,
      ...control.else,
      ...get("tv"),
      ...control.end,
      ...get(lo),
      ...f64.sub,
      ...get(sc),
      ...f64.mul,
      ...i32.trunc_sat_f64_s,
      ...set("bk"),
      ...sel(get("bk"), i32.const(0), [...get("bk"), ...i32.const(0), ...i32.gt_s]),
      ...set("bk"),
      ...sel(get("bk"), get("M1"), [...get("bk"), ...get("M1"), ...i32.lt_s]),
      ...set("bk"),
      ...ld32(t, get("bk")),
      ...set("fa"),
      ...ld32(t, [...get("bk"), ...i32.const(1), ...i32.add]),
      ...set("fz"),
    ];
    return [
      ...ld32(ranks, get("p")),
      ...set("rk"),
      // upper: ok = (fa - 1 <= rk | P(fa - 1)) & (fz >= n | !P(fz)); s[-1] and s[n] are readable and ignored
      ...bucket([...get(v), ...get("r"), ...f64.add]),
      ...[...faLess, ...get("rk"), ...i32.le_s, ...P(faLess), ...i32.or],
      ...[...get("fz"), ...get("n"), ...i32.ge_s, ...P(get("fz")), ...i32.eqz, ...i32.or],
      ...i32.and,
      ...set("ok"),
      ...sel(sel(faLess, get("rk"), [...faLess, ...get("rk"), ...i32.gt_s]), get("rk"), get("ok")),
      ...set(bHi),
      ...sel(get("fz"), get("n"), get("ok")),
      ...get(bHi),
      ...i32.sub,
      ...set(lHi),
      // lower: ok = (fa == 0 | Q(fa - 1)) & (fz >= rk | !Q(fz)); Q(rk) is false
      ...bucket([...get(v), ...get("r"), ...f64.sub]),
      ...[...get("fa"), ...i32.eqz, ...Q(faLess), ...i32.or],
      ...[...get("fz"), ...get("rk"), ...i32.ge_s, ...Q(get("fz")), ...i32.eqz, ...i32.or],
      ...i32.and,
      ...set("ok"),
      ...sel(sel(faLess, i32.const(0), [...get("fa"), ...i32.const(0), ...i32.gt_s]), i32.const(0), get("ok")),
      ...set(bLo),
      ...sel(sel(get("fz"), get("rk"), [...get("fz"), ...get("rk"), ...i32.lt_s]), get("rk"), get("ok")),
      ...i32.const(1),
      ...i32.add,
      ...get(bLo),
      ...i32.sub,
      ...set(lLo),
    ];
  };

  /** LEVELS halvings of the four count searches: `b += h` where the test holds at `b + h`, for h = FIXED/2 .. 1. */
  const fixedSearch = (): number[] => {
    const out: number[] = [];
    for (let h = FIXED >> 1; h >= 1; h >>= 1) {
      const step = (b: string, test: number[]) => [
        ...[...get(b), ...i32.const(h), ...i32.add, ...get(b), ...test, ...control.select, ...set(b)],
      ];
      const at = (b: string) => [...get(b), ...i32.const(h), ...i32.add];
      out.push(
        ...step("b1", [...get("x"), ...ld64("xs", at("b1")), ...f64.sub, ...get("r"), ...f64.ge]),
        ...step("b2", [...ld64("xs", at("b2")), ...get("x"), ...f64.sub, ...get("r"), ...f64.lt]),
        ...step("b3", [...get("y"), ...ld64("ys", at("b3")), ...f64.sub, ...get("r"), ...f64.ge]),
        ...step("b4", [...ld64("ys", at("b4")), ...get("y"), ...f64.sub, ...get("r"), ...f64.lt]),
      );
    }
    return out;
  };

  // per sample
  const sample: number[] = [
    ...ld64("px", get("p")),
    ...set("x"),
    ...ld64("py", get("p")),
    ...set("y"),
    ...get("x"),
    ...f64x2.splat,
    ...set("X"),
    ...get("y"),
    ...f64x2.splat,
    ...set("Y"),
    ...get("X"),
    ...get("y"),
    ...f64x2.replace_lane(1),
    ...set("XY"),
    ...vINF,
    ...set("B0"),
    ...vINF,
    ...set("B1"),
    ...vINF,
    ...set("B2"),
    ...vINF,
    ...set("B3"),
    // the 3 x 3 block: rows y0..y1, columns x0..x1
    ...get("y0"),
    ...set("gy"),
    ...control.loop,
    ...ld32("start", [...get("gy"), ...get("Gx"), ...i32.mul, ...get("x0"), ...i32.add]),
    ...set("qa"),
    ...ld32("start", [...get("gy"), ...get("Gx"), ...i32.mul, ...get("x1"), ...i32.add, ...i32.const(1), ...i32.add]),
    ...set("qb"),
    ...scan(),
    ...inc("gy", 1),
    ...get("gy"),
    ...get("y1"),
    ...i32.le_s,
    ...control.brIf(0),
    ...control.end,
    // heavy points (lane 0 only): each stands for more than k samples, so it lowers all four distances
    ...i32.const(0),
    ...set("h"),
    ...whileDo([...get("h"), ...get("H"), ...i32.lt_s], [
      ...get("X"),
      ...vload([...get("heavy"), ...get("h"), ...i32.const(4), ...i32.shl, ...i32.add]),
      ...f64x2.sub,
      ...f64x2.abs,
      ...get("Y"),
      ...vload([
        ...get("heavy"),
        ...get("h"),
        ...i32.const(4),
        ...i32.shl,
        ...i32.add,
        ...i32.const(16 * 4096),
        ...i32.add,
      ]),
      ...f64x2.sub,
      ...f64x2.abs,
      ...f64x2.pmax,
      ...INF,
      ...f64x2.replace_lane(1),
      ...set("D"),
      ...get("B0"),
      ...get("D"),
      ...f64x2.pmin,
      ...set("B0"),
      ...get("B1"),
      ...get("D"),
      ...f64x2.pmin,
      ...set("B1"),
      ...get("B2"),
      ...get("D"),
      ...f64x2.pmin,
      ...set("B2"),
      ...get("B3"),
      ...get("D"),
      ...f64x2.pmin,
      ...set("B3"),
      ...inc("h", 1),
    ]),
    ...merge(),
    // bound = min(x - xLoV, xHiV - x, y - yLoV, yHiV - y); if !(kth <= bound): the rectangle
    ...get("kth"),
    ...get("XY"),
    ...get("LOV"),
    ...f64x2.sub,
    ...get("HIV"),
    ...get("XY"),
    ...f64x2.sub,
    ...f64x2.pmin,
    ...set("T"),
    ...get("T"),
    ...get("T"),
    ...get("T"),
    ...SWAP,
    ...f64x2.pmin,
    ...f64x2.extract_lane(0),
    ...f64.le,
    ...i32.eqz,
    ...control.if,
    ...get("x0"),
    ...set("X0"),
    ...get("x1"),
    ...set("X1"),
    ...get("y0"),
    ...set("Y0"),
    ...get("y1"),
    ...set("Y1"),
    ...grow("x", "X0", "X1", "Gx", "xs", "xe"),
    ...grow("y", "Y0", "Y1", "Gy", "ys", "ye"),
    // rows Y0..Y1: outside the block's rows columns X0..X1, inside them X0..x0-1 and x1+1..X1
    ...get("Y0"),
    ...set("gy"),
    ...control.loop,
    ...get("gy"),
    ...get("Gx"),
    ...i32.mul,
    ...set("row"),
    ...get("gy"),
    ...get("y0"),
    ...i32.ge_s,
    ...get("gy"),
    ...get("y1"),
    ...i32.le_s,
    ...i32.and,
    ...set("ins"),
    ...ld32("start", [...get("row"), ...get("X0"), ...i32.add]),
    ...set("qa"),
    ...ld32("start", [
      ...get("row"),
      ...sel(get("x0"), [...get("X1"), ...i32.const(1), ...i32.add], get("ins")),
      ...i32.add,
    ]),
    ...set("qb"),
    ...scan(),
    ...ld32("start", [...get("row"), ...get("x1"), ...i32.const(1), ...i32.add, ...i32.add]),
    ...set("qa"),
    ...sel(
      ld32("start", [...get("row"), ...get("X1"), ...i32.const(1), ...i32.add, ...i32.add]),
      get("qa"),
      get("ins"),
    ),
    ...set("qb"),
    ...scan(),
    ...inc("gy", 1),
    ...get("gy"),
    ...get("Y1"),
    ...i32.le_s,
    ...control.brIf(0),
    ...control.end,
    ...merge(),
    ...control.end,
    // outside the radius: distance >= kth (kth > 0), distance > 0 (kth = 0: the smallest double)
    ...sel(get("kth"), f64.const(Number.MIN_VALUE), [...get("kth"), ...f64.const(0), ...f64.gt]),
    ...set("r"),
    ...get("rad"),
    ...get("p"),
    ...i32.const(3),
    ...i32.shl,
    ...i32.add,
    ...get("r"),
    ...f64.store(),
  ];
  // counts of one sample p whose radius the search stored: its marginal windows, their searches, the psi terms
  const count: number[] = [
    ...ld64("px", get("p")),
    ...set("x"),
    ...ld64("py", get("p")),
    ...set("y"),
    ...ld64("rad", get("p")),
    ...set("r"),
    ...windows("x", "pxr", "xs", "xt", "xlo", "xsc", "b1", "l1", "b2", "l2"),
    ...windows("y", "pyr", "ys", "yt", "ylo", "ysc", "b3", "l3", "b4", "l4"),
    // all four windows at most FIXED positions (nearly always): LEVELS branch-free halvings each (positions past a
    // window's end fail its test: monotone, and the sorted values are padded with +inf); else the loop
    ...get("l1"),
    ...i32.const(1),
    ...i32.sub,
    ...get("l2"),
    ...i32.const(1),
    ...i32.sub,
    ...i32.or,
    ...get("l3"),
    ...i32.const(1),
    ...i32.sub,
    ...i32.or,
    ...get("l4"),
    ...i32.const(1),
    ...i32.sub,
    ...i32.or,
    ...i32.const(FIXED),
    ...i32.lt_u,
    ...control.if,
    ...fixedSearch(),
    ...control.else,
    ...whileDo([
      ...get("l1"),
      ...get("l2"),
      ...i32.or,
      ...get("l3"),
      ...i32.or,
      ...get("l4"),
      ...i32.or,
      ...i32.const(1),
      ...i32.gt_s,
    ], [
      ...get("l1"),
      ...i32.const(1),
      ...i32.shr_u,
      ...set("h1"),
      ...get("l2"),
      ...i32.const(1),
      ...i32.shr_u,
      ...set("h2"),
      ...get("l3"),
      ...i32.const(1),
      ...i32.shr_u,
      ...set("h3"),
      ...get("l4"),
      ...i32.const(1),
      ...i32.shr_u,
      ...set("h4"),
      // b1 += h1 if x - xs[b1 + h1] >= r (select: a conditional move, no branch)
      ...get("b1"),
      ...get("h1"),
      ...i32.add,
      ...get("b1"),
      ...get("x"),
      ...ld64("xs", [...get("b1"), ...get("h1"), ...i32.add]),
      ...f64.sub,
      ...get("r"),
      ...f64.ge,
      ...control.select,
      ...set("b1"),
      // b2 += h2 if xs[b2 + h2] - x < r
      ...get("b2"),
      ...get("h2"),
      ...i32.add,
      ...get("b2"),
      ...ld64("xs", [...get("b2"), ...get("h2"), ...i32.add]),
      ...get("x"),
      ...f64.sub,
      ...get("r"),
      ...f64.lt,
      ...control.select,
      ...set("b2"),
      ...get("b3"),
      ...get("h3"),
      ...i32.add,
      ...get("b3"),
      ...get("y"),
      ...ld64("ys", [...get("b3"), ...get("h3"), ...i32.add]),
      ...f64.sub,
      ...get("r"),
      ...f64.ge,
      ...control.select,
      ...set("b3"),
      ...get("b4"),
      ...get("h4"),
      ...i32.add,
      ...get("b4"),
      ...ld64("ys", [...get("b4"), ...get("h4"), ...i32.add]),
      ...get("y"),
      ...f64.sub,
      ...get("r"),
      ...f64.lt,
      ...control.select,
      ...set("b4"),
      ...get("l1"),
      ...get("h1"),
      ...i32.sub,
      ...set("l1"),
      ...get("l2"),
      ...get("h2"),
      ...i32.sub,
      ...set("l2"),
      ...get("l3"),
      ...get("h3"),
      ...i32.sub,
      ...set("l3"),
      ...get("l4"),
      ...get("h4"),
      ...i32.sub,
      ...set("l4"),
    ]),
    ...control.end,
    // total += psi[n_x + 1] + psi[n_y + 1] (fixed-point i64), n_x = b2 - (b1 + (x - xs[b1] >= r))
    ...get("total"),
    ...ldI64("psi", [
      ...get("b2"),
      ...get("b1"),
      ...get("x"),
      ...ld64("xs", get("b1")),
      ...f64.sub,
      ...get("r"),
      ...f64.ge,
      ...i32.add,
      ...i32.sub,
      ...i32.const(1),
      ...i32.add,
    ]),
    ...ldI64("psi", [
      ...get("b4"),
      ...get("b3"),
      ...get("y"),
      ...ld64("ys", get("b3")),
      ...f64.sub,
      ...get("r"),
      ...f64.ge,
      ...i32.add,
      ...i32.sub,
      ...i32.const(1),
      ...i32.add,
    ]),
    ...i64.add,
    ...i64.add,
    ...set("total"),
  ];
  // the block's border values of a row (y) or column (x) strip range: lo = s[e[a0] - 1] when a0 > 0 (else -inf),
  // hi = s[e[a1 + 1]] when a1 < G - 1 (else +inf)
  const border = (a0: string, a1: string, G: string, s: string, e: string, lo: string, hi: string) => [
    ...get(a0),
    ...i32.const(0),
    ...i32.gt_s,
    ...control.if,
    ...ld64(s, [...ld32(e, get(a0)), ...i32.const(1), ...i32.sub]),
    ...set(lo),
    ...control.else,
    ...f64.const(-Infinity),
    ...set(lo),
    ...control.end,
    ...get(a1),
    ...get(G),
    ...i32.const(1),
    ...i32.sub,
    ...i32.lt_s,
    ...control.if,
    ...ld64(s, ld32(e, [...get(a1), ...i32.const(1), ...i32.add])),
    ...set(hi),
    ...control.else,
    ...INF,
    ...set(hi),
    ...control.end,
  ];

  /** The value width of strip `c` of an axis: its last value minus its first (0 for a single tie group). */
  const width = (c: string, s: string, e: string) => [
    ...ld64(s, [...ld32(e, [...get(c), ...i32.const(1), ...i32.add]), ...i32.const(1), ...i32.sub]),
    ...ld64(s, ld32(e, get(c))),
    ...f64.sub,
  ];
  /** `clamp(ceil(REACH * sqrt(ratio)), 1, MAX_REACH)` (NaN: 1) of the f64 ratio on the stack. */
  const reachOf = (ratio: number[], out: string) => [
    ...ratio,
    ...f64.sqrt,
    ...f64.const(REACH),
    ...f64.mul,
    ...f64.ceil,
    ...i32.trunc_sat_f64_s,
    ...set(out),
    ...sel(get(out), i32.const(1), [...get(out), ...i32.const(1), ...i32.gt_s]),
    ...set(out),
    ...sel(get(out), i32.const(MAX_REACH), [...get(out), ...i32.const(MAX_REACH), ...i32.lt_s]),
    ...set(out),
  ];
  /**
   * The block's reach in strips around the cell, per axis: 1 for cells about as wide as high in value space; a cell
   * r times higher than wide takes about REACH * sqrt(r) strips on each side in x (and the converse in y), so that
   * the block is wider than the k-th neighbour distance for most samples (the strips hold about n / G samples
   * each, so the cell's area sets that distance) and the rectangle search below stays rare.
   */
  const reach = () => [
    ...width("cx", "xs", "xe"),
    ...set("xw"),
    ...width("cy", "ys", "ye"),
    ...set("yw"),
    ...reachOf([...get("yw"), ...get("xw"), ...f64.div], "ax"),
    ...reachOf([...get("xw"), ...get("yw"), ...f64.div], "ay"),
  ];
  /** Strips `c - a .. c + a` within `[0, G)` as `lo .. hi`. */
  const span = (c: string, a: string, G: string, lo: string, hi: string) => [
    ...sel([...get(c), ...get(a), ...i32.sub], i32.const(0), [...get(c), ...get(a), ...i32.ge_s]),
    ...set(lo),
    ...sel([...get(c), ...get(a), ...i32.add], [...get(G), ...i32.const(1), ...i32.sub], [
      ...get(c),
      ...get(a),
      ...i32.add,
      ...get(G),
      ...i32.lt_s,
    ]),
    ...set(hi),
  ];

  const code: number[] = [
    // the cells in the order given (a Z-order curve: both marginals' arrays are then read locally)
    ...i32.const(0),
    ...set("ci"),
    ...whileDo([...get("ci"), ...get("cells"), ...i32.lt_s], [
      ...ld32("ord", get("ci")),
      ...set("cx"),
      ...get("cx"),
      ...i32.const(16),
      ...i32.shr_u,
      ...set("cy"),
      ...get("cx"),
      ...i32.const(0xffff),
      ...i32.and,
      ...set("cx"),
      ...ld32("start", [...get("cy"), ...get("Gx"), ...i32.mul, ...get("cx"), ...i32.add]),
      ...set("c0"),
      ...ld32("start", [
        ...get("cy"),
        ...get("Gx"),
        ...i32.mul,
        ...get("cx"),
        ...i32.add,
        ...i32.const(1),
        ...i32.add,
      ]),
      ...set("c1"),
      ...get("c0"),
      ...get("c1"),
      ...i32.lt_s,
      ...control.if,
      ...reach(),
      ...span("cy", "ay", "Gy", "y0", "y1"),
      ...border("y0", "y1", "Gy", "ys", "ye", "yLoV", "yHiV"),
      ...span("cx", "ax", "Gx", "x0", "x1"),
      ...border("x0", "x1", "Gx", "xs", "xe", "xLoV", "xHiV"),
      ...get("xLoV"),
      ...f64x2.splat,
      ...get("yLoV"),
      ...f64x2.replace_lane(1),
      ...set("LOV"),
      ...get("xHiV"),
      ...f64x2.splat,
      ...get("yHiV"),
      ...f64x2.replace_lane(1),
      ...set("HIV"),
      ...get("c0"),
      ...set("p"),
      ...control.loop,
      ...sample,
      ...inc("p", 1),
      ...get("p"),
      ...get("c1"),
      ...i32.lt_s,
      ...control.brIf(0),
      ...control.end,
      ...control.end, // if
      ...inc("ci", 1),
    ]),
    ...get("total"),
    ...control.end,
  ];
  const counts: number[] = [
    // a negative scale: that neuron's fence is over its values' order-preserving bits (plugins/mi/ksg.ts
    // `fenceBucket`)
    ...[...get("xsc"), ...f64.const(0), ...f64.lt, ...set("xbits"), ...get("xsc"), ...f64.abs, ...set("xsc")],
    ...[...get("ysc"), ...f64.const(0), ...f64.lt, ...set("ybits"), ...get("ysc"), ...f64.abs, ...set("ysc")],
    ...i32.const(0),
    ...set("p"),
    ...whileDo([...get("p"), ...get("N"), ...i32.lt_s], [...count, ...inc("p", 1)]),
    ...get("total"),
    ...control.end,
  ];
  return { search: l.body(code), counts: l.body(counts) };
}

function wasmModule(): Uint8Array<ArrayBuffer> {
  const { search, counts } = kernelBodies();
  return moduleBytes([...PARAMS_I32.map(() => type.i32), ...PARAMS_F64.map(() => type.f64), type.i64], [type.i64], [
    { name: "search", body: search },
    { name: "counts", body: counts },
  ]);
}

/**
 * The kernel: returns `total` plus the sum over the grid's samples of `psi(n_x + 1) + psi(n_y + 1)`, fixed point
 * (the table at `psi` holds `round(psi(m) 2^36)` as i64; integer adds, so exact).
 */
export type KsgKernel = (
  px: number,
  py: number,
  pxr: number,
  pyr: number,
  xs: number,
  ys: number,
  xe: number,
  ye: number,
  start: number,
  psi: number,
  heavy: number,
  H: number,
  tail: number,
  Gx: number,
  Gy: number,
  xt: number,
  yt: number,
  n: number,
  M1: number,
  ord: number,
  cells: number,
  rad: number,
  N: number,
  xlo: number,
  xsc: number,
  ylo: number,
  ysc: number,
  total: bigint,
) => bigint;

/** Most heavy points the kernel takes (each is checked by every sample). */
export const MAX_HEAVY = 4096;

/** The compiled kernel and its memory, or null where WebAssembly SIMD is unavailable. */
export const KSG_WASM: { search: KsgKernel; counts: KsgKernel; mem: WebAssembly.Memory } | null = (() => {
  const w = instantiate<{ search: KsgKernel; counts: KsgKernel }>(wasmModule(), 1);
  return w && { search: w.exports.search, counts: w.exports.counts, mem: w.mem };
})();

/** Set `useWasm` to false to force the JavaScript kernel (tests, benchmarks). */
export const ksgKernels: { useWasm: boolean } = { useWasm: KSG_WASM !== null };
