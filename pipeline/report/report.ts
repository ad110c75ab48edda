/**
 * The HTML report ({@linkcode renderReport}) of one results directory, or of several runs overlaid: one
 * self-contained page (Vega, Vega-Lite and vega-embed inlined, the data as JSON) with the runs' facts, the warnings,
 * the sections the plugins declare for their tables (`_sections.ts`), the layer summary and, for several runs, the
 * user's metrics beside the measures `compare` ranks by; a live page re-draws itself as results change. When all
 * plots are drawn the page sets `window.__reportStatus` (what was drawn, and any console error). See docs/report.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderReport } from "./report.ts";
 * const html = await renderReport({ dir: "r", run: { complete: true }, tables: {} });
 * assert.ok(html.startsWith("<!doctype html>") && html.includes("window.__reportStatus"));
 * ```
 *
 * @module
 */
import { buildSections, DEFAULT_CONTEXT, LAYER_SUMMARY, layerIntervals, type Section } from "./_sections.ts";
import { type ImageSet, loadImages } from "./_images.ts";
import type { ResultDirectory } from "./results.ts";
import type { EstimatorPlugin } from "../core/plugin.ts";
import type { ReportContext, ReportRun, SampleGroup } from "../core/report_contract.ts";
import { VERSION } from "../core/version.ts";
import { builtinPlugins } from "../../plugins/mod.ts";
import { checkMetrics, describeMeasure, measuresOf, type Metric, rankMeasures } from "./compare.ts";
import { kendallTau } from "./kendall.ts";
import * as kit from "../core/plot_kit.ts";

/** Options of {@linkcode renderReport}. */
export interface ReportOptions {
  /**
   * An infotap stream (any kind) with the input pixels by `sample_id`: the samples that sections list (e.g. the
   * most and least informative of `unique_information`) are shown as images (see `_images.ts` for the shapes).
   */
  images?: string;
  /** The pixel column of `images` (default: the first named input/image/pixel/x with an image width). */
  imageColumn?: string;
  /** How many samples a section's sample list holds at most (default 8; e.g. most and least informative each). */
  extremes?: number;
  /** The plugins whose declared sections draw the tables (default: the built-ins). */
  plugins?: readonly EstimatorPlugin[];
  /** Page title (default: the directory, or the number of runs). */
  title?: string;
  /** Metrics of the runs (by directory as in `results.dir`), shown beside the measures; one value per run. */
  metrics?: Metric[];
  /** Resamples of the bootstrap intervals of layer means (default 0: none). */
  bootstrap?: number;
  /** Seed of the bootstrap and of tie-breaking in clustered orders (default 0). */
  seed?: number;
  /** A live page: it polls `version` next to itself and re-draws from `page` when it changes (see `live.ts`). */
  live?: { version: number; every_ms: number };
}

const LIBRARIES = ["vega", "vega-lite", "vega-embed"];
const BUILDS: Record<string, string> = {
  vega: "build/vega.min.js",
  "vega-lite": "build/vega-lite.min.js",
  "vega-embed": "build/vega-embed.min.js",
};

function nodeModules(): URL {
  return new URL("../../node_modules/", import.meta.url);
}

/** Escapes text for HTML. */
function esc(s: unknown): string {
  return String(s).replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
}

/** JSON safe inside a `<script>` element. */
function scriptJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
}

async function readPackage(name: string): Promise<{ version: string; license: string; deps: string[] } | null> {
  try {
    const pkg = JSON.parse(await Deno.readTextFile(new URL(`${name}/package.json`, nodeModules())));
    return {
      version: pkg.version,
      license: typeof pkg.license === "string" ? pkg.license : JSON.stringify(pkg.license ?? "unknown"),
      deps: Object.keys(pkg.dependencies ?? {}),
    };
  } catch {
    return null;
  }
}

async function licenceText(name: string): Promise<string | null> {
  for (const f of ["LICENSE", "LICENSE.md", "LICENSE.txt", "license", "LICENCE", "LICENSE-MIT"]) {
    try {
      return await Deno.readTextFile(new URL(`${name}/${f}`, nodeModules()));
    } catch { /* next */ }
  }
  return null;
}

let cached: Promise<{ scripts: string[]; versions: string[]; licences: string }> | null = null;

