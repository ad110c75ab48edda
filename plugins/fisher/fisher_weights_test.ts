/**
 * The `fisher` estimator's weighted rows (exact expectation over classes), the weights term
 * `||w*||^2 / (2 lambda^2)` of the information in the weights, and the traces' standard errors: each against a
 * float64 reference computed here from the same rows, and the standard errors' coverage over repeated draws.
 */
import assert from "node:assert/strict";
import { fisherPlugin, layerOf } from "./fisher.ts";
import { gradientBatch, Rng, rowsOf, runPlugin, toBatch } from "../../tests/_util.ts";
import type { Batch } from "../../schemas/batch.ts";

const close = (a: number, b: number, rtol: number, label: string) =>
  assert.ok(Math.abs(a - b) <= rtol * Math.max(Math.abs(a), Math.abs(b), 1e-300), `${label}: ${a} vs ${b}`);

const SHAPES: [string, number][] = [["fc1.weight", 6], ["fc1.bias", 3], ["out.weight", 4]];

/** Random float32 gradient rows of the tensors in SHAPES, `rows x width` each. */
function randomRows(rng: Rng, rows: number): Record<string, { width: number; values: Float32Array }> {
  return Object.fromEntries(SHAPES.map(([name, w]) => [
    name,
    { width: w, values: Float32Array.from({ length: rows * w }, () => rng.normal() * (1 + (w % 3))) },
  ]));
}

/** Float64 reference of the weighted diagonal: `F_jj = sum_r w_r g_rj^2 / sum_r w_r` over finite entries. */
function weightedDiag(batches: Batch[], name: string): number[] {
  const w = SHAPES.find((s) => s[0] === name)![1];
  const num = new Array(w).fill(0), den = new Array(w).fill(0);
  for (const b of batches) {
    const col = b.columns.find((c) => c.name === name)!;
    for (let r = 0; r < b.numRows; r++) {
      if (b.rowType && b.rowType[r] === 1) continue;
      const wr = b.weight ? b.weight[r] : 1;
      for (let j = 0; j < w; j++) {
        const g = col.values[r * w + j];
        if (!Number.isFinite(g)) continue;
        num[j] += wr * g * g;
        den[j] += wr;
      }
    }
  }
  return num.map((x, j) => x / den[j]);
}

const sum = (xs: number[]) => xs.reduce((a, x) => a + x, 0);

Deno.test("fisher: weighted rows give sum w g^2 / sum w (exact expectation), equal to a float64 reference", async () => {
  const rng = new Rng(3);
  const batches: Batch[] = [];
  for (let b = 0; b < 3; b++) {
    const rows = 12;
    const t = randomRows(rng, rows);
    if (b === 1) t["fc1.weight"].values[7] = NaN; // left out of F_{fc1.weight,1} with its weight
    batches.push(gradientBatch(rows, t, { weight: Float64Array.from({ length: rows }, () => rng.next()) }, b * rows));
    batches[b].index = b;
  }
  const lambda2 = 0.4, beta = 0.5, c = lambda2 / beta;
  const { results } = await runPlugin(
    fisherPlugin,
    { "fisher-diag": true, "fisher-rank": 0, "prior-var": lambda2, beta },
    batches,
  );
  const diag = rowsOf(results.fisher_diag), rows = rowsOf(results.fisher);
  const info = (f: number[]) => sum(f.map((x) => 0.5 * (Math.log1p(c * x) - (c * x) / (1 + c * x))));
  let at = 0;
  const all: number[] = [];
  for (const [name] of SHAPES) {
    const ref = weightedDiag(batches, name);
    ref.forEach((f, j) => close(diag[at + j].value as number, f, 1e-9, `${name}[${j}]`));
    at += ref.length;
    all.push(...ref);
    const r = rows.find((x) => x.parameter === name)!;
    close(r.trace as number, sum(ref), 1e-9, `${name} trace`);
    close(r.info_weights as number, info(ref), 1e-9, `${name} info_weights`);
    assert.equal(r.weights_term, null);
  }
  close(rows.at(-1)!.trace as number, sum(all), 1e-9, "total trace");
  assert.equal(rows.at(-1)!.nonfinite, "1");
  assert.match(results.fisher.schema.metadata.get("infotap.row_weights")!, /weighted mean/);
  // Integer weights equal repeated rows (an independent route to the same diagonal).
  const w = [2, 0, 1, 3], base = randomRows(new Rng(4), 4);
  const repeated: Record<string, { width: number; values: Float32Array }> = {};
  for (const [name, p] of Object.entries(base)) {
    const out: number[] = [];
    w.forEach((k, r) => {
      for (let i = 0; i < k; i++) out.push(...p.values.subarray(r * p.width, (r + 1) * p.width));
    });
    repeated[name] = { width: p.width, values: Float32Array.from(out) };
  }
  const a = await runPlugin(fisherPlugin, { "fisher-rank": 8 }, [
    gradientBatch(4, base, { weight: Float64Array.from(w) }),
  ]);
  const b = await runPlugin(fisherPlugin, { "fisher-rank": 8 }, [gradientBatch(6, repeated)]);
  rowsOf(a.results.fisher).forEach((r, i) =>
    close(r.trace as number, rowsOf(b.results.fisher)[i].trace as number, 1e-12, `repeat ${i}`)
  );
  rowsOf(a.results.fisher_spectrum).forEach((r, i) =>
    close(r.eigenvalue as number, rowsOf(b.results.fisher_spectrum)[i].eigenvalue as number, 1e-9, `spectrum ${i}`)
  );
});

