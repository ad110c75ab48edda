import assert from "node:assert/strict";
import { compareRuns, formatComparison, runMeasures } from "./compare.ts";
import { main } from "../cli/compare.ts";
import { parseMetric } from "../cli/_args.ts";
import { tableFromColumns } from "../core/table.ts";
import { writeTables } from "../core/write.ts";
import { makeRecordBatch, writeBatches } from "../producers/produce.ts";
import { analyze } from "../analyze/run.ts";
import { Rng } from "../../tests/_util.ts";
import rowCount from "../../tests/_report_plugin.ts";
import { builtinPlugins } from "../../plugins/mod.ts";
import { definePlugin } from "../core/plugin.ts";

/** Writes neuron_entropy / neuron_mi tables with the given values (layer fc1 then fc2; one step unless given). */
async function writeRun(
  dir: string,
  ent: { layer: string; h: number; step?: bigint }[],
  mi: { a: string; b: string; mi: number; step?: bigint }[],
  format: "parquet" | "arrow" = "parquet",
) {
  const tables: Record<string, ReturnType<typeof tableFromColumns>> = {};
  if (ent.length) {
    tables.neuron_entropy = tableFromColumns([
      { name: "layer", type: "utf8", values: ent.map((e) => e.layer) },
      { name: "neuron", type: "int32", values: ent.map((_, i) => i) },
      { name: "entropy", type: "float64", values: ent.map((e) => e.h) },
      { name: "step", type: "int64", values: ent.map((e) => e.step ?? null) },
    ]);
  }
  if (mi.length) {
    tables.neuron_mi = tableFromColumns([
      { name: "layer_a", type: "utf8", values: mi.map((e) => e.a) },
      { name: "neuron_a", type: "int32", values: mi.map(() => 0) },
      { name: "layer_b", type: "utf8", values: mi.map((e) => e.b) },
      { name: "neuron_b", type: "int32", values: mi.map(() => 1) },
      { name: "mi", type: "float64", values: mi.map((e) => e.mi) },
      { name: "step", type: "int64", values: mi.map((e) => e.step ?? null) },
    ]);
  }
  await writeTables(dir, tables, format);
}

Deno.test("compare: per-layer and overall means, ranks, Kendall tau against a metric", async () => {
  const root = await Deno.makeTempDir();
  // Run i: fc1 entropies [i, i+2], fc2 entropy [10 - i]; MI within fc1 = 3 - i, cross-layer pair = 100.
  const dirs = [0, 1, 2].map((i) => `${root}/r${i}`);
  for (let i = 0; i < 3; i++) {
    await writeRun(
      dirs[i],
      [{ layer: "fc1", h: i }, { layer: "fc1", h: i + 2 }, { layer: "fc2", h: 10 - 3 * i }],
      [{ a: "fc1", b: "fc1", mi: 3 - i }, { a: "fc1", b: "fc2", mi: 100 }],
      i === 1 ? "arrow" : "parquet",
    );
  }
  const m = await runMeasures(dirs[1]);
  assert.equal(m.values.get("entropy:fc1"), 2); // (1 + 3) / 2
  assert.equal(m.values.get("entropy:fc2"), 7);
  assert.equal(m.values.get("entropy:all"), (1 + 3 + 7) / 3);
  assert.equal(m.values.get("mi:fc1"), 2);
  assert.equal(m.values.get("mi:all"), (2 + 100) / 2);
  assert.equal(m.values.has("mi:fc2"), false); // no pair inside fc2
  const acc = new Map([[dirs[0], 0.5], [dirs[1], 0.7], [dirs[2], 0.6]]);
  const c = await compareRuns(dirs, [{ name: "acc", values: acc }]);
  assert.deepEqual(c.measures, ["entropy:all", "mi:all", "entropy:fc1", "entropy:fc2", "mi:fc1"]);
  const r = (k: string) => c.rankings.find((x) => x.measure === k)!;
  assert.deepEqual(r("entropy:fc1").order, [dirs[2], dirs[1], dirs[0]]);
  assert.deepEqual(r("mi:fc1").order, [dirs[0], dirs[1], dirs[2]]);
  // entropy:fc1 = [1, 2, 3] vs acc [0.5, 0.7, 0.6]: pairs (0,1)+ (0,2)+ (1,2)- -> tau = 1/3.
  assert.ok(Math.abs(r("entropy:fc1").tau.get("acc")! - 1 / 3) < 1e-12);
  assert.ok(Math.abs(r("mi:fc1").tau.get("acc")! + 1 / 3) < 1e-12);
  const text = formatComparison(c);
  assert.match(text, /tau vs acc/);
  assert.match(text, /\| entropy:fc1 \| 0\.333 \|/);
});

