/**
 * Benchmark of `unique-info` at finite training time (`--si-t`, docs/unique_info.md): all n samples' SI and F-SI
 * from one eigendecomposition plus per-sample spectral deletions, end to end (Gram products as batches arrive,
 * `eigh`, leave-one-out, K_test V), against the per-sample re-decomposition of the official code (the kernel
 * without sample i eigendecomposed and re-solved, once per sample), timed on one sample in the same run and
 * multiplied by n. The re-decomposed sample also checks the fast path's values. Rows: discrete steps and gradient
 * flow end to end (`auto` picks the Chebyshev route for both), then the leave-one-out step alone on the same
 * spectrum by each route (Chebyshev against Volterra for the steps, against the secular route for the flow: the
 * secular route timed on a few samples and multiplied out), with the largest relative difference between routes.
 * Every row states the CPU time of the process (all threads) and the load average at its start and end.
 *
 * Full size: nk = 2,000 train rows (n = 1,000, k = 2) + 200 test rows, P = 20,000, T = 1,000 steps;
 * quick: nk = 200, P = 2,000, T = 100.
 *
 * Run alone: `node_modules/deno/deno run -A scripts/bench/si_finite.ts [--quick]`.
 *
 * @module
 */
import process from "node:process";
import { uniqueInfoPlugin } from "../../plugins/unique_info/unique_info.ts";
import {
  gain,
  looChebyshev,
  looSecular,
  looVolterra,
  spectral,
  type TrainingTime,
} from "../../plugins/unique_info/finite_time.ts";
import { eigh } from "../../plugins/kernels/linalg/eigh.ts";
import { sharedF64 } from "../../plugins/kernels/linalg/mod.ts";
import { defaultThreads } from "../../plugins/kernels/threads.ts";
import type { BenchRow } from "./_types.ts";
import { kernelWithout, makeSiBatches, ownKernel, siOfDual } from "./_si_batches.ts";

/** Load average (1 minute) where readable. */
function load(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
  } catch {
    return "unknown";
  }
}

/** The official-code path for one sample: eigendecompose the kernel without its rows, re-solve, SI and F-SI. */
function redecompose(
  theta: Float64Array,
  ktest: Float64Array,
  r: Float64Array,
  alpha: Float64Array,
  N: number,
  T: number,
  nTest: number,
  k: number,
  tt: { t: number; lr?: number; lambda: number },
  i: number,
): { w: number; f: number } {
  const { a, keep } = kernelWithout(theta, N, k, i);
  const m = keep.length;
  const { values, vectors: v } = eigh(a, m);
  const proj = new Float64Array(m);
  keep.forEach((j, x) => {
    for (let c = 0; c < m; c++) proj[c] += v[x * m + c] * r[j];
  });
  for (let c = 0; c < m; c++) proj[c] *= gain(values[c] + tt.lambda, tt);
  const d = Float64Array.from(alpha);
  for (let x = 0; x < m; x++) {
    let s = 0;
    for (let c = 0; c < m; c++) s += v[x * m + c] * proj[c];
    d[keep[x]] -= s;
  }
  return siOfDual(theta, ktest, d, N, T, nTest);
}

