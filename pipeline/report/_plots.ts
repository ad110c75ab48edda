/**
 * The report's plots: Vega-Lite specs built from the result tables of a results directory. Data are reduced
 * here (histograms binned, large MI matrices averaged over blocks of neurons) so that the page stays small
 * whatever the size of the run; each plot's note says what was reduced.
 *
 * @module
 */
import type { Cell, ResultDirectory, ResultTable } from "./results.ts";

/** One plot: a Vega-Lite spec with a title and a note. */
export interface Plot {
  id: string;
  title: string;
  note: string;
  spec: Record<string, unknown>;
}

/** One section of the report: plots about one table (or a group of tables). */
export interface Section {
  id: string;
  title: string;
  intro: string;
  plots: Plot[];
  /** Tables the section used. */
  tables: string[];
}

/** Histogram bins of one distribution. */
const BINS = 30;
/** At most this many cells on a side of an MI heatmap (larger layers are averaged over blocks of neurons). */
export const MI_MAX_SIDE = 48;
/** Entropy distributions are drawn as a grid of histograms up to this many steps, as a heatmap beyond. */
const GRID_STEPS = 6;
/** At most this many points in a scatter plot (an evenly spaced subset beyond). */
const MAX_POINTS = 2000;
const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";

type Row = Record<string, Cell>;

/** Rounds to 4 significant digits (the page shows no more; it keeps the embedded JSON small). */
function r4(x: number): number {
  return Number.isFinite(x) ? Number(x.toPrecision(4)) : x;
}

function num(v: Cell | undefined): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function stepOf(r: Row): number | null {
  return typeof r.step === "number" ? r.step : null;
}

/** Distinct steps, ascending; `[null]` when the table has no steps. */
function stepsOf(rows: Row[]): (number | null)[] {
  const s = new Set<number>();
  let hasNull = false;
  for (const r of rows) {
    const st = stepOf(r);
    if (st === null) hasNull = true;
    else s.add(st);
  }
  const out: (number | null)[] = [...s].sort((a, b) => a - b);
  if (hasNull) out.unshift(null);
  return out;
}

function stepLabel(s: number | null): string {
  return s === null ? "all" : String(s);
}

/** "step 300", or "no steps" for a table without steps (all rows together). */
function atStep(s: number | null): string {
  return s === null ? "no steps" : `step ${s}`;
}

/** Up to `k` steps evenly spaced, always with the first and the last. */
function someSteps<T>(steps: T[], k: number): T[] {
  if (steps.length <= k) return steps;
  const out: T[] = [];
  for (let i = 0; i < k; i++) out.push(steps[Math.round((i * (steps.length - 1)) / (k - 1))]);
  return [...new Set(out)];
}

/** Layer names in run.json's order, then in order of first appearance. */
function layerOrder(results: ResultDirectory, names: Iterable<string>): string[] {
  const seen = new Set<string>();
  for (const n of names) seen.add(n);
  const known = ((results.run?.layers as { name: string }[] | undefined) ?? []).map((l) => l.name);
  return [...known.filter((n) => seen.has(n)), ...[...seen].filter((n) => !known.includes(n))];
}

interface Binned {
  x0: number;
  x1: number;
  count: number;
}

/** Equal-width histogram over [lo, hi] (one bin when lo == hi). */
function histogram(values: number[], lo: number, hi: number, nb = BINS): Binned[] {
  if (!(hi > lo)) {
    const w = Math.abs(lo) > 0 ? Math.abs(lo) * 0.01 : 0.01;
    return [{ x0: r4(lo - w), x1: r4(lo + w), count: values.length }];
  }
  const counts = new Array(nb).fill(0);
  const w = (hi - lo) / nb;
  for (const v of values) counts[Math.min(nb - 1, Math.max(0, Math.floor((v - lo) / w)))]++;
  return counts.map((count, i) => ({ x0: r4(lo + i * w), x1: r4(lo + (i + 1) * w), count }));
}

function range(values: number[]): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** Finite values of `field` in `rows`, and how many were not finite (null, NaN, Inf). */
function finite(rows: Row[], field: string): { values: number[]; missing: number } {
  const values: number[] = [];
  let missing = 0;
  for (const r of rows) {
    const v = num(r[field]);
    if (v === null) missing++;
    else values.push(v);
  }
  return { values, missing };
}

function missingNote(missing: number, what: string): string {
  return missing > 0 ? ` ${missing} ${what} without a finite value are not drawn.` : "";
}