/** The inlined libraries (read once per process). */
function libraries(): Promise<{ scripts: string[]; versions: string[]; licences: string }> {
  cached ??= readLibraries().catch((e) => {
    cached = null;
    throw e;
  });
  return cached;
}

/** The inlined libraries' builds, and the licences of them and of every package they depend on. */
async function readLibraries(): Promise<{ scripts: string[]; versions: string[]; licences: string }> {
  const scripts: string[] = [];
  const versions: string[] = [];
  for (const lib of LIBRARIES) {
    const url = new URL(`${lib}/${BUILDS[lib]}`, nodeModules());
    let js: string;
    try {
      js = await Deno.readTextFile(url);
    } catch {
      throw new Error(
        `Cannot make a report as ${lib}'s build is missing (run npm install --no-audit --no-fund): current value is '${url.pathname}'`,
      );
    }
    scripts.push(js.replace(/<\/script/gi, "<\\/script"));
    versions.push(`${lib} ${(await readPackage(lib))?.version ?? "?"}`);
  }
  // Dependency closure: the builds bundle (parts of) these packages.
  const seen = new Map<string, { version: string; license: string }>();
  const queue = [...LIBRARIES];
  while (queue.length) {
    const name = queue.shift()!;
    if (seen.has(name)) continue;
    const pkg = await readPackage(name);
    if (!pkg) continue;
    seen.set(name, pkg);
    queue.push(...pkg.deps);
  }
  const byText = new Map<string, string[]>();
  for (const [name, p] of [...seen].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const text = (await licenceText(name)) ?? `(${p.license}; no licence file in the package)`;
    const list = byText.get(text.trim()) ?? [];
    list.push(`${name} ${p.version} (${p.license})`);
    byText.set(text.trim(), list);
  }
  const licences = [...byText].map(([text, names]) => `<h4>${esc(names.join(", "))}</h4><pre>${esc(text)}</pre>`)
    .join("\n");
  return { scripts, versions, licences };
}

function fmt(x: unknown): string {
  if (typeof x === "number") return Number.isInteger(x) ? x.toLocaleString("en-US") : x.toPrecision(4);
  if (x === null || x === undefined) return "-";
  if (typeof x === "object") return JSON.stringify(x);
  return String(x);
}

