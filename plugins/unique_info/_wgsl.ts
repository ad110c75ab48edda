/**
 * WGSL sources of the unique-information kernels (plugins/unique_info/gpu_kernel.ts): a tiled, register-blocked float32
 * matrix product `C (+)= alpha A B^T` (both operands row-major with the summed index contiguous: "NT"), and the small
 * data-movement kernels of the blocked sweep inversion (place, panel gather/scatter, mirror, row dot products).
 *
 * @module
 */

/** Tiling of the matrix product: `wx x wy` invocations, each `t x t` outputs (strided by the workgroup size). */
export interface MatmulConfig {
  /** Invocations per workgroup along columns and rows. */
  wx: number;
  wy: number;
  /** Outputs per invocation along rows and along columns (a multiple of 4). */
  t: number;
  /** Summed-index depth of one workgroup-memory stage. */
  kt: number;
  /** Padding of each workgroup-memory row (1 removes bank conflicts on hardware). */
  pad: number;
  /**
   * Compensated: each stage's `kt` products are summed in a fresh float32 partial, which is added to a float-float
   * accumulator `(hi, lo)` by TwoSum (error-free), so the result errs by about one float32 rounding instead of
   * growing with the summed length (`~sqrt(k) 2^-24` relative to `|x| |y|`).
   */
  comp?: boolean;
}

/** Tile edge (rows = columns of C per workgroup). */
export function tileOf(c: MatmulConfig): number {
  return c.wy * c.t;
}

/** Words of workgroup memory the product uses. */
export function matmulSharedWords(c: MatmulConfig): number {
  return 2 * c.kt * (tileOf(c) + c.pad);
}

/**
 * `C[co + i ldc + j] = (accum ? C[..] : 0) + alpha sum_t A[ao + i lda + t] B[bo + j ldb + t]` for `i < m`, `j < n`,
 * `t < k`. Whole C tiles are skipped when `lower` and the tile is above the diagonal, when the tile's rows or
 * columns start in `[p0, p1)` (the sweep's pivot block), or when both start in `[q0, q1)` (a block done already).
 * Each invocation keeps `t x t` float32 accumulators (fused multiply-add, the summed index in ascending order).
 */
