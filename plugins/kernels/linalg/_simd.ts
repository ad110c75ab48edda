/**
 * The WebAssembly SIMD micro-kernel of the linear-algebra products (built at load time with the emitters of
 * plugins/kernels/wasm.ts), its scratch memory and the blocking both products use. Private to this folder.
 *
 * For KR x 4 blocks of C (float64, row-major, stride nj) the kernel computes `C[i][j] += sum_t A[t][i] B[t][j]`
 * over t = 0..pt-1, with A and B packed in micro-panels (BLIS style: KR rows of A, or 4 columns of B, interleaved
 * along t; panel lengths la and lb). Float32 rows are promoted (exactly) while packed, which measured faster than
 * promoting in the inner loop. The vector lanes run along j, so every entry is still ONE accumulator summed over t
 * in ascending order, with the same IEEE operations as the scalar loop: results are bit-identical to the JS path.
 *
 * @module
 */
import { control, f64x2, i32, instantiate, Locals, moduleBytes, type, v128 } from "../wasm.ts";

/** Block size of the blocked Cholesky and triangular solve. */
export const NB = 64;
/** Tile over the row dimension of products, for cache reuse. */
export const TILE = 128;
/**
 * Rows of the SIMD micro-kernel's register block (times 4 columns). 5 x 4 keeps its 10 accumulators, 2 B vectors,
 * the A splat and the product in 14 of the 16 vector registers (V8 keeps one as scratch); 6 x 4 needs 16 and spills:
 * measured 14 GFLOP/s (CPU time) against 10.5 for 6 x 4.
 */
export const KR = 5;
/** Row tile of the SIMD path (a multiple of KR). */
export const TI = 120;
/** Tile over the inner (parameter) dimension of products. */
export const PTILE = 1024;
/** Scratch layout: a C tile (TI x TILE float64), an A tile (TI x PTILE), then a B panel (all columns x PTILE). */
export const C_OFF = 0, A_OFF = TI * TILE * 8, B_OFF = A_OFF + TI * PTILE * 8;

