import assert from "node:assert/strict";
import { readResults, type ResultDirectory } from "./results.ts";
import { main } from "../cli/report.ts";
import { renderReport } from "./report.ts";
import { buildSections } from "./_sections.ts";
import { MI_MAX_SIDE } from "../../plugins/mi/report.ts";
import { clusterOrder } from "./cluster.ts";
import { extremeSamples } from "../../plugins/unique_info/report.ts";
import { imageShape, loadImages, toRgba } from "./_images.ts";
import { InputError } from "../../schemas/errors.ts";
import { tableFromColumns } from "../core/table.ts";
import { atomicWrite, toParquet, writeTables } from "../core/write.ts";
import { fullResults, imageDump, manyStepsResults, siTable } from "../../tests/_report_fixture.ts";
import { findChromium, withChromium } from "../../tests/_chromium.ts";
import { serve } from "../serve/serve.ts";
import { connectProducer } from "../producers/connect.ts";
import { OPTIONS, stepBatch, waitFor } from "../../tests/_live.ts";
import rowCount from "../../tests/_report_plugin.ts";
import { builtinPlugins } from "../../plugins/mod.ts";
import { definePlugin, PluginError } from "../core/plugin.ts";

/** Runs the CLI, returning its exit code and what it wrote to stderr. */
async function cli(argv: string[]): Promise<{ code: number; err: string[] }> {
  const err: string[] = [];
  const orig = console.error, origLog = console.log;
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  console.log = () => {};
  try {
    return { code: await main(argv), err };
  } finally {
    console.error = orig;
    console.log = origLog;
  }
}

/** The page's embedded data: the plots' Vega-Lite specs and the images. */
const reportData = (html: string) =>
  JSON.parse(/<script type="application\/json" id="report-data">([^<]*)<\/script>/.exec(html)![1]);

const entropyTable = (layer: string, n: number, step: bigint) =>
  tableFromColumns([
    { name: "layer", type: "utf8", values: Array(n).fill(layer) },
    { name: "neuron", type: "int32", values: Array.from({ length: n }, (_, i) => i) },
    { name: "entropy", type: "float64", values: Array.from({ length: n }, (_, i) => i / 10) },
    { name: "step", type: "int64", values: Array(n).fill(step) },
  ]);