function htmlTable(head: string[], rows: unknown[][], raw = new Set<number>()): string {
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${
    rows.map((r) => `<tr>${r.map((c, i) => `<td>${raw.has(i) ? c : esc(fmt(c))}</td>`).join("")}</tr>`).join("")
  }</tbody></table>`;
}

/** "a, b and c". */
function andList(items: string[]): string {
  return items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

/** An estimator's run.json summary as a sentence, with the warnings recorded in it or implied by its facts. */
export function describeSummary(
  plugin: EstimatorPlugin | undefined,
  summary: unknown,
): { text: string; warnings: string[] } {
  if (summary === null || typeof summary !== "object") return { text: "", warnings: [] };
  const { warnings: recorded, ...facts } = summary as Record<string, unknown>;
  const told = Array.isArray(recorded) ? recorded.map(String) : [];
  const d = plugin?.report?.describe?.(facts);
  const text = d?.text ??
    (Object.keys(facts).length
      ? `${andList(Object.entries(facts).map(([k, v]) => `${k.replaceAll("_", " ")} ${fmt(v)}`))}.`
      : "");
  return { text, warnings: [...new Set([...told, ...(d?.warnings ?? [])])] };
}

/** What one run's run.json says: facts, then its estimators with their summaries as sentences. */
function runFacts(results: ResultDirectory, plugins: readonly EstimatorPlugin[]): string {
  const run = results.run;
  if (!run) {
    return `<p class="warn">No run.json in this directory (a live run still going, or copied tables): run facts unknown.</p>`;
  }
  const parts: string[] = [];
  const complete = run.complete === true;
  parts.push(
    `<p class="${complete ? "ok" : "bad"}">${complete ? "Complete run" : "INCOMPLETE run"}${
      run.error ? `: ${esc(run.error)}` : ""
    }${run.mode ? ` (mode: ${esc(run.mode)})` : ""}${run.kind ? `; input kind ${esc(run.kind)}` : ""}.</p>`,
  );
  const facts: [string, unknown][] = [];
  const opts = run.options as Record<string, unknown> | undefined;
  if (opts) facts.push(["options", Object.entries(opts).map(([k, v]) => `${k}=${fmt(v)}`).join(", ")]);
  const layers = run.layers as { name: string; width: number }[] | undefined;
  if (layers?.length) facts.push(["layers", layers.map((l) => `${l.name} (${l.width})`).join(", ")]);
  if (run.started) facts.push(["started", `${run.started} (finished ${run.finished ?? "-"})`]);
  const timings = run.timings as Record<string, number> | undefined;
  if (timings?.total_s !== undefined) facts.push(["time", `${timings.total_s.toFixed(2)} s`]);
  if (Array.isArray(run.argv)) facts.push(["command", (run.argv as string[]).join(" ")]);
  const versions = run.versions as Record<string, string> | undefined;
  if (versions) facts.push(["versions", Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(", ")]);
  parts.push(`<dl>${facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join("")}</dl>`);
  const inputs = run.inputs as Record<string, unknown>[] | undefined;
  if (inputs?.length) {
    parts.push(
      `<h3>Inputs</h3>` +
        htmlTable(["path", "bytes", "batches", "rows"], inputs.map((i) => [i.path, i.bytes, i.batches, i.rows])),
    );
  }
  const producers = run.producers as Record<string, unknown>[] | undefined;
  if (producers?.length) {
    const keys = [...new Set(producers.flatMap((p) => Object.keys(p)))].slice(0, 8);
    parts.push(`<h3>Producers</h3>` + htmlTable(keys, producers.map((p) => keys.map((k) => p[k]))));
  }
  const ests = run.estimators as { name: string; options: unknown; summary: unknown; backend?: string }[] | undefined;
  if (ests?.length) {
    const rows = ests.map((e) => {
      const d = describeSummary(plugins.find((p) => p.name === e.name), e.summary);
      const said = [esc(d.text), ...d.warnings.map((w) => `<span class="warn">${esc(w)}</span>`)].filter(Boolean);
      return [
        esc(e.name),
        esc(Object.entries((e.options ?? {}) as Record<string, unknown>).map(([k, v]) => `${k}=${fmt(v)}`).join(", ")),
        esc(e.backend ?? "-"),
        said.join(" ") || "-",
      ];
    });
    parts.push(
      `<h3>Estimators</h3>` + htmlTable(["estimator", "options", "backend", "summary"], rows, new Set([0, 1, 2, 3])),
    );
  }
  return parts.join("\n");
}

/** The page's warnings: each run's state and recorded warnings, its estimators' summaries, and the sections'. */
function pageWarnings(runs: ReportRun[], sections: Section[], plugins: readonly EstimatorPlugin[]): string[] {
  const multi = runs.length > 1;
  const out: string[] = [];
  for (const { name, results } of runs) {
    const who = multi ? `${name}: ` : "";
    const run = results.run;
    if (!run) {
      out.push(`${who}no run.json (a live run still going, or copied tables): the run may be incomplete.`);
      continue;
    }
    if (run.complete !== true) out.push(`${who}INCOMPLETE run${run.error ? `: ${run.error}` : ""}.`);
    if (Array.isArray(run.warnings)) out.push(...run.warnings.map((w) => `${who}${w}`));
    for (const e of (run.estimators as { name: string; summary: unknown }[] | undefined) ?? []) {
      const d = describeSummary(plugins.find((p) => p.name === e.name), e.summary);
      out.push(...d.warnings.map((w) => `${who}[${e.name}] ${w}`));
    }
  }
  // One run whose run.json records its estimators' warnings: the sections' (from the tables) repeat them, so they
  // stay in their sections.
  if (multi || !Array.isArray(runs[0].results.run?.warnings)) {
    for (const s of sections) out.push(...(s.warnings ?? []).map((w) => `${s.title}: ${w}`));
  }
  return [...new Set(out)];
}

/** The layer summary as a table (last step of each layer), with bootstrap intervals when asked. */
function summaryTable(results: ResultDirectory, plugins: readonly EstimatorPlugin[], context: ReportContext): string {
  const t = results.tables[LAYER_SUMMARY];
  if (!t?.rows.length) return "";
  const cols = t.columns.filter((c) => c !== "step" || t.rows.some((r) => r.step !== null));
  const { rows, step: last } = kit.lastStep(t.rows);
  const measures = context.bootstrap > 0
    ? plugins.flatMap((p) => p.report?.layerSummary ?? []).filter((m) => m.source && cols.includes(m.column))
    : [];
  const cis = measures.map((m) => layerIntervals(results, m, context));
  const head = [...cols, ...measures.map((m) => `${m.column} 95% CI`)];
  const body = rows.map((r) => [
    ...cols.map((c) => r[c]),
    ...cis.map((ci) => {
      const c = ci.get(`${r.layer}\u0000${kit.stepLabel(kit.stepOf(r))}`);
      return c ? `${kit.r4(c[0])} to ${kit.r4(c[1])}` : "-";
    }),
  ]);
  const note = context.bootstrap > 0 && measures.length
    ? `<p class="note">95% CI: percentile bootstrap of the mean over the layer's neurons (${context.bootstrap} resamples of the neurons, seed ${context.seed}).</p>`
    : "";
  return `<h3>Layer summary${last !== null ? ` at step ${last}` : ""}</h3>${htmlTable(head, body)}${note}`;
}