export function matmulWgsl(c: MatmulConfig): string {
  const { wx, wy, t, kt, pad } = c;
  if (wx !== wy || t % 4 !== 0) throw new Error("matmulWgsl: square workgroups and t % 4 == 0 only");
  const bt = wy * t, s = bt + pad, threads = wx * wy, loads = (kt * bt) / threads;
  if (!Number.isInteger(loads)) throw new Error("matmulWgsl: kt * tile must be a multiple of the workgroup size");
  const g4 = t / 4;
  const decl: string[] = [], fma: string[] = [], store: string[] = [], bl: string[] = [], al: string[] = [];
  const stage: string[] = [], fold: string[] = [];
  const acc = c.comp ? "p" : "c";
  for (let r = 0; r < t; r++) {
    al.push(`let a${r} = vec4<f32>(As[o + ly + ${r * wy}u]);`);
    for (let g = 0; g < g4; g++) {
      decl.push(`var c${r}_${g} = vec4<f32>(0.0);`);
      if (c.comp) {
        decl.push(`var l${r}_${g} = vec4<f32>(0.0);`);
        stage.push(`var p${r}_${g} = vec4<f32>(0.0);`);
        fold.push(`two(&c${r}_${g}, &l${r}_${g}, p${r}_${g});`);
      }
      fma.push(`${acc}${r}_${g} = fma(a${r}, b${g}, ${acc}${r}_${g});`);
      for (let q = 0; q < 4; q++) {
        const v = c.comp ? `c${r}_${g}[${q}] + l${r}_${g}[${q}]` : `c${r}_${g}[${q}]`;
        store.push(`st(row0 + ly + ${r * wy}u, col0 + lx + ${(g * 4 + q) * wx}u, ${v});`);
      }
    }
  }
  for (let g = 0; g < g4; g++) {
    const at = (q: number) => `Bs[o + lx + ${(g * 4 + q) * wx}u]`;
    bl.push(`let b${g} = vec4<f32>(${at(0)}, ${at(1)}, ${at(2)}, ${at(3)});`);
  }
  return /* wgsl */ `
struct P { m: u32, n: u32, k: u32, lda: u32, ldb: u32, ldc: u32, ao: u32, bo: u32,
           co: u32, alpha: f32, accum: u32, lower: u32, p0: u32, p1: u32, q0: u32, q1: u32,
           zero: u32, z1: u32, z2: u32, z3: u32 }
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> p: P;
const BT = ${bt}u;
const KT = ${kt}u;
const S = ${s}u;
var<workgroup> As: array<f32, ${kt * s}>;
var<workgroup> Bs: array<f32, ${kt * s}>;

fn st(i: u32, j: u32, v: f32) {
  if (i < p.m && j < p.n) {
    let o = p.co + i * p.ldc + j;
    var x = p.alpha * v;
    if (p.accum != 0u) { x += C[o]; }
    C[o] = x;
  }
}

fn inRange(x: u32, lo: u32, hi: u32) -> bool { return x >= lo && x < hi; }

// An identity the compiler cannot see through (p.zero is 0 at run time): shader compilers may simplify
// (a + b) - a to b when floats are not marked exact, which would erase TwoSum's error term.
fn op(x: vec4<f32>) -> vec4<f32> { return bitcast<vec4<f32>>(bitcast<vec4<u32>>(x) ^ vec4<u32>(p.zero)); }

// (hi, lo) += x, TwoSum: hi + x = s + err exactly.
fn two(hi: ptr<function, vec4<f32>>, lo: ptr<function, vec4<f32>>, x: vec4<f32>) {
  let h = *hi;
  let s = op(h + x);
  let bb = op(s - h);
  let err = (h - op(s - bb)) + (x - bb);
  *hi = s;
  *lo = *lo + err;
}

@compute @workgroup_size(${wx}, ${wy})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * BT;
  let col0 = wg.x * BT;
  if (row0 >= p.m || col0 >= p.n) { return; }
  if (p.lower != 0u && col0 > row0) { return; }
  if (inRange(row0, p.p0, p.p1) || inRange(col0, p.p0, p.p1)) { return; }
  if (inRange(row0, p.q0, p.q1) && inRange(col0, p.q0, p.q1)) { return; }
  let lx = lid.x;
  let ly = lid.y;
  ${decl.join("\n  ")}
  for (var k0 = 0u; k0 < p.k; k0 += KT) {
    ${stage.join("\n    ")}
    for (var e = 0u; e < ${loads}u; e++) {
      let idx = li + e * ${threads}u;
      let r = idx / KT;
      let tt = idx % KT;
      let gt = k0 + tt;
      var va = 0.0;
      var vb = 0.0;
      if (gt < p.k) {
        if (row0 + r < p.m) { va = A[p.ao + (row0 + r) * p.lda + gt]; }
        if (col0 + r < p.n) { vb = B[p.bo + (col0 + r) * p.ldb + gt]; }
      }
      As[tt * S + r] = va;
      Bs[tt * S + r] = vb;
    }
    workgroupBarrier();
    for (var tt = 0u; tt < KT; tt++) {
      let o = tt * S;
      ${bl.join("\n      ")}
      ${al.join("\n      ")}
      ${fma.join("\n      ")}
    }
    ${fold.join("\n    ")}
    workgroupBarrier();
  }
  ${store.join("\n  ")}
}
`;
}

/**
 * Places a block `src` (`rows x cols`, row-major, leading dimension `ld`) of products of slots `r0 + i` and `c0 + j`
 * into a dense matrix at positions `rowPos[r0 + i]`, `colPos[c0 + j]`; with `mirror` (the symmetric kernel) also at
 * the transposed position when `c < r`, and `lambda` added on the diagonal (`r == c`).
 */
