/**
 * The unique-information linear algebra on WebGPU (float32): Gram products of Jacobian rows as batches arrive, then
 * `M = (Theta + lambda I)^-1` and the per-sample quantities of docs/science.md section 3 (`plugins/unique_info/unique_info.ts`).
 *
 * - Rows: train and test rows are uploaded once, into one growing buffer per split (row-major, `P` floats a row),
 *   and stay on the GPU.
 * - Kernels: each append computes the new train rows against every train row so far (a strip of `Theta`), the
 *   earlier test rows against the new train rows, and the new test rows against every train row (blocks of
 *   `K_test`), with one tiled float32 product `C = A B^T` each (`_si_wgsl.ts`: 128 x 128 tiles, 8 x 8 outputs an
 *   invocation on hardware). Strips stay on the GPU.
 * - Solve: the strips are placed into the dense `N x N` matrix `Theta + lambda I` in (sample_id, output) order, which
 *   is inverted in place by a blocked symmetric sweep (Gauss-Jordan for symmetric positive-definite matrices, no
 *   pivoting): for each pivot block `k` of `nb` rows, `D = A_kk^-1` is computed on the host in float64 (Cholesky: a
 *   non-positive pivot is the CPU path's error), then `R = A[:, k]`, `S = R D`, `A_ij -= S_i R_j^T` (`i, j != k`, lower
 *   triangle), `A_ik = S_i`, `A_kk = -D`. After every block, `A = -M`. The next pivot block is updated and read back
 *   first, so the host's float64 work overlaps the GPU's trailing update. `N^3 / 2` multiply-adds in all.
 * - Per-sample terms: `M_ii` entries, `(M^2)_ii = <M row, M row>`, `a = M r` (row dot products) and `Q = K_test M`
 *   are computed on the GPU; only those (`k^2 n`, `N`, `T N` values) come back.
 * - Accuracy (docs/bench/webgpu_si.md): the Gram and `K_test M` products are compensated (each 16-deep stage summed in
 *   float32, then added to a float-float accumulator by TwoSum: about one float32 rounding per entry whatever P), and
 *   `a = M r` gets 2 steps of iterative refinement against a kept copy of `Theta + lambda I` (the product with an
 *   explicit inverse errs by `eps ||M|| ||r||`, far more than `||a||` for small lambda).
 * - GPU memory: rows `4 P (N + T)`, strips `2 N^2`, `Theta + lambda I` and its copy `4 N^2` each, `K_test` and `Q`
 *   `4 T N` bytes: about 6 GB at N = P = 20,000.
 *
 * Limits: each buffer must fit the adapter's `maxStorageBufferBindingSize` (2 GiB on an H100: `N <= 23,170`,
 * `rows x P <= 5.3e8`); a clear error otherwise.
 *
 * @example
 * ```ts ignore
 * import { GpuSiKernel } from "./gpu_kernel.ts";
 * import { gpuContext } from "../kernels/gpu/context.ts";
 * const g = GpuSiKernel.open(await gpuContext(), 3);
 * await g.append(new Float32Array([1, 0, 0, 0, 1, 0]), new Float32Array([1, 1, 0]));
 * const out = await g.solve({ lambda: 1, trainOrder: Int32Array.of(0, 1), testOrder: Int32Array.of(0),
 *   residual: Float64Array.of(1, 1), pairs: Int32Array.of(0, 0, 1, 1) });
 * ```
 *
 * @module
 */
import type { GpuContext } from "../kernels/gpu/context.ts";
import { computePipeline, readBuffers, storageBuffer, uniformWords } from "../kernels/gpu/util.ts";
import { choleskyInPlace, inverseFromCholesky, NotPositiveDefiniteError } from "../kernels/linalg/mod.ts";
import {
  dotsWgsl,
  GATHER_WGSL,
  type MatmulConfig,
  matmulSharedWords,
  matmulWgsl,
  MIRROR_WGSL,
  PLACE_WGSL,
  SCATTER_WGSL,
  tileOf,
} from "./_wgsl.ts";

/** What {@linkcode GpuSiKernel.solve} needs, in the CPU path's (sample_id, output) order. */
export interface SolveInput {
  lambda: number;
  /** Position -> train slot (arrival order), length N. */
  trainOrder: Int32Array;
  /** Position -> test slot, length T (may be empty). */
  testOrder: Int32Array;
  /** `Y - f0` by position, length N. */
  residual: Float64Array;
  /** Pairs of positions `(x, y)` whose `M[x][y]` and `(M^2)[x][y]` are wanted (flat, length 2 x count). */
  pairs: Int32Array;
  /** Steps of iterative refinement of `a = M r` (default 2). */
  refine?: number;
}

