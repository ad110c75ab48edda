/**
 * WebAssembly SIMD kernel of {@linkcode ksgPair} for k = 3, assembled byte by byte at load time (no toolchain, no
 * dependency; the same approach as `plugins/kernels/linalg/linalg.ts`).
 *
 * Why: the JavaScript kernel's neighbour search is bound by branch mispredictions (V8 compiles `Math.min`, `Math.max`
 * and float ternaries to branches, and keeping the k smallest distances takes data-dependent branches). Here the
 * candidates are scanned two at a time in float64 lanes and each lane keeps its 4 smallest distances (the sample
 * itself and its 3 nearest) with a branch-free `pmin`/`pmax` insertion network; the two lanes' lists are merged at
 * the end. Every distance is the same float64 `|a - b|`, the marginal counts are the same comparisons and the
 * `psi` terms are summed as exact integers, so the estimate is bit-identical to the JavaScript kernel's.
 *
 * The kernel runs over one pair: the grid cells in order, each sample's 3 x 3 block of cells, the exact strip
 * rectangle when the block's border is nearer than the 3rd distance, "heavy" points (a point shared by more than
 * k samples, stored once outside the grid and checked by every sample: it lowers all 4 distances at once), then
 * the four interleaved binary searches of the marginal counts, and sums `psi(n_x + 1) + psi(n_y + 1)` as i64
 * fixed-point integers (units of `2^-36`, `fixedPsi` in `plugins/mi/ksg.ts`): exact, so any order gives the same sum.
 *
 * @module
 */
import { f64const, moduleBytes, sleb, uleb } from "../kernels/wasm.ts";

/** Parameters of the kernel (i32 byte offsets into memory, counts), then the running total (i64, fixed point). */
const PARAMS = ["px", "py", "pxr", "pyr", "xs", "ys", "xe", "ye", "start", "psi", "heavy", "H", "tail", "Gx", "Gy"];
const I32 = [
  "cy",
  "cx",
  "y0",
  "y1",
  "x0",
  "x1",
  "yr0",
  "yr1",
  "xr0",
  "xr1",
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
  "lx",
  "hx",
  "ly",
  "hy",
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
];
const F64 = ["x", "y", "kth", "yLoV", "yHiV", "xLoV", "xHiV", "r"];
const V128 = ["X", "Y", "XY", "B0", "B1", "B2", "B3", "D", "T", "LOV", "HIV"];

