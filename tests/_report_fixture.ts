/**
 * Test helper: realistic results directories for the report, made by `analyze` on small synthetic dumps.
 *
 * - {@linkcode fullResults}: every table the report plots: entropy, binned MI (one layer wider than the heatmap's
 *   48 cells, so it is averaged over blocks) and label MI over 3 steps; Fisher (trace, spectrum, diagonal) over
 *   4 steps; a `fisher_band` table; a `unique_information` table (the plugin's columns); effective information over
 *   2 steps; and an image dump (784-pixel `input` column).
 * - {@linkcode manyStepsResults}: entropy over 8 steps (the heatmap form), written as Arrow IPC files.
 * - `fullResults(dir, name, k)` with k > 0: other runs of the same kind (for pages of several runs), whose
 *   `unique_information` carries a `flag` column.
 *
 * @module
 */
import { analyze } from "../pipeline/analyze/run.ts";
import { makeRecordBatch, writeBatches } from "../pipeline/producers/produce.ts";
import { tableFromColumns } from "../pipeline/core/table.ts";
import { writeTables } from "../pipeline/core/write.ts";
import { Rng } from "./_util.ts";

/** Activations of two layers (widths 5 and 60) with labels, `rows` per step (`noise` scales the noise). */
async function activationDump(path: string, steps: number, rows: number, seed: number, noise = 1): Promise<void> {
  const rng = new Rng(seed);
  const batches = [];
  for (let s = 0; s < steps; s++) {
    const label = Int32Array.from({ length: rows }, () => rng.int(3));
    const a = new Float32Array(rows * 5), b = new Float32Array(rows * 60);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < 5; j++) a[i * 5 + j] = label[i] * (j % 2) + noise * rng.normal() * (1 + s);
      for (let j = 0; j < 60; j++) {
        b[i * 60 + j] = (j % 2 === 0 ? label[i] : 0) + noise * rng.normal() / (1 + s + (j % 4));
      }
    }
    batches.push(makeRecordBatch({
      kind: "activations/v1",
      sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(i)),
      step: new BigInt64Array(rows).fill(BigInt(s * 50)),
      label,
      tensors: [{ name: "fc1", width: 5, values: a }, { name: "fc2", width: 60, values: b }],
    }));
  }
  await writeBatches(path, batches);
}

/** Per-sample gradients of two layers (weight, bias), `rows` per step; the scale rises then falls. */
async function gradientDump(path: string, steps: number, rows: number, seed: number): Promise<void> {
  const rng = new Rng(seed);
  const batches = [];
  for (let s = 0; s < steps; s++) {
    const scale = 1 + s * (steps - 1 - s);
    const t = (w: number) => Float32Array.from({ length: rows * w }, () => rng.normal() * scale);
    batches.push(makeRecordBatch({
      kind: "gradients/v1",
      sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(i)),
      step: new BigInt64Array(rows).fill(BigInt(s * 10)),
      fisher: "true",
      tensors: [
        { name: "fc1.weight", width: 12, values: t(12) },
        { name: "fc1.bias", width: 3, values: t(3) },
        { name: "fc2.weight", width: 6, values: t(6) },
      ],
    }));
  }
  await writeBatches(path, batches);
}

/** Activations of two layers (widths 3 and 6) under `draws` noise draws of `inputs` inputs per step; noise grows. */
async function drawDump(path: string, steps: number, inputs: number, draws: number, seed: number): Promise<void> {
  const rng = new Rng(seed);
  const batches = [];
  for (let s = 0; s < steps; s++) {
    for (let d = 0; d < draws; d++) {
      const a = new Float32Array(inputs * 3), b = new Float32Array(inputs * 6);
      for (let i = 0; i < inputs; i++) {
        for (let j = 0; j < 3; j++) a[i * 3 + j] = Math.sin(i + j) + rng.normal() * 0.3 * (1 + s);
        for (let j = 0; j < 6; j++) b[i * 6 + j] = Math.cos(i * j) + rng.normal() * (1 + s);
      }
      batches.push(makeRecordBatch({
        kind: "activations/v1",
        sampleId: BigInt64Array.from({ length: inputs }, (_, i) => BigInt(i)),
        step: new BigInt64Array(inputs).fill(BigInt(s * 100)),
        draw: new Int32Array(inputs).fill(d),
        tensors: [{ name: "fc1", width: 3, values: a }, { name: "fc2", width: 6, values: b }],
      }));
    }
  }
  await writeBatches(path, batches);
}

/**
 * A `fisher_band` table (as `exp:fisher` writes it): median and range of the trace over 5 runs, 2 names, 6 steps;
 * medians times `scale`.
 */
function bandTable(scale = 1) {
  const rows = ["total", "fc1"].flatMap((name, k) =>
    [0, 1, 2, 3, 4, 5].map((s) => ({
      step: s * 50,
      name,
      median: scale * (k + 1) * (1 + s * (5 - s)),
      spread: 1 + s / 2,
    }))
  );
  return tableFromColumns([
    { name: "step", type: "int64", values: rows.map((r) => r.step) },
    { name: "name", type: "utf8", values: rows.map((r) => r.name) },
    { name: "median", type: "float64", values: rows.map((r) => r.median) },
    { name: "lo", type: "float64", values: rows.map((r) => r.median - r.spread) },
    { name: "hi", type: "float64", values: rows.map((r) => r.median + r.spread) },
    { name: "runs", type: "int64", values: rows.map(() => 5) },
  ]);
}

