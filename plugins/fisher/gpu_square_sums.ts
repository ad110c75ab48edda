/**
 * Per-column sums of squares on WebGPU, the `fisher` estimator's diagonal ({@linkcode GpuSquareSums}): float-float
 * (double-single) sums in float32, one invocation per column, within 1.5e-8 relative of the CPU's float64 sums and
 * read back at least every 2^20 rows; non-finite entries are left out and counted, as on the CPU. The arithmetic
 * and its error bound: docs/bench/webgpu.md, "The Fisher diagonal in float-float".
 *
 * @example
 * ```ts ignore
 * import { GpuSquareSums } from "./gpu_square_sums.ts";
 * import { gpuContext } from "../kernels/gpu/context.ts";
 * const s = GpuSquareSums.open(await gpuContext(), 3, (key, sums, nonfinite) => console.log(key, sums, nonfinite));
 * ```
 *
 * @module
 */
import type { Batch } from "../../schemas/batch.ts";
import type { GpuContext } from "../kernels/gpu/context.ts";
import {
  Accumulators,
  align256,
  bitsOf,
  computePipeline,
  GrowingBuffer,
  storageBuffer,
  Throttle,
  uniformWords,
} from "../kernels/gpu/util.ts";

/** Receives the sums read back: `sums[j]` and `nonfinite[j]` over all columns of all tensors, in order. */
export type SquareSumSink = (key: string, sums: Float64Array, nonfinite: Uint32Array) => void;

/** Rows an accumulator takes before it is read back (keeps the float-float error below 1.5e-8). */
export const MAX_PENDING_ROWS = 2 ** 20;
/** Largest upload packed into one buffer. */
const PACK_BYTES = 256 * 2 ** 20;
const WG = 256;

/** WGSL of the kernel: one invocation per column, rows `[r0, r1)` of a row-major tensor chunk. */
export const SQUARE_SUMS_WGSL = /* wgsl */ `
struct Params { r0: u32, r1: u32, width: u32, offset: u32, stride: u32, zero: u32, p1: u32, p2: u32 }
struct Acc { hi: f32, lo: f32, nf: u32 }
@group(0) @binding(0) var<storage, read> data: array<u32>;
@group(0) @binding(1) var<storage, read_write> acc: array<Acc>;
@group(0) @binding(2) var<uniform> p: Params;

// An identity the compiler cannot see through (p.zero is 0 at run time): shader compilers may simplify
// (a + b) - a to b when floats are not marked exact, which would erase the error terms below.
fn opaque(x: f32) -> f32 {
  return bitcast<f32>(bitcast<u32>(x) ^ p.zero);
}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x + gid.y * p.stride;
  if (j >= p.width) { return; }
  let a = acc[p.offset + j];
  var hi = a.hi;
  var lo = a.lo;
  var nf = a.nf;
  for (var r = p.r0; r < p.r1; r++) {
    let bits = data[r * p.width + j];
    if ((bits & 0x7f800000u) == 0x7f800000u) {
      nf += 1u;
      continue;
    }
    let x = bitcast<f32>(bits);
    let xh = bitcast<f32>(bits & 0xfffff000u);
    let xl = x - xh;
    let big = xh * xh;
    let small = 2.0 * xh * xl + xl * xl;
    let s = opaque(hi + big);
    let bb = opaque(s - hi);
    let err = (hi - (s - bb)) + (big - bb);
    let t = lo + err + small;
    hi = opaque(s + t);
    lo = t - (hi - s);
  }
  acc[p.offset + j] = Acc(hi, lo, nf);
}
`;

interface Acc {
  key: string;
  buf: GPUBuffer;
  rows: number;
}

/** Sums of squares of every column of a fixed list of tensors, per step, accumulated on the GPU. */
export class GpuSquareSums {
  readonly #device: GPUDevice;
  readonly #dim: number;
  readonly #sink: SquareSumSink;
  readonly #pipeline: GPUComputePipeline;
  readonly #accs: Accumulators<Acc>;
  readonly #data: GrowingBuffer;
  readonly #throttle = new Throttle();

  private constructor(device: GPUDevice, dim: number, sink: SquareSumSink) {
    this.#device = device;
    this.#dim = dim;
    this.#sink = sink;
    this.#pipeline = computePipeline(device, SQUARE_SUMS_WGSL);
    this.#data = new GrowingBuffer(device, "square-sum data");
    this.#accs = new Accumulators(device);
  }

  /** Sums on `gpu` for `dim` columns in all (the tensors' widths summed). */
  static open(gpu: GpuContext, dim: number, sink: SquareSumSink): GpuSquareSums {
    return new GpuSquareSums(gpu.device, dim, sink);
  }

  /** True when some sums are on the GPU and not yet read back. */
  get pending(): boolean {
    return this.#accs.pending;
  }

