/**
 * Benchmark of live analysis: the same activations analysed by `serve` (over a loopback TCP socket, one and two
 * producers in this process, windows of 4 steps (and 16): a Parquet part file and a checkpoint per window) and by
 * `analyze --by-step` on a file (the reference), both writing their tables; entropy with a fixed `--range`.
 * Prints MB/s of activations and the ratio file time / live time (above 1: live is faster).
 *
 * Run alone: `node_modules/deno/deno run -A scripts/bench/serve.ts [--quick]`.
 *
 * @module
 */
import type * as arrow from "apache-arrow";
import { analyze } from "../../pipeline/analyze/run.ts";
import { serve } from "../../pipeline/serve/serve.ts";
import { connectProducer } from "../../pipeline/producers/connect.ts";
import { makeRecordBatch, writeBatches } from "../../pipeline/producers/produce.ts";

import type { BenchRow } from "./_types.ts";

function batches(steps: number, rows: number, widths: number[], seed = 1): arrow.RecordBatch[] {
  let s = seed >>> 0;
  const rand = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  return Array.from({ length: steps }, (_, step) =>
    makeRecordBatch({
      kind: "activations/v1",
      sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(i)),
      step: new BigInt64Array(rows).fill(BigInt(step)),
      tensors: widths.map((w, l) => ({
        name: `fc${l + 1}`,
        width: w,
        values: Float32Array.from({ length: rows * w }, () => rand() * 4 - 2),
      })),
    }));
}

/** Runs the benchmark. */
export async function bench(args: { quick: boolean }): Promise<BenchRow[]> {
  const steps = args.quick ? 16 : 64, rows = 512, widths = [256, 128];
  const mb = (steps * rows * widths.reduce((a, b) => a + b, 0) * 4) / 1e6;
  const options = { range: [-2, 2] as [number, number], bins: 100 };
  const rbs = batches(steps, rows, widths);
  const dir = await Deno.makeTempDir();
  try {
    const dump = `${dir}/dump.arrows`;
    await writeBatches(dump, rbs);
    const t0 = performance.now();
    const ref = await analyze({ inputs: [dump], byStep: true, options, progress: false, out: `${dir}/ref` });
    const fileS = (performance.now() - t0) / 1000;
    if (!ref.complete) throw new Error(ref.error);

    const live = async (producers: number, every = 4): Promise<number> => {
      const out = `${dir}/live${producers}-${every}`;
      const server = await serve({ listen: "127.0.0.1:0", out, options, snapshotEvery: every, log: () => {} });
      try {
        const t = performance.now();
        const conns = await Promise.all(
          Array.from({ length: producers }, () => connectProducer({ port: server.port })),
        );
        await Promise.all(conns.map(async (c, p) => {
          for (let i = p; i < rbs.length; i += producers) await c.write(rbs[i]);
        }));
        await Promise.all(conns.map((c) => c.close()));
        await server.stop();
        return (performance.now() - t) / 1000;
      } finally {
        await server.stop();
      }
    };
    const one = await live(1);
    const two = await live(2);
    const wide = await live(1, 16);
    const note = `${steps} steps x ${rows} rows x [${widths}] float32, entropy 100 bins --range`;
    return [
      { name: "analyze --by-step (file)", value: mb / fileS, unit: "MB/s", note },
      {
        name: "serve, 1 producer (TCP)",
        value: mb / one,
        unit: "MB/s",
        reference: mb / fileS,
        ratio: fileS / one,
        note,
      },
      {
        name: "serve, 2 producers (TCP)",
        value: mb / two,
        unit: "MB/s",
        reference: mb / fileS,
        ratio: fileS / two,
        note,
      },
      {
        name: "serve, 1 producer, 16-step windows",
        value: mb / wide,
        unit: "MB/s",
        reference: mb / fileS,
        ratio: fileS / wide,
        note,
      },
    ];
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  for (const r of await bench({ quick: Deno.args.includes("--quick") })) {
    console.log(
      `${r.name.padEnd(36)} ${r.value.toFixed(1).padStart(8)} ${r.unit}${
        r.ratio !== undefined ? `  (x${r.ratio.toFixed(2)} of the file path)` : ""
      }`,
    );
  }
}
