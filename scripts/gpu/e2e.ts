/**
 * End-to-end check of `--backend webgpu` on a GPU machine (issue 8): writes synthetic dumps, runs `analyze` on
 * them with `backend: "cpu"` and `backend: "webgpu"`, checks that the tables agree (bit-equal for the exact GPU
 * paths, within the documented bound for the approximate ones), and prints both wall times and what run.json
 * records (backend, adapter). Bundle it and run it where the GPU is (docs/bench/webgpu.md):
 * `deno bundle -o .dev/gpu_e2e.js scripts/gpu/e2e.ts`, then `deno run -A .dev/gpu_e2e.js [--quick]`.
 *
 * @module
 */
import type * as arrow from "apache-arrow";
import { parseArgs } from "node:util";
import { analyze } from "../../pipeline/analyze/run.ts";
import { makeRecordBatch, writeBatches } from "../../pipeline/producers/produce.ts";
import type { OptionValues } from "../../pipeline/core/plugin.ts";

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/** Activations: `width` neurons driven by 8 shared factors plus noise (so pairs carry information), a few NaN. */
async function activations(path: string, rows: number, width: number, perBatch: number): Promise<void> {
  const u = rng(5);
  const normal = () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
  const mix = Float64Array.from({ length: 8 * width }, normal);
  const batches = [];
  for (let r0 = 0; r0 < rows; r0 += perBatch) {
    const n = Math.min(perBatch, rows - r0);
    const values = new Float32Array(n * width);
    for (let r = 0; r < n; r++) {
      const f = Array.from({ length: 8 }, normal);
      for (let j = 0; j < width; j++) {
        let v = 0.5 * normal();
        for (let q = 0; q < 8; q++) v += f[q] * mix[q * width + j] * 0.3;
        values[r * width + j] = j % 5 === 0 ? Math.max(0, v) : v; // some ReLU-like neurons
      }
    }
    if (r0 === 0) values[3 * width + 7] = NaN;
    batches.push(makeRecordBatch({
      kind: "activations/v1",
      sampleId: BigInt64Array.from({ length: n }, (_, i) => BigInt(r0 + i)),
      label: Int32Array.from({ length: n }, () => Math.floor(u() * 10)),
      tensors: [{ name: "h", width, values }],
    }));
  }
  await writeBatches(path, batches);
}

/** Per-sample gradients: `rows` rows of `width` parameters per batch. */
async function gradients(path: string, rows: number, width: number, count: number): Promise<void> {
  const u = rng(9);
  const batches = [];
  for (let b = 0; b < count; b++) {
    const values = new Float32Array(rows * width);
    for (let i = 0; i < values.length; i++) values[i] = (u() - 0.5) * (1 + (i % 7));
    batches.push(makeRecordBatch({
      kind: "gradients/v1",
      fisher: "true",
      sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(b * rows + i)),
      tensors: [{ name: "w", width, values }],
    }));
  }
  await writeBatches(path, batches);
}

/**
 * Largest difference `|p - q| / max(|p|, |q|, floor)` between two tables' numeric columns (relative, or absolute
 * below `floor`); throws when shapes or other values differ.
 */
function difference(a: arrow.Table, b: arrow.Table, what: string, floor: number): number {
  if (a.numRows !== b.numRows) throw new Error(`${what}: ${a.numRows} rows vs ${b.numRows}`);
  let worst = 0;
  for (const f of a.schema.fields) {
    const x = a.getChild(f.name)!, y = b.getChild(f.name);
    if (!y) throw new Error(`${what}: column ${f.name} missing on one side`);
    for (let i = 0; i < a.numRows; i++) {
      const p = x.get(i), q = y.get(i);
      if (typeof p === "number" && typeof q === "number") {
        if (Number.isNaN(p) && Number.isNaN(q)) continue;
        const d = p === q ? 0 : Math.abs(p - q) / Math.max(Math.abs(p), Math.abs(q), floor);
        if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
      } else if (String(p) !== String(q)) {
        throw new Error(`${what}: column ${f.name} row ${i}: ${p} vs ${q}`);
      }
    }
  }
  return worst;
}

