/**
 * The unique-info plugin's part of the report: histograms of each training sample's unique information (SI in the
 * weights, F-SI in the function; log10 when all positive), SI vs F-SI, and the most and least informative samples
 * (drawn with their input images under `report --images`). See docs/report.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { uniqueInfoReport } from "./report.ts";
 * const rows = [3, 1, 2].map((si, sample_id) => ({ sample_id, si_weights: si, si_function: si / 2, lambda: 0.1 }));
 * const table = { columns: Object.keys(rows[0]), rows, files: [], metadata: {} };
 * const results = { dir: "r", run: null, tables: { unique_information: table } };
 * const s = uniqueInfoReport.sections![0].build(results, { samples: 1 })!;
 * assert.deepEqual(s.plots.map((p) => p.id), ["si-hist", "si-scatter"]);
 * assert.deepEqual(s.samples!.map((g) => g.samples.map((x) => x.id)), [["0"], ["1"]]);
 * ```
 *
 * @module
 */
import type {
  PluginReport,
  ReportContext,
  ReportPlot,
  ResultDirectory,
  ResultTable,
  SampleGroup,
  SectionContent,
} from "../../pipeline/core/report_contract.ts";
import * as kit from "../../pipeline/report/plot_kit.ts";

/** At most this many points in a scatter plot (an evenly spaced subset beyond). */
const MAX_POINTS = 2000;

/** The k most and least informative samples by `si_weights` (most first; least: smallest first). */
export function extremeSamples(t: ResultTable, k: number): { most: kit.Row[]; least: kit.Row[] } {
  const rows = t.rows.filter((r) => kit.num(r.si_weights) !== null);
  rows.sort((a, b) => kit.num(b.si_weights)! - kit.num(a.si_weights)!);
  const kk = Math.min(k, Math.floor(rows.length / 2));
  return { most: rows.slice(0, kk), least: rows.slice(rows.length - kk).reverse() };
}

/** Unique information of each sample: histograms (log scale when all positive) and SI vs F-SI. */
function siSection(results: ResultDirectory, context: ReportContext): SectionContent | null {
  const t = results.tables.unique_information;
  const measures = ["si_weights", "si_function"].filter((m) =>
    t.columns.includes(m) && kit.finite(t.rows, m).values.length
  );
  if (measures.length === 0) return null;
  const plots: ReportPlot[] = [];
  const data: kit.LayerBins[] = [];
  const notes: string[] = [];
  for (const m of measures) {
    const { values, missing } = kit.finite(t.rows, m);
    const log = values.every((v) => v > 0);
    const v = log ? values.map(Math.log10) : values;
    const [lo, hi] = kit.range(v);
    const name = log ? `log10 ${m}` : m;
    for (const b of kit.histogram(v, lo, hi)) data.push({ layer: name, step: "all", ...b });
    notes.push(`${name}: ${values.length} samples` + (missing ? `, ${missing} without a value` : ""));
  }
  plots.push({
    id: "si-hist",
    title: "Unique information of each training sample",
    note: `Histograms (${kit.BINS} bins each). ${notes.join("; ")}.`,
    spec: kit.histogramGrid(data, [...new Set(data.map((d) => d.layer))], null, "value", "samples"),
  });
  if (measures.length === 2) {
    const both = t.rows.filter((r) => kit.num(r.si_weights) !== null && kit.num(r.si_function) !== null);
    const stride = Math.max(1, Math.ceil(both.length / MAX_POINTS));
    const pts = both.filter((_, i) => i % stride === 0).map((r) => ({
      sample_id: r.sample_id,
      si_weights: kit.r4(kit.num(r.si_weights)!),
      si_function: kit.r4(kit.num(r.si_function)!),
    }));
    const log = pts.every((p) => p.si_weights > 0 && p.si_function > 0);
    plots.push({
      id: "si-scatter",
      title: "SI in the weights vs SI in the function (F-SI)",
      note: `${pts.length} of ${both.length} samples${stride > 1 ? ` (every ${stride}th)` : ""}${
        log ? "; log scales" : ""
      }.`,
      spec: {
        $schema: kit.SCHEMA,
        width: 320,
        height: 320,
        data: { values: pts },
        mark: { type: "point", tooltip: true, opacity: 0.6 },
        encoding: {
          x: { field: "si_weights", type: "quantitative", scale: log ? { type: "log" } : {} },
          y: { field: "si_function", type: "quantitative", scale: log ? { type: "log" } : {} },
          tooltip: [{ field: "sample_id" }, { field: "si_weights" }, { field: "si_function" }],
        },
      },
    });
  }
  const lambda = kit.num(t.rows[0]?.lambda);
  return {
    intro: `Smooth unique information of each training sample (table unique_information; docs/science.md section 3)${
      lambda !== null ? `, lambda = ${lambda}` : ""
    }.`,
    plots,
    samples: sampleGroups(t, context.samples),
  };
}

/** The `k` most and least informative samples, with SI (and F-SI when present) in their captions. */
function sampleGroups(t: ResultTable, k: number): SampleGroup[] {
  const { most, least } = extremeSamples(t, k);
  if (most.length === 0) return [];
  const group = (title: string, rows: kit.Row[]): SampleGroup => ({
    title,
    samples: rows.map((r) => ({
      id: String(r.sample_id),
      lines: [
        ["SI", r.si_weights],
        ...(r.si_function !== null && r.si_function !== undefined
          ? [["F-SI", r.si_function] as [string, kit.Row[string]]]
          : []),
      ],
    })),
  });
  return [
    group(`${most.length} most informative samples (largest SI in the weights)`, most),
    group(`${least.length} least informative samples (smallest SI)`, least),
  ];
}

/** What the `unique-info` plugin declares for `report`. */
export const uniqueInfoReport: PluginReport = {
  sections: [{
    id: "si",
    title: "Unique information",
    tables: ["unique_information"],
    samples: true,
    build: siSection,
  }],
};
