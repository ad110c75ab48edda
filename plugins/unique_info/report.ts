/**
 * The unique-info plugin's part of the report and of `compare`: histograms of each training sample's unique
 * information (SI in the weights, F-SI in the function; log axes when all positive), SI vs F-SI, samples the input
 * flags (a `flag` column) marked, the most and least informative samples (drawn with their input images under
 * `report --images`), several runs overlaid, and mean SI and F-SI as measures to rank runs by. See docs/report.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { uniqueInfoReport } from "./report.ts";
 * const rows = [3, 1, 2].map((si, sample_id) => ({ sample_id, si_weights: si, si_function: si / 2, lambda: 0.1 }));
 * const table = { columns: Object.keys(rows[0]), rows, files: [], metadata: {} };
 * const results = { dir: "r", run: null, tables: { unique_information: table } };
 * const s = uniqueInfoReport.sections![0].build(results, { samples: 1, bootstrap: 0, seed: 0 })!;
 * assert.deepEqual(s.plots.map((p) => p.id), ["si-hist", "fsi-hist", "si-scatter"]);
 * assert.deepEqual(s.samples!.map((g) => g.samples.map((x) => x.id)), [["0"], ["1"]]);
 * ```
 *
 * @module
 */
import type {
  PluginReport,
  ReportContext,
  ReportPlot,
  ReportRun,
  ResultDirectory,
  ResultTable,
  SampleGroup,
  SectionContent,
} from "../../pipeline/core/report_contract.ts";
import * as kit from "../../pipeline/core/plot_kit.ts";

/** At most this many points in a scatter plot (an evenly spaced subset beyond). */
const MAX_POINTS = 2000;

/** The k most and least informative samples by `si_weights` (most first; least: smallest first). */
export function extremeSamples(t: ResultTable, k: number): { most: kit.Row[]; least: kit.Row[] } {
  const rows = t.rows.filter((r) => kit.num(r.si_weights) !== null);
  rows.sort((a, b) => kit.num(b.si_weights)! - kit.num(a.si_weights)!);
  const kk = Math.min(k, Math.floor(rows.length / 2));
  return { most: rows.slice(0, kk), least: rows.slice(rows.length - kk).reverse() };
}

/** The measures drawn: column, short name and unit (the table's metadata spells the units out as formulas). */
function measuresOf(t: ResultTable) {
  return [
    { column: "si_weights", name: "SI in the weights", unit: "squared parameter distance" },
    { column: "si_function", name: "SI in the function (F-SI)", unit: "squared output change, mean over test samples" },
  ].filter((m) => t.columns.includes(m.column) && kit.finite(t.rows, m.column).values.length);
}

/** Whether a row is flagged by the input (`flag` column: e.g. a flipped label). */
const flagged = (r: kit.Row) => r.flag !== null && r.flag !== undefined && r.flag !== 0 && r.flag !== false;

/** Warnings from the table: samples whose SI ties another's (their ranks are then by sample order). */
function siWarnings(t: ResultTable): string[] {
  const v = kit.finite(t.rows, "si_weights").values.sort((a, b) => a - b);
  let ties = 0;
  for (let i = 0; i < v.length; i++) if (v[i] === v[i - 1] || v[i] === v[i + 1]) ties++;
  const missing = t.rows.length - kit.finite(t.rows, "si_weights").values.length;
  return [
    ...(ties
      ? [`${ties} samples share their SI in the weights with another sample: their ranks are by sample order.`]
      : []),
    ...(missing ? [`${missing} samples have no finite SI in the weights (not drawn).`] : []),
  ];
}