Deno.test("fisher: a negative, NaN or infinite row weight, or an unknown row_type, is refused, naming row and column", () => {
  for (const bad of [-0.5, NaN, Infinity]) {
    assert.throws(
      () => gradientBatch(2, randomRows(new Rng(1), 2), { weight: new Float64Array([1, bad]) }),
      new RegExp(`column 'weight': Cannot read row 1 \\(sample_id 1\\) as a row weight must be finite and >= 0`),
    );
  }
  assert.throws(
    () => gradientBatch(2, randomRows(new Rng(1), 2), { rowType: ["gradient", "bias"] as never }),
    /column 'row_type': Cannot read row 1 as row_type must be 'gradient' or 'weights': current value is 'bias'/,
  );
});

/** Squared norm of each tensor's row `r`, float64 from the float32 values. */
const sqNorms = (t: Record<string, { width: number; values: Float32Array }>, r: number) =>
  SHAPES.map(([name, w]) => sum(Array.from(t[name].values.subarray(r * w, (r + 1) * w), (x) => x * x)));

Deno.test("fisher: weights rows add ||w*||^2 / (2 lambda^2) per step as weights_term and into info_weights", async () => {
  const rng = new Rng(5), lambda2 = 0.3, beta = 2, c = lambda2 / beta;
  const batches: Batch[] = [], norms: number[][] = [];
  for (let step = 0; step < 2; step++) {
    const rows = 9;
    const t = randomRows(rng, rows);
    // Row 4 holds the weights w* of this step, between gradient rows (sample_id -1 by convention).
    const rowType = Array.from({ length: rows }, (_, r): "weights" | "gradient" => (r === 4 ? "weights" : "gradient"));
    norms.push(sqNorms(t, 4));
    batches.push(toBatch(
      {
        kind: "gradients/v1",
        fisher: "true",
        sampleId: BigInt64Array.from({ length: rows }, (_, r) => BigInt(r === 4 ? -1 : r)),
        step: new BigInt64Array(rows).fill(BigInt(step)),
        rowType,
        tensors: Object.entries(t).map(([name, p]) => ({ name, ...p })),
      },
      "t",
      step,
    ));
  }
  const { results } = await runPlugin(fisherPlugin, { "prior-var": lambda2, beta, "fisher-rank": 0 }, batches, {
    byStep: true,
  });
  const rows = rowsOf(results.fisher);
  const info = (f: number[]) => sum(f.map((x) => 0.5 * (Math.log1p(c * x) - (c * x) / (1 + c * x))));
  for (let step = 0; step < 2; step++) {
    const mine = rows.filter((r) => r.step === String(step));
    assert.ok(mine.every((r) => r.samples === "8" && r.inputs === "8"), "the weights row is not a sample");
    const layerTerm = new Map<string, number>(), layerInfo = new Map<string, number>();
    SHAPES.forEach(([name], i) => {
      const r = mine.find((x) => x.parameter === name)!;
      const term = norms[step][i] / (2 * lambda2);
      const fisherPart = info(weightedDiag([batches[step]], name));
      close(r.weights_term as number, term, 1e-9, `${name} weights_term`);
      close(r.info_weights as number, fisherPart + term, 1e-9, `${name} info_weights`);
      layerTerm.set(layerOf(name), (layerTerm.get(layerOf(name)) ?? 0) + term);
      layerInfo.set(layerOf(name), (layerInfo.get(layerOf(name)) ?? 0) + fisherPart + term);
    });
    for (const [layer, term] of layerTerm) {
      const r = mine.find((x) => x.level === "layer" && x.parameter === layer)!;
      close(r.weights_term as number, term, 1e-9, `${layer} weights_term`);
      close(r.info_weights as number, layerInfo.get(layer)!, 1e-9, `${layer} info_weights`);
    }
    close(mine.at(-1)!.weights_term as number, sum(norms[step]) / (2 * lambda2), 1e-9, "total weights_term");
  }
  // Two different weights rows for one step are refused.
  const twice = [batches[0], { ...batches[1], step: new BigInt64Array(9) }];
  await assert.rejects(
    () => runPlugin(fisherPlugin, { "fisher-rank": 0 }, twice, { byStep: true }),
    /column 'row_type': Cannot take two different weights w\* for one step/,
  );
});

