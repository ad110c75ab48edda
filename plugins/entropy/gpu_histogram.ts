/**
 * Per-neuron histograms on WebGPU ({@linkcode GpuHistograms}): the `entropy` estimator's counts, bit-equal to the
 * CPU's `binRows`. Workgroup tiles of neurons count into workgroup-private atomics (global atomics when the bins do
 * not fit), binning by binary search over the exact integer thresholds of `../_shared/gpu_thresholds.ts`; each
 * column is uploaded once per batch, counts come back only on {@linkcode GpuHistograms.flush}. The kernel and why
 * its counts are exact: docs/bench/webgpu.md, "Kernels" and "Why the counts are bit-equal ...".
 *
 * @example
 * ```ts ignore
 * import { GpuHistograms } from "./gpu_histogram.ts";
 * import { gpuContext } from "../kernels/gpu/context.ts";
 * const h = GpuHistograms.open(await gpuContext(), 10, (key, layer, counts) => console.log(key, layer, counts));
 * ```
 *
 * @module
 */
import type { Batch } from "../../schemas/batch.ts";
import type { GpuContext } from "../kernels/gpu/context.ts";
import {
  Accumulators,
  bitsOf,
  computePipeline,
  GrowingBuffer,
  storageBuffer,
  Throttle,
  uniformWords,
} from "../kernels/gpu/util.ts";
import type { LayerRange } from "../_shared/binning.ts";
import { thresholds } from "../_shared/gpu_thresholds.ts";

/** Receives counts read back from the GPU: per neuron `counts[j * B + k]`, `nonfinite[j]`, `clipped[j]`. */
export type HistogramSink = (
  key: string,
  layer: string,
  counts: Uint32Array,
  nonfinite: Uint32Array,
  clipped: Uint32Array,
) => void;

/** A row range of a batch whose counts go to the accumulator of step `key`. */
export interface RowRun {
  key: string;
  r0: number;
  r1: number;
}

/**
 * Workgroup counters on software adapters: llvmpipe's shader compile time grows about quadratically with the
 * size of a workgroup array (256 words: 0.7 s, 2048: 32 s, 6528: 240 s, measured), so it gets small tiles.
 */
export const SOFTWARE_WORKGROUP_WORDS = 256;

/** Rows an accumulator may take before it is read back (u32 counters). */
const MAX_PENDING_ROWS = 2 ** 31;
const WG = 256;

/** WGSL of the histogram kernel for `bins` bins and a tile of `tile` neurons (`tile` 0: global atomics). */
export function histogramShader(bins: number, tile: number): string {
  const priv = tile > 0;
  const T = Math.max(tile, 1);
  const bin = priv ? "loc[jj * B + a]" : "acc[j * B + a]";
  const nf = priv ? "loc[T * B + jj]" : "acc[p.width * B + j]";
  const cl = priv ? "loc[T * B + T + jj]" : "acc[p.width * B + p.width + j]";
  return /* wgsl */ `
struct Params { r0: u32, r1: u32, width: u32, stride: u32, chunk: u32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<storage, read> data: array<u32>;
@group(0) @binding(1) var<storage, read> thr: array<u32>;
@group(0) @binding(2) var<storage, read_write> acc: array<atomic<u32>>;
@group(0) @binding(3) var<uniform> p: Params;
const B = ${bins}u;
const T = ${T}u;
const WG = ${WG}u;
${priv ? `var<workgroup> loc: array<atomic<u32>, ${T * (bins + 2)}>;` : ""}

// Total order of float32 bit patterns as unsigned integers (-0 taken as +0).
fn okey(bits: u32) -> u32 {
  let b = select(bits, 0u, bits == 0x80000000u);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  ${priv ? "for (var i = li; i < T * (B + 2u); i += WG) { atomicStore(&loc[i], 0u); }\n  workgroupBarrier();" : ""}
  let j0 = wg.x * T;
  let tw = min(T, p.width - j0);
  let r0 = p.r0 + wg.y * p.chunk;
  let r1 = min(p.r1, r0 + p.chunk);
  var n = 0u;
  if (r1 > r0) { n = (r1 - r0) * tw; }
  for (var e = li; e < n; e += WG) {
    let jj = e % tw;
    let r = r0 + e / tw;
    let j = j0 + jj;
    let bits = data[r * p.width + j];
    if ((bits & 0x7f800000u) == 0x7f800000u) {
      atomicAdd(&${nf}, 1u);
      continue;
    }
    let key = okey(bits);
    let base = j * p.stride;
    var a = 0u;
    var b = B - 1u;
    loop {
      if (a >= b) { break; }
      let m = (a + b + 1u) / 2u;
      if (thr[base + 1u + m] <= key) { a = m; } else { b = m - 1u; }
    }
    atomicAdd(&${bin}, 1u);
    if (key < thr[base] || key >= thr[base + 1u]) { atomicAdd(&${cl}, 1u); }
  }
  ${
    priv
      ? `workgroupBarrier();
  for (var i = li; i < tw * B; i += WG) {
    let v = atomicLoad(&loc[i]);
    if (v != 0u) { atomicAdd(&acc[j0 * B + i], v); }
  }
  for (var i = li; i < tw; i += WG) {
    let f = atomicLoad(&loc[T * B + i]);
    if (f != 0u) { atomicAdd(&acc[p.width * B + j0 + i], f); }
    let c = atomicLoad(&loc[T * B + T + i]);
    if (c != 0u) { atomicAdd(&acc[p.width * B + p.width + j0 + i], c); }
  }`
      : ""
  }
}
`;
}