function kernelBody(): number[] {
  const idx = new Map<string, number>();
  [...PARAMS, "total", ...I32, ...F64, ...V128].forEach((name, i) => idx.set(name, i));
  const L = (name: string) => {
    const i = idx.get(name);
    if (i === undefined) throw new Error(`unknown local ${name}`);
    return uleb(i);
  };
  const get = (n: string) => [0x20, ...L(n)], set = (n: string) => [0x21, ...L(n)];
  const i32 = (v: number) => [0x41, ...sleb(v)];
  const simd = (op: number) => [0xfd, ...uleb(op)];
  const [ADD, SUB, MUL, AND, OR, SHL, SHR_U] = [0x6a, 0x6b, 0x6c, 0x71, 0x72, 0x74, 0x76];
  const [EQ, LT_S, GT_S, LE_S, GE_S] = [0x46, 0x48, 0x4a, 0x4c, 0x4e];
  const [FSUB, FLT, FLE, FGE, FGT] = [0xa1, 0x63, 0x65, 0x66, 0x64];
  const SELECT = 0x1b, BLOCK = [0x02, 0x40], LOOP = [0x03, 0x40], IF = [0x04, 0x40], ELSE = 0x05, END = 0x0b;
  const BR = (d: number) => [0x0c, d], BR_IF = (d: number) => [0x0d, d];
  // loads: element i of the array at byte offset `base` (i32 element index on the stack)
  const ld32 = (base: string, index: number[]) => [...get(base), ...index, ...i32(2), SHL, ADD, 0x28, 2, 0];
  const ld64 = (base: string, index: number[]) => [...get(base), ...index, ...i32(3), SHL, ADD, 0x2b, 3, 0];
  const ldI64 = (base: string, index: number[]) => [...get(base), ...index, ...i32(3), SHL, ADD, 0x29, 3, 0];
  const I64_ADD = 0x7c;
  const V_LOAD = (addr: number[]) => [...addr, ...simd(0x00), 3, 0];
  const [V_SPLAT, V_EXTRACT, V_REPLACE, V_ABS, V_SUB, V_PMIN, V_PMAX] = [0x14, 0x21, 0x22, 0xec, 0xf1, 0xf6, 0xf7];
  const SWAP = [...simd(0x0d), 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7];
  const INF = f64const(Infinity);
  const vINF = [...INF, ...simd(V_SPLAT)];

  /** Inserts the samples [qa, qb) into the lanes' sorted lists B0 <= B1 <= B2 <= B3, two at a time. */
  const scan = (): number[] => [
    ...get("qa"),
    ...set("q"),
    ...BLOCK,
    ...LOOP,
    ...get("q"),
    ...get("qb"),
    GE_S,
    ...BR_IF(1),
    // D = max(|X - px[q..q+1]|, |Y - py[q..q+1]|)
    ...get("X"),
    ...V_LOAD([...get("px"), ...get("q"), ...i32(3), SHL, ADD]),
    ...simd(V_SUB),
    ...simd(V_ABS),
    ...get("Y"),
    ...V_LOAD([...get("py"), ...get("q"), ...i32(3), SHL, ADD]),
    ...simd(V_SUB),
    ...simd(V_ABS),
    ...simd(V_PMAX),
    // a lone last sample: lane 1 (the next range's sample) becomes +inf (tail table: (0, 0), (0, inf))
    ...V_LOAD([...get("tail"), ...get("q"), ...i32(1), ADD, ...get("qb"), EQ, ...i32(4), SHL, ADD]),
    ...simd(V_PMAX),
    ...set("D"),
    ...get("B0"),
    ...get("D"),
    ...simd(V_PMAX),
    ...set("T"),
    ...get("B0"),
    ...get("D"),
    ...simd(V_PMIN),
    ...set("B0"),
    ...get("B1"),
    ...get("T"),
    ...simd(V_PMAX),
    ...set("D"),
    ...get("B1"),
    ...get("T"),
    ...simd(V_PMIN),
    ...set("B1"),
    ...get("B2"),
    ...get("D"),
    ...simd(V_PMAX),
    ...set("T"),
    ...get("B2"),
    ...get("D"),
    ...simd(V_PMIN),
    ...set("B2"),
    ...get("B3"),
    ...get("T"),
    ...simd(V_PMIN),
    ...set("B3"),
    ...get("q"),
    ...i32(2),
    ADD,
    ...set("q"),
    ...BR(0),
    END,
    END,
  ];

  /** kth = the 4th smallest of the two lanes' lists: min(a3, b3, max(a0, b2), max(a1, b1), max(a2, b0)). */
  const merge = (): number[] => [
    ...get("B3"),
    ...get("B0"),
    ...get("B2"),
    ...get("B2"),
    ...SWAP,
    ...simd(V_PMAX),
    ...simd(V_PMIN),
    ...get("B1"),
    ...get("B1"),
    ...get("B1"),
    ...SWAP,
    ...simd(V_PMAX),
    ...simd(V_PMIN),
    ...set("T"),
    ...get("T"),
    ...get("T"),
    ...get("T"),
    ...SWAP,
    ...simd(V_PMIN),
    ...simd(V_EXTRACT),
    0,
    ...set("kth"),
  ];

  /** while (cond) body */
  const whileDo = (cond: number[], body: number[]) => [
    ...BLOCK,
    ...LOOP,
    ...cond,
    0x45, // i32.eqz
    ...BR_IF(1),
    ...body,
    ...BR(0),
    END,
    END,
  ];
  /** (a < b) ? a : b style select: [then, else, cond] */
  const sel = (a: number[], b: number[], cond: number[]) => [...a, ...b, ...cond, SELECT];
  /** cond && test (both i32) */
  const and = (cond: number[], test: number[]) => [...cond, 0x04, 0x7f, ...test, ELSE, ...i32(0), END];
  const inc = (n: string, d: number) => [...get(n), ...i32(d), ADD, ...set(n)];

  // per sample
  const sample: number[] = [
    ...ld64("px", get("p")),
    ...set("x"),
    ...ld64("py", get("p")),
    ...set("y"),
    ...get("x"),
    ...simd(V_SPLAT),
    ...set("X"),
    ...get("y"),
    ...simd(V_SPLAT),
    ...set("Y"),
    ...get("X"),
    ...get("y"),
    ...simd(V_REPLACE),
    1,
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
    ...LOOP,
    ...ld32("start", [...get("gy"), ...get("Gx"), MUL, ...get("x0"), ADD]),
    ...set("qa"),
    ...ld32("start", [...get("gy"), ...get("Gx"), MUL, ...get("x1"), ADD, ...i32(1), ADD]),
    ...set("qb"),
    ...scan(),
    ...inc("gy", 1),
    ...get("gy"),
    ...get("y1"),
    LE_S,
    ...BR_IF(0),
    END,
    // heavy points (lane 0 only): each stands for more than k samples, so it lowers all four distances
    ...i32(0),
    ...set("h"),
    ...whileDo([...get("h"), ...get("H"), LT_S], [
      ...get("X"),
      ...V_LOAD([...get("heavy"), ...get("h"), ...i32(4), SHL, ADD]),
      ...simd(V_SUB),
      ...simd(V_ABS),
      ...get("Y"),
      ...V_LOAD([...get("heavy"), ...get("h"), ...i32(4), SHL, ADD, ...i32(16 * 4096), ADD]),
      ...simd(V_SUB),
      ...simd(V_ABS),
      ...simd(V_PMAX),
      ...INF,
      ...simd(V_REPLACE),
      1,
      ...set("D"),
      ...get("B0"),
      ...get("D"),
      ...simd(V_PMIN),
      ...set("B0"),
      ...get("B1"),
      ...get("D"),
      ...simd(V_PMIN),
      ...set("B1"),
      ...get("B2"),
      ...get("D"),
      ...simd(V_PMIN),
      ...set("B2"),
      ...get("B3"),
      ...get("D"),
      ...simd(V_PMIN),
      ...set("B3"),
      ...inc("h", 1),
    ]),
    ...merge(),
    ...get("xr0"),
    ...set("lx"),
    ...get("xr1"),
    ...set("hx"),
    ...get("yr0"),
    ...set("ly"),
    ...get("yr1"),
    ...set("hy"),
    // bound = min(x - xLoV, xHiV - x, y - yLoV, yHiV - y); if !(kth <= bound): the rectangle
    ...get("kth"),
    ...get("XY"),
    ...get("LOV"),
    ...simd(V_SUB),
    ...get("HIV"),
    ...get("XY"),
    ...simd(V_SUB),
    ...simd(V_PMIN),
    ...set("T"),
    ...get("T"),
    ...get("T"),
    ...get("T"),
    ...SWAP,
    ...simd(V_PMIN),
    ...simd(V_EXTRACT),
    0,
    FLE,
    0x45,
    ...IF,
    ...get("x0"),
    ...set("X0"),
    ...get("x1"),
    ...set("X1"),
    ...get("y0"),
    ...set("Y0"),
    ...get("y1"),
    ...set("Y1"),
    ...whileDo(
      and([
        ...get("X0"),
        ...i32(0),
        GT_S,
      ], [
        ...get("x"),
        ...ld64("xs", [...ld32("xe", get("X0")), ...i32(1), SUB]),
        FSUB,
        ...get("kth"),
        FLT,
      ]),
      inc("X0", -1),
    ),
    ...whileDo(
      and([
        ...get("X1"),
        ...get("Gx"),
        ...i32(1),
        SUB,
        LT_S,
      ], [
        ...ld64("xs", ld32("xe", [...get("X1"), ...i32(1), ADD])),
        ...get("x"),
        FSUB,
        ...get("kth"),
        FLT,
      ]),
      inc("X1", 1),
    ),
    ...whileDo(
      and([
        ...get("Y0"),
        ...i32(0),
        GT_S,
      ], [
        ...get("y"),
        ...ld64("ys", [...ld32("ye", get("Y0")), ...i32(1), SUB]),
        FSUB,
        ...get("kth"),
        FLT,
      ]),
      inc("Y0", -1),
    ),
    ...whileDo(
      and([
        ...get("Y1"),
        ...get("Gy"),
        ...i32(1),
        SUB,
        LT_S,
      ], [
        ...ld64("ys", ld32("ye", [...get("Y1"), ...i32(1), ADD])),
        ...get("y"),
        FSUB,
        ...get("kth"),
        FLT,
      ]),
      inc("Y1", 1),
    ),
    // rows Y0..Y1: outside the block's rows columns X0..X1, inside them X0..x0-1 and x1+1..X1
    ...get("Y0"),
    ...set("gy"),
    ...LOOP,
    ...get("gy"),
    ...get("Gx"),
    MUL,
    ...set("row"),
    ...get("gy"),
    ...get("y0"),
    GE_S,
    ...get("gy"),
    ...get("y1"),
    LE_S,
    AND,
    ...set("ins"),
    ...ld32("start", [...get("row"), ...get("X0"), ADD]),
    ...set("qa"),
    ...ld32("start", [...get("row"), ...sel(get("x0"), [...get("X1"), ...i32(1), ADD], get("ins")), ADD]),
    ...set("qb"),
    ...scan(),
    ...ld32("start", [...get("row"), ...get("x1"), ...i32(1), ADD, ADD]),
    ...set("qa"),
    ...sel(ld32("start", [...get("row"), ...get("X1"), ...i32(1), ADD, ADD]), get("qa"), get("ins")),
    ...set("qb"),
    ...scan(),
    ...inc("gy", 1),
    ...get("gy"),
    ...get("Y1"),
    LE_S,
    ...BR_IF(0),
    END,
    ...merge(),
    ...ld32("xe", get("X0")),
    ...set("lx"),
    ...ld32("xe", [...get("X1"), ...i32(1), ADD]),
    ...set("hx"),
    ...ld32("ye", get("Y0")),
    ...set("ly"),
    ...ld32("ye", [...get("Y1"), ...i32(1), ADD]),
    ...set("hy"),
    END,
    // outside the radius: distance >= kth (kth > 0), distance > 0 (kth = 0: the smallest double)
    ...sel(get("kth"), f64const(Number.MIN_VALUE), [...get("kth"), ...f64const(0), FGT]),
    ...set("r"),
    ...get("lx"),
    ...set("b1"),
    ...ld32("pxr", get("p")),
    ...i32(1),
    ADD,
    ...get("lx"),
    SUB,
    ...set("l1"),
    ...ld32("pxr", get("p")),
    ...set("b2"),
    ...get("hx"),
    ...get("b2"),
    SUB,
    ...set("l2"),
    ...get("ly"),
    ...set("b3"),
    ...ld32("pyr", get("p")),
    ...i32(1),
    ADD,
    ...get("ly"),
    SUB,
    ...set("l3"),
    ...ld32("pyr", get("p")),
    ...set("b4"),
    ...get("hy"),
    ...get("b4"),
    SUB,
    ...set("l4"),
    ...whileDo([...get("l1"), ...get("l2"), OR, ...get("l3"), OR, ...get("l4"), OR, ...i32(1), GT_S], [
      ...get("l1"),
      ...i32(1),
      SHR_U,
      ...set("h1"),
      ...get("l2"),
      ...i32(1),
      SHR_U,
      ...set("h2"),
      ...get("l3"),
      ...i32(1),
      SHR_U,
      ...set("h3"),
      ...get("l4"),
      ...i32(1),
      SHR_U,
      ...set("h4"),
      // b1 += h1 if x - xs[b1 + h1] >= r (select: a conditional move, no branch)
      ...get("b1"),
      ...get("h1"),
      ADD,
      ...get("b1"),
      ...get("x"),
      ...ld64("xs", [...get("b1"), ...get("h1"), ADD]),
      FSUB,
      ...get("r"),
      FGE,
      SELECT,
      ...set("b1"),
      // b2 += h2 if xs[b2 + h2] - x < r
      ...get("b2"),
      ...get("h2"),
      ADD,
      ...get("b2"),
      ...ld64("xs", [...get("b2"), ...get("h2"), ADD]),
      ...get("x"),
      FSUB,
      ...get("r"),
      FLT,
      SELECT,
      ...set("b2"),
      ...get("b3"),
      ...get("h3"),
      ADD,
      ...get("b3"),
      ...get("y"),
      ...ld64("ys", [...get("b3"), ...get("h3"), ADD]),
      FSUB,
      ...get("r"),
      FGE,
      SELECT,
      ...set("b3"),
      ...get("b4"),
      ...get("h4"),
      ADD,
      ...get("b4"),
      ...ld64("ys", [...get("b4"), ...get("h4"), ADD]),
      ...get("y"),
      FSUB,
      ...get("r"),
      FLT,
      SELECT,
      ...set("b4"),
      ...get("l1"),
      ...get("h1"),
      SUB,
      ...set("l1"),
      ...get("l2"),
      ...get("h2"),
      SUB,
      ...set("l2"),
      ...get("l3"),
      ...get("h3"),
      SUB,
      ...set("l3"),
      ...get("l4"),
      ...get("h4"),
      SUB,
      ...set("l4"),
    ]),
    // total += psi[n_x + 1] + psi[n_y + 1] (fixed-point i64), n_x = b2 - (b1 + (x - xs[b1] >= r))
    ...get("total"),
    ...ldI64("psi", [
      ...get("b2"),
      ...get("b1"),
      ...get("x"),
      ...ld64("xs", get("b1")),
      FSUB,
      ...get("r"),
      FGE,
      ADD,
      SUB,
      ...i32(1),
      ADD,
    ]),
    ...ldI64("psi", [
      ...get("b4"),
      ...get("b3"),
      ...get("y"),
      ...ld64("ys", get("b3")),
      FSUB,
      ...get("r"),
      FGE,
      ADD,
      SUB,
      ...i32(1),
      ADD,
    ]),
    I64_ADD,
    I64_ADD,
    ...set("total"),
  ];
  // the block's border values of a row (y) or column (x) strip range: lo = s[e[a0] - 1] when a0 > 0 (else -inf),
  // hi = s[e[a1 + 1]] when a1 < G - 1 (else +inf)
  const border = (a0: string, a1: string, G: string, s: string, e: string, lo: string, hi: string) => [
    ...get(a0),
    ...i32(0),
    GT_S,
    ...IF,
    ...ld64(s, [...ld32(e, get(a0)), ...i32(1), SUB]),
    ...set(lo),
    ELSE,
    ...f64const(-Infinity),
    ...set(lo),
    END,
    ...get(a1),
    ...get(G),
    ...i32(1),
    SUB,
    LT_S,
    ...IF,
    ...ld64(s, ld32(e, [...get(a1), ...i32(1), ADD])),
    ...set(hi),
    ELSE,
    ...INF,
    ...set(hi),
    END,
  ];

  const code: number[] = [
    ...i32(0),
    ...set("cy"),
    ...whileDo([...get("cy"), ...get("Gy"), LT_S], [
      ...sel([...get("cy"), ...i32(1), SUB], i32(0), [...get("cy"), ...i32(0), GT_S]),
      ...set("y0"),
      ...sel([...get("cy"), ...i32(1), ADD], [...get("Gy"), ...i32(1), SUB], [
        ...get("cy"),
        ...i32(1),
        ADD,
        ...get("Gy"),
        LT_S,
      ]),
      ...set("y1"),
      ...border("y0", "y1", "Gy", "ys", "ye", "yLoV", "yHiV"),
      ...ld32("ye", get("y0")),
      ...set("yr0"),
      ...ld32("ye", [...get("y1"), ...i32(1), ADD]),
      ...set("yr1"),
      ...i32(0),
      ...set("cx"),
      ...whileDo([...get("cx"), ...get("Gx"), LT_S], [
        ...ld32("start", [...get("cy"), ...get("Gx"), MUL, ...get("cx"), ADD]),
        ...set("c0"),
        ...ld32("start", [...get("cy"), ...get("Gx"), MUL, ...get("cx"), ADD, ...i32(1), ADD]),
        ...set("c1"),
        ...get("c0"),
        ...get("c1"),
        LT_S,
        ...IF,
        ...sel([...get("cx"), ...i32(1), SUB], i32(0), [...get("cx"), ...i32(0), GT_S]),
        ...set("x0"),
        ...sel([...get("cx"), ...i32(1), ADD], [...get("Gx"), ...i32(1), SUB], [
          ...get("cx"),
          ...i32(1),
          ADD,
          ...get("Gx"),
          LT_S,
        ]),
        ...set("x1"),
        ...border("x0", "x1", "Gx", "xs", "xe", "xLoV", "xHiV"),
        ...ld32("xe", get("x0")),
        ...set("xr0"),
        ...ld32("xe", [...get("x1"), ...i32(1), ADD]),
        ...set("xr1"),
        ...get("xLoV"),
        ...simd(V_SPLAT),
        ...get("yLoV"),
        ...simd(V_REPLACE),
        1,
        ...set("LOV"),
        ...get("xHiV"),
        ...simd(V_SPLAT),
        ...get("yHiV"),
        ...simd(V_REPLACE),
        1,
        ...set("HIV"),
        ...get("c0"),
        ...set("p"),
        ...LOOP,
        ...sample,
        ...inc("p", 1),
        ...get("p"),
        ...get("c1"),
        LT_S,
        ...BR_IF(0),
        END,
        END, // if
        ...inc("cx", 1),
      ]),
      ...inc("cy", 1),
    ]),
    ...get("total"),
    END,
  ];
  const locals = [3, ...uleb(I32.length), 0x7f, ...uleb(F64.length), 0x7c, ...uleb(V128.length), 0x7b];
  return [...uleb(locals.length + code.length), ...locals, ...code];
}

function wasmModule(): Uint8Array<ArrayBuffer> {
  return moduleBytes([...PARAMS.map(() => 0x7f), 0x7e], [0x7e], [{ name: "pair", body: kernelBody() }]);
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
  total: bigint,
) => bigint;

/** Most heavy points the kernel takes (each is checked by every sample). */
export const MAX_HEAVY = 4096;

/** The compiled kernel and its memory, or null where WebAssembly SIMD is unavailable. */
export const KSG_WASM: { pair: KsgKernel; mem: WebAssembly.Memory } | null = (() => {
  try {
    const bytes = wasmModule();
    if (!WebAssembly.validate(bytes)) return null;
    const mem = new WebAssembly.Memory({ initial: 1 });
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem } });
    return { pair: inst.exports.pair as KsgKernel, mem };
  } catch {
    return null;
  }
})();

/** Set `useWasm` to false to force the JavaScript kernel (tests, benchmarks). */
export const ksgKernels: { useWasm: boolean } = { useWasm: KSG_WASM !== null };
