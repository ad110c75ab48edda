/**
 * Small WebGPU helpers shared by the kernels: compute pipelines cached per device and source, storage
 * buffers that grow, uniform blocks, read-back, accumulators read back together, and a one-batch-in-flight
 * throttle.
 *
 * @module
 */

const pipelines = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

/** A compute pipeline for `code` (entry point `main`), compiled once per device. */
export function computePipeline(device: GPUDevice, code: string): GPUComputePipeline {
  let m = pipelines.get(device);
  if (!m) pipelines.set(device, m = new Map());
  let p = m.get(code);
  if (!p) {
    const module = device.createShaderModule({ code });
    p = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
    m.set(code, p);
  }
  return p;
}

/** Rounds a byte count up to a multiple of 256 (copy and binding offsets). */
export function align256(bytes: number): number {
  return Math.ceil(bytes / 256) * 256;
}

/** A zero-filled storage buffer (also a copy source and destination). */
export function storageBuffer(device: GPUDevice, bytes: number, label?: string): GPUBuffer {
  return device.createBuffer({
    label,
    size: Math.max(256, align256(bytes)),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
}

/** A uniform buffer holding the given 32-bit unsigned words (padded to 16 bytes). */
export function uniformWords(device: GPUDevice, words: number[]): GPUBuffer {
  const size = Math.max(16, Math.ceil((words.length * 4) / 16) * 16);
  const buf = device.createBuffer({ size, usage: GPUBufferUsage.UNIFORM, mappedAtCreation: true });
  new Uint32Array(buf.getMappedRange()).set(words);
  buf.unmap();
  return buf;
}

/** A storage buffer reused across batches, grown (never shrunk) when a batch needs more. */
export class GrowingBuffer {
  #buf: GPUBuffer | null = null;
  constructor(readonly device: GPUDevice, readonly label: string) {}

  /** A buffer of at least `bytes` (its contents are undefined after growing). */
  get(bytes: number): GPUBuffer {
    if (!this.#buf || this.#buf.size < bytes) {
      this.#buf?.destroy();
      this.#buf = storageBuffer(this.device, Math.max(bytes, (this.#buf?.size ?? 0) * 1.5), this.label);
    }
    return this.#buf;
  }

  destroy(): void {
    this.#buf?.destroy();
    this.#buf = null;
  }
}

/** Copies `bytes` of each source buffer (from offset 0) to the host in one submission and one map. */
export async function readBuffers(device: GPUDevice, sources: { buffer: GPUBuffer; bytes: number }[]): Promise<
  ArrayBuffer[]
> {
  const total = sources.reduce((a, s) => a + align256(s.bytes), 0);
  if (total === 0) return sources.map(() => new ArrayBuffer(0));
  const staging = device.createBuffer({ size: total, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  let at = 0;
  const offsets: number[] = [];
  for (const s of sources) {
    offsets.push(at);
    const n = Math.ceil(s.bytes / 4) * 4;
    if (n > 0) enc.copyBufferToBuffer(s.buffer, 0, staging, at, n);
    at += align256(s.bytes);
  }
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const range = staging.getMappedRange();
  const out = sources.map((s, i) => range.slice(offsets[i], offsets[i] + s.bytes));
  staging.unmap();
  staging.destroy();
  return out;
}

/** A buffer that accumulates on the GPU, with the rows added to it since it was last read back. */
export interface Accumulator {
  buf: GPUBuffer;
  rows: number;
}

/** Accumulators by id: created on first use, read back together (one map) and zeroed on the GPU. */
export class Accumulators<A extends Accumulator> {
  readonly #map = new Map<string, A>();

  constructor(readonly device: GPUDevice) {}

  /** The accumulator `id`, made by `create` on first use. */
  get(id: string, create: () => A): A {
    let a = this.#map.get(id);
    if (!a) {
      a = create();
      this.#map.set(id, a);
    }
    return a;
  }

  /** True when some accumulator holds rows not yet read back. */
  get pending(): boolean {
    for (const a of this.#map.values()) if (a.rows > 0) return true;
    return false;
  }

  /** Reads `bytes(a)` of every accumulator holding rows, hands each to `take` in order, then zeroes them. */
  async readBack(bytes: (a: A) => number, take: (a: A, data: ArrayBuffer) => void): Promise<void> {
    const accs = [...this.#map.values()].filter((a) => a.rows > 0);
    if (accs.length === 0) return;
    const parts = await readBuffers(this.device, accs.map((a) => ({ buffer: a.buf, bytes: bytes(a) })));
    const enc = this.device.createCommandEncoder();
    accs.forEach((a, i) => {
      take(a, parts[i]);
      enc.clearBuffer(a.buf);
      a.rows = 0;
    });
    this.device.queue.submit([enc.finish()]);
  }

  /** Frees every accumulator's buffer. */
  destroy(): void {
    for (const a of this.#map.values()) a.buf.destroy();
    this.#map.clear();
  }
}

/**
 * Bounds the submitted work in flight: `before()` waits while `maxInFlight` batches (or `maxBytes` of their
 * uploads) are still running, so a reader faster than the GPU cannot pile up memory, yet consecutive batches are
 * queued without a host round trip between them (the queue runs them in order; a buffer rewritten by
 * `writeBuffer` for the next batch is written after the earlier batches' commands, by WebGPU's queue ordering).
 * `drain()` waits for everything (before a read-back). Temporary buffers of a batch are destroyed once it completes.
 */
export class Throttle {
  #queue: { done: Promise<unknown>; temps: GPUBuffer[]; bytes: number }[] = [];
  #next: GPUBuffer[] = [];
  #bytes = 0;

  constructor(readonly maxInFlight = 4, readonly maxBytes = 256 * 2 ** 20) {}

  /** Registers a temporary buffer of the batch being encoded (destroyed once that batch completes). */
  temp(b: GPUBuffer): GPUBuffer {
    this.#next.push(b);
    return b;
  }

  async #retireOldest(): Promise<void> {
    const head = this.#queue.shift()!;
    await head.done;
    this.#bytes -= head.bytes;
    for (const b of head.temps) b.destroy();
  }

  /** Waits until a new batch may be encoded; call before encoding it. */
  async before(): Promise<void> {
    while (this.#queue.length >= this.maxInFlight || (this.#queue.length > 0 && this.#bytes >= this.maxBytes)) {
      await this.#retireOldest();
    }
  }

  /** Waits for every batch submitted so far. */
  async drain(): Promise<void> {
    while (this.#queue.length > 0) await this.#retireOldest();
  }

  /** Marks the end of a batch's submissions (`bytes`: what it uploaded). */
  after(device: GPUDevice, bytes = 0): void {
    this.#queue.push({ done: device.queue.onSubmittedWorkDone(), temps: this.#next, bytes });
    this.#bytes += bytes;
    this.#next = [];
  }
}

/** The bits of float32 values as unsigned words (a view, no copy when aligned). */
export function bitsOf(values: Float32Array): Uint32Array<ArrayBuffer> {
  return new Uint32Array(values.buffer as ArrayBuffer, values.byteOffset, values.length);
}
