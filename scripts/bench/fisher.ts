/**
 * Benchmark of the `fisher` estimator (issue 4):
 *
 * 1. Gradient ingest + diagonal Fisher (`--fisher-rank 0`) on a gradient dump written to a temporary directory
 *    (quick: ~35 MiB; full: ~1 GiB) and deleted afterwards, as a ratio to the raw read rate of the same file in
 *    the same run (bytes read in 1 MiB chunks, the pipeline's reader; page cache warm for both). Also reported:
 *    the rate of reading + validating + decoding the batches without any estimator.
 * 2. Frequent Directions update cost per row at P = 100,000, rank 64 (buffered FD, amortised over full
 *    shrink cycles), against the unbuffered FD of Liberty 2013 (a shrink after every row) as the reference.
 *
 * Run alone: `node_modules/deno/deno run -A scripts/bench/fisher.ts [--quick]`.
 *
 * @module
 */
import { makeRecordBatch, writeBatches } from "../../pipeline/producers/produce.ts";
import { readChunks, readInput } from "../../schemas/source.ts";
import { fisherPlugin } from "../../plugins/fisher/fisher.ts";
import { FdSketch } from "../../plugins/fisher/fd_sketch.ts";
import type { Batch } from "../../schemas/batch.ts";

import type { BenchRow } from "./_types.ts";
import { best } from "./_timing.ts";

const MiB = 1 << 20;

/** Tensor layout of the dump: a 256-256-10 MLP's gradients, P = 68,362 per row (~267 KiB). */
const LAYOUT: [string, number][] = [["fc1.weight", 65536], ["fc1.bias", 256], ["fc2.weight", 2560], ["fc2.bias", 10]];

async function writeDump(path: string, batches: number, rows: number): Promise<number> {
  let seed = 12345;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296) - 0.5;
  const tensors = LAYOUT.map(([name, width]) => ({
    name,
    width,
    values: Float32Array.from({ length: rows * width }, () => rand() * 1e-2),
  }));
  function* gen() {
    for (let b = 0; b < batches; b++) {
      yield makeRecordBatch({
        kind: "gradients/v1",
        fisher: "true",
        sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(b * rows + i)),
        step: new BigInt64Array(rows).fill(BigInt(b >> 2)),
        tensors,
      });
    }
  }
  await writeBatches(path, gen());
  return (await Deno.stat(path)).size;
}