async function compare(
  label: string,
  input: string,
  estimators: string[],
  options: OptionValues,
  bound: number,
  floor = 0,
) {
  const run = async (backend: "cpu" | "webgpu") => {
    const t0 = performance.now();
    const r = await analyze({ inputs: [input], estimators, options, backend, progress: false });
    return { r, time: (performance.now() - t0) / 1000 };
  };
  const gpu0 = await run("webgpu"); // warm-up (device, shader compilation)
  const gpu = await run("webgpu");
  const cpu = await run("cpu");
  if (!gpu.r.complete || !cpu.r.complete) throw new Error(`${label}: incomplete run: ${gpu.r.error ?? cpu.r.error}`);
  let worst = 0;
  for (const name of Object.keys(cpu.r.tables)) {
    if (!gpu.r.tables[name]) throw new Error(`${label}: table ${name} missing on the GPU run`);
    worst = Math.max(worst, difference(cpu.r.tables[name], gpu.r.tables[name], `${label} ${name}`, floor));
  }
  const ok = worst <= bound;
  const run0 = gpu.r.run as Record<string, unknown>;
  console.log(
    `${ok ? "OK  " : "FAIL"} ${label}: cpu ${cpu.time.toFixed(2)} s, webgpu ${gpu.time.toFixed(2)} s (first ${
      gpu0.time.toFixed(2)
    } s), speed-up ${(cpu.time / gpu.time).toFixed(2)}x; tables ${
      Object.keys(cpu.r.tables).join(",")
    }; max difference ${worst.toExponential(2)}${
      floor ? ` (absolute below ${floor})` : " (relative)"
    } (bound ${bound}); run.json backend=${JSON.stringify(run0.backend)} adapter=${
      JSON.stringify((run0.adapter as { description?: string } | undefined)?.description)
    } estimators=${JSON.stringify(run0.estimator_backends ?? run0.estimators)}`,
  );
  if (!ok) Deno.exitCode = 1;
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { quick: { type: "boolean" }, only: { type: "string" } } });
  const quick = Boolean(values.quick);
  const only = values.only?.split(",");
  const dir = await Deno.makeTempDir({ prefix: "infotap-e2e-" });
  const acts = `${dir}/acts.arrows`, grads = `${dir}/grads.arrows`;
  const width = quick ? 48 : 768, rows = quick ? 600 : 10000;
  await activations(acts, rows, width, quick ? 200 : 1000);
  const want = (s: string) => !only || only.includes(s);
  if (want("entropy")) await compare(`entropy ${width} x ${rows}`, acts, ["entropy"], {}, 0);
  if (want("entropy-large")) {
    // 10x the rows (307 MB at full size): the CPU side runs on worker threads (>= 64 MiB input).
    const big = `${dir}/big.arrows`;
    await activations(big, rows * 10, width, quick ? 1000 : 10000);
    await compare(`entropy ${width} x ${rows * 10}`, big, ["entropy"], {}, 0);
    await Deno.remove(big);
  }
  if (want("binned")) {
    await compare(`binned MI ${width} x ${rows}`, acts, ["mi"], { "mi-estimator": "binned" }, 0);
  }
  if (want("ksg")) {
    // KSG on a 128-neuron layer (8,128 pairs): the CPU side runs on one thread in a bundle (no worker file).
    const ksgActs = `${dir}/ksg.arrows`, kw = quick ? 24 : 128;
    await activations(ksgActs, rows, kw, quick ? 200 : 1000);
    await compare(`KSG MI ${kw} x ${rows}`, ksgActs, ["mi"], { "mi-estimator": "ksg" }, 0); // bit-equal
  }
  if (want("fisher")) {
    await gradients(grads, 64, quick ? 4096 : 1 << 20, quick ? 2 : 4);
    await compare("fisher diagonal", grads, ["fisher"], { "fisher-rank": 0, "fisher-diag": true }, 1.5e-8);
  }
  await Deno.remove(dir, { recursive: true });
}
