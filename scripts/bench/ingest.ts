/**
 * Ingest benchmark (issue: core pipeline): writes an activation dump (~1 GiB; 64 MiB with --quick), then in
 * one run measures the raw read rate of the file (1 MiB reads, page cache warm), the Arrow decode rate, and the
 * entropy pipeline's rate end to end (global binning: two passes; and with --range: one pass), each as a ratio
 * to the raw read rate. Results are written nowhere but stdout; the dump is deleted afterwards.
 *
 * @module
 */
import { makeRecordBatch, writeBatches } from "../../pipeline/producers/produce.ts";
import { readChunks, readInput } from "../../schemas/source.ts";
import { analyze } from "../../pipeline/analyze/run.ts";
import { binKernels } from "../../plugins/_shared/binning.ts";
import type { BenchArgs, BenchRow } from "./_types.ts";
import { best } from "./_timing.ts";

/** Writes the dump: `layers` layers of `width` neurons, batches of 4,096 rows, Gaussian-ish values. */
export async function makeDump(path: string, bytes: number, layers = 3, width = 256): Promise<number> {
  const rows = 4096;
  const perBatch = rows * layers * width * 4;
  const nb = Math.max(2, Math.round(bytes / perBatch));
  let seed = 12345;
  const values = new Float32Array(rows * width);
  for (let i = 0; i < values.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    values[i] = ((seed >>> 8) / 16777216 - 0.5) * 4 + ((i * 7) % 13) / 13;
  }
  async function* gen() {
    for (let b = 0; b < nb; b++) {
      yield makeRecordBatch({
        kind: "activations/v1",
        sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(b * rows + i)),
        // a different view each batch so the histogram is not the same every time
        tensors: Array.from(
          { length: layers },
          (_, l) => ({ name: `layer${l}`, width, values: values.map((x) => x + ((b + l) % 5) * 0.1) }),
        ),
      });
    }
  }
  await writeBatches(path, gen());
  return (await Deno.stat(path)).size;
}

/** Runs `fn` with binRows's JavaScript kernel on this thread and on worker threads started meanwhile. */
async function withJsKernel<T>(fn: () => Promise<T>): Promise<T> {
  const before = Deno.env.get("INFOTAP_BIN_WASM"), use = binKernels.useWasm;
  Deno.env.set("INFOTAP_BIN_WASM", "0");
  binKernels.useWasm = false;
  try {
    return await fn();
  } finally {
    if (before === undefined) Deno.env.delete("INFOTAP_BIN_WASM");
    else Deno.env.set("INFOTAP_BIN_WASM", before);
    binKernels.useWasm = use;
  }
}

/** Runs the ingest benchmark. */
export async function bench({ quick }: BenchArgs): Promise<BenchRow[]> {
  const dir = await Deno.makeTempDir({ prefix: "infotap-bench-" });
  const path = `${dir}/acts.arrows`;
  try {
    const size = await makeDump(path, quick ? 64 << 20 : 1 << 30);
    const mb = size / 1e6;
    const raw = async () => {
      let n = 0;
      for await (const c of readChunks(path)) n += c[0] + c.length;
      return n;
    };
    await raw(); // warm the page cache
    const tRaw = await best(2, raw);
    const tDecode = await best(1, async () => {
      for await (const _ of readInput(path)) { /* decode + validate only */ }
    });
    const one = () => analyze({ inputs: [path], options: { range: [-3, 4] }, progress: false });
    // the same run with binRows's JavaScript kernel (INFOTAP_BIN_WASM=0 reaches the worker threads too)
    const tOneJs = await withJsKernel(() => best(1, one));
    const tOne = await best(1, one);
    const tOne1 = await best(
      1,
      () => analyze({ inputs: [path], options: { range: [-3, 4] }, progress: false, threads: 1 }),
    );
    const tTwo = await best(1, () => analyze({ inputs: [path], progress: false }));
    const rawRate = mb / tRaw;
    const row = (name: string, t: number, note: string): BenchRow => ({
      name,
      value: mb / t,
      unit: "MB/s",
      reference: rawRate,
      ratio: mb / t / rawRate,
      note,
    });
    return [
      { name: `raw read of ${mb.toFixed(0)} MB dump (1 MiB reads)`, value: rawRate, unit: "MB/s", note: "reference" },
      row("Arrow decode + validate", tDecode, "ratio to raw read"),
      row("entropy, --range given (1 pass)", tOne, "ratio to raw read; target >= 0.5"),
      row(
        "entropy, --range given (1 pass), JavaScript binning kernel",
        tOneJs,
        "ratio to raw read; before the wasm kernel",
      ),
      row("entropy, --range given (1 pass), one thread", tOne1, "ratio to raw read; no worker threads"),
      row("entropy, global range from data (2 passes)", tTwo, "ratio to raw read; file read twice"),
    ];
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  for (const r of await bench({ quick: Deno.args.includes("--quick") })) console.log(JSON.stringify(r));
}