Deno.test("fisher: squared norms from schema metadata infotap.weight_sq_norms; bad ones are refused", async () => {
  const rng = new Rng(6);
  const norms = { "fc1.weight": 2.5, "fc1.bias": 0.25, "out.weight": 1 };
  const batch = (meta: Record<string, string>) =>
    toBatch({
      kind: "gradients/v1",
      fisher: "true",
      sampleId: BigInt64Array.from({ length: 5 }, (_, i) => BigInt(i)),
      tensors: Object.entries(randomRows(rng, 5)).map(([name, p]) => ({ name, ...p })),
      metadata: meta,
    });
  const { results } = await runPlugin(fisherPlugin, { "prior-var": 0.5, beta: 1, "fisher-rank": 0 }, [
    batch({ "infotap.weight_sq_norms": JSON.stringify(norms) }),
  ]);
  const rows = rowsOf(results.fisher);
  close(rows.find((r) => r.parameter === "fc1.bias")!.weights_term as number, 0.25, 1e-15, "fc1.bias");
  close(rows.find((r) => r.level === "layer" && r.parameter === "fc1")!.weights_term as number, 2.75, 1e-15, "fc1");
  close(rows.at(-1)!.weights_term as number, 3.75, 1e-15, "total");
  // Without --prior-var there is no lambda: weights_term stays null.
  const none = await runPlugin(fisherPlugin, { "fisher-rank": 0 }, [
    batch({ "infotap.weight_sq_norms": JSON.stringify(norms) }),
  ]);
  assert.ok(rowsOf(none.results.fisher).every((r) => r.weights_term === null));
  for (
    const [meta, msg] of [
      ["{", /must be a JSON object/],
      [JSON.stringify({ ...norms, "fc9.weight": 1 }), /names an unknown tensor: current value is 'fc9.weight'/],
      [JSON.stringify({ ...norms, "fc1.bias": -1 }), /tensor 'fc1.bias' needs a finite number >= 0/],
      [JSON.stringify({ "fc1.weight": 1 }), /tensor 'fc1.bias' needs a finite number >= 0: current value is undefined/],
    ] as const
  ) {
    await assert.rejects(
      () => runPlugin(fisherPlugin, { "fisher-rank": 0 }, [batch({ "infotap.weight_sq_norms": meta })]),
      msg,
    );
  }
  await assert.rejects(
    () =>
      runPlugin(fisherPlugin, { "fisher-rank": 0 }, [
        batch({ "infotap.weight_sq_norms": JSON.stringify(norms) }),
        batch({ "infotap.weight_sq_norms": JSON.stringify({ ...norms, "fc1.bias": 2 }) }),
      ]),
    /Cannot take two different sets of 'infotap.weight_sq_norms' in one run/,
  );
});

