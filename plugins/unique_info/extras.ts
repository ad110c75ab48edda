/**
 * Optional tables of `unique-info` (docs/unique_info.md): the dataset-summarisation view
 * (`unique_information_summary`, `--si-summary`) and the weight-change vectors of the most informative samples
 * (`si_change_vectors`, `--si-change-vectors N`, as the official code's change vectors).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { summaryTable } from "./extras.ts";
 * const t = summaryTable(new Float64Array([3, 1]), null, [0.5, 1]);
 * assert.equal(t.getChild("si_weights_share")!.get(0), 0.75); // keeping the top half keeps 3 of 4
 * ```
 *
 * @module
 */
import type * as arrow from "apache-arrow";
import { tableFromColumns } from "../../pipeline/core/table.ts";

/** Fractions of samples kept in the summary view: 0.05, 0.10, ..., 1.00. */
export const SUMMARY_FRACTIONS: readonly number[] = Array.from({ length: 20 }, (_, i) => (i + 1) / 20);

/** Cumulative share of the total SI held by the top `ceil(f n)` samples (by SI, descending). */
function shares(v: Float64Array, fractions: readonly number[]): { kept: number[]; share: number[] } {
  const n = v.length;
  const sorted = Float64Array.from(v).sort().reverse();
  const cum = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) cum[i + 1] = cum[i] + sorted[i];
  const kept = fractions.map((f) => Math.min(n, Math.ceil(f * n - 1e-9)));
  return { kept, share: kept.map((m) => (cum[n] > 0 ? cum[m] / cum[n] : 0)) };
}

/**
 * The summary view: per fraction of samples kept (the highest-SI ones), how many samples and which share of the
 * total weight SI and function SI they hold (function SI null without test rows).
 */
export function summaryTable(si: Float64Array, fsi: Float64Array | null, fractions = SUMMARY_FRACTIONS): arrow.Table {
  const w = shares(si, fractions), f = fsi ? shares(fsi, fractions) : null;
  return tableFromColumns([
    { name: "fraction_kept", type: "float64", values: [...fractions] },
    { name: "samples_kept", type: "int64", values: w.kept },
    { name: "si_weights_share", type: "float64", values: w.share },
    { name: "si_function_share", type: "float64", values: f ? f.share : fractions.map(() => null) },
  ], {
    "infotap.estimator": "unique-info",
    "infotap.definition": "share of the total SI held by the top fraction of samples by SI (dataset summarisation)",
  });
}

/**
 * Weight-change vectors `w - w_{-i} = J^T d_i` of the `count` samples of highest weight SI, long format (one row per
 * sample and parameter of the concatenated, possibly sketched, Jacobian layout). `dual(i)` gives `d_i` in the
 * sample-major row order, `rows[x]` the Jacobian row of position x.
 */
export function changeVectorsTable(
  ids: bigint[],
  si: Float64Array,
  count: number,
  dual: (i: number) => Float64Array,
  rows: (x: number) => Float32Array,
  width: number,
  layout: string,
): arrow.Table {
  const order = Array.from(si.keys()).sort((a, b) => si[b] - si[a] || a - b).slice(0, count);
  const m = order.length;
  const sid: bigint[] = [], rank: number[] = [], param = new Int32Array(m * width), value = new Float64Array(m * width);
  order.forEach((i, r) => {
    const d = dual(i), acc = new Float64Array(width);
    for (let x = 0; x < d.length; x++) {
      const dx = d[x];
      if (dx === 0) continue;
      const row = rows(x);
      for (let p = 0; p < width; p++) acc[p] += dx * row[p];
    }
    for (let p = 0; p < width; p++) {
      sid.push(ids[i]);
      rank.push(r + 1);
      param[r * width + p] = p;
      value[r * width + p] = acc[p];
    }
  });
  return tableFromColumns([
    { name: "sample_id", type: "int64", values: sid },
    { name: "rank_weights", type: "int32", values: rank },
    { name: "parameter", type: "int32", values: param },
    { name: "delta_w", type: "float64", values: value },
  ], {
    "infotap.estimator": "unique-info",
    "infotap.definition":
      "w - w_{-i} of the samples of highest weight SI; parameter = index in the concatenated layout",
    "infotap.layout": layout,
  });
}
