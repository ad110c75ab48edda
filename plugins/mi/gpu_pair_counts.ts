/**
 * All-pairs joint histograms (binned MI) on WebGPU, as bit-matrix products: exact integer counts.
 *
 * Per batch, a first kernel turns each neuron's values into `B` bit masks over the rows (bit `r` of mask
 * `(n, k)` set when row `r` of neuron `n` falls in bin `k`; the bin by the exact integer thresholds of
 * ./_thresholds.ts, so codes equal the CPU's `codeRows`; NaN/Inf set no bit). Then the joint count of bins
 * `(ka, kb)` of neurons `a < b` is `popcount(mask(a, ka) AND mask(b, kb))` summed over the row words: a Gram
 * matrix of the `N B x words` mask matrix under AND-popcount, computed in 64 x 64 output tiles (each invocation
 * 4 x 4 outputs) over word chunks staged in workgroup memory. Rows where either neuron is non-finite are
 * left out of that pair only (pairwise complete rows), as on the CPU (`addPairCounts`).
 *
 * Output: `counts[pairIndex(a, b) * B^2 + ka * B + kb]` for `a < b`, pairs in row-major order ((0,1), (0,2),
 * ..., (1,2), ...); u32, accumulated over batches (read back before 2^31 rows).
 *
 * Work: `(N B)^2 / 2 x rows / 32` AND-popcount-adds per batch (768 neurons, 16 bins, 10,000 rows: 2.4e10).
 *
 * @example
 * ```ts ignore
 * import { GpuPairCounts } from "./gpu_pair_counts.ts";
 * import { gpuContext } from "../kernels/gpu/context.ts";
 * const pc = GpuPairCounts.open(await gpuContext(), 768, 16, thresholdWords);
 * await pc.update(values, 10000); // row-major 10000 x 768 float32
 * const counts = await pc.read();
 * ```
 *
 * @module
 */
import type { GpuContext } from "../kernels/gpu/context.ts";
import {
  bitsOf,
  computePipeline,
  GrowingBuffer,
  readBuffers,
  storageBuffer,
  Throttle,
  uniformWords,
} from "../kernels/gpu/util.ts";

/** Index of pair `(a, b)`, `a < b`, among the `N (N - 1) / 2` pairs in row-major order. */
export function pairIndex(a: number, b: number, n: number): number {
  return a * n - (a * (a + 1)) / 2 + (b - a - 1);
}

/** WGSL: bit masks of one batch, one invocation per (neuron, 32-row word). */
export function maskShader(bins: number): string {
  return /* wgsl */ `
struct Params { rows: u32, width: u32, words: u32, stride: u32, mstride: u32 }
@group(0) @binding(0) var<storage, read> data: array<u32>;
@group(0) @binding(1) var<storage, read> thr: array<u32>;
@group(0) @binding(2) var<storage, read_write> masks: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read_write> nonfinite: array<atomic<u32>>;
const B = ${bins}u;

fn okey(bits: u32) -> u32 {
  let b = select(bits, 0u, bits == 0x80000000u);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  let w = gid.y;
  if (j >= p.width || w >= p.words) { return; }
  var m: array<u32, ${bins}>;
  let base = j * p.stride;
  var bad = 0u;
  for (var bit = 0u; bit < 32u; bit++) {
    let r = w * 32u + bit;
    if (r >= p.rows) { break; }
    let bits = data[r * p.width + j];
    if ((bits & 0x7f800000u) == 0x7f800000u) {
      bad += 1u;
      continue;
    }
    let key = okey(bits);
    var a = 0u;
    var b = B - 1u;
    loop {
      if (a >= b) { break; }
      let mid = (a + b + 1u) / 2u;
      if (thr[base + 1u + mid] <= key) { a = mid; } else { b = mid - 1u; }
    }
    m[a] |= 1u << bit;
  }
  for (var k = 0u; k < B; k++) { masks[w * p.mstride + j * B + k] = m[k]; }
  if (bad > 0u) { atomicAdd(&nonfinite[j], bad); }
}
`;
}

/**
 * WGSL: AND-popcount Gram of the masks in `T x T` output tiles, each of the 256 invocations `R x R` outputs
 * (`T = 16 R`), `K` words per stage. Masks are word-major (`masks[w * nb + row]`, rows padded to a multiple of
 * `T`), so a stage's loads are coalesced 16-byte reads, and workgroup memory holds 4 consecutive rows per
 * `vec4` (`s[kk][row / 4]`): each invocation reads its `R` rows of both sides as `R / 4` conflict-free `vec4`
 * loads per word and does `R^2` AND-popcount-adds with them.
 */