interface PageImage {
  id: string;
  width: number;
  height: number;
  rgba: string;
}

/** A section's sample lists, with the samples' images when `--images` is given. */
async function samplesHtml(groups: SampleGroup[], opts: ReportOptions, pageImages: PageImage[]): Promise<string> {
  const all = groups.flatMap((g) => g.samples);
  if (all.length === 0) return "";
  let images: ImageSet | undefined;
  if (opts.images !== undefined) {
    images = await loadImages(
      opts.images,
      new Set(all.map((s) => s.id)),
      opts.imageColumn,
    );
  }
  const block = (g: SampleGroup) => {
    const figs = g.samples.map(({ id, lines, flagged }) => {
      const img = images?.images.get(id);
      let pic = "";
      if (img) {
        const cid = `img-${pageImages.length}`;
        pageImages.push({ id: cid, width: img.width, height: img.height, rgba: img.rgba });
        pic = `<canvas id="${cid}" width="${img.width}" height="${img.height}"></canvas>`;
      } else if (images) pic = `<div class="noimg">no image</div>`;
      const label = img?.label !== null && img?.label !== undefined ? `, label ${img.label}` : "";
      return `<figure${flagged ? ' class="flagged"' : ""}>${pic}<figcaption>sample ${esc(id)}${esc(label)}${
        flagged ? `<br><b>flagged</b>` : ""
      }${lines.map(([name, value]) => `<br>${esc(name)} ${esc(fmt(value))}`).join("")}</figcaption></figure>`;
    });
    return `<h3>${esc(g.title)}</h3><div class="samples">${figs.join("")}</div>`;
  };
  const src = images
    ? `<p class="note">Images: column '${esc(images.column)}' (${
      esc(images.shape)
    }), ${images.images.size} of ${all.length} samples found.</p>`
    : `<p class="note">Pass --images DUMP.arrows (a stream with the input pixels by sample_id) to see the samples.</p>`;
  return groups.map(block).join("") + src;
}

/** Short names for runs: the directories' last parts, or more of the path while two are alike. */
export function runNames(dirs: string[]): string[] {
  const parts = dirs.map((d) => d.split("/").filter(Boolean));
  for (let k = 1;; k++) {
    const names = parts.map((p) => p.slice(-k).join("/") || "/");
    if (new Set(names).size === names.length || parts.every((p) => p.length <= k)) return names;
  }
}