const tooltipBin = (title: string) => [
  { field: "x0", type: "quantitative", title: `${title} from` },
  { field: "x1", type: "quantitative", title: "to" },
  { field: "count", type: "quantitative", title: "count" },
];

/** Histograms of one field per layer (columns) and, optionally, per step (rows). */
function histogramGrid(
  data: (Binned & { layer: string; step: string })[],
  layers: string[],
  steps: string[] | null,
  xTitle: string,
  yTitle: string,
): Record<string, unknown> {
  // One row of steps: wrap the layers, 4 per row; several steps: a grid, layers as columns, steps as rows.
  const facet: Record<string, unknown> = steps
    ? {
      facet: {
        column: { field: "layer", type: "nominal", sort: layers, title: null },
        row: { field: "step", type: "ordinal", sort: steps, title: "step" },
      },
    }
    : { facet: { field: "layer", type: "nominal", sort: layers, title: null }, columns: 4 };
  return {
    $schema: SCHEMA,
    data: { values: data },
    ...facet,
    spec: {
      width: layers.length > 3 ? 150 : 220,
      height: steps ? 70 : 140,
      mark: { type: "bar", tooltip: true },
      encoding: {
        x: { field: "x0", type: "quantitative", bin: { binned: true }, title: xTitle },
        x2: { field: "x1" },
        y: { field: "count", type: "quantitative", title: yTitle },
        tooltip: tooltipBin(xTitle),
      },
    },
    resolve: { scale: { y: "independent" } },
  };
}

/** Entropy of each neuron: distributions per layer and step, and the layer summary over steps. */
function entropySection(results: ResultDirectory, t: ResultTable): Section {
  const plots: Plot[] = [];
  const steps = stepsOf(t.rows);
  const { values, missing } = finite(t.rows, "entropy");
  const [lo, hi] = range(values);
  const layers = layerOrder(results, t.rows.map((r) => String(r.layer)));
  const section = {
    id: "entropy",
    title: "Neuron entropy",
    intro: "Entropy of each neuron's binned activations (table neuron_entropy; docs/science.md section 1).",
    plots,
    tables: ["neuron_entropy"],
  };
  if (values.length === 0) {
    section.intro += ` None of its ${t.rows.length} rows has a finite entropy: nothing to plot.`;
    return section;
  }
  const groups = new Map<string, number[]>();
  for (const r of t.rows) {
    const v = num(r.entropy);
    if (v === null) continue;
    const k = `${r.layer}\u0000${stepLabel(stepOf(r))}`;
    let g = groups.get(k);
    if (!g) groups.set(k, g = []);
    g.push(v);
  }
  const data: (Binned & { layer: string; step: string })[] = [];
  for (const layer of layers) {
    for (const s of steps) {
      const g = groups.get(`${layer}\u0000${stepLabel(s)}`);
      if (!g) continue;
      for (const b of histogram(g, lo, hi)) data.push({ layer, step: stepLabel(s), ...b });
    }
  }
  const neuronsNote = `${t.rows.length} neuron rows over ${layers.length} layer(s) and ${steps.length} step(s).` +
    missingNote(missing, "rows");
  if (steps.length <= GRID_STEPS) {
    plots.push({
      id: "entropy-hist",
      title: "Entropy of each neuron, per layer" + (steps.length > 1 ? " and step" : ""),
      note: `Histogram of the neurons' entropies (${BINS} bins over [${r4(lo)}, ${r4(hi)}] nats). ${neuronsNote}`,
      spec: histogramGrid(data, layers, steps.length > 1 ? steps.map(stepLabel) : null, "entropy (nats)", "neurons"),
    });
  } else {
    plots.push({
      id: "entropy-heatmap",
      title: "Entropy of each neuron over training, per layer",
      note: `Each column is one step's histogram of the neurons' entropies (${BINS} bins over [${r4(lo)}, ${
        r4(hi)
      }] nats); colour: neurons in the bin. ${neuronsNote}`,
      spec: {
        $schema: SCHEMA,
        data: { values: data.filter((d) => d.count > 0).map((d) => ({ ...d, step: Number(d.step) })) },
        facet: { field: "layer", type: "nominal", sort: layers, title: null },
        columns: 2,
        spec: {
          width: 320,
          height: 160,
          mark: { type: "rect", tooltip: true },
          encoding: {
            x: { field: "step", type: "ordinal", title: "step", axis: { labelOverlap: "parity" } },
            y: { field: "x0", type: "quantitative", title: "entropy (nats)", scale: { zero: false } },
            y2: { field: "x1" },
            color: { field: "count", type: "quantitative", title: "neurons", scale: { scheme: "viridis" } },
          },
        },
      },
    });
  }
  return section;
}

