/**
 * The fisher plugin's part of the report and of `compare`: the trace of the Fisher per layer (and the total) over
 * steps, the critical-period curve of Achille et al., with a band of +-1.96 standard errors (a bar chart with one
 * step); the eigenvalues of the low-rank sketch by rank for up to 8 steps; histograms of the diagonal per parameter
 * tensor on a log axis; for a `fisher_band` table (the median and range of the trace over seeds, as `exp:fisher`
 * writes it), the median with its band; several runs overlaid; the trace per layer as a measure to rank runs by.
 * See docs/report.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fisherReport } from "./report.ts";
 * const rows = [1, 2].map((trace, step) => ({ level: "layer", parameter: "fc1", trace, kind: "true Fisher", step }));
 * const table = { columns: Object.keys(rows[0]), rows, files: [], metadata: {} };
 * const context = { samples: 8, bootstrap: 0, seed: 0 };
 * const s = fisherReport.sections![0].build({ dir: "r", run: null, tables: { fisher: table } }, context);
 * assert.deepEqual(s!.plots.map((p) => p.id), ["fisher-trace"]);
 * assert.deepEqual(s!.tables, ["fisher"]);
 * ```
 *
 * @module
 */
import type {
  PluginReport,
  ReportPlot,
  ReportRun,
  ResultDirectory,
  ResultTable,
  SectionContent,
} from "../../pipeline/core/report_contract.ts";
import * as kit from "../../pipeline/report/plot_kit.ts";

/** The unit of the trace and the diagonal (metadata `infotap.units` says "trace/diag: ..."). */
const UNIT = "squared gradient units";

/**
 * The trace rows of one table: per layer (else per parameter) and the total, as points; with `trace_se`, the band
 * of +-1.96 standard errors (`lo`, `hi`; `lo` kept above trace/100 when every trace is positive, for a log axis).
 */
function traceRows(f: ResultTable, run = "") {
  const level = f.rows.some((r) => r.level === "layer") ? "layer" : "parameter";
  const rows = f.rows.filter((r) => r.level === level || r.level === "total");
  const { values, missing } = kit.finite(rows, "trace");
  const positive = values.length > 0 && values.every((v) => v > 0);
  const data = rows.filter((r) => kit.num(r.trace) !== null).map((r) => {
    const t = kit.num(r.trace)!, se = kit.num(r.trace_se);
    return {
      run,
      name: r.level === "total" ? "(total)" : String(r.parameter),
      step: kit.stepOf(r),
      trace: kit.r4(t),
      // Tables written before trace_se have none: no band.
      ...(se === null
        ? {}
        : { lo: kit.r4(Math.max(t - 1.96 * se, positive ? t / 100 : -Infinity)), hi: kit.r4(t + 1.96 * se) }),
    };
  });
  return { level, data, missing, kind: String(f.rows.find((r) => r.kind)?.kind ?? "Fisher") };
}

/** A log axis when every value is positive, else a linear one. */
function yScale(values: number[]) {
  return values.length > 0 && values.every((v) => v > 0) ? kit.logScale(values) : null;
}

/** The values a y axis must hold: each point's value and its band. */
function withBounds(data: { lo?: number; hi?: number }[], field: string): number[] {
  return data.flatMap((d) => [(d as Record<string, number>)[field], d.lo ?? NaN, d.hi ?? NaN]).filter(Number.isFinite);
}

/** A view (`mark`, `encoding`) with a shaded band from `lo` to `hi` under it: same x, y axis and colour. */
function withBand(view: Record<string, unknown>): Record<string, unknown> {
  const { mark, encoding, ...rest } = view as { mark: unknown; encoding: Record<string, Record<string, unknown>> };
  const { x, y, color } = encoding;
  return {
    ...rest,
    layer: [
      {
        mark: { type: "area", opacity: 0.2 },
        encoding: { x, y: { ...y, field: "lo" }, y2: { field: "hi" }, color },
      },
      { mark, encoding },
    ],
  };
}