/** Runs the benchmark and returns its rows. */
export async function bench(args: { quick: boolean }): Promise<BenchRow[]> {
  const [n, nTest, k, p, steps] = args.quick ? [100, 10, 2, 2000, 100] : [1000, 100, 2, 20000, 1000];
  const N = n * k, T = nTest * k;
  const batches = makeSiBatches(n, nTest, k, p, 500, { seed: 2 });
  const rows: BenchRow[] = [];
  const size = `nk = ${N}, P = ${p}, ${T} test rows`;
  const load0 = load();
  // rows of unit expected norm, P > N: lambda_max(Theta) ~ (1 + sqrt(N / P))^2 (Marchenko-Pastur); step below 1 / that
  const lr = 1 / (1.5 * (1 + Math.sqrt(N / p)) ** 2);
  const settings = [
    { label: `${steps} GD steps, lambda = 0`, options: { "si-lambda": 0, "si-t": steps, "si-lr": lr } },
    { label: `gradient flow t = ${steps * lr}, lambda = 0`, options: { "si-lambda": 0, "si-t": steps * lr } },
  ];
  let ref: { perSample: number; checked: string } | null = null;
  let kernel: { theta: Float64Array; r: Float64Array } | null = null;
  for (const s of settings) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const est = uniqueInfoPlugin.create(s.options, { byStep: false, seed: 0 });
    for (const b of batches) est.update(b);
    const t1 = performance.now();
    const table = (await est.result()).unique_information;
    const t2 = performance.now();
    const cpu = (process.cpuUsage(cpu0).user + process.cpuUsage(cpu0).system) / 1e6;
    const route = table.schema.metadata.get("infotap.si.route");
    const fast = (t2 - t0) / 1000;
    if (ref === null) {
      // reference on the estimator's own kernel (slot order = sample order here), one sample, times n
      const { theta, ktest, r } = ownKernel(est, batches, N);
      kernel = { theta, r };
      const tt = { t: steps, lr, lambda: 0 };
      const full = eigh(theta, N);
      const rho = new Float64Array(N);
      for (let a = 0; a < N; a++) for (let c = 0; c < N; c++) rho[c] += full.vectors[a * N + c] * r[a];
      const alpha = new Float64Array(N);
      for (let a = 0; a < N; a++) {
        let acc = 0;
        for (let c = 0; c < N; c++) acc += full.vectors[a * N + c] * gain(full.values[c], tt) * rho[c];
        alpha[a] = acc;
      }
      const t3 = performance.now();
      const one = redecompose(theta, ktest, r, alpha, N, T, nTest, k, tt, 0);
      const perSample = (performance.now() - t3) / 1000;
      const w = table.getChild("si_weights")!.get(0) as number, f = table.getChild("si_function")!.get(0) as number;
      const diff = Math.max(Math.abs(w - one.w) / one.w, Math.abs(f - one.f) / one.f);
      ref = { perSample, checked: diff.toExponential(1) };
    }
    const reference = ref.perSample * n;
    rows.push({
      name: `unique-info at finite t end to end (${size}; ${s.label})`,
      value: fast,
      unit: "s",
      reference,
      ratio: reference / fast,
      note: `route ${route}; kernel build ${((t1 - t0) / 1000).toFixed(1)} s, eigh + leave-one-out ${
        ((t2 - t1) / 1000).toFixed(1)
      } s; CPU time ${cpu.toFixed(1)} s; ${
        table.schema.metadata.has("infotap.si.chebyshev_degree")
          ? `Chebyshev degree ${table.schema.metadata.get("infotap.si.chebyshev_degree")}; `
          : ""
      }reference: per-sample re-decomposition ${
        ref.perSample.toFixed(2)
      } s/sample x n = ${n} (kernel not counted), relative difference on that sample ${ref.checked}; ${defaultThreads()} thread(s); load average ${load0} at start, ${load()} now`,
    });
  }
  // the leave-one-out step alone, on the kernel's spectrum, by each route
  const { theta, r } = kernel!;
  const sp = spectral(theta, N, r), threads = defaultThreads();
  const timed = (f: () => void) => {
    const c0 = process.cpuUsage(), l0 = load(), t0 = performance.now();
    f();
    const u = process.cpuUsage(c0);
    return {
      wall: (performance.now() - t0) / 1000,
      cpu: (u.user + u.system) / 1e6,
      loads: `${l0} at start, ${load()} now`,
    };
  };
  const maxRel = (a: Float64Array, b: Float64Array, samples: number) => {
    let worst = 0;
    for (let i = 0; i < samples; i++) {
      let d = 0, norm = 0;
      for (let j = 0; j < N; j++) d += (a[i * N + j] - b[i * N + j]) ** 2, norm += b[i * N + j] ** 2;
      worst = Math.max(worst, Math.sqrt(d / norm));
    }
    return worst.toExponential(1);
  };
  const few = args.quick ? 4 : 8;
  const routes: [string, TrainingTime, string][] = [
    [`${steps} GD steps`, { t: steps, lr, lambda: 0 }, "volterra"],
    [`gradient flow t = ${steps * lr}`, { t: steps * lr, lambda: 0 }, "secular"],
  ];
  for (const [label, tt, other] of routes) {
    const cheb = sharedF64(n * N), ref = sharedF64(n * N);
    const c = timed(() => looChebyshev(sp, k, tt, cheb, threads));
    const o = other === "volterra" ? timed(() => looVolterra(sp, k, tt, ref, threads)) : timed(() => {
      for (let i = 0; i < few; i++) looSecular(sp, k, i, tt, ref.subarray(i * N, (i + 1) * N));
    });
    const scale = other === "volterra" ? 1 : n / few;
    rows.push({
      name: `unique-info at finite t, leave-one-out step alone (nk = ${N}; ${label}): Chebyshev route`,
      value: c.wall,
      unit: "s",
      reference: o.wall * scale,
      ratio: (o.wall * scale) / c.wall,
      note: `reference: the ${other} route on the same spectrum${
        other === "secular" ? `, ${few} samples timed on one thread x n / ${few}` : `, ${threads} thread(s)`
      } (CPU ${(o.cpu * scale).toFixed(1)} s); Chebyshev CPU ${
        c.cpu.toFixed(2)
      } s, ${threads} thread(s); max relative difference of diff_i ${
        maxRel(cheb, ref, other === "volterra" ? n : few)
      }; load average ${c.loads}`,
    });
  }
  return rows;
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  for (const r of await bench({ quick })) console.log(JSON.stringify(r));
}