/** The per-sample quantities, by position. */
export interface SolveOutput {
  /** `M[x][y]` for each pair. */
  m: Float64Array;
  /** `(M^2)[x][y]` for each pair. */
  m2: Float64Array;
  /** `a = M r`. */
  a: Float64Array;
  /** `Q = K_test M`, `T x N` row-major (test positions x train positions). */
  q: Float32Array;
  /** Seconds spent per stage (wall clock, GPU work awaited). */
  times: Record<string, number>;
  /** `||r - (Theta + lambda I) a|| / ||r||` before each refinement step (float32 products). */
  residuals: number[];
}

/** A block of products of rows `[r0, r1)` (of `rowSet`) with train rows `[c0, c1)`, row-major in `buf`. */
interface Block {
  r0: number;
  r1: number;
  c0: number;
  c1: number;
  buf: GPUBuffer;
}

/** A growing GPU buffer of rows of `width` floats. */
class RowStore {
  buf: GPUBuffer | null = null;
  rows = 0;
  cap = 0;
  constructor(readonly device: GPUDevice, readonly width: number, readonly label: string) {}

  /** Appends rows (row-major), growing the buffer by 1.5x (capped at the binding limit). */
  append(values: Float32Array<ArrayBuffer>, count: number): void {
    if (count === 0) return;
    const d = this.device, rowBytes = Math.max(4, this.width * 4);
    const maxRows = Math.floor(d.limits.maxStorageBufferBindingSize / rowBytes);
    const need = this.rows + count;
    if (need > maxRows) {
      throw new Error(
        `Cannot keep the ${this.label} rows on the GPU as ${need} rows of ${this.width} parameters exceed the adapter's storage binding size (${d.limits.maxStorageBufferBindingSize} bytes; use --si-sketch-dim or --backend cpu): current value is ${need} rows`,
      );
    }
    if (need > this.cap) {
      const cap = Math.min(maxRows, Math.max(need, Math.ceil(this.cap * 1.5), 64));
      const nb = storageBuffer(d, cap * rowBytes, `si ${this.label} rows`);
      if (this.buf && this.rows > 0) {
        const enc = d.createCommandEncoder();
        enc.copyBufferToBuffer(this.buf, 0, nb, 0, this.rows * rowBytes);
        d.queue.submit([enc.finish()]);
      }
      this.buf?.destroy();
      this.buf = nb;
      this.cap = cap;
    }
    if (this.width > 0) d.queue.writeBuffer(this.buf!, this.rows * rowBytes, values, 0, count * this.width);
    this.rows = need;
  }

  destroy(): void {
    this.buf?.destroy();
    this.buf = null;
  }
}

const now = () => performance.now() / 1000;
const f32bits = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0];

/** Kernels, products and the sweep inversion of unique information on one WebGPU device. */
export class GpuSiKernel {
  readonly device: GPUDevice;
  readonly width: number;
  readonly cfg: MatmulConfig;
  /** Tiling of the Gram products (compensated unless opened with `gram: "float32"`). */
  readonly gramCfg: MatmulConfig;
  /** Pivot block rows of the sweep (a multiple of the tile). */
  readonly nb: number;
  readonly train: RowStore;
  readonly test: RowStore;
  readonly thetaBlocks: Block[] = [];
  readonly ktestBlocks: Block[] = [];
  readonly #dotsWg: number;
  /** Seconds of the appends so far: upload (writeBuffer calls) and products (awaited at the next append). */
  readonly appendTimes = { upload: 0, gram: 0 };