interface LayerGpu {
  width: number;
  thr: GPUBuffer;
  /** Words between neurons' thresholds (0: one set shared by all). */
  stride: number;
}

interface Acc {
  key: string;
  layer: string;
  width: number;
  buf: GPUBuffer;
  rows: number;
}

/** Per-neuron histograms of several layers and steps, accumulated on the GPU. */
export class GpuHistograms {
  readonly #device: GPUDevice;
  readonly #bins: number;
  readonly #sink: HistogramSink;
  readonly #tile: number;
  readonly #pipeline: GPUComputePipeline;
  readonly #layers = new Map<string, LayerGpu>();
  readonly #accs: Accumulators<Acc>;
  readonly #data: GrowingBuffer;
  readonly #throttle = new Throttle();

  private constructor(device: GPUDevice, bins: number, sink: HistogramSink, maxWords: number) {
    this.#device = device;
    this.#bins = bins;
    this.#sink = sink;
    const words = Math.min(maxWords, Math.floor(device.limits.maxComputeWorkgroupStorageSize / 4));
    this.#tile = Math.min(64, Math.floor(words / (bins + 2)));
    this.#pipeline = computePipeline(device, histogramShader(bins, this.#tile));
    this.#data = new GrowingBuffer(device, "histogram data");
    this.#accs = new Accumulators(device);
  }

  /**
   * Compiles the kernel for `bins` bins on `gpu`. `maxWorkgroupWords` caps the workgroup counters (default: the
   * device's limit; {@linkcode SOFTWARE_WORKGROUP_WORDS} on a software adapter).
   */
  static open(
    gpu: GpuContext,
    bins: number,
    sink: HistogramSink,
    opts: { maxWorkgroupWords?: number } = {},
  ): GpuHistograms {
    const words = opts.maxWorkgroupWords ?? (gpu.software ? SOFTWARE_WORKGROUP_WORDS : Infinity);
    return new GpuHistograms(gpu.device, bins, sink, words);
  }

  /** Neurons per workgroup tile (0: global atomics, when `B + 2` counters do not fit workgroup memory). */
  get tile(): number {
    return this.#tile;
  }

  /** True when some counts are on the GPU and not yet read back. */
  get pending(): boolean {
    return this.#accs.pending;
  }

  #layer(name: string, width: number, range: LayerRange): LayerGpu {
    let l = this.#layers.get(name);
    if (!l) {
      const B = this.#bins;
      let shared = true;
      for (let j = 1; j < width; j++) if (range.lo[j] !== range.lo[0] || range.hi[j] !== range.hi[0]) shared = false;
      const n = shared ? 1 : width;
      const words = new Uint32Array(n * (B + 1));
      for (let j = 0; j < n; j++) thresholds(range.lo[j] ?? 0, range.hi[j] ?? 0, B, words, j * (B + 1));
      const thr = storageBuffer(this.#device, words.byteLength, `thresholds ${name}`);
      this.#device.queue.writeBuffer(thr, 0, words);
      l = { width, thr, stride: shared ? 0 : B + 1 };
      this.#layers.set(name, l);
    }
    return l;
  }

