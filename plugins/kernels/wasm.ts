/**
 * Building small WebAssembly modules in code (no toolchain): the one table of instruction emitters every
 * hand-assembled kernel of the project uses (binning, KSG, linear algebra), named as in the WebAssembly text
 * format (`i32.add` is `i32.add`, `f64x2.pmin` is `f64x2.pmin`), named locals, and the module layout the kernels
 * share (one imported memory `env.mem`, one function type, exported functions). Each emitter is the instruction's
 * bytes (an array to spread into a function's code) or a function of its immediates. Spec:
 * https://webassembly.github.io/spec/core/binary/instructions.html
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { f64, instantiate, Locals, moduleBytes, type } from "./wasm.ts";
 * // twice(at, x): the float64 at byte `at` becomes x + x
 * const l = new Locals(["at", "x"]);
 * const body = l.body([...l.get("at"), ...l.get("x"), ...l.get("x"), ...f64.add, ...f64.store(), ...l.end]);
 * const w = instantiate<{ twice(at: number, x: number): void }>(
 *   moduleBytes([type.i32, type.f64], [], [{ name: "twice", body }]),
 *   1,
 * );
 * w!.exports.twice(8, 1.5);
 * assert.equal(new Float64Array(w!.mem.buffer)[1], 3);
 * ```
 *
 * @module
 */

/** Bytes of code. */
export type Code = number[];

/** Unsigned LEB128. */
export function uleb(n: number): Code {
  const out: Code = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

/** Signed LEB128. */
export function sleb(n: number): Code {
  const out: Code = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
}

/** Value types. */
export const type = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b } as const;

/** A load or store with its memory argument (`align`: log2 of the alignment promised, default as given). */
const memory = (opcode: Code, natural: number) => (offset = 0, align = natural): Code => [
  ...opcode,
  ...uleb(align),
  ...uleb(offset),
];
const simd = (op: number): Code => [0xfd, ...uleb(op)];
const lane = (op: number) => (l: number): Code => [...simd(op), l];

/** Control instructions (blocks, loops and ifs without results unless said). */
export const control = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  if: [0x04, 0x40],
  /** `if (result i32)`. */
  ifI32: [0x04, 0x7f],
  /** `if (result f64)`. */
  ifF64: [0x04, 0x7c],
  else: [0x05],
  end: [0x0b],
  br: (depth: number): Code => [0x0c, ...uleb(depth)],
  brIf: (depth: number): Code => [0x0d, ...uleb(depth)],
  select: [0x1b],
  /**
   * A loop that runs `body` until `exit` (code leaving an i32 on the stack) is true, tested before each pass:
   * `block loop <exit> br_if 1 <body> br 0 end end`. Inside `body`, depth 0 continues and depth 1 breaks.
   */
  loopUntil: (exit: Code, body: Code): Code => [
    ...[0x02, 0x40, 0x03, 0x40],
    ...exit,
    ...[0x0d, 1],
    ...body,
    ...[0x0c, 0, 0x0b, 0x0b],
  ],
};

/** `local.get`, `local.set`, `local.tee` by index (see {@linkcode Locals} for names). */
export const local = {
  get: (i: number): Code => [0x20, ...uleb(i)],
  set: (i: number): Code => [0x21, ...uleb(i)],
  tee: (i: number): Code => [0x22, ...uleb(i)],
};

/** i32 instructions. */
export const i32 = {
  const: (v: number): Code => [0x41, ...sleb(v)],
  load: memory([0x28], 2),
  store: memory([0x36], 2),
  eqz: [0x45],
  eq: [0x46],
  lt_s: [0x48],
  gt_s: [0x4a],
  le_s: [0x4c],
  ge_s: [0x4e],
  lt_u: [0x49],
  ge_u: [0x4f],
  ne: [0x47],
  add: [0x6a],
  sub: [0x6b],
  mul: [0x6c],
  and: [0x71],
  or: [0x72],
  xor: [0x73],
  shl: [0x74],
  shr_s: [0x75],
  shr_u: [0x76],
  reinterpret_f32: [0xbc],
  trunc_f64_s: [0xaa],
  /** Saturating: NaN gives 0, out-of-range values the nearest bound. */
  trunc_sat_f64_s: [0xfc, 0x02],
  wrap_i64: [0xa7],
};

/** i64 instructions. */
export const i64 = {
  load: memory([0x29], 3),
  const: (v: number): Code => [0x42, ...sleb(v)],
  add: [0x7c],
  mul: [0x7e],
  and: [0x83],
  or: [0x84],
  shl: [0x86],
  shr_u: [0x88],
  extend_i32_u: [0xad],
};

/** f32 instructions. */
export const f32 = {
  const: (v: number): Code => [0x43, ...new Uint8Array(new Float32Array([v]).buffer)],
  load: memory([0x2a], 2),
  demote_f64: [0xb6],
};

/** f64 instructions. */
export const f64 = {
  const: (v: number): Code => [0x44, ...new Uint8Array(new Float64Array([v]).buffer)],
  load: memory([0x2b], 3),
  store: memory([0x39], 3),
  ne: [0x62],
  lt: [0x63],
  gt: [0x64],
  le: [0x65],
  ge: [0x66],
  ceil: [0x9b],
  floor: [0x9c],
  sqrt: [0x9f],
  add: [0xa0],
  sub: [0xa1],
  mul: [0xa2],
  div: [0xa3],
  min: [0xa4],
  abs: [0x99],
  convert_i32_s: [0xb7],
  convert_i32_u: [0xb8],
  promote_f32: [0xbb],
};