  #acc(key: string): Acc {
    return this.#accs.get(
      key,
      () => ({ key, buf: storageBuffer(this.#device, this.#dim * 12, `square sums ${key}`), rows: 0 }),
    );
  }

  /** Adds the squares of rows `[r0, r1)` of every column of `batch` to the accumulator of each run's `key`. */
  async update(batch: Batch, runs: { key: string; r0: number; r1: number }[]): Promise<void> {
    for (const run of runs) {
      if (this.#acc(run.key).rows + (run.r1 - run.r0) > MAX_PENDING_ROWS) await this.flush();
    }
    await this.#throttle.before();
    const device = this.#device;
    const maxBind = device.limits.maxStorageBufferBindingSize;
    const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
    const packLimit = Math.min(PACK_BYTES, device.limits.maxBufferSize);
    // Chunks of tensors (whole tensors unless one exceeds a binding), packed into uploads.
    type Chunk = { values: Uint32Array<ArrayBuffer>; width: number; offset: number; c0: number; c1: number };
    const chunks: Chunk[] = [];
    let offset = 0;
    for (const col of batch.columns) {
      const w = col.width;
      if (w > 0 && batch.numRows > 0) {
        const rowsPer = Math.floor(Math.min(maxBind, packLimit) / (w * 4));
        if (rowsPer < 1) {
          throw new Error(
            `Cannot sum squares on the GPU as one row of tensor '${col.name}' exceeds the adapter's storage binding size (${maxBind} bytes): current value is ${
              w * 4
            } bytes`,
          );
        }
        const bits = bitsOf(col.values);
        for (let c0 = 0; c0 < batch.numRows; c0 += rowsPer) {
          chunks.push({ values: bits, width: w, offset, c0, c1: Math.min(batch.numRows, c0 + rowsPer) });
        }
      }
      offset += w;
    }
    if (offset !== this.#dim) {
      throw new Error(
        `Cannot sum squares as the batch has ${offset} columns: current value is ${offset}, expected ${this.#dim}`,
      );
    }
    for (let i = 0; i < chunks.length;) {
      // One pack: consecutive chunks whose aligned sizes fit the pack limit.
      const pack: { chunk: Chunk; at: number; bytes: number }[] = [];
      let at = 0;
      while (i < chunks.length) {
        const c = chunks[i], bytes = (c.c1 - c.c0) * c.width * 4;
        if (pack.length > 0 && at + bytes > packLimit) break;
        pack.push({ chunk: c, at, bytes });
        at += align256(bytes);
        i++;
      }
      const data = this.#data.get(at);
      for (const { chunk: c, at: o } of pack) {
        device.queue.writeBuffer(data, o, c.values, c.c0 * c.width, (c.c1 - c.c0) * c.width);
      }
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(this.#pipeline);
      for (const { chunk: c, at: o, bytes } of pack) {
        const groups = Math.ceil(c.width / WG);
        const nx = Math.min(groups, maxGroups), ny = Math.ceil(groups / nx);
        for (const run of runs) {
          const r0 = Math.max(run.r0, c.c0), r1 = Math.min(run.r1, c.c1);
          if (r1 <= r0) continue;
          const a = this.#acc(run.key);
          const params = this.#throttle.temp(
            uniformWords(device, [r0 - c.c0, r1 - c.c0, c.width, c.offset, nx * WG, 0, 0, 0]),
          );
          pass.setBindGroup(
            0,
            device.createBindGroup({
              layout: this.#pipeline.getBindGroupLayout(0),
              entries: [
                { binding: 0, resource: { buffer: data, offset: o, size: bytes } },
                { binding: 1, resource: { buffer: a.buf } },
                { binding: 2, resource: { buffer: params } },
              ],
            }),
          );
          pass.dispatchWorkgroups(nx, ny);
        }
      }
      pass.end();
      device.queue.submit([enc.finish()]);
    }
    for (const run of runs) this.#acc(run.key).rows += run.r1 - run.r0;
    this.#throttle.after(device, batch.columns.reduce((s, c) => s + batch.numRows * c.width * 4, 0));
  }

  /** Reads every pending accumulator back into the sink (float64 `hi + lo`) and zeroes it on the GPU. */
  async flush(): Promise<void> {
    await this.#throttle.drain();
    await this.#accs.readBack(() => this.#dim * 12, (a, data) => {
      const f = new Float32Array(data), u = new Uint32Array(data);
      const sums = new Float64Array(this.#dim), nonfinite = new Uint32Array(this.#dim);
      for (let j = 0; j < this.#dim; j++) {
        sums[j] = f[3 * j] + f[3 * j + 1];
        nonfinite[j] = u[3 * j + 2];
        if (!Number.isFinite(sums[j])) {
          throw new Error(
            `Cannot accumulate squared gradients on the GPU as one exceeds float32's range (|g| > 1.8e19; use --backend cpu): current value is ${
              sums[j]
            } at column ${j}`,
          );
        }
      }
      this.#sink(a.key, sums, nonfinite);
    });
  }

  /** Frees the GPU buffers (pending sums are lost: flush first). */
  destroy(): void {
    this.#accs.destroy();
    this.#data.destroy();
  }
}