  #acc(key: string, layer: string, width: number): Acc {
    return this.#accs.get(`${key}\u0000${layer}`, () => {
      const bytes = (width * this.#bins + 2 * width) * 4;
      return { key, layer, width, buf: storageBuffer(this.#device, bytes, `counts ${layer}`), rows: 0 };
    });
  }

  /** Counts rows of every column of `batch`: each run's rows into the accumulator of its step `key`. */
  async update(batch: Batch, runs: RowRun[], rangeOf: (name: string, width: number) => LayerRange): Promise<void> {
    for (const col of batch.columns) {
      for (const run of runs) {
        const a = this.#acc(run.key, col.name, col.width);
        if (a.rows + (run.r1 - run.r0) >= MAX_PENDING_ROWS) await this.flush();
      }
    }
    await this.#throttle.before();
    const device = this.#device, B = this.#bins;
    const maxBind = device.limits.maxStorageBufferBindingSize;
    const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
    for (const col of batch.columns) {
      const w = col.width;
      if (w === 0 || batch.numRows === 0) continue;
      const layer = this.#layer(col.name, w, rangeOf(col.name, w));
      const rowsPerUpload = Math.floor(maxBind / (w * 4));
      if (rowsPerUpload < 1) {
        throw new Error(
          `Cannot histogram on the GPU as one row of layer '${col.name}' exceeds the adapter's storage binding size (${maxBind} bytes): current value is ${
            w * 4
          } bytes`,
        );
      }
      const bits = bitsOf(col.values);
      for (let c0 = 0; c0 < batch.numRows; c0 += rowsPerUpload) {
        const c1 = Math.min(batch.numRows, c0 + rowsPerUpload);
        const data = this.#data.get((c1 - c0) * w * 4);
        device.queue.writeBuffer(data, 0, bits, c0 * w, (c1 - c0) * w);
        const enc = device.createCommandEncoder();
        const pass = enc.beginComputePass();
        pass.setPipeline(this.#pipeline);
        const tile = Math.max(1, this.#tile);
        for (const run of runs) {
          const r0 = Math.max(run.r0, c0), r1 = Math.min(run.r1, c1);
          if (r1 <= r0) continue;
          const a = this.#acc(run.key, col.name, w);
          a.rows += r1 - r0;
          let chunk = Math.max(4 * B, Math.ceil(4096 / tile));
          chunk = Math.max(chunk, Math.ceil((r1 - r0) / maxGroups));
          const params = this.#throttle.temp(uniformWords(device, [r0 - c0, r1 - c0, w, layer.stride, chunk, 0, 0, 0]));
          const group = device.createBindGroup({
            layout: this.#pipeline.getBindGroupLayout(0),
            entries: [
              { binding: 0, resource: { buffer: data, size: Math.ceil(((c1 - c0) * w * 4) / 4) * 4 } },
              { binding: 1, resource: { buffer: layer.thr } },
              { binding: 2, resource: { buffer: a.buf } },
              { binding: 3, resource: { buffer: params } },
            ],
          });
          pass.setBindGroup(0, group);
          pass.dispatchWorkgroups(Math.ceil(w / tile), Math.ceil((r1 - r0) / chunk));
        }
        pass.end();
        device.queue.submit([enc.finish()]);
      }
    }
    this.#throttle.after(device, batch.columns.reduce((s, c) => s + batch.numRows * c.width * 4, 0));
  }

  /** Reads every pending accumulator back into `sink` and zeroes it on the GPU. */
  async flush(): Promise<void> {
    await this.#throttle.drain();
    const B = this.#bins;
    await this.#accs.readBack((a) => (a.width * B + 2 * a.width) * 4, (a, data) => {
      const u = new Uint32Array(data);
      const wb = a.width * B;
      this.#sink(a.key, a.layer, u.subarray(0, wb), u.subarray(wb, wb + a.width), u.subarray(wb + a.width));
    });
  }

  /** Frees the GPU buffers (pending counts are lost: flush first). */
  destroy(): void {
    for (const l of this.#layers.values()) l.thr.destroy();
    this.#accs.destroy();
    this.#layers.clear();
    this.#data.destroy();
  }
}
