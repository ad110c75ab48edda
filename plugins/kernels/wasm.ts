/**
 * Building small WebAssembly modules in code (no toolchain): LEB128 encodings, constants, and the module
 * layout every hand-assembled kernel of the project shares (one imported memory `env.mem`, one function type,
 * exported functions). Used by the binning, KSG and linear-algebra kernels.
 *
 * @module
 */

/** Unsigned LEB128. */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

/** Signed LEB128. */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
}

/** `f64.const v`. */
export function f64const(v: number): number[] {
  return [0x44, ...new Uint8Array(new Float64Array([v]).buffer)];
}

/**
 * A module importing memory `env.mem` (at least one page) whose functions all have one type:
 * `params`/`results` are value types (0x7f i32, 0x7c f64, ...); each body carries its own size prefix.
 */
export function moduleBytes(
  params: number[],
  results: number[],
  funcs: { name: string; body: number[] }[],
): Uint8Array<ArrayBuffer> {
  const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
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