/** For several runs: one row per run with its state, metrics and `:all` measures, and the metrics beside them. */
function runsPart(
  runs: ReportRun[],
  plugins: readonly EstimatorPlugin[],
  metrics: Metric[],
): { html: string; plots: { id: string; title: string; note: string; spec: Record<string, unknown> }[] } {
  const declared = rankMeasures(plugins);
  const measures = runs.map((r) => measuresOf(r.results, declared));
  const shared = [...new Set(measures.flatMap((m) => [...m.keys()]))].filter((k) =>
    k.endsWith(":all") && measures.every((m) => m.has(k))
  );
  const head = ["run", "directory", "state", "kind", "steps", ...metrics.map((m) => m.name), ...shared];
  const rows = runs.map(({ name, results }, i) => {
    const run = results.run;
    const state = !run
      ? `<span class="warn">no run.json</span>`
      : run.complete === true
      ? `<span class="ok">complete</span>`
      : `<span class="bad">INCOMPLETE</span>`;
    let first = Infinity, last = -Infinity;
    for (const t of Object.values(results.tables)) {
      for (const r of t.rows) {
        if (typeof r.step !== "number") continue;
        first = Math.min(first, r.step);
        last = Math.max(last, r.step);
      }
    }
    return [
      esc(name),
      esc(results.dir),
      state,
      esc(fmt(run?.kind)),
      esc(last >= first ? `${first} to ${last}` : "-"),
      ...metrics.map((m) => esc(fmt(m.values.get(results.dir)))),
      ...shared.map((k) => esc(fmt(measures[i].get(k)))),
    ];
  });
  const raw = new Set(head.map((_, i) => i));
  const used = declared.filter((m) => shared.some((k) => k.startsWith(`${m.name}:`)));
  let html = `<section id="runs"><h2>Runs</h2>${htmlTable(head, rows, raw)}${
    used.length
      ? `<p class="note">Measures (as deno task compare ranks them), each at the run's last step: ${
        used.map((m) => esc(describeMeasure(m))).join("; ")
      }.</p>`
      : ""
  }${
    runs.map(({ name, results }) =>
      `<details><summary>Run ${esc(name)}: facts from run.json</summary>${runFacts(results, plugins)}</details>`
    ).join("")
  }</section>`;
  const plots = [];
  if (metrics.length && shared.length) {
    const values: Record<string, unknown>[] = [];
    const taus: string[] = [];
    for (const m of metrics) {
      for (const k of shared) {
        const x = runs.map((_, i) => measures[i].get(k)!), y = runs.map((r) => m.values.get(r.results.dir)!);
        const tau = kendallTau(x, y);
        const panel = `${k} (tau ${Number.isFinite(tau) ? tau.toFixed(2) : "undefined"})`;
        taus.push(`${m.name} vs ${panel}`);
        runs.forEach((r, i) => values.push({ run: r.name, metric: m.name, panel, x: kit.r4(x[i]), y: y[i] }));
      }
    }
    const names = runs.map((r) => r.name);
    plots.push({
      id: "metrics",
      title: "Metrics beside the measures",
      note:
        `Each panel: one point per run, a measure (at the run's last step) against a metric; Kendall's tau-b across the ${runs.length} runs in the panel's title.`,
      spec: kit.fit(
        {
          $schema: kit.SCHEMA,
          data: { values },
          facet: {
            row: { field: "metric", type: "nominal", title: null },
            column: { field: "panel", type: "nominal", title: null, sort: [...new Set(values.map((v) => v.panel))] },
          },
          spec: {
            width: 260,
            height: 180,
            layer: [
              {
                mark: { type: "point", filled: true, size: 80, tooltip: true },
                encoding: {
                  x: { field: "x", type: "quantitative", title: "measure", scale: { zero: false } },
                  y: { field: "y", type: "quantitative", title: "metric", scale: { zero: false } },
                  color: kit.runColor(names),
                },
              },
              {
                mark: { type: "text", dy: -10, fontSize: 10 },
                encoding: {
                  x: { field: "x", type: "quantitative" },
                  y: { field: "y", type: "quantitative" },
                  text: { field: "run" },
                },
              },
            ],
          },
          resolve: { scale: { x: "independent", y: "independent" } },
        },
        shared.length,
        0.7,
      ),
    });
    html += `<section id="metrics"><h2>Metrics</h2><p>${
      esc(metrics.map((m) => m.name).join(", "))
    } (given with --metric) beside the measures the runs share. ${esc(taus.join("; "))}.</p><div class="plots">${
      plotDiv(plots[0])
    }</div></section>`;
  }
  return { html, plots };
}

/** One plot's box: title, note and the element vega-embed draws into. */
function plotDiv(p: { id: string; title: string; note: string }): string {
  return `<div class="plot"><h3>${esc(p.title)}</h3><p class="note">${esc(p.note)}</p><div id="plot-${
    esc(p.id)
  }" class="vis"></div></div>`;
}

