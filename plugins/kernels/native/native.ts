/**
 * infotap's native kernels (`infotap_native.c` beside this file), loaded through Deno's FFI where `npm install`
 * built them (scripts/build_native.sh: `build/native/libinfotap_native.so`) and the run may load them (`--allow-ffi`,
 * which `deno task analyze` and `serve` grant for that folder only): the KSG preparation and the MI of many tables
 * everywhere, the binned-MI counts where the CPU has AVX-512 with VPOPCNTDQ (`avx512`), and the KSG pair kernel
 * (`ksgKernel`: AVX-512 F, BW, VL, DQ and CD; else a generic C kernel, AVX2 on x86-64, the compiler's vectors
 * elsewhere).
 * Elsewhere, or with `INFOTAP_NATIVE=0`, {@linkcode nativeKernels} is null and callers keep their WebAssembly paths,
 * which give the same results (so the path never shows in a table; only the time differs).
 *
 * @example
 * ```ts
 * import { nativeKernels } from "./native.ts";
 * console.log(nativeKernels?.avx512 ? "native binned-MI counts" : "WebAssembly binned-MI counts");
 * ```
 *
 * @module
 */

/**
 * One neuron's arguments of `itn_ksg_pair`: values, strips, order, sorted values, strip edges, strip count, fence
 * table with its origin and scale, and the tie groups' starts and sizes (or null).
 */
const KSG_NEURON = [
  "buffer",
  "buffer",
  "buffer",
  "buffer",
  "buffer",
  "i32",
  "buffer",
  "f64",
  "f64",
  "buffer",
  "buffer",
] as const;

const SYMBOLS = {
  itn_supported: { parameters: [], result: "i32" },
  itn_ksg_supported: { parameters: [], result: "i32" },
  itn_ksg_kernel: { parameters: ["i32"], result: "i32" },
  itn_new: { parameters: [], result: "pointer" },
  itn_load_codes: { parameters: ["pointer", "buffer", "i32", "i32", "i32", "i32"], result: "i32" },
  itn_pair_counts: { parameters: ["pointer", "buffer", "i32", "i32", "buffer", "i32", "i32"], result: "void" },
  itn_ksg_new: { parameters: [], result: "pointer" },
  itn_ksg_pair: {
    parameters: [
      "pointer",
      "i32",
      ...KSG_NEURON,
      ...KSG_NEURON,
      "buffer",
      "buffer",
    ],
    result: "i32",
  },
  itn_ksg_pairs: {
    parameters: [
      "pointer",
      "i32",
      "buffer",
      "i32",
      ...(["buffer", "buffer", "buffer", "buffer", "buffer", "i32", "buffer", "buffer", "i32"] as const),
      ...([
        "buffer",
        "buffer",
        "buffer",
        "buffer",
        "buffer",
        "buffer",
        "buffer",
        "buffer",
        "buffer",
        "buffer",
      ] as const),
    ],
    result: "i32",
  },
  itn_ksg_prep: {
    parameters: [
      "i32",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
    ],
    result: "i32",
  },
  itn_mutual_information: {
    parameters: ["buffer", "i32", "i32", "i32", "buffer", "buffer", "buffer", "buffer"],
    result: "void",
  },
} as const;

/** The loaded kernels: a context of this realm (each worker loads its own) and the symbols. */
export interface NativeKernels {
  /** This realm's context (the bit sets of the binned-MI counts). */
  ctx: Deno.PointerValue;
  /** This realm's KSG scratch. */
  ksgCtx: Deno.PointerValue;
  /** Whether the CPU has the AVX-512 (with VPOPCNTDQ) the binned-MI counts need (`itn_supported`). */
  avx512: boolean;
  /**
   * The KSG pair kernel (`itn_ksg_kernel`): 2, AVX-512 (F, BW, VL, DQ, CD); 1, the generic C kernel (AVX2 on
   * x86-64); 0, none (the WebAssembly kernel runs).
   */
  ksgKernel: number;
  symbols: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
  /** The library's path. */
  path: string;
}

/** The library's path: `build/native/` at the repository root. */
export const NATIVE_PATH: string = new URL("../../../build/native/libinfotap_native.so", import.meta.url).pathname;

function granted(d: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(d).state === "granted";
  } catch {
    return false;
  }
}

function load(): NativeKernels | null {
  if (granted({ name: "env", variable: "INFOTAP_NATIVE" }) && Deno.env.get("INFOTAP_NATIVE") === "0") return null;
  if (!granted({ name: "ffi", path: NATIVE_PATH }) || !granted({ name: "read", path: NATIVE_PATH })) return null;
  try {
    Deno.statSync(NATIVE_PATH);
  } catch {
    return null;
  }
  try {
    const lib = Deno.dlopen(NATIVE_PATH, SYMBOLS);
    const ctx = lib.symbols.itn_new(), ksgCtx = lib.symbols.itn_ksg_new();
    if (ctx === null || ksgCtx === null) return null;
    return {
      ctx,
      ksgCtx,
      avx512: lib.symbols.itn_supported() === 1,
      ksgKernel: lib.symbols.itn_ksg_kernel(-1),
      symbols: lib.symbols,
      path: NATIVE_PATH,
    };
  } catch {
    return null;
  }
}

/** The native kernels of this realm, or null (see the module's documentation). */
export const nativeKernels: NativeKernels | null = load();

/** Whether callers use the native kernels (tests turn it off to compare with the WebAssembly paths). */
export const nativeSwitch: { use: boolean } = { use: nativeKernels !== null };