/** Warnings from the tables: non-finite gradients, rows the sketch skipped. */
function fisherWarnings(results: ResultDirectory): string[] {
  const out: string[] = [];
  const f = results.tables.fisher;
  const nf = f?.columns.includes("nonfinite")
    ? f.rows.filter((r) => r.level !== "total" && (kit.num(r.nonfinite) ?? 0) > 0)
    : [];
  if (nf.length) out.push(`Non-finite gradient values in ${nf.length} row(s) of table fisher (column nonfinite).`);
  const sp = results.tables.fisher_spectrum;
  const skipped = Math.max(0, ...(sp?.rows ?? []).map((r) => kit.num(r.sketch_skipped) ?? 0));
  if (skipped > 0) out.push(`The low-rank sketch skipped up to ${skipped} row(s) at a step (column sketch_skipped).`);
  return out;
}

/** Fisher trace per layer over steps (the critical-period curve), spectrum, diagonal. */
function fisherSection(results: ResultDirectory): SectionContent | null {
  const plots: ReportPlot[] = [];
  const used: string[] = [];
  const f = results.tables.fisher;
  if (f && f.rows.length) {
    used.push("fisher");
    const { level, data, missing, kind } = traceRows(f);
    const names = [...new Set(data.map((d) => d.name))];
    const steps = kit.stepsOf(f.rows).filter((s) => s !== null);
    const banded = steps.length > 1 && data.some((d) => "lo" in d);
    const log = yScale(banded ? withBounds(data, "trace") : data.map((d) => d.trace));
    const y = { field: "trace", type: "quantitative", title: `trace of the ${kind} (${UNIT})`, ...(log ?? {}) };
    if (data.length === 0) {
      // Nothing finite to draw: said in the section's intro.
    } else if (steps.length > 1) {
      const line = kit.lineChart(data.filter((d) => d.step !== null), {
        x: kit.STEP_X,
        y,
        color: { field: "name", type: "nominal", sort: names, title: level, scale: { scheme: "tableau10" } },
        strokeDash: {
          condition: { test: "datum.name === '(total)'", value: [4, 3] },
          value: [1, 0],
        },
      }, 280);
      plots.push({
        id: "fisher-trace",
        title: `Trace of the ${kind} per ${level} over training`,
        note:
          `${steps.length} steps${log ? "; log scale" : ""}; the total is dashed${
            banded ? "; shaded: +-1.96 standard errors (trace_se)" : ""
          }.` + kit.missingNote(missing, "rows"),
        spec: banded ? withBand(line) : line,
      });
    } else {
      plots.push({
        id: "fisher-trace",
        title: `Trace of the ${kind} per ${level}`,
        note: `One step${log ? "; log scale" : ""}.` + kit.missingNote(missing, "rows"),
        spec: kit.fit({
          $schema: kit.SCHEMA,
          width: 520,
          height: 240,
          data: { values: data },
          mark: { type: "bar", tooltip: true },
          encoding: { x: { field: "name", type: "nominal", sort: names, title: level, axis: { labelAngle: 0 } }, y },
        }),
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
          }, colour by step in order. Zero eigenvalues are not drawn.`,
        spec: kit.lineChart(data, {
          x: { field: "rank", type: "quantitative", title: "rank", axis: { tickMinStep: 1 } },
          y: {
            field: "eigenvalue",
            type: "quantitative",
            title: `eigenvalue (${UNIT})`,
            ...kit.logScale(data.map((d) => d.eigenvalue)),
          },
          color: kit.stepColor(steps.map(kit.stepLabel), "training step"),
        }),
      });
    }
  }
  const fd = results.tables.fisher_diag;
  if (fd && fd.rows.length) {
    used.push("fisher_diag");
    const { rows, step: last } = kit.lastStep(fd.rows);
    const positive = rows.map((r) => kit.num(r.value)).filter((v): v is number => v !== null && v > 0);
    const [lo, hi] = kit.range(positive);
    const params = [...new Set(rows.map((r) => String(r.parameter)))];
    const data: kit.LayerBins[] = [];
    for (const p of params) {
      const v = kit.finite(rows.filter((r) => r.parameter === p), "value").values;
      const { bins } = kit.logHistogram(v, lo, hi);
      if (bins.some((b) => b.count > 0)) {
        for (const b of bins) data.push({ layer: p, step: kit.stepLabel(last), ...b });
      }
    }
    if (data.length) {
      plots.push({
        id: "fisher-diag",
        title: "Diagonal of the Fisher, per parameter tensor",
        note: `Histogram of the diagonal entries F_jj, ${
          kit.atStep(last)
        }, in ${kit.BINS} bins of equal width in log10 (${positive.length} entries; ${
          rows.length - positive.length
        } zero or non-finite entries are not drawn).`,
        spec: kit.histogramGrid(
          data,
          [...new Set(data.map((d) => d.layer))],
          null,
          `F_jj (${UNIT}), log scale`,
          "entries",
          kit.logScale([lo, hi]),
        ),
      });
    }
  }
  if (plots.length === 0) return null;
  return {
    intro: "Fisher information from per-sample gradients (docs/science.md section 2). " +
      "Over training steps, the trace per layer is the critical-period curve of Achille et al.",
    plots,
    tables: used,
    warnings: fisherWarnings(results),
  };
}

/** Several runs: the trace over steps per layer (one panel each) and the last spectrum, one colour per run. */
function fisherOverlay(runs: ReportRun[]): SectionContent | null {
  const names = runs.map((r) => r.name);
  const plots: ReportPlot[] = [];
  const traces = runs.filter((r) => r.results.tables.fisher?.rows.length).map((r) =>
    traceRows(r.results.tables.fisher, r.name)
  );
  const data = traces.flatMap((t) => t.data);
  if (data.length) {
    const groups = [...new Set(data.map((d) => d.name))];
    const over = data.some((d) => d.step !== null) && new Set(data.map((d) => d.step)).size > 1;
    const banded = over && data.some((d) => "lo" in d);
    const log = yScale(banded ? withBounds(data, "trace") : data.map((d) => d.trace));
    const x = over ? kit.STEP_X : { field: "run", type: "nominal", sort: names, title: null, axis: { labelAngle: 0 } };
    const view = {
      mark: over ? { type: "line", point: true, tooltip: true } : { type: "bar", tooltip: true },
      encoding: {
        x,
        y: { field: "trace", type: "quantitative", title: `trace (${UNIT})`, ...(log ?? {}) },
        color: kit.runColor(names),
      },
    };
    plots.push({
      id: "fisher-trace",
      title: `Trace of the ${traces[0].kind} per ${traces[0].level}, runs overlaid`,
      note: `One panel per ${traces[0].level} and the total; colour: run${log ? "; log scale" : ""}${
        banded ? "; shaded: +-1.96 standard errors (trace_se)" : ""
      }.`,
      spec: kit.panels(
        over ? data.filter((d) => d.step !== null) : data,
        "name",
        groups,
        banded ? withBand(view) : view,
      ),
    });
  }
  const spectra = runs.flatMap(({ name, results }) => {
    const sp = results.tables.fisher_spectrum;
    if (!sp?.rows.length) return [];
    return kit.lastStep(sp.rows).rows.filter((r) => (kit.num(r.eigenvalue) ?? 0) > 0).map((r) => ({
      run: name,
      rank: Number(r.rank),
      eigenvalue: kit.r4(kit.num(r.eigenvalue)!),
    }));
  });
  if (spectra.length) {
    plots.push({
      id: "fisher-spectrum",
      title: "Fisher spectrum (low-rank sketch) at each run's last step",
      note: "Top eigenvalues of the Frequent Directions sketch (lower bounds), log scale; colour: run.",
      spec: kit.lineChart(spectra, {
        x: { field: "rank", type: "quantitative", title: "rank", axis: { tickMinStep: 1 } },
        y: {
          field: "eigenvalue",
          type: "quantitative",
          title: `eigenvalue (${UNIT})`,
          ...kit.logScale(spectra.map((d) => d.eigenvalue)),
        },
        color: kit.runColor(names),
      }),
    });
  }
  if (plots.length === 0) return null;
  return {
    intro:
      "Fisher information from per-sample gradients (docs/science.md section 2), runs overlaid: the trace per layer over training is the critical-period curve of Achille et al.",
    plots,
    tables: ["fisher", "fisher_spectrum"],
    warnings: runs.flatMap((r) => fisherWarnings(r.results).map((w) => `${r.name}: ${w}`)),
  };
}

/** The rows of a `fisher_band` table (median and range of the trace over seeds per layer and step), as points. */
function bandRows(t: ResultTable, run = "") {
  const data = t.rows.filter((r) => kit.num(r.median) !== null && kit.stepOf(r) !== null).map((r) => ({
    run,
    name: String(r.name),
    step: kit.stepOf(r)!,
    median: kit.r4(kit.num(r.median)!),
    lo: kit.r4(kit.num(r.lo) ?? kit.num(r.median)!),
    hi: kit.r4(kit.num(r.hi) ?? kit.num(r.median)!),
  }));
  return { data, runs: Math.max(0, ...t.rows.map((r) => kit.num(r.runs) ?? 0)) };
}

/** The median of the trace over several runs, with the band from the smallest to the largest (table fisher_band). */
function bandSection(results: ResultDirectory): SectionContent | null {
  const { data, runs } = bandRows(results.tables.fisher_band);
  if (data.length === 0) return null;
  const names = [...new Set(data.map((d) => d.name))];
  const log = yScale(withBounds(data, "median"));
  const line = kit.lineChart(data, {
    x: kit.STEP_X,
    y: { field: "median", type: "quantitative", title: `trace, median over runs (${UNIT})`, ...(log ?? {}) },
    color: { field: "name", type: "nominal", sort: names, title: "layer", scale: { scheme: "tableau10" } },
  }, 280);
  return {
    intro: `The trace of the Fisher over ${runs} runs (table fisher_band): the median at each step, shaded from the ` +
      "smallest to the largest run.",
    plots: [{
      id: "fisher-band",
      title: "Trace of the Fisher over training: median and range over runs",
      note: `${runs} runs, ${new Set(data.map((d) => d.step)).size} steps${log ? "; log scale" : ""}.`,
      spec: withBand(line),
    }],
  };
}

/** Several runs' `fisher_band` tables: one panel per layer, each run's median and range in its colour. */
function bandOverlay(runs: ReportRun[]): SectionContent | null {
  const bands = runs.map((r) => ({ name: r.name, ...bandRows(r.results.tables.fisher_band, r.name) }));
  const data = bands.flatMap((b) => b.data);
  if (data.length === 0) return null;
  const names = runs.map((r) => r.name);
  const log = yScale(withBounds(data, "median"));
  return {
    intro: "The trace of the Fisher over several seeds per run (tables fisher_band), runs overlaid: the median at " +
      "each step, shaded from the smallest to the largest seed.",
    plots: [{
      id: "fisher-band",
      title: "Trace of the Fisher over training: median and range over seeds, runs overlaid",
      note: `One panel per layer and the total; colour: run (${
        bands.map((b) => `${b.name}: ${b.runs} seeds`).join(", ")
      })${log ? "; log scale" : ""}.`,
      spec: kit.panels(
        data,
        "name",
        [...new Set(data.map((d) => d.name))],
        withBand({
          mark: { type: "line", point: true, tooltip: true },
          encoding: {
            x: kit.STEP_X,
            y: { field: "median", type: "quantitative", title: `trace, median (${UNIT})`, ...(log ?? {}) },
            color: kit.runColor(names),
          },
        }),
      ),
    }],
  };
}

/** What the `fisher` plugin declares for `report` and `compare`. */
export const fisherReport: PluginReport = {
  describe(s) {
    const bits = [
      s.kind ? String(s.kind) : null,
      s.rows !== undefined ? `${s.rows} gradient rows` : null,
      s.steps !== undefined ? `${s.steps} step(s)` : null,
      s.fisher_rank ? `sketch rank ${s.fisher_rank}` : null,
      s.prior_var !== null && s.prior_var !== undefined ? `prior variance ${s.prior_var}` : null,
      s.beta !== null && s.beta !== undefined ? `beta ${s.beta}` : null,
    ].filter(Boolean);
    return { text: bits.length ? `${bits.join(", ")}.` : "" };
  },
  sections: [{
    id: "fisher",
    title: "Fisher information",
    tables: ["fisher", "fisher_spectrum", "fisher_diag"],
    build: fisherSection,
    overlay: fisherOverlay,
  }, {
    id: "fisher-band",
    title: "Fisher trace over runs",
    tables: ["fisher_band"],
    build: bandSection,
    overlay: bandOverlay,
  }],
  rank: [{
    name: "fisher",
    table: "fisher",
    column: "trace",
    layers: ["parameter"],
    where: { level: "layer" },
    over: "layers",
    unit: UNIT,
  }],
};