Deno.test("compare: --by-step tables are read at their last step", async () => {
  const root = await Deno.makeTempDir();
  await writeRun(`${root}/a`, [{ layer: "fc1", h: 9, step: 0n }, { layer: "fc1", h: 1, step: 5n }], []);
  await writeRun(`${root}/b`, [{ layer: "fc1", h: 2, step: 5n }], []);
  const c = await compareRuns([`${root}/a`, `${root}/b`]);
  assert.equal(c.runs[0].values.get("entropy:all"), 1);
  assert.deepEqual(c.rankings[0].order, [`${root}/b`, `${root}/a`]);
});

Deno.test("compare: on analyze() results, more correlated neurons rank higher in MI", async () => {
  const root = await Deno.makeTempDir();
  const rng = new Rng(3);
  const dirs: string[] = [];
  for (const noise of [0.1, 1, 10]) {
    const n = 300, v = new Float32Array(n * 3);
    for (let s = 0; s < n; s++) {
      const z = rng.normal();
      for (let j = 0; j < 3; j++) v[s * 3 + j] = z + noise * rng.normal();
    }
    const dump = `${root}/d${noise}.arrows`, out = `${root}/noise${noise}`;
    await writeBatches(dump, [makeRecordBatch({
      kind: "activations/v1",
      sampleId: BigInt64Array.from({ length: n }, (_, i) => BigInt(i)),
      tensors: [{ name: "fc1", width: 3, values: v }],
    })]);
    const r = await analyze({ inputs: [dump], estimators: ["entropy", "mi"], out, progress: false });
    assert.ok(r.complete);
    dirs.push(out);
  }
  const c = await compareRuns(dirs, [{ name: "noise", values: new Map(dirs.map((d, i) => [d, [0.1, 1, 10][i]])) }]);
  const mi = c.rankings.find((x) => x.measure === "mi:all")!;
  assert.deepEqual(mi.order, dirs);
  assert.equal(mi.tau.get("noise"), -1);
});

