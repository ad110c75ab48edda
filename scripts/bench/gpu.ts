/**
 * Benchmark of the WebGPU kernels (issue 8), each against the CPU path in the same run: the host-to-GPU copy
 * rate (the yardstick), the Fisher diagonal (`GpuSquareSums`) against it and against the CPU estimator, entropy
 * counts (`GpuHistograms`) against `binRows`, and binned-MI joint counts of all pairs (`GpuPairCounts`, 768 x 10,000
 * x 16 bins) against the CPU's extrapolated time and, where PyTorch with CUDA exists, its one-hot product. Every GPU
 * figure includes waiting for the GPU. Figures: docs/bench/webgpu.md.
 *
 * Run alone: `node_modules/deno/deno run -A scripts/bench/gpu.ts [--quick]` (prints the adapter first; on a software
 * adapter such as llvmpipe the figures only show that the kernels run: use `--quick` there).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { describeAdapter, gpuContext, probeAdapter } from "../../plugins/kernels/gpu/context.ts";
import { GpuSquareSums } from "../../plugins/fisher/gpu_square_sums.ts";
import { GpuHistograms } from "../../plugins/entropy/gpu_histogram.ts";
import { GpuPairCounts, pairIndex } from "../../plugins/mi/gpu_pair_counts.ts";
import { thresholds } from "../../plugins/_shared/gpu_thresholds.ts";
import { binRows, type LayerRange } from "../../plugins/_shared/binning.ts";
import { addPairCounts, codeRows } from "../../plugins/_shared/pair_counts.ts";
import { fisherPlugin } from "../../plugins/fisher/fisher.ts";
import type { Batch } from "../../schemas/batch.ts";
import type { BenchArgs, BenchRow } from "./_types.ts";
import { best } from "./_timing.ts";

const MB = 1e6;

function noise(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 4294967296 - 0.5) * 2;
  }
  return out;
}

function gradBatch(rows: number, width: number, values: Float32Array): Batch {
  return {
    numRows: rows,
    step: null,
    file: "bench",
    index: 0,
    metadata: new Map([["infotap.fisher", "true"]]),
    columns: [{ name: "w", width, values, metadata: new Map() }],
  } as unknown as Batch;
}

/** Throws when a GPU result is wrong: a benchmark of wrong numbers is worthless. */
function fail(what: string, detail: string): never {
  throw new Error(`Cannot trust the GPU figures as ${what} differs from the CPU: current value is ${detail}`);
}

/** Max relative error of GPU sums of squares against float64 sums (documented bound: 1.5e-8). */
function checkSquareSums(got: Float64Array, values: Float32Array, rows: number, width: number): string {
  let worst = 0;
  for (let j = 0; j < width; j += 97) {
    let s = 0;
    for (let r = 0; r < rows; r++) s += values[r * width + j] ** 2;
    worst = Math.max(worst, Math.abs(got[j] - s) / s);
  }
  if (!(worst <= 1.5e-8)) fail("a sum of squares", `relative error ${worst}`);
  return `checked: max relative error ${worst.toExponential(1)} (bound 1.5e-8)`;
}