/** v128 instructions (SIMD). */
export const v128 = {
  load: memory(simd(0x00), 3),
  load64_splat: memory(simd(0x0a), 3),
  store: memory(simd(0x0b), 3),
  load64_zero: memory(simd(0x5d), 3),
  /** `v128.const` of 16 bytes. */
  const: (bytes: number[]): Code => [...simd(0x0c), ...bytes],
  and: simd(0x4e),
  or: simd(0x50),
};

/** i16x8 instructions. */
export const i16x8 = {
  splat: simd(0x10),
  extract_lane_u: lane(0x19),
  extend_low_i8x16_u: simd(0x89),
  extend_high_i8x16_u: simd(0x8a),
  shl: simd(0x8b),
  add: simd(0x8e),
  mul: simd(0x95),
};

/** i8x16 instructions. */
export const i8x16 = {
  /** `i8x16.shuffle` of the two operands' 32 bytes by 16 lane indices. */
  shuffle: (lanes: number[]): Code => [...simd(0x0d), ...lanes],
};

/** i32x4 instructions. */
export const i32x4 = {
  splat: simd(0x11),
  extract_lane: lane(0x1b),
  lt_u: simd(0x3a),
  all_true: simd(0xa3),
  shl: simd(0xab),
  add: simd(0xae),
  mul: simd(0xb5),
  trunc_sat_f32x4_s: simd(0xf8),
  trunc_sat_f64x2_s_zero: simd(0xfc),
};

/** f32x4 instructions. */
export const f32x4 = {
  splat: simd(0x13),
  le: simd(0x45),
  sub: simd(0xe5),
  mul: simd(0xe6),
  convert_i32x4_s: simd(0xfa),
};

/** f64x2 instructions. */
export const f64x2 = {
  splat: simd(0x14),
  extract_lane: lane(0x21),
  replace_lane: lane(0x22),
  le: simd(0x4b),
  ge: simd(0x4c),
  promote_low_f32x4: simd(0x5f),
  abs: simd(0xec),
  add: simd(0xf0),
  sub: simd(0xf1),
  mul: simd(0xf2),
  pmin: simd(0xf6),
  pmax: simd(0xf7),
  convert_low_i32x4_s: simd(0xfe),
};

/**
 * A function's locals by name: the parameters first (in order), then each group of declared locals, in the order
 * given (e.g. `{ i32: [...], f64: [...], v128: [...] }`). `get`, `set` and `tee` emit the instruction for a name;
 * `body` prefixes code with the declarations and the size, as a module's code section wants it.
 */
export class Locals {
  readonly #index = new Map<string, number>();
  readonly #groups: [number, number][] = [];
  /** `end`, the last instruction of every body. */
  readonly end: Code = control.end;

  constructor(params: readonly string[], groups: Partial<Record<keyof typeof type, readonly string[]>> = {}) {
    params.forEach((name) => this.#add(name));
    for (const [t, names] of Object.entries(groups) as [keyof typeof type, readonly string[]][]) {
      names.forEach((name) => this.#add(name));
      this.#groups.push([names.length, type[t]]);
    }
  }

  #add(name: string): void {
    if (this.#index.has(name)) throw new Error(`Cannot declare local '${name}' twice: current value is ${name}`);
    this.#index.set(name, this.#index.size);
  }

  /** The index of local `name`. */
  at(name: string): number {
    const i = this.#index.get(name);
    if (i === undefined) throw new Error(`Cannot find local '${name}' as it is not declared: current value is ${name}`);
    return i;
  }

  get(name: string): Code {
    return local.get(this.at(name));
  }

  set(name: string): Code {
    return local.set(this.at(name));
  }

  tee(name: string): Code {
    return local.tee(this.at(name));
  }

  /** `code` (ending with `end`) as a function body: size, local declarations, code. */
  body(code: Code): Code {
    const decl = [...uleb(this.#groups.length), ...this.#groups.flatMap(([n, t]) => [...uleb(n), t])];
    return [...uleb(decl.length + code.length), ...decl, ...code];
  }
}

/**
 * A module importing memory `env.mem` (at least one page) whose functions all have one type:
 * `params`/`results` are value types ({@linkcode type}); each body carries its own size prefix ({@linkcode Locals}).
 */
export function moduleBytes(
  params: number[],
  results: number[],
  funcs: { name: string; body: Code }[],
): Uint8Array<ArrayBuffer> {
  const section = (id: number, body: Code) => [id, ...uleb(body.length), ...body];
  const str = (s: string) => [...uleb(s.length), ...new TextEncoder().encode(s)];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [1, 0x60, ...uleb(params.length), ...params, ...uleb(results.length), ...results]),
    ...section(2, [1, ...str("env"), ...str("mem"), 0x02, 0x00, ...uleb(1)]),
    ...section(3, [...uleb(funcs.length), ...funcs.map(() => 0)]),
    ...section(7, [...uleb(funcs.length), ...funcs.flatMap((f, i) => [...str(f.name), 0x00, ...uleb(i)])]),
    ...section(10, [...uleb(funcs.length), ...funcs.flatMap((f) => f.body)]),
  ]);
}

/**
 * Compiles `bytes` with a fresh memory of `pages` 64 KiB pages: its exports and the memory, or null where the
 * engine refuses the module (no WebAssembly, or no SIMD), so that the caller keeps its JavaScript path.
 */
export function instantiate<E>(
  bytes: Uint8Array<ArrayBuffer>,
  pages: number,
): { exports: E; mem: WebAssembly.Memory } | null {
  try {
    if (!WebAssembly.validate(bytes)) return null;
    const mem = new WebAssembly.Memory({ initial: pages });
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem } });
    return { exports: inst.exports as E, mem };
  } catch {
    return null;
  }
}
