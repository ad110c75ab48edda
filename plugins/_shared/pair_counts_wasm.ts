/**
 * WebAssembly kernel of the binned-MI joint counts (`addPairCounts` in ./pair_counts.ts), assembled at load time
 * with the emitters of `plugins/kernels/wasm.ts` (no toolchain, no dependency; as the binning and KSG kernels).
 *
 * Eight rows at a time: one 64-bit word holds eight bin codes of a neuron, and `code_a * B + code_b` of all eight
 * byte lanes is one i64 multiply-add (no lane carries: `(B - 1) * B + B - 1 < 256` for `B <= 16`), so each
 * increment is a shift, a mask, a load and a store. Byte lane `k` counts into its own table (eight 256-cell
 * tables), so consecutive increments never wait on each other's store; at the end of a pair the eight tables are
 * summed into the pair's counts four cells at a time and cleared. The same integers as the row-by-row loop
 * (`pair_counts_test.ts` checks it). Measured about 2x the JavaScript four-rows-a-word loop (docs/bench/mi.md).
 *
 * Memory (bytes): the eight tables (8 KiB), the pairs of a chunk (`[a, b]` Int32), the chunk's counts (Uint32,
 * `B^2` a pair, copied in and out), then the block's codes (neuron-major, `stride` bytes a neuron).
 *
 * @module
 */
import { control, i32, i32x4, i64, instantiate, Locals, moduleBytes, v128 } from "../kernels/wasm.ts";

const PARAMS = ["codes", "stride", "words", "pairs", "p0", "p1", "out", "tab", "B", "B2"];

function countBody(): number[] {
  const l = new Locals(PARAMS, { i32: ["p", "qa", "qb", "end", "o", "c", "t", "lanes"], i64: ["j", "Bw"] });
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
  // tab[lane k][(j >> 8k) & 255] += 1
  const bump = (k: number) => [
    ...get("tab"),
    ...get("j"),
    ...(k > 0 ? [...i64.const(8 * k), ...i64.shr_u] : []),
    ...i32.wrap_i64,
    ...i32.const(255),
    ...i32.and,
    ...i32.const(2),
    ...i32.shl,
    ...i32.add,
    ...set("t"),
    ...get("t"),
    ...get("t"),
    ...i32.load(1024 * k),
    ...i32.const(1),
    ...i32.add,
    ...i32.store(1024 * k),
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
      ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap((k) => [...get("tab"), ...get("t"), ...i32.add, ...loadTab(k), ...add]),
      ...storeOut,
      ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap((k) => [...get("tab"), ...get("t"), ...i32.add, ...clear(k)]),
      ...inc("c", 1),
    ]);
  const code: number[] = [
    ...get("B"),
    ...i64.extend_i32_u,
    ...set("Bw"),
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
      ...get("words"),
      ...i32.const(3),
      ...i32.shl,
      ...i32.add,
      ...set("end"),
      ...whileDo([...get("qa"), ...get("end"), ...i32.lt_u], [
        ...get("qa"),
        ...i64.load(),
        ...get("Bw"),
        ...i64.mul,
        ...get("qb"),
        ...i64.load(),
        ...i64.add,
        ...set("j"),
        ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap(bump),
        ...inc("qa", 8),
        ...inc("qb", 8),
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
/** Byte offsets: the tables, the chunk's pairs, the chunk's counts, then the codes. */
const TAB = 0, PAIRS = 8192, OUT = PAIRS + 8 * CHUNK;

/** Whether the kernel is there (WebAssembly SIMD); set `useWasm` to false to force the JavaScript loop (tests). */
export const pairCountKernel: { available: boolean; useWasm: boolean } = {
  available: KERNEL !== null,
  useWasm: KERNEL !== null,
};

/**
 * Adds, for pairs `p` in `[p0, p1)` whose neurons are both finite (`dirty` 0), the joint counts of the first
 * `words * 8` rows of `codes` (neuron-major, `stride` bytes a neuron, a multiple of 8; bin codes below `bins`,
 * at most 16) into `counts[p * B^2 ..]` (the codes are copied into the kernel's memory first). Returns false
 * (nothing done) where the kernel is unavailable or the layout does not fit it.
 */
export function addPairCountsWasm(
  codes: Uint8Array,
  stride: number,
  words: number,
  pairs: Int32Array,
  p0: number,
  p1: number,
  bins: number,
  dirty: Uint8Array,
  counts: Uint32Array,
): boolean {
  const k = KERNEL;
  if (k === null || !pairCountKernel.useWasm || bins > 16 || stride % 8 !== 0) return false;
  const B2 = bins * bins, codesAt = OUT + 4 * B2 * CHUNK;
  const need = codesAt + codes.length;
  if (k.mem.buffer.byteLength < need) k.mem.grow(Math.ceil((need - k.mem.buffer.byteLength) / 65536));
  const buf = k.mem.buffer;
  new Uint8Array(buf, codesAt, codes.length).set(codes);
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
      out.set(counts.subarray(c0 * B2, (c0 + m) * B2));
      k.count(codesAt, stride, words, PAIRS, 0, m, OUT, TAB, bins, B2);
      counts.set(out.subarray(0, m * B2), c0 * B2);
    }
    c0 = m > 0 ? c : c + 1; // a dirty pair is left to the caller
  }
  return true;
}