/** Unique information of each sample: histograms (log axis when all positive), SI vs F-SI, flagged samples marked. */
function siSection(results: ResultDirectory, context: ReportContext): SectionContent | null {
  const t = results.tables.unique_information;
  const measures = measuresOf(t);
  if (measures.length === 0) return null;
  const flags = t.columns.includes("flag") && t.rows.some(flagged);
  const plots: ReportPlot[] = [];
  const notes: string[] = [];
  for (const m of measures) {
    const { values, missing } = kit.finite(t.rows, m.column);
    const log = values.every((v) => v > 0);
    const [lo, hi] = kit.range(values);
    const data: Record<string, unknown>[] = [];
    for (const group of flags ? ["not flagged", "flagged"] : ["all"]) {
      const v = kit.finite(
        t.rows.filter((r) => group === "all" || flagged(r) === (group === "flagged")),
        m.column,
      ).values;
      const bins = log ? kit.logHistogram(v, lo, hi).bins : kit.histogram(v, lo, hi);
      for (const b of bins) if (b.count > 0) data.push({ ...b, group });
    }
    notes.push(`${m.name}: ${values.length} samples` + (missing ? `, ${missing} without a value` : ""));
    plots.push({
      id: m.column === "si_weights" ? "si-hist" : "fsi-hist",
      title: `${m.name} of each training sample`,
      note:
        `Histogram (${kit.BINS} bins${log ? " of equal width in log10; log axis" : ""}). ${notes[notes.length - 1]}.` +
        (flags ? " Flagged samples (column flag of the input, e.g. flipped labels) in red, stacked." : ""),
      spec: kit.fit({
        $schema: kit.SCHEMA,
        width: 520,
        height: 200,
        data: { values: data },
        mark: { type: "bar", tooltip: true },
        encoding: {
          x: {
            field: "x0",
            type: "quantitative",
            bin: { binned: true },
            title: `${m.name} (${m.unit})${log ? ", log scale" : ""}`,
            ...(log ? kit.logScale([lo, hi]) : {}),
          },
          x2: { field: "x1" },
          y: { field: "count", type: "quantitative", title: "samples", stack: true },
          color: flags
            ? {
              field: "group",
              type: "nominal",
              title: null,
              scale: { domain: ["not flagged", "flagged"], range: ["#4c78a8", "#d62728"] },
            }
            : { value: "#4c78a8" },
        },
      }),
    });
  }
  if (measures.length === 2) {
    const both = t.rows.filter((r) => kit.num(r.si_weights) !== null && kit.num(r.si_function) !== null);
    const stride = Math.max(1, Math.ceil(both.length / MAX_POINTS));
    const pts = both.filter((r, i) => i % stride === 0 || (flags && flagged(r))).map((r) => ({
      sample_id: r.sample_id,
      si_weights: kit.r4(kit.num(r.si_weights)!),
      si_function: kit.r4(kit.num(r.si_function)!),
      flagged: flags ? (flagged(r) ? "flagged" : "not flagged") : "all",
    }));
    const log = pts.every((p) => p.si_weights > 0 && p.si_function > 0);
    plots.push({
      id: "si-scatter",
      title: "SI in the weights vs SI in the function (F-SI)",
      note: `${pts.length} of ${both.length} samples${
        stride > 1 ? ` (every ${stride}th${flags ? ", and every flagged one" : ""})` : ""
      }${log ? "; log scales" : ""}.${flags ? " Flagged samples in red." : ""}`,
      spec: kit.fit(
        {
          $schema: kit.SCHEMA,
          width: 520,
          height: 320,
          data: { values: pts },
          mark: { type: "point", tooltip: true, opacity: 0.7, filled: true },
          encoding: {
            x: {
              field: "si_weights",
              type: "quantitative",
              title: `${measures[0].name} (${measures[0].unit})`,
              ...(log ? kit.logScale(pts.map((p) => p.si_weights)) : {}),
            },
            y: {
              field: "si_function",
              type: "quantitative",
              title: `F-SI (${measures[1].unit})`,
              ...(log ? kit.logScale(pts.map((p) => p.si_function)) : {}),
            },
            color: flags
              ? {
                field: "flagged",
                type: "nominal",
                title: null,
                scale: { domain: ["not flagged", "flagged"], range: ["#4c78a8", "#d62728"] },
              }
              : { value: "#4c78a8" },
            tooltip: [
              { field: "sample_id" },
              { field: "si_weights" },
              { field: "si_function" },
              ...(flags ? [{ field: "flagged" }] : []),
            ],
          },
        },
        1,
        0.45,
      ),
    });
  }
  const lambda = kit.num(t.rows[0]?.lambda);
  const top = flags ? topShare(t) : null;
  return {
    intro: `Smooth unique information of each training sample (table unique_information; docs/science.md section 3)${
      lambda !== null ? `, lambda = ${lambda}` : ""
    }.${top ? ` ${top}` : ""}`,
    plots,
    samples: sampleGroups(t, context.samples),
    warnings: siWarnings(t),
  };
}