Deno.test("compare: errors for missing directories, missing tables, stray metrics; CLI exit codes", async () => {
  const root = await Deno.makeTempDir();
  await writeRun(`${root}/a`, [{ layer: "fc1", h: 1 }], []);
  await writeRun(`${root}/m`, [], [{ a: "fc1", b: "fc1", mi: 1 }]);
  await Deno.mkdir(`${root}/empty`);
  await assert.rejects(compareRuns([`${root}/a`, `${root}/empty`]), /holds no result table/);
  await Deno.writeTextFile(`${root}/empty/run.json`, "{}");
  await assert.rejects(compareRuns([`${root}/a`, `${root}/nope`]), /directory does not exist/);
  await assert.rejects(
    compareRuns([`${root}/a`, `${root}/empty`]),
    /no neuron_entropy, neuron_mi, label_mi, fisher or unique_information table/,
  );
  await assert.rejects(compareRuns([`${root}/a`, `${root}/m`]), /share no measure/);
  await assert.rejects(compareRuns([`${root}/a`]), /at least 2 results directories/);
  await assert.rejects(
    compareRuns([`${root}/a`, `${root}/a`], [{ name: "acc", values: new Map([[`${root}/x`, 1]]) }]),
    /not among the compared runs/,
  );
  await Deno.writeTextFile(`${root}/empty/neuron_entropy.parquet`, "not parquet");
  await assert.rejects(compareRuns([`${root}/a`, `${root}/empty`]), /not valid Parquet/);
  assert.deepEqual(parseMetric("acc=runs/a:b/:0.5"), { name: "acc", dir: "runs/a:b", value: 0.5 });
  assert.throws(() => parseMetric("acc=runs/a"), /NAME=DIR:VALUE/);
  assert.throws(() => parseMetric("acc=runs/a:x"), /not a finite number/);
  const quiet = console.error, log = console.log;
  const said: string[] = [];
  console.error = (s: string) => said.push(s);
  console.log = (s: string) => said.push(s);
  try {
    assert.equal(await main([`${root}/a`, `${root}/nope`]), 1);
    assert.equal(await main([`${root}/a`, `${root}/a`, "--metric", "acc"]), 2);
    assert.equal(await main([`${root}/a`, `${root}/a/`, "--metric", `acc=${root}/a:1`]), 0);
    assert.equal(await main(["--bogus"]), 2);
  } finally {
    console.error = quiet;
    console.log = log;
  }
  assert.match(said[0], /^compare: .*does not exist/);
});

Deno.test("compare: a plugin's declared measure is ranked, with its direction; --plugin on the command line", async () => {
  const root = await Deno.makeTempDir();
  const dirs = [0, 1, 2].map((i) => `${root}/r${i}`);
  for (let i = 0; i < 3; i++) {
    await writeTables(dirs[i], {
      row_count: tableFromColumns([
        { name: "layer", type: "utf8", values: ["fc1", "fc2"] },
        { name: "rows", type: "int64", values: [BigInt(10 * i), 4n] },
      ]),
    }, "parquet");
  }
  // Without the plugin no measure reads row_count: the error names the built-ins' tables.
  await assert.rejects(compareRuns(dirs), /holds no neuron_entropy, neuron_mi, .* table/);
  const plugins = [...builtinPlugins, rowCount];
  const c = await compareRuns(dirs, [{ name: "acc", values: new Map(dirs.map((d, i) => [d, 3 - i])) }], plugins);
  assert.deepEqual(c.measures, ["rows:all", "rows:fc1", "rows:fc2"]);
  assert.deepEqual(c.runs.map((r) => r.values.get("rows:all")), [2, 7, 12]);
  const r = (k: string) => c.rankings.find((x) => x.measure === k)!;
  assert.deepEqual(r("rows:fc1").order, [dirs[2], dirs[1], dirs[0]]);
  assert.equal(r("rows:fc1").tau.get("acc"), -1);
  assert.ok(Number.isNaN(r("rows:fc2").tau.get("acc"))); // ties only: tau-b is undefined
  assert.match(
    formatComparison(c),
    /\nRank 1 = highest\. Kendall tau-b across runs\. Each measure at the last step:\n- rows: mean of row_count\.rows over layers \(rows\); higher is better$/,
  );
  await assert.rejects(
    compareRuns(dirs, [], [...plugins, definePlugin({ ...rowCount, name: "twin" })]),
    /^PluginError: \[twin\] Cannot rank by a measure as plugin 'row-count' declares its name: current value is 'rows'$/,
  );
  const log = console.log, said: string[] = [];
  console.log = (s: string) => said.push(s);
  try {
    const plugin = new URL("../../tests/_report_plugin.ts", import.meta.url).pathname;
    assert.equal(await main([...dirs, "--plugin", plugin]), 0);
  } finally {
    console.log = log;
  }
  assert.match(said[0], /\| run \| rows:all \(rank\) \| rows:fc1 \(rank\) \| rows:fc2 \(rank\) \|/);
});