const CSS = `
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1600px;padding:0 24px 40px;color:#222}
h1{font-size:22px;margin:16px 0 4px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:2px;margin-top:28px}
h3{font-size:15px;margin:14px 0 4px}.note{color:#555;font-size:12px;margin:2px 0 6px}
.ok{color:#0a6b2a;font-weight:600}.bad{color:#b00020;font-weight:700}.warn{color:#8a5a00}
#warnings{background:#fff4e0;border:1px solid #e0b060;border-radius:4px;padding:6px 14px;margin:10px 0}
#warnings h2{border:0;margin:4px 0;font-size:16px;color:#8a5a00}#warnings li{margin:2px 0}
.warnings{background:#fff4e0;border-left:4px solid #e0a030;padding:4px 10px;margin:6px 0;font-size:13px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;font-size:12px}dt{font-weight:600}dd{margin:0}
table{border-collapse:collapse;font-size:12px;margin:4px 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}
.plots{display:flex;flex-direction:column;gap:18px}.plot{width:100%}.vis{width:100%}
.samples{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0;text-align:center;font-size:11px;padding:2px}
figure.flagged{outline:3px solid #d62728}
canvas{width:84px;height:84px;image-rendering:pixelated;border:1px solid #ccc;display:block;margin:0 auto}
.noimg{width:84px;height:84px;border:1px dashed #ccc;color:#999;line-height:84px}
nav a{margin-right:12px}pre{font-size:11px;white-space:pre-wrap}#report-status{display:none}
#live{font-size:12px;color:#555}details{margin:4px 0}`;

/** Runs first: collects console errors and warnings, uncaught errors and rejections. */
const CAPTURE = `window.__reportErrors=[];(()=>{const push=(s)=>window.__reportErrors.push(String(s));
const ce=console.error.bind(console),cw=console.warn.bind(console);
console.error=(...a)=>{push(a.map(String).join(" "));ce(...a)};
console.warn=(...a)=>{push("warning: "+a.map(String).join(" "));cw(...a)};
addEventListener("error",(e)=>push(e.message));
addEventListener("unhandledrejection",(e)=>push(e.reason&&e.reason.stack||e.reason))})();`;

/**
 * Draws every plot (at the width the page has: specs marked by `fit` get their width, or their cells' width, set
 * here, then corrected once by what the drawn SVG measured) and every image, then sets window.__reportStatus; a
 * live page polls its server and re-draws from it.
 */