/** Mean (band: p10..p90 when present) of the layer summary's measures over steps. */
function summarySection(results: ResultDirectory, t: ResultTable): Section | null {
  const steps = stepsOf(t.rows).filter((s) => s !== null);
  if (steps.length < 2) return null;
  const layers = layerOrder(results, t.rows.map((r) => String(r.layer)));
  const plots: Plot[] = [];
  const measures: [string, string, string | null, string | null][] = [
    ["entropy_mean", "mean entropy (nats)", "entropy_p10", "entropy_p90"],
    ["mi_mean", "mean MI (nats)", null, null],
  ];
  for (const [field, title, p10, p90] of measures) {
    if (!t.columns.includes(field)) continue;
    const data = t.rows.filter((r) => stepOf(r) !== null && num(r[field]) !== null).map((r) => ({
      layer: String(r.layer),
      step: stepOf(r),
      value: r4(num(r[field])!),
      ...(p10 && p90 && num(r[p10]) !== null && num(r[p90]) !== null
        ? { lo: r4(num(r[p10])!), hi: r4(num(r[p90])!) }
        : {}),
    }));
    if (data.length === 0) continue;
    const color = { field: "layer", type: "nominal", sort: layers };
    const layer: Record<string, unknown>[] = [];
    if (p10 && data.some((d) => "lo" in d)) {
      layer.push({
        mark: { type: "area", opacity: 0.2 },
        encoding: { y: { field: "lo", type: "quantitative" }, y2: { field: "hi" }, color },
      });
    }
    layer.push({
      mark: { type: "line", point: true, tooltip: true },
      encoding: { y: { field: "value", type: "quantitative", title, scale: { zero: false } }, color },
    });
    plots.push({
      id: `summary-${field}`,
      title: `${field.replace("_mean", "")} over training (layer_summary.${field})`,
      note: `Line: mean over the layer's ${field.startsWith("mi") ? "pairs of neurons" : "neurons"}${
        layer.length > 1 ? "; band: 10th to 90th percentile" : ""
      }. ${steps.length} steps, ${layers.length} layer(s).`,
      spec: {
        $schema: SCHEMA,
        width: 520,
        height: 220,
        data: { values: data },
        encoding: { x: { field: "step", type: "quantitative", title: "step" } },
        layer,
      },
    });
  }
  if (plots.length === 0) return null;
  return {
    id: "summary",
    title: "Layer summary over training",
    intro: "Per-layer summaries by training step (table layer_summary).",
    plots,
    tables: ["layer_summary"],
  };
}