Deno.test("compare: Fisher and unique-information folders are ranked by their declared measures", async () => {
  const root = await Deno.makeTempDir();
  const dirs = [0, 1, 2].map((i) => `${root}/r${i}`);
  // Run i: layer traces fc1 = 1 + i and fc2 = 10 - i at the last step (step 5; step 0 differs), parameter and
  // total rows that the measure must leave out; SI of 4 samples = (i + 1) * [1, 2, 3, 4], F-SI = 10 - SI.
  for (let i = 0; i < 3; i++) {
    const rows = [
      ["layer", "fc1", 1 + i, 5n],
      ["layer", "fc2", 10 - i, 5n],
      ["layer", "fc1", 100, 0n],
      ["parameter", "fc1.weight", 1000, 5n],
      ["total", null, 11, 5n],
    ] as const;
    const si = [1, 2, 3, 4].map((v) => (i + 1) * v);
    await writeTables(dirs[i], {
      fisher: tableFromColumns([
        { name: "level", type: "utf8", values: rows.map((r) => r[0]) },
        { name: "parameter", type: "utf8", values: rows.map((r) => r[1]) },
        { name: "trace", type: "float64", values: rows.map((r) => r[2]) },
        { name: "step", type: "int64", values: rows.map((r) => r[3]) },
      ]),
      unique_information: tableFromColumns([
        { name: "sample_id", type: "int64", values: si.map((_, k) => BigInt(k)) },
        { name: "si_weights", type: "float64", values: si },
        { name: "si_function", type: "float64", values: si.map((v) => 10 - v) },
      ]),
    }, "parquet");
  }
  const c = await compareRuns(dirs, [{ name: "acc", values: new Map(dirs.map((d, i) => [d, i])) }]);
  assert.deepEqual(c.measures, ["f-si:all", "fisher:all", "si:all", "fisher:fc1", "fisher:fc2"]);
  const v = (k: string) => c.runs.map((r) => r.values.get(k));
  assert.deepEqual(v("fisher:fc1"), [1, 2, 3]);
  assert.deepEqual(v("fisher:fc2"), [10, 9, 8]);
  assert.deepEqual(v("fisher:all"), [5.5, 5.5, 5.5]);
  assert.deepEqual(v("si:all"), [2.5, 5, 7.5]);
  assert.deepEqual(v("f-si:all"), [7.5, 5, 2.5]);
  const r = (k: string) => c.rankings.find((x) => x.measure === k)!;
  assert.equal(r("si:all").tau.get("acc"), 1);
  assert.equal(r("fisher:fc2").tau.get("acc"), -1);
  const text = formatComparison(c);
  assert.match(
    text,
    /- fisher: mean of fisher\.trace over layers \(rows with level = layer\) \(squared gradient units\)/,
  );
  assert.match(text, /- si: mean of unique_information\.si_weights over training samples/);
});

Deno.test("compare: a metric given for some of the runs only is refused with a one-line error (CLI exit 1)", async () => {
  const root = await Deno.makeTempDir();
  const dirs = [0, 1, 2, 3, 4].map((i) => `${root}/r${i}`);
  for (let i = 0; i < dirs.length; i++) await writeRun(dirs[i], [{ layer: "fc1", h: i }], []);
  await assert.rejects(
    compareRuns(dirs, [{ name: "acc", values: new Map([[dirs[2], 0.9]]) }]),
    (e: Error) => {
      assert.equal(
        e.message,
        `Cannot use metric 'acc' as it has no value for 4 of the 5 runs (give --metric acc=DIR:VALUE for each run): current value is missing for ${
          JSON.stringify([dirs[0], dirs[1], dirs[3], dirs[4]])
        }`,
      );
      return true;
    },
  );
  const err = console.error, said: string[] = [];
  console.error = (s: string) => said.push(s);
  try {
    assert.equal(await main([...dirs, "--metric", `acc=${dirs[2]}:0.9`]), 1);
  } finally {
    console.error = err;
  }
  assert.equal(said.length, 1);
  assert.match(said[0], /^compare: error: Cannot use metric 'acc' as it has no value for 4 of the 5 runs/);
});
