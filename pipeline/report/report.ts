/**
 * The HTML report of a results directory: one self-contained page (no network access needed) with a header of
 * `run.json`'s facts, the sections the estimator plugins declare for the tables the directory holds (see
 * `_sections.ts`; a table no plugin declares is previewed) and the layer summary.
 *
 * Vega, Vega-Lite and vega-embed (BSD-3-Clause, which allows redistribution with the copyright notice) are
 * inlined from `node_modules` as their minified builds; their licence texts, and those of the packages they
 * bundle, are in the page's "Licences" section. The data are embedded as JSON. When all plots have been drawn the
 * page sets `window.__reportStatus = {done, plots: [{id, marks, width, height, error?}], images, errors}` (also
 * written as JSON into `#report-status`): `marks` counts the drawn data marks of each plot, `width` and `height`
 * are its SVG's size, `images` counts the sample images drawn, and `errors` collects console errors and warnings,
 * uncaught errors and unhandled rejections.
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
import { buildSections, LAYER_SUMMARY, type Section } from "./_sections.ts";
import { type ImageSet, loadImages } from "./_images.ts";
import type { ResultDirectory } from "./results.ts";
import type { EstimatorPlugin } from "../core/plugin.ts";
import type { SampleGroup } from "../core/report_contract.ts";
import { VERSION } from "../core/version.ts";

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
  /** Page title (default: the directory). */
  title?: string;
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