export function gramShader(bins: number, k: number, r = 4): string {
  const T = 16 * r, V = r / 4; // tile rows; vec4s per invocation and word
  const accs: string[] = [], body: string[] = [], store: string[] = [];
  for (let i = 0; i < r; i++) {
    for (let v = 0; v < V; v++) accs.push(`  var acc${i}_${v} = vec4<u32>(0u);`);
  }
  for (let v = 0; v < V; v++) {
    body.push(`      let a${v} = sa[kk * ${T / 4}u + lid.y * ${V}u + ${v}u];`);
    body.push(`      let b${v} = sb[kk * ${T / 4}u + lid.x * ${V}u + ${v}u];`);
  }
  for (let i = 0; i < r; i++) {
    for (let v = 0; v < V; v++) {
      body.push(`      acc${i}_${v} += countOneBits(vec4<u32>(a${i >> 2}[${i & 3}]) & b${v});`);
    }
  }
  for (let i = 0; i < r; i++) {
    for (let v = 0; v < V; v++) store.push(`  add(${i}u, ${v * 4}u, acc${i}_${v});`);
  }
  return /* wgsl */ `
struct Params { nb: u32, words: u32, n: u32, stride: u32 }
@group(0) @binding(0) var<storage, read> masks: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> counts: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;
const B = ${bins}u;
const K = ${k}u;
var<workgroup> sa: array<vec4<u32>, ${(T / 4) * k}>;
var<workgroup> sb: array<vec4<u32>, ${(T / 4) * k}>;

fn add(i: u32, j0: u32, acc: vec4<u32>) {
  let row = tile.x + lidg.y * ${r}u + i;
  if (row >= p.nb) { return; }
  let a = row / B;
  let ka = row % B;
  for (var j = 0u; j < 4u; j++) {
    let col = tile.y + lidg.x * ${r}u + j0 + j;
    if (col >= p.nb) { return; }
    let b = col / B;
    if (a >= b) { continue; }
    let pair = a * p.n - (a * (a + 1u)) / 2u + (b - a - 1u);
    let at = pair * B * B + ka * B + col % B;
    counts[at] = counts[at] + acc[j];
  }
}

var<private> tile: vec2<u32>;
var<private> lidg: vec2<u32>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i0 = wg.y * ${T}u;
  let j0 = wg.x * ${T}u;
  // Only tiles holding some pair a < b (a: neuron of the row, b: neuron of the column).
  if (min(j0 + ${T - 1}u, p.nb - 1u) / B <= i0 / B) { return; }
  tile = vec2<u32>(i0, j0);
  lidg = lid.xy;
${accs.join("\n")}
  let q = p.stride / 4u; // vec4s per word
  for (var w0 = 0u; w0 < p.words; w0 += K) {
    for (var e = li; e < ${(T / 4) * k}u; e += 256u) {
      let w = w0 + e / ${T / 4}u;
      let c = e % ${T / 4}u;
      var va = vec4<u32>(0u);
      var vb = vec4<u32>(0u);
      if (w < p.words) {
        va = masks[w * q + i0 / 4u + c];
        vb = masks[w * q + j0 / 4u + c];
      }
      sa[e] = va;
      sb[e] = vb;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < K; kk++) {
${body.join("\n")}
    }
    workgroupBarrier();
  }
${store.join("\n")}
}
`;
}

/** Joint histograms of every pair of `n` neurons, accumulated on the GPU. */
export class GpuPairCounts {
  readonly #device: GPUDevice;
  readonly #mask: GPUComputePipeline;
  readonly #gram: GPUComputePipeline;
  readonly #thr: GPUBuffer;
  readonly #stride: number;
  /** Words between consecutive mask words (`n B` rounded up to the tile): masks are word-major. */
  readonly #mstride: number;
  readonly #counts: GPUBuffer;
  readonly #nonfinite: GPUBuffer;
  readonly #data: GrowingBuffer;
  readonly #masks: GrowingBuffer;
  readonly #throttle = new Throttle();
  #rows = 0;