/** "12 of the 60 samples (20%) are flagged; among the 10% with the largest SI: 5 of 6 (83%)". */
function topShare(t: ResultTable): string {
  const rows = t.rows.filter((r) => kit.num(r.si_weights) !== null).sort((a, b) =>
    kit.num(b.si_weights)! - kit.num(a.si_weights)!
  );
  const n = rows.length, k = Math.max(1, Math.round(n / 10));
  const all = rows.filter(flagged).length, top = rows.slice(0, k).filter(flagged).length;
  const pct = (a: number, b: number) => `${Math.round((100 * a) / b)}%`;
  return `${all} of the ${n} samples (${
    pct(all, n)
  }) are flagged by the input; among the ${k} with the largest SI in the weights: ${top} (${pct(top, k)}).`;
}

/** Several runs: the distributions of SI and F-SI, one outlined histogram per run (bins shared by the runs). */
function siOverlay(runs: ReportRun[]): SectionContent | null {
  const names = runs.map((r) => r.name);
  const data: kit.RunBin[] = [];
  const groups: string[] = [];
  let log = true;
  let all: number[] = [];
  const ms = measuresOf(runs[0].results.tables.unique_information);
  for (const m of ms) {
    const per = runs.map((r) => ({
      name: r.name,
      v: kit.finite(r.results.tables.unique_information?.rows ?? [], m.column).values,
    }));
    const vals = per.flatMap((p) => p.v);
    if (!vals.length) continue;
    log &&= vals.every((v) => v > 0);
    all = [...all, ...vals];
    const [lo, hi] = kit.range(vals);
    const group = `${m.name} (${m.unit})`;
    groups.push(group);
    for (const p of per) {
      if (!p.v.length) continue;
      const bins = log ? kit.logHistogram(p.v, lo, hi).bins : kit.histogram(p.v, lo, hi);
      for (const b of bins) data.push({ run: p.name, group, x0: b.x0, x1: b.x1, share: kit.r4(b.count / p.v.length) });
    }
  }
  if (!data.length) return null;
  return {
    intro:
      "Smooth unique information of each training sample (table unique_information; docs/science.md section 3), runs overlaid." +
      runs.map((r) => {
        const t = r.results.tables.unique_information;
        return t?.columns.includes("flag") && t.rows.some(flagged) ? ` ${r.name}: ${topShare(t)}` : "";
      }).join(""),
    plots: [{
      id: "si-hist",
      title: "Unique information of each training sample, runs overlaid",
      note: `Outlined histograms (${kit.BINS} bins${
        log ? " of equal width in log10, log axis" : ""
      }, shared by the runs): the share of each run's samples in each bin.`,
      spec: kit.overlayHistograms(data, names, groups, "value (see the panel's title)", log ? kit.logScale(all) : null),
    }],
    warnings: runs.flatMap((r) =>
      r.results.tables.unique_information
        ? siWarnings(r.results.tables.unique_information).map((w) => `${r.name}: ${w}`)
        : []
    ),
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
      ...(flagged(r) ? { flagged: true } : {}),
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
  describe(s) {
    const bits = [
      s.trainRows !== undefined ? `${s.trainRows} train rows` : null,
      s.testRows !== undefined ? `${s.testRows} test rows` : null,
      s.parameters !== undefined ? `${s.parameters} parameters (or sketch dimensions)` : null,
    ].filter(Boolean);
    return { text: bits.length ? `${bits.join(", ")}.` : "" };
  },
  sections: [{
    id: "si",
    title: "Unique information",
    tables: ["unique_information"],
    samples: true,
    build: siSection,
    overlay: siOverlay,
  }],
  rank: [
    {
      name: "si",
      table: "unique_information",
      column: "si_weights",
      layers: [],
      over: "training samples",
      unit: "squared parameter distance",
    },
    {
      name: "f-si",
      table: "unique_information",
      column: "si_function",
      layers: [],
      over: "training samples",
      unit: "squared output change, mean over test samples",
    },
  ],
};