/** The inlined libraries' builds, and the licences of them and of every package they depend on. */
async function libraries(): Promise<{ scripts: string[]; versions: string[]; licences: string }> {
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

function htmlTable(head: string[], rows: unknown[][]): string {
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${
    rows.map((r) => `<tr>${r.map((c) => `<td>${esc(fmt(c))}</td>`).join("")}</tr>`).join("")
  }</tbody></table>`;
}

/** The header: run.json's facts. */
function header(results: ResultDirectory): string {
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
  const ests = run.estimators as { name: string; options: unknown; summary: unknown }[] | undefined;
  if (ests?.length) {
    parts.push(
      `<h3>Estimators</h3>` +
        htmlTable(
          ["estimator", "options", "summary"],
          ests.map((e) => [
            e.name,
            Object.entries((e.options ?? {}) as Record<string, unknown>).map(([k, v]) => `${k}=${fmt(v)}`).join(", "),
            e.summary,
          ]),
        ),
    );
  }
  return parts.join("\n");
}

/** The layer summary as a table (last step of each layer). */
function summaryTable(results: ResultDirectory): string {
  const t = results.tables[LAYER_SUMMARY];
  if (!t?.rows.length) return "";
  const cols = t.columns.filter((c) => c !== "step" || t.rows.some((r) => r.step !== null));
  const steps = t.rows.map((r) => r.step).filter((s): s is number => typeof s === "number");
  const last = steps.length ? Math.max(...steps) : null;
  const rows = t.rows.filter((r) => (last === null ? true : r.step === last));
  return `<section id="layer-summary"><h2>Layer summary${last !== null ? ` at step ${last}` : ""}</h2>${
    htmlTable(cols, rows.map((r) => cols.map((c) => r[c])))
  }</section>`;
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
    const figs = g.samples.map(({ id, lines }) => {
      const img = images?.images.get(id);
      let pic = "";
      if (img) {
        const cid = `img-${pageImages.length}`;
        pageImages.push({ id: cid, width: img.width, height: img.height, rgba: img.rgba });
        pic = `<canvas id="${cid}" width="${img.width}" height="${img.height}"></canvas>`;
      } else if (images) pic = `<div class="noimg">no image</div>`;
      const label = img?.label !== null && img?.label !== undefined ? `, label ${img.label}` : "";
      return `<figure>${pic}<figcaption>sample ${esc(id)}${esc(label)}${
        lines.map(([name, value]) => `<br>${esc(name)} ${esc(fmt(value))}`).join("")
      }</figcaption></figure>`;
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

const CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 16px 40px;color:#222}
h1{font-size:22px;margin:16px 0 4px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:2px;margin-top:28px}
h3{font-size:15px;margin:14px 0 4px}.note{color:#555;font-size:12px;margin:2px 0 6px}
.ok{color:#0a6b2a;font-weight:600}.bad{color:#b00020;font-weight:700}.warn{color:#8a5a00}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;font-size:12px}dt{font-weight:600}dd{margin:0}
table{border-collapse:collapse;font-size:12px;margin:4px 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}
.plots{display:flex;flex-wrap:wrap;gap:18px}.plot{min-width:300px}
.samples{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0;text-align:center;font-size:11px}
canvas{width:84px;height:84px;image-rendering:pixelated;border:1px solid #ccc;display:block;margin:0 auto}
.noimg{width:84px;height:84px;border:1px dashed #ccc;color:#999;line-height:84px}
nav a{margin-right:12px}pre{font-size:11px;white-space:pre-wrap}#report-status{display:none}`;

/** Runs first: collects console errors and warnings, uncaught errors and rejections. */
const CAPTURE = `window.__reportErrors=[];(()=>{const push=(s)=>window.__reportErrors.push(String(s));
const ce=console.error.bind(console),cw=console.warn.bind(console);
console.error=(...a)=>{push(a.map(String).join(" "));ce(...a)};
console.warn=(...a)=>{push("warning: "+a.map(String).join(" "));cw(...a)};
addEventListener("error",(e)=>push(e.message));
addEventListener("unhandledrejection",(e)=>push(e.reason&&e.reason.stack||e.reason))})();`;

/** Draws every plot and image, then sets window.__reportStatus. */
const MAIN = `(async()=>{
const data=JSON.parse(document.getElementById("report-data").textContent);
const status={done:false,plots:[],images:0,errors:window.__reportErrors};
const countMarks=(mark)=>{let n=0;const visit=(m)=>{if(!m||!m.items)return;
if(m.marktype!=="group"&&m.role==="mark")n+=m.items.length;
if(m.marktype==="group")for(const it of m.items)for(const c of (it.items||[]))visit(c)};visit(mark);return n};
for(const p of data.plots){const el=document.getElementById("plot-"+p.id);
try{const r=await vegaEmbed(el,p.spec,{renderer:"svg",actions:{export:true,source:false,compiled:false,editor:false}});
const svg=el.querySelector("svg");const box=svg?svg.getBoundingClientRect():{width:0,height:0};
status.plots.push({id:p.id,marks:countMarks(r.view.scenegraph().root),width:box.width,height:box.height})}
catch(e){status.plots.push({id:p.id,marks:0,error:String(e&&e.message||e)});console.error("plot "+p.id+": "+(e&&e.message||e))}}
for(const im of data.images){try{const c=document.getElementById(im.id);const b=atob(im.rgba);
const px=new Uint8ClampedArray(b.length);for(let i=0;i<b.length;i++)px[i]=b.charCodeAt(i);
c.getContext("2d").putImageData(new ImageData(px,im.width,im.height),0,0);status.images++}
catch(e){console.error("image "+im.id+": "+(e&&e.message||e))}}
status.done=true;window.__reportStatus=status;
document.getElementById("report-status").textContent=JSON.stringify(status);
document.documentElement.dataset.report=status.errors.length||status.plots.some((p)=>!p.marks)?"failed":"done";})();`;

/** Renders the page. */
export async function renderReport(results: ResultDirectory, opts: ReportOptions = {}): Promise<string> {
  const sections: Section[] = buildSections(results, opts.plugins, { samples: opts.extremes ?? 8 });
  const libs = await libraries();
  const pageImages: PageImage[] = [];
  const plots = sections.flatMap((s) => s.plots.map((p) => ({ id: p.id, spec: p.spec })));
  const used = new Set(sections.flatMap((s) => s.tables));
  if (results.tables[LAYER_SUMMARY]) used.add(LAYER_SUMMARY);
  const title = opts.title ?? `infotap report: ${results.dir}`;
  const body: string[] = [];
  body.push(`<h1>${esc(title)}</h1>`);
  body.push(`<section id="run">${header(results)}</section>`);
  body.push(
    `<nav>${
      sections.map((s) => `<a href="#${esc(s.id)}">${esc(s.title)}</a>`).join("")
    }<a href="#tables">Tables</a></nav>`,
  );
  if (sections.every((s) => s.preview)) {
    body.push(
      `<p class="warn">No table in this directory has a plot (tables: ${
        esc(Object.keys(results.tables).join(", ") || "none")
      }).</p>`,
    );
  }
  body.push(summaryTable(results));
  for (const s of sections) {
    const plotsHtml = s.plots.map((p) =>
      `<div class="plot"><h3>${esc(p.title)}</h3><p class="note">${esc(p.note)}</p><div id="plot-${
        esc(p.id)
      }" class="vis"></div></div>`
    ).join("");
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
      `<section id="${esc(s.id)}"><h2>${esc(s.title)}</h2><p>${
        esc(s.intro)
      }</p><div class="plots">${plotsHtml}</div>${extra}</section>`,
    );
  }
  const tableRows = Object.entries(results.tables).map(([name, t]) => [
    name,
    t.rows.length,
    t.columns.join(", "),
    t.files.length > 3 ? `${t.files.length} files (${t.files[0]} ...)` : t.files.join(", "),
    used.has(name) ? "yes" : "no",
  ]);
  body.push(
    `<section id="tables"><h2>Tables</h2>${htmlTable(["table", "rows", "columns", "files", "plotted"], tableRows)}${
      results.run
        ? `<details><summary>run.json</summary><pre>${esc(JSON.stringify(results.run, null, 2))}</pre></details>`
        : ""
    }</section>`,
  );
  body.push(
    `<footer><p class="note">Made by infotap ${esc(VERSION)} with ${esc(libs.versions.join(", "))} (inlined).</p>` +
      `<details><summary>Licences of the inlined libraries</summary>${libs.licences}</details></footer>`,
  );
  body.push(`<pre id="report-status"></pre>`);
  const data = { plots, images: pageImages };
  return [
    `<!doctype html>`,
    `<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">`,
    `<title>${esc(title)}</title><style>${CSS}</style>`,
    `<script>${CAPTURE}</script>`,
    ...libs.scripts.map((s) => `<script>${s}</script>`),
    `</head><body>`,
    ...body,
    `<script type="application/json" id="report-data">${scriptJson(data)}</script>`,
    `<script>${MAIN}</script>`,
    `</body></html>`,
    ``,
  ].join("\n");
}