/**
 * A `unique_information` table of `n` samples with the plugin's columns (SI decreasing in the sample id, times
 * `scale`); with `flags`, a `flag` column marking every 5th sample and the 3 with the largest SI.
 */
export function siTable(n: number, scale = 1, flags = false) {
  const si = Array.from({ length: n }, (_, i) => scale / (1 + i));
  const fsi = si.map((v, i) => v * (1 + 0.1 * Math.sin(i)));
  const rank = (v: number[]) => {
    const order = v.map((_, i) => i).sort((a, b) => v[b] - v[a]);
    const r = new Array(n);
    order.forEach((i, k) => (r[i] = k + 1));
    return r;
  };
  return tableFromColumns([
    { name: "sample_id", type: "int64", values: si.map((_, i) => BigInt(i)) },
    { name: "si_weights", type: "float64", values: si },
    { name: "si_function", type: "float64", values: fsi },
    { name: "rank_weights", type: "int32", values: rank(si) },
    { name: "rank_function", type: "int32", values: rank(fsi) },
    { name: "samples", type: "int64", values: si.map(() => BigInt(n)) },
    { name: "lambda", type: "float64", values: si.map(() => 0.1) },
    ...(flags
      ? [{ name: "flag", type: "int32" as const, values: si.map((_, i) => (i < 3 || i % 5 === 4 ? 1 : 0)) }]
      : []),
  ]);
}

/** An image dump: `n` samples of 28x28 pixels (a bar whose position depends on the id) in column `input`. */
export async function imageDump(path: string, n: number): Promise<void> {
  const px = new Float32Array(n * 784);
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) px[i * 784 + y * 28 + x] = x === i % 28 ? 1 : 0;
  }
  await writeBatches(path, [makeRecordBatch({
    kind: "activations/v1",
    sampleId: BigInt64Array.from({ length: n }, (_, i) => BigInt(i)),
    label: Int32Array.from({ length: n }, (_, i) => i % 10),
    tensors: [{ name: "input", width: 784, values: px }],
  })]);
}

/**
 * Writes the full results directory `dir/<name>` (default `full`) and the image dump `dir/images.arrows`; returns
 * both paths. `variant` k > 0 draws other activations and gradients (more noise) and a flagged SI table.
 */
export async function fullResults(
  dir: string,
  name = "full",
  variant = 0,
): Promise<{ results: string; images: string }> {
  const results = `${dir}/${name}`;
  await activationDump(`${dir}/acts-${name}.arrows`, 3, 120, 1 + 10 * variant, 1 + 0.6 * variant);
  const a = await analyze({
    inputs: [`${dir}/acts-${name}.arrows`],
    estimators: ["entropy", "mi", "label-mi"],
    options: { "mi-estimator": "binned", "mi-bins": 6 },
    byStep: true,
    out: results,
    progress: false,
  });
  if (!a.complete) throw new Error(a.error);
  await gradientDump(`${dir}/grads-${name}.arrows`, 4, 40, 2 + 10 * variant);
  const f = await analyze({
    inputs: [`${dir}/grads-${name}.arrows`],
    estimators: ["fisher"],
    options: { "fisher-diag": true, "fisher-rank": 8 },
    byStep: true,
    out: `${dir}/fisher-${name}`,
    progress: false,
  });
  if (!f.complete) throw new Error(f.error);
  for (const t of ["fisher", "fisher_spectrum", "fisher_diag"]) {
    await Deno.copyFile(`${dir}/fisher-${name}/${t}.parquet`, `${results}/${t}.parquet`);
  }
  await writeTables(
    results,
    { unique_information: siTable(60, 1 + variant, variant > 0), fisher_band: bandTable(1 + variant) },
    "parquet",
  );
  await drawDump(`${dir}/draws-${name}.arrows`, 2, 12, 40, 4 + variant);
  const e = await analyze({
    inputs: [`${dir}/draws-${name}.arrows`],
    estimators: ["effective-info"],
    byStep: true,
    out: `${dir}/effinfo-${name}`,
    progress: false,
  });
  if (!e.complete) throw new Error(e.error);
  await Deno.copyFile(`${dir}/effinfo-${name}/effective_info.parquet`, `${results}/effective_info.parquet`);
  await imageDump(`${dir}/images.arrows`, 60);
  return { results, images: `${dir}/images.arrows` };
}

/** Writes `dir/steps`: entropy over 8 steps, as Arrow IPC files. */
export async function manyStepsResults(dir: string): Promise<string> {
  await activationDump(`${dir}/acts8.arrows`, 8, 40, 3);
  const r = await analyze({
    inputs: [`${dir}/acts8.arrows`],
    estimators: ["entropy"],
    byStep: true,
    out: `${dir}/steps`,
    format: "arrow",
    progress: false,
  });
  if (!r.complete) throw new Error(r.error);
  return `${dir}/steps`;
}