/** MI between neurons of the same layer at the last step, as heatmaps (averaged over blocks for big layers). */
function miSection(results: ResultDirectory, t: ResultTable): Section | null {
  const steps = stepsOf(t.rows);
  const last = steps[steps.length - 1];
  const rows = t.rows.filter((r) => stepOf(r) === last);
  const within = rows.filter((r) => r.layer_a === r.layer_b);
  const cross = rows.length - within.length;
  const layers = layerOrder(results, within.map((r) => String(r.layer_a)));
  const plots: Plot[] = [];
  for (const layer of layers) {
    const lr = within.filter((r) => r.layer_a === layer);
    let width = 0;
    for (const r of lr) width = Math.max(width, Number(r.neuron_a) + 1, Number(r.neuron_b) + 1);
    const g = Math.ceil(width / MI_MAX_SIDE);
    const side = Math.ceil(width / g);
    const sum = new Float64Array(side * side), cnt = new Float64Array(side * side);
    let missing = 0;
    for (const r of lr) {
      const v = num(r.mi);
      if (v === null) {
        missing++;
        continue;
      }
      const a = Math.floor(Number(r.neuron_a) / g), b = Math.floor(Number(r.neuron_b) / g);
      sum[a * side + b] += v;
      cnt[a * side + b]++;
      if (a !== b) {
        sum[b * side + a] += v;
        cnt[b * side + a]++;
      }
    }
    const data: Record<string, number>[] = [];
    for (let a = 0; a < side; a++) {
      for (let b = 0; b < side; b++) {
        if (cnt[a * side + b] === 0) continue;
        data.push({
          a: a * g,
          a1: Math.min(width, (a + 1) * g),
          b: b * g,
          b1: Math.min(width, (b + 1) * g),
          mi: r4(sum[a * side + b] / cnt[a * side + b]),
        });
      }
    }
    if (data.length === 0) continue;
    const est = lr.find((r) => r.estimator)?.estimator;
    plots.push({
      id: `mi-${layer}`,
      title: `MI between neurons of ${layer}`,
      note: `${lr.length} pairs of ${width} neurons${est ? `, ${est} estimator` : ""}, ${atStep(last)}.` +
        (g > 1 ? ` Each cell is the mean MI over a block of ${g} x ${g} neurons (${side} x ${side} cells).` : "") +
        missingNote(missing, "pairs"),
      spec: {
        $schema: SCHEMA,
        width: 280,
        height: 280,
        data: { values: data },
        mark: { type: "rect", tooltip: true },
        encoding: {
          x: {
            field: "a",
            type: "quantitative",
            title: "neuron",
            scale: { domain: [0, width], nice: false },
            axis: { grid: false },
          },
          x2: { field: "a1" },
          y: {
            field: "b",
            type: "quantitative",
            title: "neuron",
            scale: { domain: [0, width], nice: false, reverse: true },
            axis: { grid: false },
          },
          y2: { field: "b1" },
          color: { field: "mi", type: "quantitative", title: "MI (nats)", scale: { scheme: "viridis" } },
        },
      },
    });
  }
  if (plots.length === 0) return null;
  return {
    id: "mi",
    title: "Mutual information between neurons",
    intro:
      `Pairwise MI of the neurons within each layer (table neuron_mi) at the last step${
        steps.length > 1
          ? ` (${stepLabel(last)} of ${steps.length} steps; the mean over steps is in the layer summary)`
          : ""
      }.` + (cross > 0 ? ` ${cross} pairs across layers are not drawn.` : ""),
    plots,
    tables: ["neuron_mi"],
  };
}

/** MI between each neuron and the label: histogram per layer at the last step, and the mean over steps. */
function labelMiSection(results: ResultDirectory, t: ResultTable): Section {
  const steps = stepsOf(t.rows);
  const last = steps[steps.length - 1];
  const rows = t.rows.filter((r) => stepOf(r) === last);
  const layers = layerOrder(results, t.rows.map((r) => String(r.layer)));
  const { values, missing } = finite(rows, "mi");
  const [lo, hi] = range(values);
  const section: Section = {
    id: "label-mi",
    title: "Label MI",
    intro: "MI between each neuron and the class label (table label_mi).",
    plots: [],
    tables: ["label_mi"],
  };
  if (values.length === 0) {
    section.intro += ` None of its ${rows.length} rows (${atStep(last)}) has a finite MI: nothing to plot.`;
    return section;
  }
  const data: (Binned & { layer: string; step: string })[] = [];
  for (const layer of layers) {
    const v = finite(rows.filter((r) => r.layer === layer), "mi").values;
    if (v.length) { for (const b of histogram(v, lo, hi)) data.push({ layer, step: stepLabel(last), ...b }); }
  }
  const plots = section.plots;
  plots.push({
    id: "label-mi-hist",
    title: "MI between each neuron and the label, per layer",
    note: `${
      atStep(last).replace(/^./, (c) => c.toUpperCase())
    }; ${rows.length} neurons; ${BINS} bins over [${r4(lo)}, ${r4(hi)}] nats.` +
      missingNote(missing, "neurons"),
    spec: histogramGrid(data, layers, null, "label MI (nats)", "neurons"),
  });
  const numeric = steps.filter((s) => s !== null) as number[];
  if (numeric.length > 1) {
    const data: { layer: string; step: number; mean: number }[] = [];
    for (const layer of layers) {
      for (const s of numeric) {
        const v = finite(t.rows.filter((r) => r.layer === layer && stepOf(r) === s), "mi").values;
        if (v.length) data.push({ layer, step: s, mean: r4(v.reduce((a, b) => a + b, 0) / v.length) });
      }
    }
    plots.push({
      id: "label-mi-steps",
      title: "Mean label MI over training, per layer",
      note: `Mean over each layer's neurons, ${numeric.length} steps.`,
      spec: {
        $schema: SCHEMA,
        width: 520,
        height: 220,
        data: { values: data },
        mark: { type: "line", point: true, tooltip: true },
        encoding: {
          x: { field: "step", type: "quantitative" },
          y: { field: "mean", type: "quantitative", title: "label MI (nats), mean over neurons" },
          color: { field: "layer", type: "nominal", sort: layers },
        },
      },
    });
  }
  return section;
}

