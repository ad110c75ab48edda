/**
 * The fisher plugin's part of the report: the trace of the Fisher per layer (and the total) over steps, the
 * critical-period curve of Achille et al., with a band of +-1.96 standard errors (a bar chart with one step); the
 * eigenvalues of the low-rank sketch by rank for up to 8 steps; histograms of log10 of the diagonal per parameter
 * tensor; and, for a `fisher_band` table (the median and range of the trace over several runs, as `exp:fisher`
 * writes it), the median with its band. See docs/report.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fisherReport } from "./report.ts";
 * const rows = [1, 2].map((trace, step) => ({ level: "layer", parameter: "fc1", trace, kind: "true Fisher", step }));
 * const table = { columns: Object.keys(rows[0]), rows, files: [], metadata: {} };
 * const s = fisherReport.sections![0].build({ dir: "r", run: null, tables: { fisher: table } }, { samples: 8 });
 * assert.deepEqual(s!.plots.map((p) => p.id), ["fisher-trace"]);
 * assert.deepEqual(s!.tables, ["fisher"]);
 * ```
 *
 * @module
 */
import type { PluginReport, ReportPlot, ResultDirectory, SectionContent } from "../../pipeline/core/report_contract.ts";
import * as kit from "../../pipeline/report/plot_kit.ts";

/** Fisher trace per layer over steps (the critical-period curve), spectrum, diagonal. */
function fisherSection(results: ResultDirectory): SectionContent | null {
  const plots: ReportPlot[] = [];
  const used: string[] = [];
  const f = results.tables.fisher;
  if (f && f.rows.length) {
    used.push("fisher");
    const level = f.rows.some((r) => r.level === "layer") ? "layer" : "parameter";
    const rows = f.rows.filter((r) => r.level === level || r.level === "total");
    const { values, missing } = kit.finite(rows, "trace");
    const log = values.length > 0 && values.every((v) => v > 0);
    const data = rows.filter((r) => kit.num(r.trace) !== null).map((r) => {
      const t = kit.num(r.trace)!, se = kit.num(r.trace_se);
      return {
        name: r.level === "total" ? "(total)" : String(r.parameter),
        step: kit.stepOf(r),
        trace: kit.r4(t),
        // +-1.96 standard errors (tables written before trace_se have none: no band).
        ...(se === null
          ? {}
          : { lo: kit.r4(Math.max(t - 1.96 * se, log ? t / 100 : -Infinity)), hi: kit.r4(t + 1.96 * se) }),
      };
    });
    const names = [...new Set(data.map((d) => d.name))];
    const steps = kit.stepsOf(rows).filter((s) => s !== null);
    const kind = f.rows.find((r) => r.kind)?.kind ?? "Fisher";
    if (data.length === 0) {
      // Nothing finite to draw: said in the section's intro.
    } else if (steps.length > 1) {
      const line = kit.lineChart(data.filter((d) => d.step !== null), {
        x: { field: "step", type: "quantitative" },
        y: { field: "trace", type: "quantitative", title: "trace", scale: log ? { type: "log" } : {} },
        color: { field: "name", type: "nominal", sort: names, title: level },
        strokeDash: {
          condition: { test: "datum.name === '(total)'", value: [4, 3] },
          value: [1, 0],
        },
      }, 260);
      const banded = data.some((d) => "lo" in d);
      plots.push({
        id: "fisher-trace",
        title: `Trace of the ${kind} per ${level} over training`,
        note:
          `${steps.length} steps${log ? "; log scale" : ""}${
            banded ? "; shaded: +-1.96 standard errors (trace_se)" : ""
          }.` + kit.missingNote(missing, "rows"),
        spec: banded ? withBand(line, "lo", "hi", names) : line,
      });
    } else {
      plots.push({
        id: "fisher-trace",
        title: `Trace of the ${kind} per ${level}`,
        note: `One step${log ? "; log scale" : ""}.` + kit.missingNote(missing, "rows"),
        spec: {
          $schema: kit.SCHEMA,
          width: Math.min(520, 40 * names.length + 60),
          height: 220,
          data: { values: data },
          mark: { type: "bar", tooltip: true },
          encoding: {
            x: { field: "name", type: "nominal", sort: names, title: level },
            y: { field: "trace", type: "quantitative", title: "trace", scale: log ? { type: "log" } : {} },
          },
        },
      });
    }
  }
  const sp = results.tables.fisher_spectrum;
  if (sp && sp.rows.length) {
    used.push("fisher_spectrum");
    const steps = kit.someSteps(kit.stepsOf(sp.rows), 8);
    const data = sp.rows.filter((r) => steps.includes(kit.stepOf(r)) && (kit.num(r.eigenvalue) ?? 0) > 0).map((r) => ({
      rank: Number(r.rank),
      eigenvalue: kit.r4(kit.num(r.eigenvalue)!),
      step: kit.stepLabel(kit.stepOf(r)),
    }));
    if (data.length) {
      plots.push({
        id: "fisher-spectrum",
        title: "Fisher spectrum (low-rank sketch)",
        note:
          `Top eigenvalues of the Frequent Directions sketch (lower bounds; table fisher_spectrum), log scale; ${steps.length} step(s) shown${
            kit.stepsOf(sp.rows).length > steps.length ? " (evenly spaced)" : ""
          }. Zero eigenvalues are not drawn.`,
        spec: kit.lineChart(data, {
          x: { field: "rank", type: "quantitative" },
          y: { field: "eigenvalue", type: "quantitative", scale: { type: "log" } },
          color: { field: "step", type: "ordinal", sort: steps.map(kit.stepLabel) },
        }),
      });
    }
  }
  const fd = results.tables.fisher_diag;
  if (fd && fd.rows.length) {
    used.push("fisher_diag");
    const steps = kit.stepsOf(fd.rows);
    const last = steps[steps.length - 1];
    const rows = fd.rows.filter((r) => kit.stepOf(r) === last);
    const positive = rows.map((r) => kit.num(r.value)).filter((v): v is number => v !== null && v > 0);
    const logs = positive.map(Math.log10);
    const [lo, hi] = kit.range(logs);
    const params = [...new Set(rows.map((r) => String(r.parameter)))];
    const data: kit.LayerBins[] = [];
    for (const p of params) {
      const v = rows.filter((r) => r.parameter === p).map((r) => kit.num(r.value)).filter((v): v is number =>
        v !== null && v > 0
      ).map(Math.log10);
      if (v.length) {
        for (const b of kit.histogram(v, lo, hi)) data.push({ layer: p, step: kit.stepLabel(last), ...b });
      }
    }
    if (data.length) {
      plots.push({
        id: "fisher-diag",
        title: "Diagonal of the Fisher, per parameter tensor",
        note: `Histogram of log10 F_jj, ${kit.atStep(last)} (${positive.length} entries; ${
          rows.length - positive.length
        } zero or non-finite entries are not drawn).`,
        spec: kit.histogramGrid(data, params, null, "log10 F_jj", "entries"),
      });
    }
  }
  if (plots.length === 0) return null;
  return {
    intro: "Fisher information from per-sample gradients (docs/science.md section 2). " +
      "Over training steps, the trace per layer is the critical-period curve of Achille et al.",
    plots,
    tables: used,
  };
}

