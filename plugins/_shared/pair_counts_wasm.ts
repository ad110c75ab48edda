/**
 * WebAssembly kernel of the binned-MI joint counts (`addPairCounts` in ./pair_counts.ts), assembled at load time
 * with the emitters of `plugins/kernels/wasm.ts` (no toolchain, no dependency; as the binning and KSG kernels).
 *
 * Sixteen rows at a time: one v128 holds sixteen bin codes of a neuron; widened to 16-bit lanes, each lane's table
 * address `(code_a * B + code_b) * 4 + 1024 * (lane mod 8)` is one SIMD multiply-add, so each increment is a lane
 * extraction, a load, an add and a store (the eight-rows-a-word kernel before it spent a shift, a mask, a scale and
 * an add on each address). Lane `k` and lane `k + 8` count into table `k` (eight 256-cell tables), so consecutive
 * increments never wait on each other's store; at the end of a pair the eight tables are summed into the pair's
 * counts four cells at a time and cleared. The same integers as the row-by-row loop (`pair_counts_test.ts` checks
 * it). Measured in docs/bench/mi.md.
 *
 * Memory (bytes): the eight tables (8 KiB), the pairs of a chunk (`[a, b]` Int32), the chunk's counts (Uint32,
 * `B^2` a pair, copied in and out), then the block's codes (neuron-major, `stride` bytes a neuron).
 *
 * @module
 */
import { control, i16x8, i32, i32x4, instantiate, Locals, moduleBytes, v128 } from "../kernels/wasm.ts";

const PARAMS = ["codes", "stride", "groups", "pairs", "p0", "p1", "out", "B", "B2"];

function countBody(): number[] {
  const l = new Locals(PARAMS, {
    i32: ["p", "qa", "qb", "end", "o", "c", "t", "lanes"],
    v128: ["va", "vb", "lo", "hi", "scale", "offs"],
  });
  const get = (n: string) => l.get(n), set = (n: string) => l.set(n);
  const whileDo = (cond: number[], body: number[]) => control.loopUntil([...cond, ...i32.eqz], body);
  const inc = (n: string, d: number) => [...get(n), ...i32.const(d), ...i32.add, ...set(n)];
  /** The byte offset of the codes of the pair's neuron `k` (0: a, 1: b). */
  const codesOf = (k: number) => [
    ...get("codes"),
    ...get("pairs"),
    ...get("p"),
    ...i32.const(3),
    ...i32.shl,
    ...i32.add,
    ...i32.load(4 * k),
    ...get("stride"),
    ...i32.mul,
    ...i32.add,
  ];
  /** Table addresses of eight rows (`widen`: the low or high eight lanes): `code_a * 4B + code_b * 4 + offs`. */
  const addresses = (widen: number[], into: string) => [
    ...get("va"),
    ...widen,
    ...get("scale"),
    ...i16x8.mul,
    ...get("vb"),
    ...widen,
    ...i32.const(2),
    ...i16x8.shl,
    ...i16x8.add,
    ...get("offs"),
    ...i16x8.add,
    ...set(into),
  ];
  // tab[address in lane k of v] += 1
  const bump = (v: string, k: number) => [
    ...get(v),
    ...i16x8.extract_lane_u(k),
    ...set("t"),
    ...get("t"),
    ...get("t"),
    ...i32.load(),
    ...i32.const(1),
    ...i32.add,
    ...i32.store(),
  ];
  /**
   * For cells (or groups of four) `c` from the current `c` up to `end`: `out[o + c] += tab[k][c]` over the eight
   * tables, and the tables' cells cleared; `shift` is log2 of the bytes a step (4: four cells, 2: one).
   */
  const fold = (
    end: number[],
    shift: number,
    loadOut: number[],
    loadTab: (k: number) => number[],
    add: number[],
    storeOut: number[],
    clear: (k: number) => number[],
  ) =>
    whileDo([...get("c"), ...end, ...i32.lt_s], [
      ...get("c"),
      ...i32.const(shift),
      ...i32.shl,
      ...set("t"),
      ...get("o"),
      ...get("t"),
      ...i32.add,
      ...get("o"),
      ...get("t"),
      ...i32.add,
      ...loadOut,
      ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap((k) => [...get("t"), ...loadTab(k), ...add]),
      ...storeOut,
      ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap((k) => [...get("t"), ...clear(k)]),
      ...inc("c", 1),
    ]);
  const lanes8 = [0, 1, 2, 3, 4, 5, 6, 7];
  const code: number[] = [
    ...get("B"),
    ...i32.const(2),
    ...i32.shl,
    ...i16x8.splat,
    ...set("scale"),
    // lane k of eight: table k at byte 1024 k
    ...v128.const(lanes8.flatMap((k) => [0, 4 * k])),
    ...set("offs"),
    // lanes: the cells summed four at a time (the rest one at a time)
    ...get("B2"),
    ...i32.const(2),
    ...i32.shr_u,
    ...set("lanes"),
    ...get("p0"),
    ...set("p"),
    ...whileDo([...get("p"), ...get("p1"), ...i32.lt_s], [
      // qa, qb: the two neurons' codes
      ...codesOf(0),
      ...set("qa"),
      ...codesOf(1),
      ...set("qb"),
      ...get("qa"),
      ...get("groups"),
      ...i32.const(4),
      ...i32.shl,
      ...i32.add,
      ...set("end"),
      ...whileDo([...get("qa"), ...get("end"), ...i32.lt_u], [
        ...get("qa"),
        ...v128.load(0, 0),
        ...set("va"),
        ...get("qb"),
        ...v128.load(0, 0),
        ...set("vb"),
        ...addresses(i16x8.extend_low_i8x16_u, "lo"),
        ...addresses(i16x8.extend_high_i8x16_u, "hi"),
        ...lanes8.flatMap((k) => bump("lo", k)),
        ...lanes8.flatMap((k) => bump("hi", k)),
        ...inc("qa", 16),
        ...inc("qb", 16),
      ]),
      // out[p - p0] += the eight tables; tables cleared
      ...get("out"),
      ...get("p"),
      ...get("p0"),
      ...i32.sub,
      ...get("B2"),
      ...i32.mul,
      ...i32.const(2),
      ...i32.shl,
      ...i32.add,
      ...set("o"),
      ...i32.const(0),
      ...set("c"),
      ...fold(
        get("lanes"),
        4,
        v128.load(0, 2),
        (k) => v128.load(1024 * k, 4),
        i32x4.add,
        v128.store(0, 2),
        (k) => [...v128.const(new Array(16).fill(0)), ...v128.store(1024 * k, 4)],
      ),
      ...get("lanes"),
      ...i32.const(2),
      ...i32.shl,
      ...set("c"),
      ...fold(get("B2"), 2, i32.load(), (k) => i32.load(1024 * k), i32.add, i32.store(), (k) => [
        ...i32.const(0),
        ...i32.store(1024 * k),
      ]),
      ...inc("p", 1),
    ]),
    ...l.end,
  ];
  return l.body(code);
}