/** Fisher trace per layer over steps (the critical-period curve), spectrum, diagonal. */
function fisherSection(results: ResultDirectory): Section | null {
  const plots: Plot[] = [];
  const used: string[] = [];
  const f = results.tables.fisher;
  if (f && f.rows.length) {
    used.push("fisher");
    const level = f.rows.some((r) => r.level === "layer") ? "layer" : "parameter";
    const rows = f.rows.filter((r) => r.level === level || r.level === "total");
    const { values, missing } = finite(rows, "trace");
    const data = rows.filter((r) => num(r.trace) !== null).map((r) => ({
      name: r.level === "total" ? "(total)" : String(r.parameter),
      step: stepOf(r),
      trace: r4(num(r.trace)!),
    }));
    const names = [...new Set(data.map((d) => d.name))];
    const log = values.length > 0 && values.every((v) => v > 0);
    const steps = stepsOf(rows).filter((s) => s !== null);
    const kind = f.rows.find((r) => r.kind)?.kind ?? "Fisher";
    if (data.length === 0) {
      // Nothing finite to draw: said in the section's intro.
    } else if (steps.length > 1) {
      plots.push({
        id: "fisher-trace",
        title: `Trace of the ${kind} per ${level} over training`,
        note: `${steps.length} steps${log ? "; log scale" : ""}.` + missingNote(missing, "rows"),
        spec: {
          $schema: SCHEMA,
          width: 520,
          height: 260,
          data: { values: data.filter((d) => d.step !== null) },
          mark: { type: "line", point: true, tooltip: true },
          encoding: {
            x: { field: "step", type: "quantitative" },
            y: { field: "trace", type: "quantitative", title: "trace", scale: log ? { type: "log" } : {} },
            color: { field: "name", type: "nominal", sort: names, title: level },
            strokeDash: {
              condition: { test: "datum.name === '(total)'", value: [4, 3] },
              value: [1, 0],
            },
          },
        },
      });
    } else {
      plots.push({
        id: "fisher-trace",
        title: `Trace of the ${kind} per ${level}`,
        note: `One step${log ? "; log scale" : ""}.` + missingNote(missing, "rows"),
        spec: {
          $schema: SCHEMA,
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
    const steps = someSteps(stepsOf(sp.rows), 8);
    const data = sp.rows.filter((r) => steps.includes(stepOf(r)) && (num(r.eigenvalue) ?? 0) > 0).map((r) => ({
      rank: Number(r.rank),
      eigenvalue: r4(num(r.eigenvalue)!),
      step: stepLabel(stepOf(r)),
    }));
    if (data.length) {
      plots.push({
        id: "fisher-spectrum",
        title: "Fisher spectrum (low-rank sketch)",
        note:
          `Top eigenvalues of the Frequent Directions sketch (lower bounds; table fisher_spectrum), log scale; ${steps.length} step(s) shown${
            stepsOf(sp.rows).length > steps.length ? " (evenly spaced)" : ""
          }. Zero eigenvalues are not drawn.`,
        spec: {
          $schema: SCHEMA,
          width: 520,
          height: 220,
          data: { values: data },
          mark: { type: "line", point: true, tooltip: true },
          encoding: {
            x: { field: "rank", type: "quantitative" },
            y: { field: "eigenvalue", type: "quantitative", scale: { type: "log" } },
            color: { field: "step", type: "ordinal", sort: steps.map(stepLabel) },
          },
        },
      });
    }
  }
  const fd = results.tables.fisher_diag;
  if (fd && fd.rows.length) {
    used.push("fisher_diag");
    const steps = stepsOf(fd.rows);
    const last = steps[steps.length - 1];
    const rows = fd.rows.filter((r) => stepOf(r) === last);
    const positive = rows.map((r) => num(r.value)).filter((v): v is number => v !== null && v > 0);
    const logs = positive.map(Math.log10);
    const [lo, hi] = range(logs);
    const params = [...new Set(rows.map((r) => String(r.parameter)))];
    const data: (Binned & { layer: string; step: string })[] = [];
    for (const p of params) {
      const v = rows.filter((r) => r.parameter === p).map((r) => num(r.value)).filter((v): v is number =>
        v !== null && v > 0
      ).map(Math.log10);
      if (v.length) { for (const b of histogram(v, lo, hi)) data.push({ layer: p, step: stepLabel(last), ...b }); }
    }
    if (data.length) {
      plots.push({
        id: "fisher-diag",
        title: "Diagonal of the Fisher, per parameter tensor",
        note: `Histogram of log10 F_jj, ${atStep(last)} (${positive.length} entries; ${
          rows.length - positive.length
        } zero or non-finite entries are not drawn).`,
        spec: histogramGrid(data, params, null, "log10 F_jj", "entries"),
      });
    }
  }
  if (plots.length === 0) return null;
  return {
    id: "fisher",
    title: "Fisher information",
    intro: "Fisher information from per-sample gradients (docs/science.md section 2). " +
      "Over training steps, the trace per layer is the critical-period curve of Achille et al.",
    plots,
    tables: used,
  };
}

/** The k most and least informative samples by `si_weights` (most first; least: smallest first). */
export function extremeSamples(t: ResultTable, k: number): { most: Row[]; least: Row[] } {
  const rows = t.rows.filter((r) => num(r.si_weights) !== null);
  rows.sort((a, b) => num(b.si_weights)! - num(a.si_weights)!);
  const kk = Math.min(k, Math.floor(rows.length / 2));
  return { most: rows.slice(0, kk), least: rows.slice(rows.length - kk).reverse() };
}

/** Unique information of each sample: histograms (log scale when all positive) and SI vs F-SI. */
function siSection(t: ResultTable): Section | null {
  const measures = ["si_weights", "si_function"].filter((m) =>
    t.columns.includes(m) && finite(t.rows, m).values.length
  );
  if (measures.length === 0) return null;
  const plots: Plot[] = [];
  const data: (Binned & { layer: string; step: string })[] = [];
  const notes: string[] = [];
  for (const m of measures) {
    const { values, missing } = finite(t.rows, m);
    const log = values.every((v) => v > 0);
    const v = log ? values.map(Math.log10) : values;
    const [lo, hi] = range(v);
    const name = log ? `log10 ${m}` : m;
    for (const b of histogram(v, lo, hi)) data.push({ layer: name, step: "all", ...b });
    notes.push(`${name}: ${values.length} samples` + (missing ? `, ${missing} without a value` : ""));
  }
  plots.push({
    id: "si-hist",
    title: "Unique information of each training sample",
    note: `Histograms (${BINS} bins each). ${notes.join("; ")}.`,
    spec: histogramGrid(data, [...new Set(data.map((d) => d.layer))], null, "value", "samples"),
  });
  if (measures.length === 2) {
    const both = t.rows.filter((r) => num(r.si_weights) !== null && num(r.si_function) !== null);
    const stride = Math.max(1, Math.ceil(both.length / MAX_POINTS));
    const pts = both.filter((_, i) => i % stride === 0).map((r) => ({
      sample_id: r.sample_id,
      si_weights: r4(num(r.si_weights)!),
      si_function: r4(num(r.si_function)!),
    }));
    const log = pts.every((p) => p.si_weights > 0 && p.si_function > 0);
    plots.push({
      id: "si-scatter",
      title: "SI in the weights vs SI in the function (F-SI)",
      note: `${pts.length} of ${both.length} samples${stride > 1 ? ` (every ${stride}th)` : ""}${
        log ? "; log scales" : ""
      }.`,
      spec: {
        $schema: SCHEMA,
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
  const lambda = num(t.rows[0]?.lambda);
  return {
    id: "si",
    title: "Unique information",
    intro: `Smooth unique information of each training sample (table unique_information; docs/science.md section 3)${
      lambda !== null ? `, lambda = ${lambda}` : ""
    }.`,
    plots,
    tables: ["unique_information"],
  };
}

/** Every section that the directory's tables allow, in reading order. */
export function buildSections(results: ResultDirectory): Section[] {
  const t = results.tables;
  const out: (Section | null)[] = [
    t.layer_summary?.rows.length ? summarySection(results, t.layer_summary) : null,
    t.neuron_entropy?.rows.length ? entropySection(results, t.neuron_entropy) : null,
    t.neuron_mi?.rows.length ? miSection(results, t.neuron_mi) : null,
    t.label_mi?.rows.length ? labelMiSection(results, t.label_mi) : null,
    fisherSection(results),
    t.unique_information?.rows.length ? siSection(t.unique_information) : null,
  ];
  return out.filter((s): s is Section => s !== null);
}