Deno.test("readResults: final Parquet and Arrow files, and live parts in window order when no final file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Live parts (serve): windows 2 and 10 (numeric, not lexical, order), plus a stale temporary file.
    await Deno.mkdir(`${dir}/neuron_entropy`);
    await atomicWrite(`${dir}/neuron_entropy/part-00000010.parquet`, toParquet(entropyTable("fc1", 3, 10n)));
    await atomicWrite(`${dir}/neuron_entropy/part-00000002.parquet`, toParquet(entropyTable("fc1", 2, 2n)));
    await Deno.writeTextFile(`${dir}/neuron_entropy/part-00000011.parquet.tmp-1`, "half");
    // A final file beats its parts; Arrow is read when there is no Parquet.
    await Deno.mkdir(`${dir}/layer_summary`);
    await atomicWrite(`${dir}/layer_summary/part-00000000.parquet`, toParquet(entropyTable("old", 1, 0n)));
    await writeTables(dir, { layer_summary: entropyTable("final", 2, 5n) }, "parquet");
    await writeTables(dir, { label_mi: entropyTable("x", 4, 1n) }, "arrow");
    const r = await readResults(dir);
    assert.equal(r.run, null);
    assert.deepEqual(Object.keys(r.tables).sort(), ["label_mi", "layer_summary", "neuron_entropy"]);
    const ne = r.tables.neuron_entropy;
    assert.deepEqual(ne.files, ["neuron_entropy/part-00000002.parquet", "neuron_entropy/part-00000010.parquet"]);
    assert.deepEqual(ne.rows.map((x) => [x.step, x.neuron]), [[2, 0], [2, 1], [10, 0], [10, 1], [10, 2]]);
    assert.deepEqual(r.tables.layer_summary.rows.map((x) => x.layer), ["final", "final"]);
    assert.deepEqual(r.tables.label_mi.files, ["label_mi.arrow"]);
    assert.equal(r.tables.label_mi.rows.length, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readResults on a live serve directory: the parts while it runs, equal to the final tables' rows", async () => {
  const dir = await Deno.makeTempDir();
  const out = `${dir}/live`;
  const server = await serve({ listen: "127.0.0.1:0", out, options: OPTIONS, snapshotEvery: 2, log: () => {} });
  try {
    const p = await connectProducer({ port: server.port });
    for (const s of [0, 1, 2, 3, 4]) await p.write(stepBatch(s, Array.from({ length: 40 }, (_, i) => i)));
    await waitFor(() => server.snapshots >= 2, 10_000, "two snapshots");
    const mid = await readResults(out);
    assert.equal(mid.run, null);
    assert.deepEqual(mid.tables.neuron_entropy.files, [
      "neuron_entropy/part-00000000.parquet",
      "neuron_entropy/part-00000001.parquet",
    ]);
    assert.deepEqual([...new Set(mid.tables.neuron_entropy.rows.map((r) => r.step))], [0, 1, 2, 3]);
    const page = await renderReport(mid);
    assert.match(page, /No run\.json in this directory/);
    await p.close();
    await server.stop();
    const end = await readResults(out);
    assert.equal(end.run?.complete, true);
    assert.deepEqual(end.tables.neuron_entropy.files, ["neuron_entropy.parquet"]);
    const key = (r: Record<string, unknown>) => `${r.layer}/${r.neuron}/${r.step}`;
    const final = new Map(end.tables.neuron_entropy.rows.map((r) => [key(r), r]));
    for (const r of mid.tables.neuron_entropy.rows) assert.deepEqual(r, final.get(key(r)));
  } finally {
    await server.stop().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readResults: one-line errors for a missing, non-directory or empty path, and a bad table", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(() => readResults(`${dir}/nope`), (e: Error) => {
      assert.ok(e instanceof InputError);
      assert.equal(e.message, `Cannot read results as the directory does not exist: current value is '${dir}/nope'`);
      return true;
    });
    await Deno.writeTextFile(`${dir}/f`, "x");
    await assert.rejects(() => readResults(`${dir}/f`), /is not a directory: current value is/);
    await Deno.mkdir(`${dir}/empty`);
    await assert.rejects(() => readResults(`${dir}/empty`), /holds no result table .* and no run\.json/);
    await Deno.mkdir(`${dir}/bad`);
    await Deno.writeTextFile(`${dir}/bad/neuron_entropy.parquet`, "not parquet");
    await assert.rejects(() => readResults(`${dir}/bad`), /file '.*neuron_entropy\.parquet': Cannot read result table/);
    // The CLI prints them as one line, exit 1; usage errors exit 2.
    for (const argv of [[`${dir}/nope`], [`${dir}/empty`]]) {
      const { code, err } = await cli(argv);
      assert.equal(code, 1);
      assert.equal(err.length, 1);
      assert.match(err[0], /^infotap: error: Cannot (read results|make a report)/);
      assert.ok(!err[0].includes("\n"));
    }
    assert.equal((await cli([])).code, 2);
    assert.equal((await cli([`${dir}/nope`, `${dir}/nope2`])).code, 1); // several runs: each must exist
    assert.equal((await cli([dir, dir, "--name", "x"])).code, 2); // a --name for each run
    assert.equal((await cli([dir, "--bootstrap", "-1"])).code, 2);
    assert.equal((await cli([dir, "--samples", "0"])).code, 2);
    assert.equal((await cli([dir, "--bogus"])).code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("MI heatmap: neurons in clustered order, a layer wider than the cell limit averaged over blocks (brute-force means)", () => {
  // Two groups: MI 1 between neurons of the same parity, about 0 across; a little i*j so that no two pairs tie.
  const width = 100, g = Math.ceil(width / MI_MAX_SIDE); // 3 neurons per cell, 34 cells
  const mi = (i: number, j: number) => (i % 2 === j % 2 ? 1 : 0) + i * j * 1e-7;
  const rows = [];
  for (let i = 0; i < width; i++) {
    for (let j = i + 1; j < width; j++) {
      rows.push({ layer_a: "h", neuron_a: i, layer_b: "h", neuron_b: j, mi: mi(i, j), estimator: "ksg", step: null });
    }
  }
  rows.push({ layer_a: "h", neuron_a: 0, layer_b: "o", neuron_b: 0, mi: 5, estimator: "ksg", step: null });
  const sections = buildSections({
    dir: "x",
    run: null,
    tables: { neuron_mi: { columns: Object.keys(rows[0]), rows, files: [], metadata: {} } },
  });
  assert.equal(sections.length, 1);
  assert.match(sections[0].intro, /1 pairs across layers are not drawn/);
  const plot = sections[0].plots[0];
  assert.equal(plot.id, "mi-heatmap");
  assert.match(plot.note, /average-linkage \(UPGMA\).*seeded with 0.*h 3 x 3 neurons a cell/);
  // The order the page states: UPGMA on max MI - MI with seed 0. Its first 50 neurons are one parity group.
  const max = Math.max(...rows.filter((r) => r.layer_b === "h").map((r) => r.mi));
  const dist = new Float64Array(width * width);
  for (let i = 0; i < width; i++) {
    for (let j = 0; j < width; j++) {
      dist[i * width + j] = i === j ? 0 : max - mi(Math.min(i, j), Math.max(i, j));
    }
  }
  const { order } = clusterOrder(dist, width, 0);
  assert.equal(new Set(order.slice(0, 50).map((i) => i % 2)).size, 1);
  const cells = (plot.spec.data as { values: { a: number; a1: number; b: number; b1: number; mi: number }[] }).values;
  const side = Math.ceil(width / g);
  assert.equal(cells.length, side * side - 1); // the last block holds one neuron: no pair with itself
  for (const c of cells) {
    let sum = 0, n = 0;
    for (const i of order.slice(c.a, c.a1)) {
      for (const j of order.slice(c.b, c.b1)) {
        if (i === j) continue;
        sum += mi(Math.min(i, j), Math.max(i, j));
        n++;
      }
    }
    assert.equal(c.a1 - c.a <= g && c.b1 - c.b <= g, true);
    assert.ok(Math.abs(c.mi - sum / n) <= 1e-3 * (sum / n), `cell ${c.a},${c.b}: ${c.mi} vs ${sum / n}`);
  }
  // Blocks of one parity are MI 1 inside, about 0 across: the picture is two squares.
  assert.ok(cells.filter((c) => c.a1 <= 48 && c.b1 <= 48).every((c) => c.mi > 0.99));
  assert.ok(cells.filter((c) => c.a1 <= 48 && c.b >= 51).every((c) => c.mi < 0.01));
});

Deno.test("extreme samples, image shapes and pixels", async () => {
  const t = siTable(10);
  const rows = [];
  for (let i = 0; i < t.numRows; i++) {
    rows.push({ sample_id: Number(t.getChild("sample_id")!.get(i)), si_weights: t.getChild("si_weights")!.get(i) });
  }
  rows.push({ sample_id: 99, si_weights: null });
  const { most, least } = extremeSamples({ columns: [], rows, files: [], metadata: {} }, 3);
  assert.deepEqual(most.map((r) => r.sample_id), [0, 1, 2]);
  assert.deepEqual(least.map((r) => r.sample_id), [9, 8, 7]);
  assert.deepEqual(extremeSamples({ columns: [], rows: rows.slice(0, 3), files: [], metadata: {} }, 8).most.length, 1);
  assert.deepEqual(imageShape(784), [28, 1]);
  assert.deepEqual(imageShape(2 * 784), [28, 2]);
  assert.deepEqual(imageShape(3 * 1024), [32, 3]);
  assert.equal(imageShape(10), null);
  // Grey: scaled by the image's min and max; two channels: red, green, blue 0.
  assert.deepEqual([...toRgba(new Float32Array([2, 4, 3, 2]), 2, 1)], [
    0,
    0,
    0,
    255,
    255,
    255,
    255,
    255,
    128,
    128,
    128,
    255,
    0,
    0,
    0,
    255,
  ]);
  assert.deepEqual([...toRgba(new Float32Array([0, 1, 1, 0, 0, 0, 1, 1]), 2, 2)], [
    0,
    255,
    0,
    255,
    255,
    0,
    0,
    255,
    0,
    0,
    0,
    255,
    255,
    255,
    0,
    255,
  ]);
  const dir = await Deno.makeTempDir();
  try {
    await imageDump(`${dir}/img.arrows`, 5);
    const set = await loadImages(`${dir}/img.arrows`, new Set(["1", "3", "42"]));
    assert.equal(set.column, "input");
    assert.equal(set.shape, "28x28");
    assert.deepEqual([...set.images.keys()].sort(), ["1", "3"]);
    const px = Uint8Array.from(atob(set.images.get("3")!.rgba), (c) => c.charCodeAt(0));
    // Sample 3 is a vertical bar at x = 3: pixel (y=5, x=3) white, (y=5, x=4) black.
    assert.equal(px[(5 * 28 + 3) * 4], 255);
    assert.equal(px[(5 * 28 + 4) * 4], 0);
    assert.equal(set.images.get("3")!.label, 3);
    await assert.rejects(
      () => loadImages(`${dir}/img.arrows`, new Set(["1"]), "nope"),
      /no such column \(has: input:784\)/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("renderReport: self-contained (no external URL loaded), data embedded as JSON, a page without run.json", async () => {
  const html = await renderReport({
    dir: "d</script>",
    run: null,
    tables: {
      neuron_entropy: {
        columns: ["layer", "neuron", "entropy", "step"],
        rows: [{ layer: "a</script><b>", neuron: 0, entropy: 1, step: null }],
        files: [],
        metadata: {},
      },
    },
  });
  assert.match(html, /No run\.json in this directory/);
  assert.equal(html.match(/<\/script>/g)!.length, html.match(/<script/g)!.length);
  assert.ok(!/<script[^>]+src=|<link[^>]+href=/.test(html), "no external scripts or stylesheets");
  const data = reportData(html);
  assert.deepEqual(data.plots.map((p: { id: string }) => p.id), ["entropy-hist"]);
  assert.equal(data.plots[0].spec.data.values[0].layer, "a</script><b>");
});

/** A table read back, of the given rows. */
const table = (rows: Record<string, number | string | null>[]) => ({
  columns: Object.keys(rows[0]),
  rows,
  files: [],
  metadata: {},
});

/** Degenerate tables: no steps, one value, NaN only, zeros on log-scale candidates, one SI measure. */
function degenerate(): ResultDirectory {
  return {
    dir: "odd",
    run: { complete: true, layers: [{ name: "b", width: 1 }, { name: "a", width: 2 }] },
    tables: {
      neuron_entropy: table([
        { layer: "a", neuron: 0, entropy: 2, step: null },
        { layer: "a", neuron: 1, entropy: 2, step: null },
        { layer: "b", neuron: 0, entropy: NaN, step: null },
      ]),
      label_mi: table([{ layer: "a", neuron: 0, mi: null, step: null }]),
      neuron_mi: table([{
        layer_a: "a",
        neuron_a: 0,
        layer_b: "a",
        neuron_b: 1,
        mi: 0.5,
        estimator: "ksg",
        step: null,
      }]),
      fisher: table([
        { level: "layer", parameter: "a", trace: 0, kind: "true Fisher", step: null },
        { level: "layer", parameter: "b", trace: 3, kind: "true Fisher", step: null },
        { level: "total", parameter: null, trace: 3, kind: "true Fisher", step: null },
      ]),
      unique_information: table([
        { sample_id: 0, si_weights: 0, si_function: null },
        { sample_id: 1, si_weights: 1, si_function: null },
        { sample_id: 2, si_weights: 2, si_function: null },
      ]),
    },
  };
}

/** The plots of the page of `fullResults`, in order. */
const FULL_PLOTS = [
  "summary-entropy_mean",
  "summary-mi_mean",
  "entropy-hist",
  "mi-heatmap",
  "label-mi-hist",
  "label-mi-steps",
  "fisher-trace",
  "fisher-spectrum",
  "fisher-diag",
  "fisher-band",
  "si-hist",
  "fsi-hist",
  "si-scatter",
  "effective-info-layers",
  "effective-info-neurons",
];

const chromium = findChromium();
const inCI = Boolean(Deno.env.get("CI"));
if (!chromium && !inCI) {
  console.warn(
    "report_test: Chromium not found (apt-get install chromium, or set CHROMIUM): the browser test is skipped",
  );
}

Deno.test({
  name: "report pages render in headless Chromium: every plot drew marks, images drawn, no console errors",
  ignore: !chromium && !inCI,
  async fn() {
    if (!chromium) throw new Error("Chromium is required when CI is set (apt-get install -y chromium)");
    const dir = await Deno.makeTempDir();
    try {
      const { results, images } = await fullResults(dir);
      const steps = await manyStepsResults(dir);
      assert.equal((await cli([results, "--images", images, "--out", `${dir}/full.html`])).code, 0);
      assert.equal((await cli([steps])).code, 0);
      const size = (await Deno.stat(`${dir}/full.html`)).size;
      assert.ok(size < 1.5 * 2 ** 20, `page size ${size}`);
      const shots = Deno.env.get("INFOTAP_REPORT_SHOTS"); // a folder for screenshots, to look at them
      await Deno.writeTextFile(`${dir}/odd.html`, await renderReport(degenerate()));
      // A plugin's declared plot, and a table no plugin declares (previewed).
      const plugins = [...builtinPlugins, rowCount];
      await Deno.writeTextFile(`${dir}/plugin.html`, await renderReport(pluginResults(), { plugins }));
      const runs = await withChromium(chromium, async (b) => [
        await b.open(`${dir}/full.html`, { screenshot: shots && `${shots}/full.png` }),
        await b.open(`${steps}/report.html`, { screenshot: shots && `${shots}/steps.png` }),
        await b.open(`${dir}/odd.html`, { screenshot: shots && `${shots}/odd.png` }),
        await b.open(`${dir}/plugin.html`, { screenshot: shots && `${shots}/plugin.png` }),
      ]);
      const want = [
        FULL_PLOTS,
        ["summary-entropy_mean", "entropy-heatmap"],
        ["entropy-hist", "mi-heatmap", "fisher-trace", "si-hist"],
        ["rows-bar"],
      ];
      for (let k = 0; k < runs.length; k++) {
        const { status, problems } = runs[k];
        assert.ok(status?.done, `page ${k} never finished: ${JSON.stringify(runs[k])}`);
        assert.deepEqual(problems, []);
        assert.deepEqual(status.errors, []);
        assert.deepEqual(status.plots.map((p) => p.id), want[k]);
        for (const p of status.plots) {
          assert.equal(p.error, undefined);
          assert.ok(p.marks > 0 && p.width > 0 && p.height > 0, `plot ${p.id}: ${JSON.stringify(p)}`);
        }
      }
      assert.equal(runs[0].status!.images, 16);
      assert.equal(runs[1].status!.images, 0);
      assert.equal(runs[2].status!.images, 0);
      assert.equal(runs[3].status!.plots[0].marks, 2); // one bar per layer
      // One heatmap plot: fc1 (5 neurons: 5 x 5 cells less the diagonal) and fc2 (60 neurons averaged over 2 x 2
      // blocks: 30 x 30 cells).
      assert.equal(runs[0].status!.plots.find((p) => p.id === "mi-heatmap")!.marks, 20 + 900);
      // Full width: every plot's SVG spans most of the 1280 px page, and none is wider than it.
      for (const p of runs[0].status!.plots) {
        assert.ok(p.width <= 1240 && p.width > (p.id === "mi-heatmap" ? 850 : 1100), `${p.id}: ${p.width}`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// The results of a failed run (complete: false) still render, with the error in the header.
Deno.test("renderReport: an incomplete run shows its error", async () => {
  const t = entropyTable("fc1", 2, 0n);
  const html = await renderReport({
    dir: "d",
    run: { complete: false, error: "file 'a.arrows', batch 3: Cannot read <x>" },
    tables: {
      neuron_entropy: {
        columns: t.schema.fields.map((f) => f.name),
        rows: [{ layer: "fc1", neuron: 0, entropy: 1, step: 0 }],
        files: [],
        metadata: {},
      },
    },
  });
  assert.ok(html.includes("INCOMPLETE run: file 'a.arrows', batch 3: Cannot read &lt;x&gt;"));
});

/** A results directory with the test plugin's `row_count` table and a table no plugin declares. */
function pluginResults(): ResultDirectory {
  return {
    dir: "p",
    run: null,
    tables: {
      row_count: table([{ layer: "fc1", rows: 30 }, { layer: "fc2", rows: 12 }]),
      stray: table(Array.from({ length: 12 }, (_, i) => ({ k: `r${i}`, v: i / 3 }))),
    },
  };
}

Deno.test("report: a plugin's declared section is drawn; a table no plugin declares is previewed, not dropped", async () => {
  const results = pluginResults();
  const without = await renderReport(results);
  assert.deepEqual(reportData(without).plots, []);
  assert.match(without, /No table in this directory has a plot/);
  for (const name of ["row_count", "stray"]) {
    assert.match(without, new RegExp(`<section id="table-${name}"><h2>Table ${name}</h2>`));
  }
  // The preview: the first 10 of stray's 12 rows, values as the page formats them.
  assert.match(without, /12 row\(s\), 2 column\(s\)\. .*its first 10 rows as they are:/);
  assert.ok(
    without.includes("<td>r8</td><td>2.667</td></tr><tr><td>r9</td><td>3</td>") && !without.includes("<td>r10</td>"),
  );
  const html = await renderReport(results, { plugins: [...builtinPlugins, rowCount] });
  const data = reportData(html);
  assert.deepEqual(data.plots.map((p: { id: string }) => p.id), ["rows-bar"]);
  assert.deepEqual(data.plots[0].spec.data.values, results.tables.row_count.rows);
  assert.match(
    html,
    /<section id="rows"><h2>Rows per layer<\/h2><p>Rows counted per layer \(table row_count\), 2 layer/,
  );
  assert.ok(!html.includes('id="table-row_count"') && html.includes('id="table-stray"'));
  assert.ok(!html.includes("No table in this directory has a plot"));
  assert.match(html, /<tr><td>row_count<\/td><td>2<\/td><td>layer, rows<\/td><td><\/td><td>yes<\/td><\/tr>/);
  assert.match(html, /<tr><td>stray<\/td><td>12<\/td><td>k, v<\/td><td><\/td><td>no<\/td><\/tr>/);
  // A section id taken twice, or one of the page's own, is the plugin's error; so is a malformed declaration.
  const twin = definePlugin({ ...rowCount, name: "twin" });
  assert.throws(() => buildSections(results, [rowCount, twin]), (e: Error) => {
    assert.ok(e instanceof PluginError);
    assert.equal(
      e.message,
      "[twin] Cannot draw report section as its id is taken by plugin 'row-count': current value is 'rows'",
    );
    return true;
  });
  const tables = definePlugin({
    ...rowCount,
    report: { sections: [{ ...rowCount.report!.sections![0], id: "tables" }] },
  });
  assert.throws(() => buildSections(results, [tables]), /id is taken by the page: current value is 'tables'/);
  assert.throws(
    () => definePlugin({ ...rowCount, report: { sections: [{ ...rowCount.report!.sections![0], tables: [] }] } }),
    /^PluginError: \[row-count\] Cannot register plugin as report\.sections\[0\]\.tables is invalid .*: current value is \[\]$/,
  );
});

Deno.test("report CLI: --plugin draws the plugin's sections; a plugin that fails to load exits 2", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeTables(`${dir}/r`, {
      row_count: tableFromColumns([
        { name: "layer", type: "utf8", values: ["fc1"] },
        { name: "rows", type: "int64", values: [5n] },
      ]),
    }, "parquet");
    const plugin = new URL("../../tests/_report_plugin.ts", import.meta.url).pathname;
    assert.equal((await cli([`${dir}/r`, "--plugin", plugin, "--out", `${dir}/p.html`])).code, 0);
    const page = await Deno.readTextFile(`${dir}/p.html`);
    assert.deepEqual(reportData(page).plots.map((p: { id: string }) => p.id), ["rows-bar"]);
    const { code, err } = await cli([`${dir}/r`, "--plugin", `${dir}/nope.ts`]);
    assert.equal(code, 2);
    assert.match(err[0], /^infotap: error: Cannot load plugin as its module failed to import/);
    const images = await cli([`${dir}/r`, "--images", `${dir}/none.arrows`, "--out", `${dir}/q.html`]);
    assert.equal(images.code, 0);
    assert.deepEqual(images.err, [
      `infotap: warning: --images is not used as ${dir}/r has no unique_information table`,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "three runs on one page in headless Chromium: every plot drawn, runs overlaid, metrics beside the measures",
  ignore: !chromium && !inCI,
  async fn() {
    if (!chromium) throw new Error("Chromium is required when CI is set (apt-get install -y chromium)");
    const dir = await Deno.makeTempDir();
    try {
      const runs = [];
      for (const [k, name] of ["base", "noisier", "noisiest"].entries()) {
        runs.push((await fullResults(dir, name, k)).results);
      }
      const acc = [0.91, 0.85, 0.72];
      const metrics = runs.flatMap((r, i) => ["--metric", `acc=${r}:${acc[i]}`]);
      // A metric given for one run only is refused, as compare refuses it.
      const partial = await cli([...runs, "--metric", `acc=${runs[0]}:0.9`, "--out", `${dir}/x.html`]);
      assert.equal(partial.code, 1);
      assert.match(partial.err[0], /^infotap: error: Cannot use metric 'acc' as it has no value for 2 of the 3 runs/);
      const page = `${dir}/three.html`;
      assert.equal((await cli([...runs, ...metrics, "--bootstrap", "100", "--out", page])).code, 0);
      const html = await Deno.readTextFile(page);
      const data = reportData(html);
      // The overlays leave out the Fisher diagonal, F-SI's own histogram and the SI scatter.
      const want = ["metrics", ...FULL_PLOTS.filter((p) => !["fisher-diag", "fsi-hist", "si-scatter"].includes(p))];
      assert.deepEqual(data.plots.map((p: { id: string }) => p.id), want);
      // Overlays: every plot holds the three runs' data, coloured (or, for heatmaps, laid out in rows) by run.
      for (const p of data.plots as { id: string; spec: Record<string, unknown> }[]) {
        const text = JSON.stringify(p.spec);
        for (const name of ["base", "noisier", "noisiest"]) {
          assert.ok(text.includes(`"run":"${name}"`), `${p.id}: ${name}`);
        }
        assert.ok(text.includes('"field":"run"'), p.id);
      }
      assert.match(html, /<th>acc<\/th><th>entropy:all<\/th>/);
      assert.match(html, /acc vs entropy:all \(tau /);
      assert.match(html, /95% percentile bootstrap interval of the mean \(100 resamples/);
      const shots = Deno.env.get("INFOTAP_REPORT_SHOTS");
      const run = await withChromium(
        chromium,
        (b) => b.open(page, { width: 1400, screenshot: shots && `${shots}/three-runs.png` }),
      );
      assert.ok(run.status?.done, JSON.stringify(run));
      assert.deepEqual(run.problems, []);
      assert.deepEqual(run.status.errors, []);
      assert.deepEqual(run.status.plots.map((p) => p.id), want);
      for (const p of run.status.plots) {
        assert.ok(!p.error && p.marks > 0 && p.width > 800 && p.width <= 1360, `plot ${p.id}: ${JSON.stringify(p)}`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