const MAIN = `(()=>{
const opts={renderer:"svg",actions:{export:true,source:false,compiled:false,editor:false}};
const countMarks=(mark)=>{let n=0;const visit=(m)=>{if(!m||!m.items)return;
if(m.marktype!=="group"&&m.role==="mark")n+=m.items.length;
if(m.marktype==="group")for(const it of m.items)for(const c of (it.items||[]))visit(c)};visit(mark);return n};
const sized=(spec,W,adj)=>{const f=spec.usermeta&&spec.usermeta.fit;if(!f)return spec;const s=JSON.parse(JSON.stringify(spec));
const cols=f.columns||1,w=Math.min(f.max||1e9,Math.floor((W-adj)/cols));const v=s.facet||s.repeat?s.spec:s;
v.width=Math.max(s.facet?110:200,w);if(f.aspect)v.height=Math.max(60,Math.round(v.width*f.aspect));return s};
const views=new Map();let width=0;
async function drawPlot(p){const el=document.getElementById("plot-"+p.id);const W=el.clientWidth;
const f=p.spec.usermeta&&p.spec.usermeta.fit;let adj=f?((f.columns||1)*(p.spec.facet?64:0)+110):0;
if(views.has(p.id))views.get(p.id).finalize();
let r=await vegaEmbed(el,sized(p.spec,W,adj),opts);
if(f){const sw=el.querySelector("svg").getBoundingClientRect().width;
if(sw>W+2||(!f.max&&sw<W-8)){r.finalize();adj+=sw-W;r=await vegaEmbed(el,sized(p.spec,W,adj),opts)}}
views.set(p.id,r);return r}
async function draw(data){
const status={done:false,version:data.version||0,plots:[],images:0,errors:window.__reportErrors};
width=document.getElementById("content").clientWidth;
for(const p of data.plots){const el=document.getElementById("plot-"+p.id);
try{const r=await drawPlot(p);const svg=el.querySelector("svg");const box=svg?svg.getBoundingClientRect():{width:0,height:0};
status.plots.push({id:p.id,marks:countMarks(r.view.scenegraph().root),width:box.width,height:box.height})}
catch(e){status.plots.push({id:p.id,marks:0,error:String(e&&e.message||e)});console.error("plot "+p.id+": "+(e&&e.message||e))}}
for(const im of data.images){try{const c=document.getElementById(im.id);const b=atob(im.rgba);
const px=new Uint8ClampedArray(b.length);for(let i=0;i<b.length;i++)px[i]=b.charCodeAt(i);
c.getContext("2d").putImageData(new ImageData(px,im.width,im.height),0,0);status.images++}
catch(e){console.error("image "+im.id+": "+(e&&e.message||e))}}
status.done=true;window.__reportStatus=status;
document.getElementById("report-status").textContent=JSON.stringify(status);
document.documentElement.dataset.report=status.errors.length||status.plots.some((p)=>!p.marks)?"failed":"done"}
let data=JSON.parse(document.getElementById("report-data").textContent);
let busy=draw(data);
let timer=0;addEventListener("resize",()=>{clearTimeout(timer);timer=setTimeout(async()=>{await busy;
if(Math.abs(document.getElementById("content").clientWidth-width)>16){busy=draw(data)}},250)});
if(data.live){const live=document.getElementById("live");
const poll=async()=>{try{await busy;const v=await (await fetch("version",{cache:"no-store"})).json();
if(v.version!==data.version){const page=await (await fetch("page",{cache:"no-store"})).json();
const content=document.getElementById("content");content.style.minHeight=content.offsetHeight+"px";
for(const r of views.values())r.finalize();views.clear();
content.innerHTML=page.content;data=page.data;document.title=page.title;busy=draw(data);await busy;content.style.minHeight=""}
live.textContent="Live: update "+data.version+", checked "+new Date().toLocaleTimeString()}
catch(e){live.textContent="Live: the server does not answer ("+(e&&e.message||e)+"); the page shows the last update."}
setTimeout(poll,data.live.every_ms)};setTimeout(poll,data.live.every_ms)}})();`;

/** The parts of a page that change with the results: its title, the HTML of its content, and the plots' data. */
export interface PageParts {
  title: string;
  content: string;
  data: {
    plots: { id: string; spec: Record<string, unknown> }[];
    images: PageImage[];
    version: number;
    live?: unknown;
  };
}