export const PLACE_WGSL = /* wgsl */ `
struct P { rows: u32, cols: u32, ld: u32, dld: u32, r0: u32, c0: u32, mirror: u32, lambda: f32 }
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> rowPos: array<u32>;
@group(0) @binding(2) var<storage, read> colPos: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<uniform> p: P;
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.y;
  let j = g.x;
  if (i >= p.rows || j >= p.cols) { return; }
  let r = p.r0 + i;
  let c = p.c0 + j;
  var v = src[i * p.ld + j];
  let pr = rowPos[r];
  let pc = colPos[c];
  if (p.mirror != 0u && r == c) { v += p.lambda; }
  dst[pr * p.dld + pc] = v;
  if (p.mirror != 0u && c < r) { dst[pc * p.dld + pr] = v; }
}
`;

/**
 * The sweep's column panel of pivot block `[k0, k0 + b)` from the lower triangle of `A` (`n x n`):
 * `R[j][t] = A[j][k0 + t]` when `j >= k0 + t`, else `A[k0 + t][j]` (leading dimension of R: `ldr`).
 */
export const GATHER_WGSL = /* wgsl */ `
struct P { n: u32, k0: u32, b: u32, ldr: u32 }
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read_write> R: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let t = g.x;
  let j = g.y;
  if (t >= p.b || j >= p.n) { return; }
  let c = p.k0 + t;
  var v: f32;
  if (j >= c) { v = A[j * p.n + c]; } else { v = A[c * p.n + j]; }
  R[j * p.ldr + t] = v;
}
`;

/**
 * Writes the sweep's new pivot row and column into the lower triangle of `A`: `S[j][t]` outside the pivot block,
 * `-D` (the pivot block's inverse, `b x b`) inside it.
 */
export const SCATTER_WGSL = /* wgsl */ `
struct P { n: u32, k0: u32, b: u32, ldr: u32 }
@group(0) @binding(0) var<storage, read> S: array<f32>;
@group(0) @binding(1) var<storage, read> D: array<f32>;
@group(0) @binding(2) var<storage, read_write> A: array<f32>;
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let t = g.x;
  let j = g.y;
  if (t >= p.b || j >= p.n) { return; }
  let c = p.k0 + t;
  if (j >= p.k0 && j < p.k0 + p.b) {
    if (j >= c) { A[j * p.n + c] = -D[(j - p.k0) * p.b + t]; }
  } else if (j > c) {
    A[j * p.n + c] = S[j * p.ldr + t];
  } else {
    A[c * p.n + j] = S[j * p.ldr + t];
  }
}
`;

/** Copies the lower triangle of `A` (`n x n`) onto the upper one. */
export const MIRROR_WGSL = /* wgsl */ `
struct P { n: u32, p1: u32, p2: u32, p3: u32 }
@group(0) @binding(0) var<storage, read_write> A: array<f32>;
@group(0) @binding(1) var<uniform> p: P;
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let j = g.x;
  let i = g.y;
  if (i < j && j < p.n) { A[i * p.n + j] = A[j * p.n + i]; }
}
`;

/**
 * For each pair `(x, y)`: `dot[q] = sum_t X[x ldx + t] Y[y ldy + t]` over `t < len` (one workgroup per pair, a
 * tree reduction) and `ent[q] = X[x ldx + y]`.
 */
export function dotsWgsl(wg: number): string {
  return /* wgsl */ `
struct P { count: u32, len: u32, ldx: u32, ldy: u32, stride: u32, p1: u32, p2: u32, p3: u32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Y: array<f32>;
@group(0) @binding(2) var<storage, read> pairs: array<u32>;
@group(0) @binding(3) var<storage, read_write> dots: array<f32>;
@group(0) @binding(4) var<storage, read_write> ent: array<f32>;
@group(0) @binding(5) var<uniform> p: P;
var<workgroup> part: array<f32, ${wg}>;
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let q = w.x + w.y * p.stride;
  if (q >= p.count) { return; }
  let x = pairs[2u * q];
  let y = pairs[2u * q + 1u];
  var s = 0.0;
  for (var t = li; t < p.len; t += ${wg}u) { s = fma(X[x * p.ldx + t], Y[y * p.ldy + t], s); }
  part[li] = s;
  workgroupBarrier();
  for (var h = ${wg / 2}u; h > 0u; h = h / 2u) {
    if (li < h) { part[li] += part[li + h]; }
    workgroupBarrier();
  }
  if (li == 0u) {
    dots[q] = part[0];
    ent[q] = X[x * p.ldx + y];
  }
}
`;
}