  private constructor(
    device: GPUDevice,
    width: number,
    software: boolean,
    blockTiles: number,
    gram: "compensated" | "float32",
  ) {
    this.device = device;
    this.width = width;
    const limit = device.limits.maxComputeWorkgroupStorageSize;
    if (software) {
      // llvmpipe compiles workgroup arrays slowly (about quadratic in their size): small tiles
      this.cfg = { wx: 4, wy: 4, t: 4, kt: 4, pad: 0 };
    } else {
      const big: MatmulConfig = { wx: 16, wy: 16, t: 8, kt: 16, pad: 1 };
      const small: MatmulConfig = { wx: 16, wy: 16, t: 8, kt: 8, pad: 1 };
      this.cfg = matmulSharedWords(big) * 4 <= limit ? big : small;
    }
    const comp = gram === "compensated";
    this.gramCfg = software ? { ...this.cfg, comp } : comp
      ? { wx: 16, wy: 16, t: 4, kt: 16, pad: 1, comp } // 64 x 64 tiles: hi, lo and the stage partial in registers
      : this.cfg;
    const tile = tileOf(this.cfg);
    this.nb = blockTiles * tile;
    this.#dotsWg = software ? 32 : 256;
    this.train = new RowStore(device, width, "train");
    this.test = new RowStore(device, width, "test");
  }

  /**
   * The kernel on `gpu` for rows of `width` parameters. `blockTiles`: sweep block rows in tiles (default 2:
   * 256 rows on hardware, 32 on software adapters).
   */
  static open(
    gpu: GpuContext,
    width: number,
    opts: { blockTiles?: number; gram?: "compensated" | "float32" } = {},
  ): GpuSiKernel {
    return new GpuSiKernel(gpu.device, width, gpu.software, opts.blockTiles ?? 2, opts.gram ?? "compensated");
  }

  /** Tile edge of the products. */
  get tile(): number {
    return tileOf(this.cfg);
  }