async function ingest(quick: boolean): Promise<BenchRow[]> {
  const dir = await Deno.makeTempDir({ prefix: "infotap-bench-fisher-" });
  try {
    const path = `${dir}/grads.arrows`;
    const rows = 64;
    const batches = quick ? 2 : 60;
    const bytes = await writeDump(path, batches, rows);
    const repeats = quick ? 2 : 2;
    const raw = await best(repeats, async () => {
      let n = 0;
      for await (const c of readChunks(path)) n += c.length;
      if (n !== bytes) throw new Error(`read ${n} of ${bytes} bytes`);
    });
    const decode = await best(repeats, async () => {
      let n = 0;
      for await (const { batch } of readInput(path)) n += batch.numRows;
      if (n !== rows * batches) throw new Error(`read ${n} rows`);
    });
    let trace = 0;
    const fisher = await best(repeats, async () => {
      const est = fisherPlugin.create({ "fisher-rank": 0, "fisher-diag": false }, { byStep: false, seed: 0 });
      for await (const { batch } of readInput(path)) est.update(batch);
      const t = (await est.result()).fisher;
      trace = t.getChild("trace")!.get(t.numRows - 1) as number;
    });
    if (!(trace > 0)) throw new Error("no trace");
    // The estimator alone, on batches already decoded (in memory).
    const held: Batch[] = [];
    for await (const { batch } of readInput(path)) if (held.length < 4) held.push(batch);
    const heldBytes = held.reduce((a, b) => a + b.columns.reduce((x, c) => x + c.values.byteLength, 0), 0);
    const only = await best(3, () => {
      const est = fisherPlugin.create({ "fisher-rank": 0, "fisher-diag": false }, { byStep: false, seed: 0 });
      for (const b of held) est.update(b);
      return Promise.resolve();
    });
    const rate = (s: number) => bytes / MiB / s;
    const size = `${(bytes / MiB).toFixed(0)} MiB dump, ${rows * batches} rows x P = 68,362, best of ${repeats}`;
    return [
      {
        name: "fisher diagonal: gradient ingest + diagonal Fisher",
        value: rate(fisher),
        unit: "MiB/s",
        reference: rate(raw),
        ratio: rate(fisher) / rate(raw),
        note: `reference: raw read of the same file (1 MiB chunks); ${size}; target ratio >= 0.5`,
      },
      {
        name: "fisher diagonal: vs read + validate + decode without estimator",
        value: rate(fisher),
        unit: "MiB/s",
        reference: rate(decode),
        ratio: rate(fisher) / rate(decode),
        note: size,
      },
      {
        name: "fisher diagonal: update alone on decoded batches",
        value: heldBytes / MiB / only,
        unit: "MiB/s",
        reference: rate(raw),
        ratio: heldBytes / MiB / only / rate(raw),
        note: `${held.length} batches held in memory, best of 3; reference: raw read rate`,
      },
    ];
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function fdCost(quick: boolean): BenchRow[] {
  const P = 100_000, ell = 64;
  const row = new Float64Array(P);
  let seed = 7;
  const fill = () => {
    for (let j = 0; j < P; j++) row[j] = ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296) - 0.5;
  };
  // Buffered FD: fill to the first shrink, then time whole cycles (ell + 1 appends, one shrink each).
  const sk = new FdSketch(ell, P);
  while (sk.shrinks === 0) {
    fill();
    sk.append(row);
  }
  const cycles = quick ? 1 : 3;
  let timed = 0, spent = 0;
  for (let c = 0; c < cycles; c++) {
    const s0 = sk.shrinks;
    while (sk.shrinks === s0) {
      fill();
      const t0 = performance.now();
      sk.append(row);
      spent += performance.now() - t0;
      timed++;
    }
  }
  const buffered = spent / timed;
  // Reference: unbuffered FD (Liberty 2013), a shrink after each row once ell rows are held.
  const ref = new FdSketch(ell, P);
  for (let r = 0; r < ell; r++) {
    fill();
    ref.append(row);
  }
  ref.shrink();
  const refRows = quick ? 2 : 4;
  let refSpent = 0;
  for (let r = 0; r < refRows; r++) {
    fill();
    const t0 = performance.now();
    ref.append(row);
    if (ref.rows >= ell) ref.shrink();
    refSpent += performance.now() - t0;
  }
  const unbuffered = refSpent / refRows;
  return [{
    name: "fisher FD sketch: update cost per row, P = 100,000, rank 64",
    value: buffered,
    unit: "ms/row",
    reference: unbuffered,
    ratio: unbuffered / buffered,
    note: `buffered FD amortised over ${timed} rows (${cycles} shrink cycle(s)); reference: unbuffered FD (shrink ` +
      `every row) over ${refRows} rows; ratio = speed-up; about ${(buffered * 1e-3 * 1e9 / (4 * ell * P)).toFixed(2)}` +
      ` ns per multiply-add at ~4 ell P per row (Gram 2 ell^2 P + rebuild 2 ell^2 P per shrink of ell + 1 rows)`,
  }];
}

/** Runs the fisher benchmarks. */
export async function bench(args: { quick: boolean }): Promise<BenchRow[]> {
  return [...(await ingest(args.quick)), ...fdCost(args.quick)];
}

if (import.meta.main) {
  const rows = await bench({ quick: Deno.args.includes("--quick") });
  for (const r of rows) {
    console.log(
      `${r.name}: ${r.value.toFixed(2)} ${r.unit}` +
        (r.reference !== undefined ? ` (reference ${r.reference.toFixed(2)}, ratio ${r.ratio!.toFixed(3)})` : "") +
        (r.note ? ` - ${r.note}` : ""),
    );
  }
}