/** A line chart with a shaded band from `lo` to `hi` under its lines (same data, x and colour). */
function withBand(line: Record<string, unknown>, lo: string, hi: string, names: string[]): Record<string, unknown> {
  const { mark, encoding, ...rest } = line as { mark: unknown; encoding: Record<string, unknown> };
  return {
    ...rest,
    layer: [
      {
        mark: { type: "area", opacity: 0.2 },
        encoding: {
          x: encoding.x,
          y: { ...(encoding.y as object), field: lo },
          y2: { field: hi },
          color: { field: "name", type: "nominal", sort: names, legend: null },
        },
      },
      { mark, encoding },
    ],
  };
}

/** The median of the trace over several runs, with the band from the smallest to the largest (table fisher_band). */
function bandSection(results: ResultDirectory): SectionContent | null {
  const t = results.tables.fisher_band;
  const data = t.rows.filter((r) => kit.num(r.median) !== null && kit.stepOf(r) !== null).map((r) => ({
    name: String(r.name),
    step: kit.stepOf(r)!,
    median: kit.r4(kit.num(r.median)!),
    lo: kit.r4(kit.num(r.lo) ?? kit.num(r.median)!),
    hi: kit.r4(kit.num(r.hi) ?? kit.num(r.median)!),
  }));
  if (data.length === 0) return null;
  const names = [...new Set(data.map((d) => d.name))];
  const runs = Math.max(...t.rows.map((r) => kit.num(r.runs) ?? 0));
  const line = kit.lineChart(data, {
    x: { field: "step", type: "quantitative" },
    y: { field: "median", type: "quantitative", title: "trace (median over runs)" },
    color: { field: "name", type: "nominal", sort: names, title: "layer" },
  }, 260);
  return {
    intro: `The trace of the Fisher over ${runs} runs (table fisher_band): the median at each step, shaded from the ` +
      "smallest to the largest run.",
    plots: [{
      id: "fisher-band",
      title: "Trace of the Fisher over training: median and range over runs",
      note: `${runs} runs, ${new Set(data.map((d) => d.step)).size} steps.`,
      spec: withBand(line, "lo", "hi", names),
    }],
  };
}

/** What the `fisher` plugin declares for `report`. */
export const fisherReport: PluginReport = {
  sections: [{
    id: "fisher",
    title: "Fisher information",
    tables: ["fisher", "fisher_spectrum", "fisher_diag"],
    build: fisherSection,
  }, {
    id: "fisher-band",
    title: "Fisher trace over runs",
    tables: ["fisher_band"],
    build: bandSection,
  }],
};