/** Builds the page's content (everything between the header scripts and the footer). */
export async function pageParts(input: ResultDirectory | ReportRun[], opts: ReportOptions = {}): Promise<PageParts> {
  const runs: ReportRun[] = Array.isArray(input) ? input : [{ name: input.dir, results: input }];
  const multi = runs.length > 1;
  const plugins = opts.plugins ?? builtinPlugins;
  const context: ReportContext = {
    ...DEFAULT_CONTEXT,
    samples: opts.extremes ?? 8,
    bootstrap: opts.bootstrap ?? 0,
    seed: opts.seed ?? 0,
  };
  const metrics = opts.metrics ?? [];
  if (multi) checkMetrics(metrics, runs.map((r) => r.results.dir));
  const sections: Section[] = buildSections(multi ? runs : runs[0].results, plugins, context);
  const pageImages: PageImage[] = [];
  const plots = sections.flatMap((s) => s.plots.map((p) => ({ id: p.id, spec: p.spec })));
  const title = opts.title ??
    (multi ? `infotap report: ${runs.length} runs` : `infotap report: ${runs[0].results.dir}`);
  const body: string[] = [];
  body.push(`<h1>${esc(title)}</h1>`);
  if (opts.live) body.push(`<p id="live">Live: update ${opts.live.version}.</p>`);
  if (multi) {
    const part = runsPart(runs, plugins, metrics);
    body.push(part.html);
    plots.unshift(...part.plots.map((p) => ({ id: p.id, spec: p.spec })));
  } else {
    body.push(`<section id="run">${runFacts(runs[0].results, plugins)}</section>`);
  }
  const warnings = pageWarnings(runs, sections, plugins);
  if (warnings.length) {
    body.push(
      `<section id="warnings"><h2>Warnings (${warnings.length})</h2><ul>${
        warnings.map((w) => `<li>${esc(w)}</li>`).join("")
      }</ul></section>`,
    );
  }
  body.push(
    `<nav>${
      sections.map((s) => `<a href="#${esc(s.id)}">${esc(s.title)}</a>`).join("")
    }<a href="#tables">Tables</a></nav>`,
  );
  const tableNames = [...new Set(runs.flatMap((r) => Object.keys(r.results.tables)))];
  if (sections.every((s) => s.preview)) {
    body.push(
      `<p class="warn">No table in ${multi ? "these runs" : "this directory"} has a plot (tables: ${
        esc(tableNames.join(", ") || "none")
      }).</p>`,
    );
  }
  const summaries = runs.map((r) => ({ r, html: summaryTable(r.results, plugins, context) })).filter((x) => x.html);
  if (summaries.length) {
    body.push(
      `<section id="layer-summary"><h2>Layer summary</h2>${
        summaries.map(({ r, html }) => (multi ? html.replace("<h3>", `<h3>${esc(r.name)}: `) : html)).join("")
      }</section>`,
    );
  }
  for (const s of sections) {
    const warn = s.warnings?.length
      ? `<div class="warnings">${s.warnings.map((w) => `<div>${esc(w)}</div>`).join("")}</div>`
      : "";
    if (s.preview) {
      body.push(
        `<section id="${esc(s.id)}"><h2>${esc(s.title)}</h2><p>${esc(s.intro)}</p>${
          s.preview.rows.length ? htmlTable(s.preview.columns, s.preview.rows) : ""
        }</section>`,
      );
      continue;
    }
    const extra = s.samples ? await samplesHtml(s.samples, opts, pageImages) : "";
    body.push(
      `<section id="${esc(s.id)}"><h2>${esc(s.title)}</h2><p>${esc(s.intro)}</p>${warn}<div class="plots">${
        s.plots.map(plotDiv).join("")
      }</div>${extra}</section>`,
    );
  }
  const used = new Set(sections.flatMap((s) => s.tables));
  used.add(LAYER_SUMMARY);
  const tableRows = runs.flatMap(({ name, results }) =>
    Object.entries(results.tables).map(([t, x]) => [
      ...(multi ? [name] : []),
      t,
      x.rows.length,
      x.columns.join(", "),
      x.files.length > 3 ? `${x.files.length} files (${x.files[0]} ...)` : x.files.join(", "),
      used.has(t) ? "yes" : "no",
    ])
  );
  body.push(
    `<section id="tables"><h2>Tables</h2>${
      htmlTable([...(multi ? ["run"] : []), "table", "rows", "columns", "files", "plotted"], tableRows)
    }${
      runs.filter((r) => r.results.run).map((r) =>
        `<details><summary>run.json${multi ? ` of ${esc(r.name)}` : ""}</summary><pre>${
          esc(JSON.stringify(r.results.run, null, 2))
        }</pre></details>`
      ).join("")
    }</section>`,
  );
  return {
    title,
    content: body.join("\n"),
    data: { plots, images: pageImages, version: opts.live?.version ?? 0, ...(opts.live ? { live: opts.live } : {}) },
  };
}

/** Renders the page of one results directory, or of several runs overlaid (`ReportRun[]`, at least 2). */
export async function renderReport(input: ResultDirectory | ReportRun[], opts: ReportOptions = {}): Promise<string> {
  return htmlPage(await pageParts(input, opts));
}

/** The whole page around its parts: the inlined libraries, the content, the footer, the data and the script. */
export async function htmlPage(parts: PageParts): Promise<string> {
  const libs = await libraries();
  return [
    `<!doctype html>`,
    `<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">`,
    `<title>${esc(parts.title)}</title><style>${CSS}</style>`,
    `<script>${CAPTURE}</script>`,
    ...libs.scripts.map((s) => `<script>${s}</script>`),
    `</head><body>`,
    `<div id="content">${parts.content}</div>`,
    `<footer><p class="note">Made by infotap ${esc(VERSION)} with ${esc(libs.versions.join(", "))} (inlined).</p>` +
    `<details><summary>Licences of the inlined libraries</summary>${libs.licences}</details></footer>`,
    `<pre id="report-status"></pre>`,
    `<script type="application/json" id="report-data">${scriptJson(parts.data)}</script>`,
    `<script>${MAIN}</script>`,
    `</body></html>`,
    ``,
  ].join("\n");
}
