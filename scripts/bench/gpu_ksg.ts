/**
 * Benchmark of KSG mutual information of all within-layer pairs on WebGPU (issue 8's target: 768 neurons x
 * 10,000 samples, k = 3, all 294,528 pairs in < 10 s on an H100): four rows (continuous data at 768 and 256
 * neurons, ReLU data with large tie groups, and one sample per scan invocation), each timed by stage and then
 * checked bit for bit against the CPU kernel on a random sample of pairs, whose time is extrapolated for the ratio.
 * A failing row prints FAILED and the process exits 1. Details: docs/bench/webgpu_ksg.md.
 *
 * Run alone: `node_modules/deno/deno run -A scripts/bench/gpu_ksg.ts [--quick]`; bundle for a GPU machine:
 * `node_modules/deno/deno bundle -o .dev/bench_gpu_ksg.js scripts/bench/gpu_ksg.ts`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { describeAdapter, gpuContext, isSoftwareAdapter, probeAdapter } from "../../plugins/kernels/gpu/context.ts";
import { gpuKsgPairs } from "../../plugins/mi/gpu_ksg.ts";
import { ksgPairs } from "../../plugins/mi/ksg_pairs.ts";
import type { BenchArgs, BenchRow } from "./_types.ts";
import { makeRng, synthetic } from "./_mi_data.ts";

function allPairs(N: number): Int32Array {
  const out = new Int32Array(N * (N - 1));
  let p = 0;
  for (let a = 0; a < N; a++) for (let b = a + 1; b < N; b++) out[p++] = a, out[p++] = b;
  return out;
}

/** One size: all pairs on the GPU, a sample of pairs on the CPU kernel; throws when an estimate differs. */
async function row(N: number, n: number, relu: boolean, sample: number, k: number, M?: number): Promise<BenchRow> {
  const label = `KSG all pairs on GPU, ${N} x ${n.toLocaleString("en-US")}${relu ? " ReLU" : ""}, k = ${k}${
    M ? `, ${M} sample(s) per invocation` : ""
  }`;
  const cols = synthetic(N, n, relu);
  const pairs = allPairs(N), P = pairs.length / 2;
  const t0 = performance.now();
  const gpu = await gpuKsgPairs(await gpuContext(), cols, n, pairs, k, { perInvocation: M });
  const total = (performance.now() - t0) / 1000;
  const t = gpu.timing;
  if (t.cpu > 0) {
    throw new Error(`Cannot benchmark the GPU as ${t.cpu} pairs fell back to the CPU: current value is ${t.cpu}`);
  }
  // CPU check on a random sample of pairs (seeded)
  const rng = makeRng(7 + N + n);
  const S = Math.min(P, sample), idx = new Int32Array(S), sub = new Int32Array(2 * S);
  const chosen = new Set<number>();
  while (chosen.size < S) chosen.add(Math.floor(rng.u() * P));
  [...chosen].sort((a, b) => a - b).forEach((p, i) => {
    idx[i] = p;
    sub[2 * i] = pairs[2 * p];
    sub[2 * i + 1] = pairs[2 * p + 1];
  });
  const c0 = performance.now();
  const cpu = ksgPairs(cols, n, sub, k, 1); // one thread: no worker module, so the bundle runs anywhere
  const cpuSample = (performance.now() - c0) / 1000;
  for (let i = 0; i < S; i++) {
    if (!Object.is(gpu.mi[idx[i]], cpu.mi[i])) {
      throw new Error(
        `Cannot trust the GPU figures as pair (${sub[2 * i]}, ${
          sub[2 * i + 1]
        }) differs from the CPU (the path is exact: bit-equal): current value is ${gpu.mi[idx[i]]} vs ${cpu.mi[i]}`,
      );
    }
  }
  const cpuAll = (cpuSample * P) / S;
  const f = (s: number) => `${s < 10 ? s.toFixed(3) : s.toFixed(1)} s`;
  return {
    name: label,
    value: total,
    unit: "s",
    reference: cpuAll,
    ratio: cpuAll / total,
    note: `${P.toLocaleString("en-US")} pairs: prep ${f(t.prep)}, upload ${f(t.upload)}, kernels ${
      f(t.kernel)
    }, read-back ${f(t.read)}; ${
      (P / t.kernel).toFixed(0)
    } pairs/s in kernels. Reference: CPU kernel on 1 thread (WebAssembly), ${S} sampled pairs in ${
      f(cpuSample)
    } extrapolated; every sampled estimate bit-equal to the CPU's`,
  };
}

/** Runs the rows; each is passed to `onRow` as soon as it is measured (a failed row has value NaN and FAILED). */
export async function bench(args: BenchArgs, onRow: (r: BenchRow) => void = () => {}): Promise<BenchRow[]> {
  const out: BenchRow[] = [];
  const emit = (r: BenchRow) => (out.push(r), onRow(r));
  const facts = await probeAdapter();
  if (!facts) {
    emit({ name: "KSG on GPU: adapter", value: NaN, unit: "", note: "no WebGPU adapter: nothing measured" });
    return out;
  }
  const soft = isSoftwareAdapter(facts);
  emit({
    name: "KSG on GPU: adapter",
    value: NaN,
    unit: "",
    note: `${describeAdapter(facts)}${soft ? " — SOFTWARE adapter: figures are not GPU figures" : ""}`,
  });
  await gpuKsgPairs(await gpuContext(), synthetic(2, 300, false), 300, new Int32Array([0, 1]), 3); // compiles the shaders
  const sizes: [number, number, boolean, number, number?][] = args.quick
    ? [[48, 2000, false, 200], [24, 2000, false, 100], [24, 2000, true, 100], [24, 2000, false, 100, 1]]
    : [[768, 10000, false, 512], [256, 10000, false, 256], [256, 10000, true, 256], [256, 10000, false, 256, 1]];
  for (const [N, n, relu, sample, M] of sizes) {
    try {
      emit(await row(N, n, relu, sample, 3, M));
    } catch (e) {
      emit({
        name: `KSG all pairs on GPU, ${N} x ${n}${relu ? " ReLU" : ""}, k = 3`,
        value: NaN,
        unit: "s",
        note: `FAILED: ${e instanceof Error ? e.message : String(e)}`,
      });
    }
  }
  return out;
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { quick: { type: "boolean" } } });
  const rows = await bench({ quick: Boolean(values.quick) }, (r) => {
    const ref = r.reference === undefined
      ? ""
      : ` (reference ${r.reference.toPrecision(4)} ${r.unit}, ratio ${r.ratio?.toPrecision(3)})`;
    console.log(
      `${r.name}: ${Number.isNaN(r.value) ? "" : `${r.value.toPrecision(4)} ${r.unit}`}${ref}${
        r.note ? ` — ${r.note}` : ""
      }`,
    );
  });
  Deno.exit(rows.some((r) => r.note?.startsWith("FAILED")) ? 1 : 0);
}