Deno.test("fisher: trace_se is the cluster standard error over inputs (rows of one sample_id together)", async () => {
  const rng = new Rng(8), n = 30, draws = 3;
  const t = randomRows(rng, n * draws);
  const ids = BigInt64Array.from({ length: n * draws }, (_, r) => BigInt(Math.floor(r / draws)));
  // Rows of an input split over batches and arriving out of order: clusters are keyed by sample_id.
  const order = Array.from({ length: n * draws }, (_, r) => r).sort(() => rng.next() - 0.5);
  const pick = (rs: number[]) =>
    gradientBatch(
      rs.length,
      Object.fromEntries(
        Object.entries(t).map(([name, p]) => [name, {
          width: p.width,
          values: Float32Array.from(rs.flatMap((r) => [...p.values.subarray(r * p.width, (r + 1) * p.width)])),
        }]),
      ),
      { sampleId: BigInt64Array.from(rs, (r) => ids[r]) },
    );
  const { results } = await runPlugin(fisherPlugin, { "fisher-rank": 0 }, [
    pick(order.slice(0, 40)),
    pick(order.slice(40)),
  ]);
  const rows = rowsOf(results.fisher);
  // Reference: per input the mean over its draws of q (squared norm of the row), then sd / sqrt(n).
  const perInput = (names: string[]) =>
    Array.from({ length: n }, (_, i) => {
      let s = 0;
      for (let d = 0; d < draws; d++) {
        const q = sqNorms(t, i * draws + d);
        s += sum(SHAPES.map(([name], k) => (names.includes(name) ? q[k] : 0)));
      }
      return s / draws;
    });
  const se = (xs: number[]) => {
    const m = sum(xs) / xs.length;
    return Math.sqrt(sum(xs.map((x) => (x - m) ** 2)) / (xs.length - 1) / xs.length);
  };
  for (const r of rows) {
    const names = r.level === "total"
      ? SHAPES.map((s) => s[0])
      : r.level === "layer"
      ? SHAPES.map((s) => s[0]).filter((x) => layerOf(x) === r.parameter)
      : [r.parameter as string];
    close(r.trace_se as number, se(perInput(names)), 1e-9, `${r.level} ${r.parameter} se`);
    close(r.trace as number, sum(perInput(names)) / n, 1e-9, `${r.level} ${r.parameter} trace`);
    assert.equal(r.inputs, String(n));
  }
});

/**
 * A linear softmax model `p(y|x) = softmax(x W + b)` on a fixed population of inputs: per-sample gradients of
 * log p(y|x) are `x (outer) (e_y - p)` and `e_y - p`, and the exact population Fisher trace is
 * `(1/M) sum_x sum_y p(y|x) ||g_{x,y}||^2`.
 */
function softmaxPopulation(m: number, d: number, k: number, seed: number) {
  const rng = new Rng(seed);
  const x = Float64Array.from({ length: m * d }, () => rng.normal() * (1 + rng.next()));
  const w = Float64Array.from({ length: d * k }, () => rng.normal() * 0.8);
  const p = new Float64Array(m * k);
  for (let i = 0; i < m; i++) {
    let max = -Infinity;
    const z = Array.from({ length: k }, (_, c) => {
      let s = 0.1 * c;
      for (let j = 0; j < d; j++) s += x[i * d + j] * w[j * k + c];
      max = Math.max(max, s);
      return s;
    });
    const e = z.map((v) => Math.exp(v - max)), t = sum(e);
    e.forEach((v, c) => (p[i * k + c] = v / t));
  }
  /** The gradient row of input i at label y (float32, as a producer sends it). */
  const grad = (i: number, y: number) => {
    const delta = Array.from({ length: k }, (_, c) => (c === y ? 1 : 0) - p[i * k + c]);
    const gw = new Float32Array(d * k);
    for (let j = 0; j < d; j++) for (let c = 0; c < k; c++) gw[j * k + c] = x[i * d + j] * delta[c];
    return { gw, gb: Float32Array.from(delta) };
  };
  // Exact population trace per tensor, float64.
  let tw = 0, tb = 0;
  for (let i = 0; i < m; i++) {
    let xx = 0;
    for (let j = 0; j < d; j++) xx += x[i * d + j] ** 2;
    for (let y = 0; y < k; y++) {
      let dd = 0;
      for (let c = 0; c < k; c++) dd += ((c === y ? 1 : 0) - p[i * k + c]) ** 2;
      tw += p[i * k + y] * xx * dd;
      tb += p[i * k + y] * dd;
    }
  }
  return { m, d, k, p, grad, exact: { "lin.weight": tw / m, "lin.bias": tb / m, total: (tw + tb) / m }, rng };
}