/** The compiled kernel and its memory, or null where WebAssembly SIMD is unavailable. */
const KERNEL = (() => {
  const bytes = moduleBytes(PARAMS.map(() => 0x7f), [], [{ name: "count", body: countBody() }]);
  const w = instantiate<{ count: (...args: number[]) => void }>(bytes, 1);
  return w && { count: w.exports.count, mem: w.mem };
})();

/** Pairs per call of the kernel (their counts are copied in and out of its memory). */
const CHUNK = 2048;
/** Byte offsets: the tables (at 0), the chunk's pairs, the chunk's counts, then the codes. */
const PAIRS = 8192, OUT = PAIRS + 8 * CHUNK;

/** Whether the kernel is there (WebAssembly SIMD); set `useWasm` to false to force the JavaScript loop (tests). */
export const pairCountKernel: { available: boolean; useWasm: boolean } = {
  available: KERNEL !== null,
  useWasm: KERNEL !== null,
};

/**
 * Adds, for pairs `p` in `[p0, p1)` whose neurons are both finite (`dirty` 0), the joint counts of the first
 * `groups * 16` rows of `codes` (neuron-major, `stride` bytes a neuron; bin codes below `bins`, at most 16) into
 * `counts[(p - from) * B^2 ..]`. The codes are copied into the kernel's memory first, unless `loaded` says that the
 * previous call, in the same synchronous run of the caller, copied these very codes. Returns false (nothing done)
 * where the kernel is unavailable or the bins do not fit it.
 */
export function addPairCountsWasm(
  codes: Uint8Array,
  stride: number,
  groups: number,
  pairs: Int32Array,
  p0: number,
  p1: number,
  bins: number,
  dirty: Uint8Array,
  counts: Uint32Array,
  from = 0,
  loaded = false,
): boolean {
  const k = KERNEL;
  if (k === null || !pairCountKernel.useWasm || bins > 16) return false;
  const B2 = bins * bins, codesAt = OUT + 4 * B2 * CHUNK;
  const need = codesAt + codes.length;
  if (k.mem.buffer.byteLength < need) k.mem.grow(Math.ceil((need - k.mem.buffer.byteLength) / 65536));
  const buf = k.mem.buffer;
  if (!loaded) {
    const used = groups * 16, neurons = Math.floor(codes.length / stride);
    if (2 * used >= stride) new Uint8Array(buf, codesAt, codes.length).set(codes);
    else {
      // a block far from full: each neuron's used rows only
      const into = new Uint8Array(buf, codesAt, codes.length);
      for (let a = 0; a < neurons; a++) into.set(codes.subarray(a * stride, a * stride + used), a * stride);
    }
  }
  const pv = new Int32Array(buf, PAIRS, 2 * CHUNK), out = new Uint32Array(buf, OUT, B2 * CHUNK);
  for (let c0 = p0; c0 < p1;) {
    // a chunk of up to CHUNK consecutive clean pairs
    let m = 0, c = c0;
    for (; c < p1 && m < CHUNK; c++) {
      const a = pairs[2 * c], b = pairs[2 * c + 1];
      if (dirty[a] || dirty[b]) break;
      pv[2 * m] = a;
      pv[2 * m + 1] = b;
      m++;
    }
    if (m > 0) {
      const at = (c0 - from) * B2;
      out.set(counts.subarray(at, at + m * B2));
      k.count(codesAt, stride, groups, PAIRS, 0, m, OUT, bins, B2);
      counts.set(out.subarray(0, m * B2), at);
    }
    c0 = m > 0 ? c : c + 1; // a dirty pair is left to the caller
  }
  return true;
}