/** Copy rate and Fisher diagonal. */
async function fisher(quick: boolean): Promise<BenchRow[]> {
  const ctx = await gpuContext(), device = ctx.device;
  const rows = 64, width = quick ? 32768 : 1 << 20, batches = quick ? 2 : 8; // 8 MiB / 256 MiB per batch
  const values = noise(rows * width, 7);
  const bytes = values.byteLength * batches;
  const buf = device.createBuffer({ size: values.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  const copy = await best(3, async () => {
    for (let b = 0; b < batches; b++) device.queue.writeBuffer(buf, 0, values as Float32Array<ArrayBuffer>);
    await device.queue.onSubmittedWorkDone();
  });
  buf.destroy();
  const copyRate = bytes / copy / MB;
  let got: Float64Array | null = null;
  const sums = GpuSquareSums.open(ctx, width, (_k, s) => (got = s));
  const batch = gradBatch(rows, width, values);
  await sums.update(batch, [{ key: "all", r0: 0, r1: rows }]);
  await sums.flush();
  const check = checkSquareSums(got!, values, rows, width);
  const gpu = await best(3, async () => {
    for (let b = 0; b < batches; b++) await sums.update(batch, [{ key: "all", r0: 0, r1: rows }]);
    await sums.flush();
  });
  sums.destroy();
  const gpuRate = bytes / gpu / MB;
  const cpuBatches = Math.max(1, batches >> 2);
  const cpu = await best(2, async () => {
    const est = fisherPlugin.create({ "fisher-rank": 0, "fisher-diag": false }, { byStep: false, seed: 0 });
    for (let b = 0; b < cpuBatches; b++) await est.update(batch);
  });
  const cpuRate = (values.byteLength * cpuBatches) / cpu / MB;
  const size = `${rows} rows x ${width} parameters x ${batches} batches`;
  return [
    { name: "host-to-GPU copy (writeBuffer)", value: copyRate, unit: "MB/s", note: size },
    {
      name: "fisher diagonal on GPU vs copy rate",
      value: gpuRate,
      unit: "MB/s",
      reference: copyRate,
      ratio: gpuRate / copyRate,
      note:
        `ratio = share of the copy rate (target >= 0.5 on a real GPU); upload + float-float sums + read-back; ${check}`,
    },
    {
      name: "fisher diagonal GPU vs CPU",
      value: gpuRate,
      unit: "MB/s",
      reference: cpuRate,
      ratio: gpuRate / cpuRate,
      note: "reference: fisher --fisher-rank 0 on one CPU thread; ratio = speed-up",
    },
  ];
}

/** Entropy counts. */
async function entropy(quick: boolean): Promise<BenchRow[]> {
  const rows = quick ? 1000 : 10000, width = quick ? 256 : 768, bins = 100, batches = quick ? 2 : 10;
  const values = noise(rows * width, 9);
  const range: LayerRange = { lo: new Float64Array(width).fill(-1), hi: new Float64Array(width).fill(1) };
  const batch = { numRows: rows, columns: [{ name: "x", width, values }] } as unknown as Batch;
  let gotCounts: Uint32Array | null = null;
  const hist = GpuHistograms.open(await gpuContext(), bins, (_k, _l, c) => (gotCounts = c.slice()));
  await hist.update(batch, [{ key: "all", r0: 0, r1: rows }], () => range);
  await hist.flush();
  {
    const want = new Uint32Array(width * bins);
    binRows(values, width, 0, rows, range, bins, want, new Float64Array(width), new Float64Array(width));
    if (!want.every((c, i) => c === gotCounts![i])) fail("a histogram count", "not bit-equal");
  }
  const gpu = await best(3, async () => {
    for (let b = 0; b < batches; b++) await hist.update(batch, [{ key: "all", r0: 0, r1: rows }], () => range);
    await hist.flush();
  });
  hist.destroy();
  const counts = new Uint32Array(width * bins), nf = new Float64Array(width), cl = new Float64Array(width);
  const cpu = await best(2, () => {
    for (let b = 0; b < batches; b++) binRows(values, width, 0, rows, range, bins, counts, nf, cl);
    return Promise.resolve();
  });
  const n = rows * width * batches;
  return [{
    name: `entropy counts, ${width} neurons x ${rows} rows x ${batches} batches, ${bins} bins`,
    value: n / gpu / 1e9,
    unit: "G values/s",
    reference: n / cpu / 1e9,
    ratio: cpu / gpu,
    note: "reference: binRows on one CPU thread; ratio = speed-up; upload + counts + read-back; checked: bit-equal",
  }];
}

/** The PyTorch peer (one-hot matrix product), when python3 + torch + CUDA exist; else null. */
async function torchPeer(n: number, rows: number, bins: number, tf32: boolean): Promise<number | null> {
  const script = `
import torch, time
assert torch.cuda.is_available()
n, rows, B = ${n}, ${rows}, ${bins}
codes = torch.randint(0, B, (rows, n), device="cuda")
def run():
    o = torch.nn.functional.one_hot(codes, B).reshape(rows, n * B).float()
    return o.T @ o
torch.backends.cuda.matmul.allow_tf32 = ${tf32 ? "True" : "False"}
c = run(); torch.cuda.synchronize()
assert int(c.sum().item()) == rows * n * n  # every count exact (0/1 inputs, float32 accumulation below 2^24)
best = 1e9
for _ in range(10):
    t = time.perf_counter(); run(); torch.cuda.synchronize(); best = min(best, time.perf_counter() - t)
print(best)
`;
  try {
    const out = await new Deno.Command("python3", { args: ["-c", script], stdout: "piped", stderr: "null" }).output();
    if (!out.success) return null;
    const t = Number(new TextDecoder().decode(out.stdout).trim());
    return Number.isFinite(t) ? t : null;
  } catch {
    return null;
  }
}

/** Binned-MI joint counts of all pairs. */
async function pairs(quick: boolean): Promise<BenchRow[]> {
  const n = quick ? 64 : 768, rows = quick ? 2000 : 10000, bins = 16;
  const values = noise(rows * n, 11);
  const thr = thresholds(-1, 1, bins);
  const ctx = await gpuContext(), device = ctx.device;
  // Upload alone (the same bytes, the same call), to split the joint-count time.
  const up = device.createBuffer({ size: values.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  const upload = await best(5, async () => {
    device.queue.writeBuffer(up, 0, values as Float32Array<ArrayBuffer>);
    await device.queue.onSubmittedWorkDone();
  });
  up.destroy();
  // The host round trip of an empty submission (submit, then onSubmittedWorkDone): part of any one-batch figure.
  const trip = await best(10, async () => {
    device.queue.submit([device.createCommandEncoder().finish()]);
    await device.queue.onSubmittedWorkDone();
  });
  // Tilings: outputs per invocation and side x mask words per workgroup stage; the first is the default.
  const tunings: { perInvocation: 4 | 8; words: number }[] = quick
    ? [{ perInvocation: 4, words: 16 }, { perInvocation: 8, words: 8 }]
    : [{ perInvocation: 4, words: 16 }, { perInvocation: 8, words: 16 }, { perInvocation: 8, words: 8 }, {
      perInvocation: 4,
      words: 32,
    }];
  let gpuCounts: Uint32Array | null = null;
  let gpu = Infinity, readback = 0, readDetail = "";
  const tuned: string[] = [];
  for (const t of tunings) {
    const pc = GpuPairCounts.open(ctx, n, bins, thr, t);
    await pc.update(values, rows); // compile + warm up; checked below
    const counts = await pc.read();
    if (gpuCounts === null) gpuCounts = counts;
    else if (!counts.every((c, i) => c === gpuCounts![i])) fail("a tiling's joint counts", JSON.stringify(t));
    const time = await best(10, async () => {
      await pc.update(values, rows);
      await pc.done();
    });
    tuned.push(
      `${16 * t.perInvocation}x${16 * t.perInvocation} tiles, ${t.words} words/stage: ${(time * 1000).toFixed(2)} ms`,
    );
    if (gpuCounts === counts) {
      gpu = time;
      const t0 = performance.now();
      await pc.read();
      readback = (performance.now() - t0) / 1000;
      // Steady state: 8 batches back to back (upload of one batch, then its kernels).
      const steady = await best(2, async () => {
        for (let b = 0; b < 8; b++) await pc.update(values, rows);
        await pc.done();
      });
      readDetail = `; 8 batches back to back: ${(steady / 8 * 1000).toFixed(2)} ms per batch`;
      await pc.read();
    }
    pc.destroy();
  }
  // CPU: codes once, then per-pair scatter-add on a sample of pairs, extrapolated.
  const P = (n * (n - 1)) / 2, sample = Math.min(P, quick ? 2016 : 4000);
  const pairList = new Int32Array(2 * sample);
  for (let p = 0; p < sample; p++) {
    const a = p % (n - 1);
    pairList[2 * p] = a;
    pairList[2 * p + 1] = a + 1 + ((p * 7) % (n - 1 - a));
  }
  const range: LayerRange = { lo: new Float64Array(n).fill(-1), hi: new Float64Array(n).fill(1) };
  const codes = new Uint8Array(n * rows), bad = new Float64Array(n), dirty = new Uint8Array(n);
  const counts = new Uint32Array(sample * bins * bins);
  const tc0 = performance.now();
  codeRows(values, n, 0, rows, range, bins, codes, 0, bad);
  const codeTime = (performance.now() - tc0) / 1000;
  const pairTime = await best(2, () => {
    addPairCounts(codes, rows, pairList, 0, sample, bins, dirty, counts);
    return Promise.resolve();
  });
  const cpu = codeTime + (pairTime * P) / sample;
  if (gpuCounts === null) throw new Error("Cannot check the joint counts as no tiling ran: current value is none");
  {
    const once = new Uint32Array(sample * bins * bins);
    addPairCounts(codes, rows, pairList, 0, sample, bins, dirty, once);
    const B2 = bins * bins;
    for (let p = 0; p < sample; p++) {
      const at = pairIndex(pairList[2 * p], pairList[2 * p + 1], n) * B2;
      for (let k = 0; k < B2; k++) {
        if (gpuCounts[at + k] !== once[p * B2 + k]) {
          fail("a joint count", `pair ${pairList[2 * p]},${pairList[2 * p + 1]}`);
        }
      }
    }
  }
  const rowsOut: BenchRow[] = [{
    name: `binned-MI joint counts, ${n} neurons x ${rows} samples x ${bins} bins (${P} pairs)`,
    value: gpu * 1000,
    unit: "ms",
    reference: cpu * 1000,
    ratio: cpu / gpu,
    note: `upload (${(upload * 1000).toFixed(2)} ms alone) + bit masks + AND-popcount Gram${readDetail}; read-back of ${
      (P * bins * bins * 4 / MB).toFixed(0)
    } MB apart: ${
      (readback * 1000).toFixed(1)
    } ms; reference: codeRows + addPairCounts on 1 CPU thread (${sample} pairs, extrapolated); checked: ${sample} pairs bit-equal, every tiling equal; target <= 25 ms on a real GPU`,
  }, {
    name: "binned-MI joint counts, kernels alone (total minus upload alone)",
    value: (gpu - upload) * 1000,
    unit: "ms",
    note: `${tuned.join("; ")}; round trip of an empty submission: ${(trip * 1000).toFixed(2)} ms`,
  }];
  if (!quick) {
    for (const tf32 of [true, false]) {
      const torch = await torchPeer(n, rows, bins, tf32);
      if (torch === null) continue;
      rowsOut.push({
        name: `binned-MI joint counts vs PyTorch one-hot matmul (${tf32 ? "tf32" : "float32"}, same GPU)`,
        value: (gpu - upload) * 1000,
        unit: "ms",
        reference: torch * 1000,
        ratio: torch / (gpu - upload),
        note:
          `ratio > 1: infotap faster; both from data already on the GPU (PyTorch: int codes, one_hot, matmul; infotap: float32 values, bit masks, Gram); with infotap's upload: ${
            (gpu * 1000).toFixed(2)
          } ms`,
      });
    }
  }
  return rowsOut;
}

function limitsNote(l: GPUSupportedLimits): string {
  return `workgroup storage ${l.maxComputeWorkgroupStorageSize} B, invocations ${l.maxComputeInvocationsPerWorkgroup}, ` +
    `storage binding ${l.maxStorageBufferBindingSize} B, buffer ${l.maxBufferSize} B`;
}

/** Runs the GPU benchmarks (needs a WebGPU adapter; the first row names it). */
export async function bench(
  args: BenchArgs & { only?: string[] },
  emit?: (row: BenchRow) => void,
): Promise<BenchRow[]> {
  const facts = await probeAdapter();
  if (!facts) {
    return [{ name: "adapter", value: NaN, unit: "", note: "no WebGPU adapter: nothing measured" }];
  }
  const ctx = await gpuContext(), soft = ctx.software;
  const rows: BenchRow[] = [{
    name: "adapter",
    value: NaN,
    unit: "",
    note: `${describeAdapter(facts)}${soft ? " — SOFTWARE adapter: figures are not GPU figures" : ""}; limits: ${
      limitsNote(ctx.limits)
    }`,
  }];
  emit?.(rows[0]);
  for (const [name, section] of Object.entries(SECTIONS)) {
    if (args.only && !args.only.includes(name)) continue;
    const t0 = performance.now();
    console.error(`[bench gpu] ${name} ...`);
    for (const r of await section(args.quick)) {
      rows.push(r);
      emit?.(r);
    }
    console.error(`[bench gpu] ${name} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  return rows;
}

const SECTIONS: Record<string, (quick: boolean) => Promise<BenchRow[]>> = { fisher, entropy, pairs };

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { quick: { type: "boolean" }, only: { type: "string" } },
  });
  await bench({ quick: Boolean(values.quick), only: values.only?.split(",") }, (r) => {
    const ref = r.reference === undefined
      ? ""
      : ` (reference ${r.reference.toPrecision(4)}, ratio ${r.ratio?.toPrecision(3)})`;
    console.log(
      `${r.name}: ${Number.isNaN(r.value) ? "" : r.value.toPrecision(4)} ${r.unit}${ref}${
        r.note ? ` — ${r.note}` : ""
      }`,
    );
  });
  Deno.exit(0);
}
