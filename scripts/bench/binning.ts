/**
 * Binning kernel benchmark: `binRows` (plugins/_shared/binning.ts) on its WebAssembly kernel against its JavaScript loop,
 * in the same run, in million values per second on one thread (best of several interleaved repetitions, so that
 * load from other processes hurts both alike). Batches of 4,096 rows x 256 neurons, 100 bins, values inside the
 * range (the common case: the global range comes from the data), global and per-neuron ranges. Checks that both
 * kernels give the same counts.
 *
 * @module
 */
import { binKernels, binRows } from "../../plugins/_shared/binning.ts";
import type { BenchArgs, BenchRow } from "./_types.ts";

/** Runs the binning kernel benchmark. */
export function bench({ quick }: BenchArgs): Promise<BenchRow[]> {
  const width = 256, rows = 4096, bins = 100, reps = quick ? 3 : 10;
  const values = new Float32Array(rows * width);
  let seed = 1;
  for (let i = 0; i < values.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    values[i] = ((seed >>> 8) / 16777216 - 0.5) * 4;
  }
  const out: BenchRow[] = [];
  const use = binKernels.useWasm;
  try {
    for (const perNeuron of [false, true]) {
      const lo = new Float64Array(width).fill(-2.5), hi = new Float64Array(width).fill(2.5);
      if (perNeuron) { for (let j = 0; j < width; j++) lo[j] = -2.5 + j * 1e-3; }
      const best = [0, 0];
      const counts = [new Uint32Array(width * bins), new Uint32Array(width * bins)];
      for (let r = 0; r < reps; r++) {
        for (const k of [0, 1]) {
          binKernels.useWasm = k === 1;
          const t0 = performance.now();
          binRows(
            values,
            width,
            0,
            rows,
            { lo, hi },
            bins,
            counts[k],
            new Float64Array(width),
            new Float64Array(width),
          );
          best[k] = Math.max(best[k], (rows * width) / ((performance.now() - t0) / 1000) / 1e6);
        }
      }
      if (counts[0].some((c, i) => c !== counts[1][i])) throw new Error("Cannot benchmark as the kernels differ");
      out.push({
        name: `binRows, ${perNeuron ? "per-neuron" : "global"} range, ${width} neurons, ${bins} bins: wasm kernel`,
        value: best[1],
        unit: "M values/s",
        reference: best[0],
        ratio: best[1] / best[0],
        note: "reference: the JavaScript loop, same run, one thread; ratio = speed-up; counts checked equal",
      });
    }
  } finally {
    binKernels.useWasm = use;
  }
  return Promise.resolve(out);
}

if (import.meta.main) {
  for (const r of await bench({ quick: Deno.args.includes("--quick") })) console.log(JSON.stringify(r));
}