  private constructor(
    device: GPUDevice,
    readonly n: number,
    readonly bins: number,
    thresholdWords: Uint32Array,
    k: number,
    readonly r: number,
  ) {
    this.#device = device;
    this.#mask = computePipeline(device, maskShader(bins));
    this.#gram = computePipeline(device, gramShader(bins, k, r));
    this.#mstride = Math.ceil((n * bins) / (16 * r)) * 16 * r;
    this.#stride = thresholdWords.length === bins + 1 ? 0 : bins + 1;
    this.#thr = storageBuffer(device, thresholdWords.byteLength, "pair thresholds");
    device.queue.writeBuffer(this.#thr, 0, thresholdWords as Uint32Array<ArrayBuffer>);
    const bytes = this.countsLength * 4;
    if (bytes > device.limits.maxStorageBufferBindingSize) {
      throw new Error(
        `Cannot keep all joint histograms on the GPU as they take ${bytes} bytes, over the adapter's binding limit (${device.limits.maxStorageBufferBindingSize}): current value is ${n} neurons x ${bins} bins`,
      );
    }
    this.#counts = storageBuffer(device, bytes, "pair counts");
    this.#nonfinite = storageBuffer(device, n * 4, "pair nonfinite");
    this.#data = new GrowingBuffer(device, "pair data");
    this.#masks = new GrowingBuffer(device, "pair masks");
  }

  /**
   * Counters on `gpu` for `n` neurons and `bins` bins. `thresholdWords`: `thresholds(lo, hi, bins)` of one
   * range shared by all neurons (`bins + 1` words) or of each neuron (`n (bins + 1)` words). `tuning` (for
   * benchmarks and tests): mask words per workgroup stage (default 16 on hardware, 2 on software adapters) and
   * outputs per invocation and side (4: 64 x 64 tiles, the default; 8: 128 x 128 tiles).
   */
  static open(
    gpu: GpuContext,
    n: number,
    bins: number,
    thresholdWords: Uint32Array,
    tuning: { words?: number; perInvocation?: 4 | 8 } = {},
  ): GpuPairCounts {
    // Workgroup arrays compile slowly on llvmpipe (see histogram.ts): small stages there.
    const k = tuning.words ?? (gpu.software ? 2 : 16);
    const r = tuning.perInvocation ?? 4;
    return new GpuPairCounts(gpu.device, n, bins, thresholdWords, k, r);
  }

  /** Entries of the counts: `n (n - 1) / 2 * bins^2`. */
  get countsLength(): number {
    return ((this.n * (this.n - 1)) / 2) * this.bins * this.bins;
  }

  /** Adds the joint counts of `rows` rows of `values` (row-major, `rows x n` float32). */
  async update(values: Float32Array, rows: number): Promise<void> {
    if (this.#rows + rows >= 2 ** 31) {
      throw new Error(`Cannot add more rows to u32 pair counts before a read-back: current value is ${this.#rows}`);
    }
    await this.#throttle.before();
    const device = this.#device, n = this.n, B = this.bins;
    const words = Math.ceil(rows / 32);
    const data = this.#data.get(rows * n * 4);
    device.queue.writeBuffer(data, 0, bitsOf(values), 0, rows * n);
    const masks = this.#masks.get(this.#mstride * words * 4);
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(this.#mask);
    const u1 = this.#throttle.temp(uniformWords(device, [rows, n, words, this.#stride, this.#mstride]));
    pass.setBindGroup(
      0,
      device.createBindGroup({
        layout: this.#mask.getBindGroupLayout(0),
        entries: [data, this.#thr, masks, u1, this.#nonfinite].map((buffer, binding) => ({
          binding,
          resource: { buffer },
        })),
      }),
    );
    pass.dispatchWorkgroups(Math.ceil(n / 64), words);
    pass.setPipeline(this.#gram);
    const nb = n * B;
    const u2 = this.#throttle.temp(uniformWords(device, [nb, words, n, this.#mstride]));
    pass.setBindGroup(
      0,
      device.createBindGroup({
        layout: this.#gram.getBindGroupLayout(0),
        entries: [masks, this.#counts, u2].map((buffer, binding) => ({ binding, resource: { buffer } })),
      }),
    );
    const tiles = this.#mstride / (16 * this.r);
    pass.dispatchWorkgroups(tiles, tiles);
    pass.end();
    device.queue.submit([enc.finish()]);
    this.#rows += rows;
    this.#throttle.after(device, rows * n * 4);
  }

  /** Waits for the submitted work (for timing). */
  async done(): Promise<void> {
    await this.#throttle.drain();
  }

  /** True when rows were added since the last read-back. */
  get pending(): boolean {
    return this.#rows > 0;
  }

  /** Reads the counts back (and zeroes them on the GPU); {@linkcode readAll} also returns non-finite counts. */
  async read(): Promise<Uint32Array> {
    return (await this.readAll()).counts;
  }

  /** Reads the joint counts and each neuron's non-finite count back, and zeroes them on the GPU. */
  async readAll(): Promise<{ counts: Uint32Array; nonfinite: Uint32Array }> {
    await this.#throttle.drain();
    const [c, f] = await readBuffers(this.#device, [
      { buffer: this.#counts, bytes: this.countsLength * 4 },
      { buffer: this.#nonfinite, bytes: this.n * 4 },
    ]);
    const enc = this.#device.createCommandEncoder();
    enc.clearBuffer(this.#counts);
    enc.clearBuffer(this.#nonfinite);
    this.#device.queue.submit([enc.finish()]);
    this.#rows = 0;
    return { counts: new Uint32Array(c), nonfinite: new Uint32Array(f) };
  }

  /** Frees the GPU buffers. */
  destroy(): void {
    this.#thr.destroy();
    this.#counts.destroy();
    this.#nonfinite.destroy();
    this.#data.destroy();
    this.#masks.destroy();
  }
}