Deno.test("fisher: trace +- 1.96 trace_se covers the exact population trace ~95% of the time (400 draws)", async () => {
  const pop = softmaxPopulation(4000, 5, 4, 11);
  const { d, k, p, grad, rng } = pop;
  const n = 120, reps = 400;
  /** One probe set of n inputs drawn from the population, gradient rows per the given mode. */
  const sample = (mode: "sampled" | "exact" | "draws") => {
    const gw: number[] = [], gb: number[] = [], ids: bigint[] = [], wts: number[] = [];
    for (let s = 0; s < n; s++) {
      const i = rng.int(pop.m);
      const labels = mode === "exact"
        ? Array.from({ length: k }, (_, y) => y)
        : Array.from({ length: mode === "draws" ? 4 : 1 }, () => {
          let u = rng.next(), y = 0;
          while (y < k - 1 && (u -= p[i * k + y]) >= 0) y++;
          return y;
        });
      for (const y of labels) {
        const g = grad(i, y);
        gw.push(...g.gw);
        gb.push(...g.gb);
        ids.push(BigInt(s)); // one cluster per drawn input (the same population member may come twice)
        wts.push(mode === "exact" ? p[i * k + y] : 1);
      }
    }
    return gradientBatch(ids.length, {
      "lin.weight": { width: d * k, values: Float32Array.from(gw) },
      "lin.bias": { width: k, values: Float32Array.from(gb) },
    }, { sampleId: BigInt64Array.from(ids), weight: mode === "exact" ? Float64Array.from(wts) : undefined });
  };
  for (const mode of ["sampled", "exact", "draws"] as const) {
    const hits: Record<string, number> = { "lin.weight": 0, "lin.bias": 0, total: 0 };
    let naiveHits = 0;
    for (let rep = 0; rep < reps; rep++) {
      const batch = sample(mode);
      const { results } = await runPlugin(fisherPlugin, { "fisher-rank": 0 }, [batch]);
      for (const r of rowsOf(results.fisher)) {
        if (r.level === "layer") continue;
        const key = r.level === "total" ? "total" : (r.parameter as string);
        const exact = pop.exact[key as keyof typeof pop.exact];
        if (Math.abs((r.trace as number) - exact) <= 1.96 * (r.trace_se as number)) hits[key]++;
        if (key === "total" && mode === "draws") {
          // The naive per-row standard error ignores that an input's draws share x: it under-covers.
          const q = Array.from({ length: batch.numRows }, (_, row) => {
            let s = 0;
            for (const c of batch.columns) {
              for (let j = row * c.width; j < (row + 1) * c.width; j++) s += c.values[j] ** 2;
            }
            return s;
          });
          const m = sum(q) / q.length, sd = Math.sqrt(sum(q.map((v) => (v - m) ** 2)) / (q.length - 1));
          if (Math.abs(m - exact) <= 1.96 * sd / Math.sqrt(q.length)) naiveHits++;
        }
      }
    }
    for (const [key, h] of Object.entries(hits)) {
      // 95% nominal; binomial sd over 400 draws is 1.1%: [0.92, 0.98] is about +-2.7 sd.
      assert.ok(h / reps >= 0.92 && h / reps <= 0.98, `${mode} ${key}: coverage ${h / reps}`);
    }
    if (mode === "draws") assert.ok(naiveHits / reps < 0.9, `naive per-row SE coverage ${naiveHits / reps}`);
  }
});