/** The body of `kernel(a, b, c, mi, nj, pt, la, lb)` (byte offsets of the panels and the C tile, sizes). */
function kernelBody(): number[] {
  const acc = (r: number, h: number) => `acc${2 * r + h}`;
  const l = new Locals(["a", "b", "c", "mi", "nj", "pt", "la", "lb"], {
    i32: ["i", "j", "pa", "pb", "t", "pc", "sa", "sb", "sc"],
    v128: [...Array.from({ length: 2 * KR }, (_, x) => `acc${x}`), "vb0", "vb1", "va"],
  });
  const get = (n: string) => l.get(n), set = (n: string) => l.set(n);
  /** `name += step`; `name += local` when step is a name. */
  const add = (name: string, step: number | string) => [
    ...[...get(name), ...(typeof step === "number" ? i32.const(step) : get(step)), ...i32.add],
    ...set(name),
  ];
  /** `to = base + index * length * 8` (the start of a panel). */
  const panel = (base: string, index: string, length: string, to: string) => [
    ...[...get(base), ...get(index), ...get(length), ...i32.mul, ...i32.const(8), ...i32.mul, ...i32.add],
    ...set(to),
  ];
  const rowAddr = (r: number) => [...get("pc"), ...get("sc"), ...i32.const(r), ...i32.mul, ...i32.add];
  /** `op(r, h)` for the 2 KR accumulators in order. */
  const each = (op: (r: number, h: number) => number[]) =>
    Array.from({ length: KR }, (_, r) => [...op(r, 0), ...op(r, 1)]).flat();
  // t passes of rank-1 updates: acc[r][h] += splat(A[t][r]) * B[t][2h..2h+1]
  const tLoop = [
    ...get("pt"),
    ...set("t"),
    ...control.block,
    ...[...get("t"), ...i32.eqz, ...control.brIf(0)],
    ...control.loop,
    ...[...get("pb"), ...v128.load(0), ...set("vb0"), ...get("pb"), ...v128.load(16), ...set("vb1")],
    ...Array.from({ length: KR }, (_, r) => [
      ...[...get("pa"), ...v128.load64_splat(r * 8), ...set("va")],
      ...[0, 1].flatMap((h) => [
        ...[...get(acc(r, h)), ...get("va"), ...get(h ? "vb1" : "vb0"), ...f64x2.mul, ...f64x2.add],
        ...set(acc(r, h)),
      ]),
    ]).flat(),
    ...add("pa", "sa"),
    ...add("pb", "sb"),
    ...[...get("t"), ...i32.const(1), ...i32.sub, ...l.tee("t"), ...control.brIf(0)],
    ...control.end,
    ...control.end,
  ];
  // one KR x 4 block of C: load it, the t passes, store it
  const block = [
    ...[...get("c"), ...get("i"), ...get("sc"), ...i32.mul, ...i32.add],
    ...[...get("j"), ...i32.const(8), ...i32.mul, ...i32.add, ...set("pc")],
    ...each((r, h) => [...rowAddr(r), ...v128.load(16 * h), ...set(acc(r, h))]),
    ...panel("a", "i", "la", "pa"),
    ...panel("b", "j", "lb", "pb"),
    ...tLoop,
    ...each((r, h) => [...rowAddr(r), ...get(acc(r, h)), ...v128.store(16 * h)]),
  ];
  return l.body([
    ...[...i32.const(KR * 8), ...set("sa"), ...i32.const(4 * 8), ...set("sb")],
    ...[...get("nj"), ...i32.const(8), ...i32.mul, ...set("sc")],
    ...[...i32.const(0), ...set("i")],
    ...control.loopUntil([...get("i"), ...get("mi"), ...i32.ge_u], [
      ...[...i32.const(0), ...set("j")],
      ...control.loopUntil([...get("j"), ...get("nj"), ...i32.ge_u], [...block, ...add("j", 4)]),
      ...add("i", KR),
    ]),
    ...control.end,
  ]);
}

/** `kernel(a, b, c, mi, nj, pt, la, lb)`: see the module header. */
type KernelFn = (a: number, b: number, c: number, mi: number, nj: number, pt: number, la: number, lb: number) => void;

/** The SIMD kernel and its scratch memory, or null where WebAssembly SIMD is unavailable. */
export const SIMD: { f64: KernelFn; mem: WebAssembly.Memory } | null = (() => {
  const w = instantiate<{ f64: KernelFn }>(
    moduleBytes(Array(8).fill(type.i32), [], [{ name: "f64", body: kernelBody() }]),
    20, // grown on demand (ensureMemory)
  );
  if (!w) return null;
  // V8 starts WebAssembly in its baseline compiler (Liftoff, ~2x slower here) and tiers a function up to the
  // optimising compiler after enough calls; our kernels run few, long calls, so a few thousand tiny calls
  // (~5 ms) trigger the tier-up now.
  for (let r = 0; r < 3000; r++) {
    w.exports.f64(0, 4096, 8192, KR, 4, 8, 8, 8);
    w.exports.f64(0, 4096, 8192, KR, 4, 8, 8, 8);
  }
  return { f64: w.exports.f64, mem: w.mem };
})();

/** Grows the kernel's scratch memory to at least `bytes`. */
export function ensureMemory(bytes: number): void {
  const have = SIMD!.mem.buffer.byteLength;
  if (bytes > have) SIMD!.mem.grow(Math.ceil((bytes - have) / 65536));
}

/** Whether the WebAssembly SIMD kernels are in use (else the scalar JavaScript kernels). */
export const wasmSimd: boolean = SIMD !== null;

/**
 * Kernel switch: set `useWasm` to false to force the scalar JavaScript kernels (tests, benchmarks; same results).
 * Jobs carry it to worker threads.
 */
export const kernels: { useWasm: boolean } = { useWasm: SIMD !== null };