  #pipe(code: string): GPUComputePipeline {
    return computePipeline(this.device, code);
  }

  #bind(pipe: GPUComputePipeline, buffers: (GPUBuffer | null)[], uniforms: GPUBuffer): GPUBindGroup {
    const entries: GPUBindGroupEntry[] = buffers.map((b, i) => ({ binding: i, resource: { buffer: b! } }));
    entries.push({ binding: buffers.length, resource: { buffer: uniforms } });
    return this.device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries });
  }

  /** Encodes `C (+)= alpha A B^T` (see `matmulWgsl`); `temps` collects the uniform buffers to free. */
  #matmul(
    pass: GPUComputePassEncoder,
    temps: GPUBuffer[],
    o: {
      a: GPUBuffer;
      b: GPUBuffer;
      c: GPUBuffer;
      m: number;
      n: number;
      k: number;
      lda: number;
      ldb: number;
      ldc: number;
      ao?: number;
      bo?: number;
      co?: number;
      alpha?: number;
      accum?: boolean;
      lower?: boolean;
      skip?: [number, number];
      done?: [number, number];
      cfg?: MatmulConfig;
    },
  ): void {
    if (o.m === 0 || o.n === 0) return;
    const cfg = o.cfg ?? this.cfg;
    const pipe = this.#pipe(matmulWgsl(cfg));
    const u = uniformWords(this.device, [
      o.m,
      o.n,
      o.k,
      o.lda,
      o.ldb,
      o.ldc,
      o.ao ?? 0,
      o.bo ?? 0,
      o.co ?? 0,
      f32bits(o.alpha ?? 1),
      o.accum ? 1 : 0,
      o.lower ? 1 : 0,
      ...(o.skip ?? [0, 0]),
      ...(o.done ?? [0, 0]),
      0,
      0,
      0,
      0,
    ]);
    temps.push(u);
    pass.setPipeline(pipe);
    pass.setBindGroup(0, this.#bind(pipe, [o.a, o.b, o.c], u));
    const t = tileOf(cfg), max = this.device.limits.maxComputeWorkgroupsPerDimension;
    const gx = Math.ceil(o.n / t), gy = Math.ceil(o.m / t);
    if (gx > max || gy > max) throw new Error(`GpuSiKernel: product of ${o.m} x ${o.n} exceeds the dispatch limit`);
    pass.dispatchWorkgroups(gx, gy);
  }

  /** Encodes a 16 x 16-workgroup kernel over `cols x rows` invocations. */
  #grid(
    pass: GPUComputePassEncoder,
    temps: GPUBuffer[],
    code: string,
    buffers: GPUBuffer[],
    words: number[],
    cols: number,
    rows: number,
  ): void {
    if (cols === 0 || rows === 0) return;
    const pipe = this.#pipe(code);
    const u = uniformWords(this.device, words);
    temps.push(u);
    pass.setPipeline(pipe);
    pass.setBindGroup(0, this.#bind(pipe, buffers, u));
    pass.dispatchWorkgroups(Math.ceil(cols / 16), Math.ceil(rows / 16));
  }

  /** A block buffer of `rows x cols` floats, checked against the binding limit. */
  #blockBuffer(rows: number, cols: number, label: string): GPUBuffer {
    const bytes = rows * cols * 4;
    if (bytes > this.device.limits.maxStorageBufferBindingSize) {
      throw new Error(
        `Cannot hold the ${label} on the GPU as ${rows} x ${cols} float32 exceed the adapter's storage binding size (${this.device.limits.maxStorageBufferBindingSize} bytes; use --backend cpu): current value is ${bytes} bytes`,
      );
    }
    return storageBuffer(this.device, bytes, label);
  }

  /** Waits for the previous append's products (their time is counted as Gram time). */
  async #settle(): Promise<void> {
    const t0 = now();
    await this.device.queue.onSubmittedWorkDone();
    this.appendTimes.gram += now() - t0;
  }

  /**
   * Uploads `nTrain` train rows and `nTest` test rows (row-major, `width` floats each) and computes their products
   * with every row so far (`Theta` strip and `K_test` blocks). Returns once the work is submitted (the previous
   * append's work awaited first: at most one batch in flight).
   */
  async append(train: Float32Array<ArrayBuffer>, test: Float32Array<ArrayBuffer>): Promise<void> {
    await this.#settle();
    const s0 = this.train.rows, t0 = this.test.rows;
    this.upload(train, test);
    this.products(s0, this.train.rows, t0, this.test.rows);
  }

  /** Uploads rows without computing products (benchmarks; {@linkcode append} does both). */
  upload(train: Float32Array<ArrayBuffer>, test: Float32Array<ArrayBuffer>): void {
    const W = this.width;
    const u0 = now();
    this.train.append(train, W > 0 ? train.length / W : 0);
    this.test.append(test, W > 0 ? test.length / W : 0);
    this.appendTimes.upload += now() - u0;
  }

  /** Waits for all submitted work. */
  async settle(): Promise<void> {
    await this.#settle();
  }

  /**
   * Submits the products of train rows `[s0, s1)` with train rows `[0, s1)`, of test rows `[0, t0)` with train rows
   * `[s0, s1)` and of test rows `[t0, t1)` with train rows `[0, s1)` (the rows must be uploaded).
   */
  products(s0: number, s1: number, t0: number, t1: number): void {
    const W = this.width;
    const temps: GPUBuffer[] = [];
    const enc = this.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    const trainBuf = this.train.buf, testBuf = this.test.buf;
    // Rows [r0, r1) of `a` (at element offset ao) against train rows [c0, c1): one product block.
    const product = (into: Block[], a: GPUBuffer, r0: number, r1: number, ao: number, c0: number, c1: number) => {
      const buf = this.#blockBuffer(r1 - r0, c1 - c0, into === this.thetaBlocks ? "Theta strip" : "K_test block");
      this.#matmul(pass, temps, {
        a,
        b: trainBuf!,
        c: buf,
        m: r1 - r0,
        n: c1 - c0,
        k: W,
        lda: W,
        cfg: this.gramCfg,
        ldb: W,
        ldc: c1 - c0,
        ao,
        bo: c0 * W,
      });
      into.push({ r0, r1, c0, c1, buf });
    };
    if (s1 > s0) {
      // Theta strip: rows [s0, s1) x columns [0, s1), split by rows to fit a binding
      const per = Math.max(1, Math.floor(this.device.limits.maxStorageBufferBindingSize / (s1 * 4)));
      for (let r0 = s0; r0 < s1; r0 += per) {
        const r1 = Math.min(s1, r0 + per);
        product(this.thetaBlocks, trainBuf!, r0, r1, r0 * W, 0, s1);
      }
      // earlier test rows against the new train rows
      if (t0 > 0) product(this.ktestBlocks, testBuf!, 0, t0, 0, s0, s1);
    }
    // new test rows against every train row
    if (t1 > t0 && s1 > 0) product(this.ktestBlocks, testBuf!, t0, t1, t0 * W, 0, s1);
    pass.end();
    this.device.queue.submit([enc.finish()]);
    this.device.queue.onSubmittedWorkDone().then(() => temps.forEach((u) => u.destroy()));
  }

  /**
   * `M = (Theta + lambda I)^-1` and the per-sample quantities (see {@linkcode SolveOutput}). Throws the CPU path's
   * {@linkcode NotPositiveDefiniteError} (pivot index in position order) when a pivot block is not positive
   * definite.
   */
  async solve(inp: SolveInput): Promise<SolveOutput> {
    const d = this.device, times: Record<string, number> = {};
    let t = now();
    await this.#settle();
    times.gram_wait = now() - t;
    const N = inp.trainOrder.length, T = inp.testOrder.length;
    if (N !== this.train.rows || T !== this.test.rows) {
      throw new Error(`GpuSiKernel: ${N} train / ${T} test positions for ${this.train.rows} / ${this.test.rows} rows`);
    }
    const temps: GPUBuffer[] = [], owned: GPUBuffer[] = [];
    const own = (b: GPUBuffer) => (owned.push(b), b);
    const posBuf = (order: Int32Array) => {
      const pos = new Uint32Array(Math.max(1, order.length));
      order.forEach((slot, p) => (pos[slot] = p));
      const b = own(storageBuffer(d, pos.byteLength, "si positions"));
      d.queue.writeBuffer(b, 0, pos);
      return b;
    };
    try {
      // --- assemble Theta + lambda I and K_test in position order
      t = now();
      const trainPos = posBuf(inp.trainOrder), testPos = posBuf(inp.testOrder);
      const A = own(this.#blockBuffer(N, N, "Theta + lambda I"));
      const K = own(this.#blockBuffer(Math.max(1, T), N, "K_test"));
      const A0 = own(this.#blockBuffer(N, N, "Theta + lambda I (copy)"));
      {
        const enc = d.createCommandEncoder(), pass = enc.beginComputePass();
        // Each product block into its dense matrix: Theta mirrored with lambda on the diagonal, K_test as it is.
        const place = (blocks: Block[], rowPos: GPUBuffer, dst: GPUBuffer, mirror: boolean) => {
          for (const b of blocks) {
            const w = b.c1 - b.c0, h = b.r1 - b.r0;
            const params = [h, w, w, N, b.r0, b.c0, mirror ? 1 : 0, mirror ? f32bits(inp.lambda) : 0];
            this.#grid(pass, temps, PLACE_WGSL, [b.buf, rowPos, trainPos, dst], params, w, h);
          }
        };
        place(this.thetaBlocks, trainPos, A, true);
        place(this.ktestBlocks, testPos, K, false);
        pass.end();
        enc.copyBufferToBuffer(A, 0, A0, 0, N * N * 4); // kept for the refinement of a = M r
        d.queue.submit([enc.finish()]);
        await d.queue.onSubmittedWorkDone();
      }
      times.assemble = now() - t;

      // --- blocked sweep: A <- -(Theta + lambda I)^-1 (lower triangle)
      t = now();
      const nb = this.nb;
      const R = own(storageBuffer(d, N * nb * 4, "sweep R"));
      const S = own(storageBuffer(d, N * nb * 4, "sweep S"));
      const Dbuf = own(storageBuffer(d, nb * nb * 4, "sweep D"));
      const readBlock = async (k0: number, k1: number): Promise<Float32Array> => {
        const b = k1 - k0;
        const staging = d.createBuffer({ size: b * b * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
        const e = d.createCommandEncoder();
        for (let i = 0; i < b; i++) e.copyBufferToBuffer(A, ((k0 + i) * N + k0) * 4, staging, i * b * 4, b * 4);
        d.queue.submit([e.finish()]);
        return await mapped(staging);
      };
      const mapped = async (staging: GPUBuffer): Promise<Float32Array> => {
        await staging.mapAsync(GPUMapMode.READ);
        const out = new Float32Array(staging.getMappedRange().slice(0));
        staging.unmap();
        staging.destroy();
        return out;
      };
      let hostTime = 0, waitTime = 0;
      const invertBlock = (blk: Float32Array, k0: number, b: number): Float32Array<ArrayBuffer> => {
        const h0 = now();
        const a = new Float64Array(b * b);
        for (let i = 0; i < b; i++) for (let j = 0; j <= i; j++) a[i * b + j] = a[j * b + i] = blk[i * b + j];
        try {
          choleskyInPlace(a, b);
        } catch (e) {
          if (e instanceof NotPositiveDefiniteError) {
            throw new NotPositiveDefiniteError(k0 + e.pivot, Number(e.message.split("current value is ")[1]));
          }
          throw e;
        }
        const inv = inverseFromCholesky(a, b);
        hostTime += now() - h0;
        return Float32Array.from(inv);
      };
      let w0 = now();
      let block = N > 0 ? await readBlock(0, Math.min(N, nb)) : new Float32Array(0);
      waitTime += now() - w0;
      for (let k0 = 0; k0 < N; k0 += nb) {
        const k1 = Math.min(N, k0 + nb), b = k1 - k0;
        const D = invertBlock(block, k0, b);
        d.queue.writeBuffer(Dbuf, 0, D);
        const l0 = k1, l1 = Math.min(N, k1 + nb);
        // submission 1: panel, S = R D, the next pivot block's update and its read-back
        const enc1 = d.createCommandEncoder();
        let pass = enc1.beginComputePass();
        this.#grid(pass, temps, GATHER_WGSL, [A, R], [N, k0, b, nb], b, N);
        this.#matmul(pass, temps, { a: R, b: Dbuf, c: S, m: N, n: b, k: b, lda: nb, ldb: b, ldc: nb });
        if (l1 > l0) {
          this.#matmul(pass, temps, {
            a: S,
            b: R,
            c: A,
            m: l1 - l0,
            n: l1 - l0,
            k: b,
            lda: nb,
            ldb: nb,
            ldc: N,
            ao: l0 * nb,
            bo: l0 * nb,
            co: l0 * N + l0,
            alpha: -1,
            accum: true,
          });
        }
        pass.end();
        let next: Promise<Float32Array> | null = null;
        if (l1 > l0) {
          const staging = d.createBuffer({
            size: (l1 - l0) * (l1 - l0) * 4,
            usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
          });
          const bl = l1 - l0;
          for (let i = 0; i < bl; i++) {
            enc1.copyBufferToBuffer(A, ((l0 + i) * N + l0) * 4, staging, i * bl * 4, bl * 4);
          }
          d.queue.submit([enc1.finish()]);
          next = mapped(staging);
        } else {
          d.queue.submit([enc1.finish()]);
        }
        // submission 2: the rest of the rank-b update, then the new pivot row and column
        const enc2 = d.createCommandEncoder();
        pass = enc2.beginComputePass();
        this.#matmul(pass, temps, {
          a: S,
          b: R,
          c: A,
          m: N,
          n: N,
          k: b,
          lda: nb,
          ldb: nb,
          ldc: N,
          alpha: -1,
          accum: true,
          lower: true,
          skip: [k0, k1],
          done: [l0, l1],
        });
        this.#grid(pass, temps, SCATTER_WGSL, [S, Dbuf, A], [N, k0, b, nb], b, N);
        pass.end();
        d.queue.submit([enc2.finish()]);
        if (next) {
          w0 = now();
          block = await next;
          waitTime += now() - w0;
        }
      }
      {
        const enc = d.createCommandEncoder(), pass = enc.beginComputePass();
        this.#grid(pass, temps, MIRROR_WGSL, [A], [N, 0, 0, 0], N, N);
        pass.end();
        d.queue.submit([enc.finish()]);
        await d.queue.onSubmittedWorkDone();
      }
      times.inverse = now() - t;
      times.inverse_host_blocks = hostTime;
      times.inverse_wait_blocks = waitTime;

      // --- per-sample quantities: M entries, (M^2) entries, a = M r, Q = K_test M (A holds -M, full)
      t = now();
      const nPairs = inp.pairs.length / 2;
      const pairBuf = own(storageBuffer(d, Math.max(8, nPairs * 8), "si pairs"));
      d.queue.writeBuffer(pairBuf, 0, Uint32Array.from(inp.pairs));
      const rowPairs = new Uint32Array(2 * N);
      for (let i = 0; i < N; i++) rowPairs[2 * i] = i;
      const rowPairBuf = own(storageBuffer(d, Math.max(8, N * 8), "si row pairs"));
      d.queue.writeBuffer(rowPairBuf, 0, rowPairs);
      const rBuf = own(storageBuffer(d, N * 4, "si residual"));
      d.queue.writeBuffer(rBuf, 0, Float32Array.from(inp.residual));
      const dots = own(storageBuffer(d, nPairs * 4, "si M^2"));
      const dotsCode = dotsWgsl(this.#dotsWg), max = d.limits.maxComputeWorkgroupsPerDimension;
      const dispatchDots = (
        pass: GPUComputePassEncoder,
        X: GPUBuffer,
        Y: GPUBuffer,
        pairs: GPUBuffer,
        out: GPUBuffer,
        ent: GPUBuffer,
        count: number,
        ldy: number,
      ) => {
        if (count === 0) return;
        const nx = Math.min(count, max), ny = Math.ceil(count / nx);
        const pipe = this.#pipe(dotsCode);
        const u = uniformWords(d, [count, N, N, ldy, nx, 0, 0, 0]);
        temps.push(u);
        pass.setPipeline(pipe);
        pass.setBindGroup(0, this.#bind(pipe, [X, Y, pairs, out, ent], u));
        pass.dispatchWorkgroups(nx, ny);
      };
      const ents = own(storageBuffer(d, nPairs * 4, "si M"));
      const aBuf = own(storageBuffer(d, N * 4, "si a"));
      const aEnt = own(storageBuffer(d, N * 4, "si a (unused)"));
      const Q = own(this.#blockBuffer(Math.max(1, T), N, "K_test M"));
      {
        const enc = d.createCommandEncoder(), pass = enc.beginComputePass();
        dispatchDots(pass, A, A, pairBuf, dots, ents, nPairs, N);
        dispatchDots(pass, A, rBuf, rowPairBuf, aBuf, aEnt, N, 0);
        if (T > 0) {
          // compensated like the Gram: M's entries are large (~1/lambda) and of both signs
          this.#matmul(pass, temps, {
            a: K,
            b: A,
            c: Q,
            m: T,
            n: N,
            k: N,
            lda: N,
            ldb: N,
            ldc: N,
            alpha: -1,
            cfg: this.gramCfg,
          });
        }
        pass.end();
        d.queue.submit([enc.finish()]);
        await d.queue.onSubmittedWorkDone();
      }
      times.per_sample = now() - t;
      t = now();
      const [mb, m2b, ab, qb] = await readBuffers(d, [
        { buffer: ents, bytes: nPairs * 4 },
        { buffer: dots, bytes: nPairs * 4 },
        { buffer: aBuf, bytes: N * 4 },
        { buffer: Q, bytes: T * N * 4 },
      ]);
      times.read_back = now() - t;
      const m = Float64Array.from(new Float32Array(mb), (x) => -x);
      const m2 = Float64Array.from(new Float32Array(m2b));
      const a = Float64Array.from(new Float32Array(ab), (x) => -x);
      // Iterative refinement of a = M r: the product with the explicit inverse errs by ~eps ||M|| ||r||, far more
      // than ||a|| when r lies mostly along Theta's large eigenvalues (small lambda). Residuals r - (Theta +
      // lambda I) a are float32 products summed in float64 here; each step brings a to ~eps kappa relative.
      t = now();
      const matvec = async (X: GPUBuffer, v: Float64Array, sign: number): Promise<Float64Array> => {
        d.queue.writeBuffer(rBuf, 0, Float32Array.from(v));
        const enc = d.createCommandEncoder(), pass = enc.beginComputePass();
        dispatchDots(pass, X, rBuf, rowPairBuf, aBuf, aEnt, N, 0);
        pass.end();
        d.queue.submit([enc.finish()]);
        const [out] = await readBuffers(d, [{ buffer: aBuf, bytes: N * 4 }]);
        return Float64Array.from(new Float32Array(out), (x) => sign * x);
      };
      const residuals: number[] = [];
      const norm = (v: ArrayLike<number>) => {
        let q = 0;
        for (let i = 0; i < v.length; i++) q += v[i] * v[i];
        return Math.sqrt(q);
      };
      const rnorm = norm(inp.residual) || 1;
      for (let it = 0; it < (inp.refine ?? 2) && N > 0; it++) {
        const p = await matvec(A0, a, 1);
        const e = Float64Array.from(p, (x, i) => inp.residual[i] - x);
        residuals.push(norm(e) / rnorm);
        const delta = await matvec(A, e, -1);
        for (let i = 0; i < N; i++) a[i] += delta[i];
      }
      times.refine = now() - t;
      return { m, m2, a, q: new Float32Array(qb), times, residuals };
    } finally {
      for (const b of owned) b.destroy();
      d.queue.onSubmittedWorkDone().then(() => temps.forEach((u) => u.destroy()));
    }
  }

  /** Frees every GPU buffer. */
  destroy(): void {
    this.train.destroy();
    this.test.destroy();
    for (const b of [...this.thetaBlocks, ...this.ktestBlocks]) b.buf.destroy();
    this.thetaBlocks.length = 0;
    this.ktestBlocks.length = 0;
  }
}
