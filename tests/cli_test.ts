/**
 * End-to-end tests of `deno task analyze` (pipeline/cli/analyze.ts) as a subprocess: outputs equal the in-process
 * estimator (itself checked against a direct computation in plugins/entropy/entropy_test.ts), from files and stdin, in
 * Parquet (read back by DuckDB, an independent reader) and Arrow; and every bad-input case gives one clear line
 * naming file, batch and column, a non-zero exit and no stack trace.
 */
import assert from "node:assert/strict";
import * as arrow from "apache-arrow";
import { DuckDBInstance } from "@duckdb/node-api";
import { makeRecordBatch, writeBatches } from "../pipeline/producers/produce.ts";
import { entropyPlugin } from "../plugins/entropy/entropy.ts";
import { assertTablesClose, Rng, runPlugin, toBatch } from "./_util.ts";
import { cli } from "./_cli.ts";
import type { BatchInput } from "../pipeline/producers/produce.ts";

function inputs(seed: number, batches = 3, rows = 40, width = 6): BatchInput[] {
  const rng = new Rng(seed);
  return Array.from({ length: batches }, (_, b) => ({
    kind: "activations/v1" as const,
    sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(b * rows + i)),
    step: new BigInt64Array(rows).fill(BigInt(b)),
    label: Int32Array.from({ length: rows }, () => rng.int(3)),
    tensors: [
      { name: "fc1", width, values: Float32Array.from({ length: rows * width }, () => rng.normal()) },
      { name: "fc2", width: 2, values: Float32Array.from({ length: rows * 2 }, () => Math.max(0, rng.normal())) },
    ],
  }));
}

async function tmpDir() {
  return await Deno.makeTempDir({ prefix: "infotap-test-" });
}

function assertOneLineError(stderr: string, pattern: RegExp) {
  const lines = stderr.trim().split("\n");
  assert.match(lines[0], /^infotap: error: /, stderr);
  assert.match(lines[0], pattern, stderr);
  assert.ok(!/\n\s+at /.test(stderr), `no stack trace expected:\n${stderr}`);
}

async function readRunJson(dir: string) {
  return JSON.parse(await Deno.readTextFile(`${dir}/run.json`));
}

Deno.test("analyze: Parquet (read by DuckDB) and Arrow outputs equal the in-process estimator, from files and stdin", async () => {
  const dir = await tmpDir();
  try {
    const ins = inputs(1);
    await writeBatches(`${dir}/a.arrows`, ins.slice(0, 2).map(makeRecordBatch));
    await writeBatches(`${dir}/b.arrow`, ins.slice(2).map(makeRecordBatch)); // IPC file format
    for (const binning of ["global", "neuron"]) {
      const expected = (await runPlugin(entropyPlugin, { bins: 12, binning }, ins.map((x) => toBatch(x)))).results;
      const r = await cli([
        "--bins",
        "12",
        "--binning",
        binning,
        "--format",
        "both",
        "--out",
        `${dir}/out-${binning}`,
        `${dir}/a.arrows`,
        `${dir}/b.arrow`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const arrowTable = arrow.tableFromIPC(await Deno.readFile(`${dir}/out-${binning}/neuron_entropy.arrow`));
      assertTablesClose(expected.neuron_entropy, arrowTable, 0, 0, "arrow");
      // DuckDB reads the Parquet file independently
      const db = await DuckDBInstance.create(":memory:");
      const con = await db.connect();
      const rows = (await con.runAndReadAll(
        `select layer, neuron, entropy, samples, step from read_parquet('${dir}/out-${binning}/neuron_entropy.parquet') order by layer, neuron`,
      )).getRowObjects();
      assert.equal(rows.length, expected.neuron_entropy.numRows);
      for (let i = 0; i < rows.length; i++) {
        assert.equal(rows[i].layer, expected.neuron_entropy.getChild("layer")!.get(i));
        assert.equal(rows[i].neuron, expected.neuron_entropy.getChild("neuron")!.get(i));
        assert.ok(Math.abs((rows[i].entropy as number) - expected.neuron_entropy.getChild("entropy")!.get(i)) <= 1e-12);
        assert.equal(rows[i].samples, 120n);
        assert.equal(rows[i].step, null);
      }
      const types = (await con.runAndReadAll(
        `select typeof(layer), typeof(neuron), typeof(entropy), typeof(bins), typeof(samples), typeof(nonfinite), typeof(step) from read_parquet('${dir}/out-${binning}/neuron_entropy.parquet') limit 1`,
      )).getRows()[0];
      assert.deepEqual(types, ["VARCHAR", "INTEGER", "DOUBLE", "INTEGER", "BIGINT", "BIGINT", "BIGINT"]);
      const summary =
        (await con.runAndReadAll(`select count(*) from read_parquet('${dir}/out-${binning}/layer_summary.parquet')`))
          .getRows();
      assert.equal(summary[0][0], 2n);
      con.closeSync();
      const run = await readRunJson(`${dir}/out-${binning}`);
      assert.equal(run.complete, true);
      assert.deepEqual(run.inputs.map((i: { rows: number }) => i.rows), [80, 40]);
      assert.equal(run.tables.neuron_entropy.rows, 8);
      assert.ok(run.versions["apache-arrow"] && run.versions.deno && run.timings.total_s >= 0);
    }
    // standard input (spilled to a temporary file for the first pass), with --by-step
    const bytes = await Deno.readFile(`${dir}/a.arrows`);
    const r = await cli(["--bins", "12", "--by-step", "--format", "arrow", "--out", `${dir}/stdin`, "-"], bytes);
    assert.equal(r.code, 0, r.stderr);
    const expected = (await runPlugin(
      entropyPlugin,
      { bins: 12 },
      ins.slice(0, 2).map((x) => toBatch(x)),
      { byStep: true },
    )).results;
    assertTablesClose(
      expected.neuron_entropy,
      arrow.tableFromIPC(await Deno.readFile(`${dir}/stdin/neuron_entropy.arrow`)),
      0,
      0,
      "stdin",
    );
    assertTablesClose(
      expected.layer_summary,
      arrow.tableFromIPC(await Deno.readFile(`${dir}/stdin/layer_summary.arrow`)),
      0,
      0,
      "stdin",
    );
    // --range skips the first pass: stdin is then streamed, not spilled
    const r2 = await cli(
      ["--bins", "12", "--range", "-3,3", "--format", "arrow", "--out", `${dir}/stdin2`, "-"],
      bytes,
    );
    assert.equal(r2.code, 0, r2.stderr);
    const e2 = (await runPlugin(
      entropyPlugin,
      { bins: 12, range: [-3, 3] },
      ins.slice(0, 2).map((x) => toBatch(x)),
    )).results;
    assertTablesClose(
      e2.neuron_entropy,
      arrow.tableFromIPC(await Deno.readFile(`${dir}/stdin2/neuron_entropy.arrow`)),
      0,
      0,
      "range",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("analyze: a truncated stream writes the complete batches' results with complete: false", async () => {
  const dir = await tmpDir();
  try {
    const ins = inputs(2, 4);
    await writeBatches(`${dir}/full.arrows`, ins.map(makeRecordBatch));
    const full = await Deno.readFile(`${dir}/full.arrows`);
    // cut inside the 4th batch's body: batches 0..2 are complete
    await Deno.writeFile(`${dir}/cut.arrows`, full.subarray(0, full.length - 500));
    const r = await cli([
      "--bins",
      "10",
      "--range",
      "-4,4",
      "--format",
      "arrow",
      "--out",
      `${dir}/out`,
      `${dir}/cut.arrows`,
    ]);
    assert.equal(r.code, 1);
    assertOneLineError(
      r.stderr,
      /file '.*cut\.arrows', batch 3: Cannot read the record batch as the input is truncated/,
    );
    const run = await readRunJson(`${dir}/out`);
    assert.equal(run.complete, false);
    assert.match(run.error, /batch 3/);
    const t = arrow.tableFromIPC(await Deno.readFile(`${dir}/out/neuron_entropy.arrow`));
    const expected = (await runPlugin(
      entropyPlugin,
      { bins: 10, range: [-4, 4] },
      ins.slice(0, 3).map((x) => toBatch(x)),
    )).results;
    assertTablesClose(expected.neuron_entropy, t, 0, 0, "truncated");
    // with a first pass (global range from the data), the same batches are used in both passes
    const r2 = await cli(["--bins", "10", "--format", "arrow", "--out", `${dir}/out2`, `${dir}/cut.arrows`]);
    assert.equal(r2.code, 1);
    const e2 = (await runPlugin(entropyPlugin, { bins: 10 }, ins.slice(0, 3).map((x) => toBatch(x)))).results;
    assertTablesClose(
      e2.neuron_entropy,
      arrow.tableFromIPC(await Deno.readFile(`${dir}/out2/neuron_entropy.arrow`)),
      0,
      0,
      "2-pass",
    );
    assert.equal((await readRunJson(`${dir}/out2`)).complete, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Writes a stream with a hand-made schema (to produce invalid wire formats). */
async function writeRaw(path: string, fields: arrow.Field[], children: arrow.Data[], meta: Record<string, string>) {
  const schema = new arrow.Schema(fields, new Map(Object.entries(meta)));
  const n = children[0].length;
  const rb = new arrow.RecordBatch(
    schema,
    arrow.makeData({ type: new arrow.Struct(fields), length: n, nullCount: 0, children }),
  );
  await writeBatches(path, [rb]);
}

const ids = (n: number) =>
  arrow.vectorFromArray(Array.from({ length: n }, (_, i) => BigInt(i)), new arrow.Int64()).data[0];
const layer = (n: number, w: number, t: arrow.Float = new arrow.Float32()) => {
  const type = new arrow.FixedSizeList(w, new arrow.Field("item", t, false));
  const child = arrow.vectorFromArray(Array.from({ length: n * w }, (_, i) => i % 7), t).data[0];
  return { type, data: arrow.makeData({ type, length: n, nullCount: 0, child }) };
};

Deno.test("analyze: bad inputs give one line naming file, batch and column, a non-zero exit, no stack", async (t) => {
  const dir = await tmpDir();
  try {
    const ok = inputs(3, 1);
    const l4 = layer(4, 3);
    const cases: { name: string; make: () => Promise<string[]>; code?: number; pattern: RegExp }[] = [
      {
        name: "missing file",
        make: () => Promise.resolve([`${dir}/nope.arrows`]),
        pattern: /file '.*nope\.arrows': Cannot open input as it does not exist/,
      },
      {
        name: "not Arrow",
        make: async () => {
          await Deno.writeTextFile(`${dir}/text.arrows`, "sample_id,fc1\n1,2\n");
          return [`${dir}/text.arrows`];
        },
        pattern: /file '.*text\.arrows': Cannot read input as it is not an Arrow IPC stream or file/,
      },
      {
        name: "empty file",
        make: async () => {
          await Deno.writeFile(`${dir}/empty.arrows`, new Uint8Array());
          return [`${dir}/empty.arrows`];
        },
        pattern: /file '.*empty\.arrows': Cannot read input as it is empty/,
      },
      {
        name: "stream with no rows",
        make: async () => {
          const schema = makeRecordBatch(ok[0]).schema;
          await Deno.writeFile(`${dir}/norows.arrows`, arrow.tableToIPC(new arrow.Table(schema), "stream"));
          return [`${dir}/norows.arrows`];
        },
        pattern: /Cannot analyze as the input holds no rows/,
      },
      {
        name: "missing infotap.schema",
        make: async () => {
          await writeRaw(
            `${dir}/nometa.arrows`,
            [new arrow.Field("sample_id", new arrow.Int64()), new arrow.Field("fc1", l4.type)],
            [ids(4), l4.data],
            {},
          );
          return [`${dir}/nometa.arrows`];
        },
        pattern:
          /file '.*nometa\.arrows', batch 0: Cannot read the stream as its schema has no 'infotap\.schema' metadata/,
      },
      {
        name: "unknown infotap.schema",
        make: async () => {
          await writeRaw(
            `${dir}/unknown.arrows`,
            [new arrow.Field("sample_id", new arrow.Int64()), new arrow.Field("fc1", l4.type)],
            [ids(4), l4.data],
            {
              "infotap.schema": "weights/v9",
            },
          );
          return [`${dir}/unknown.arrows`];
        },
        pattern: /'infotap\.schema' names an unknown kind .*: current value is 'weights\/v9'/,
      },
      {
        name: "missing sample_id",
        make: async () => {
          await writeRaw(`${dir}/noid.arrows`, [new arrow.Field("fc1", l4.type)], [l4.data], {
            "infotap.schema": "activations/v1",
          });
          return [`${dir}/noid.arrows`];
        },
        pattern:
          /file '.*noid\.arrows', batch 0, column 'sample_id': Cannot read activations\/v1 as required column 'sample_id'/,
      },
      {
        name: "wrong sample_id type",
        make: async () => {
          const i32 = arrow.vectorFromArray([0, 1, 2, 3], new arrow.Int32()).data[0];
          await writeRaw(
            `${dir}/id32.arrows`,
            [new arrow.Field("sample_id", new arrow.Int32()), new arrow.Field("fc1", l4.type)],
            [i32, l4.data],
            {
              "infotap.schema": "activations/v1",
            },
          );
          return [`${dir}/id32.arrows`];
        },
        pattern: /column 'sample_id': Cannot read column as its type must be Int64: current value is Int32/,
      },
      {
        name: "wrong layer type",
        make: async () => {
          const s = arrow.vectorFromArray(["a", "b", "c", "d"], new arrow.Utf8()).data[0];
          await writeRaw(
            `${dir}/utf8.arrows`,
            [new arrow.Field("sample_id", new arrow.Int64()), new arrow.Field("fc1", new arrow.Utf8())],
            [ids(4), s],
            {
              "infotap.schema": "activations/v1",
            },
          );
          return [`${dir}/utf8.arrows`];
        },
        pattern:
          /batch 0, column 'fc1': Cannot read column as a layer since its type must be FixedSizeList<Float32>.*current value is Utf8/,
      },
      {
        name: "layer width changes between files",
        make: async () => {
          await writeBatches(`${dir}/w6.arrows`, inputs(4, 1, 10, 6).map(makeRecordBatch));
          await writeBatches(`${dir}/w5.arrows`, inputs(5, 1, 10, 5).map(makeRecordBatch));
          return [`${dir}/w6.arrows`, `${dir}/w5.arrows`];
        },
        pattern:
          /file '.*w5\.arrows', batch 0, column 'fc1': Cannot read column as its width changed from 6: current value is 5/,
      },
      {
        name: "--by-step without a step column",
        make: async () => {
          const x = { ...inputs(6, 1)[0] };
          delete x.step;
          await writeBatches(`${dir}/nostep.arrows`, [makeRecordBatch(x)]);
          return ["--by-step", `${dir}/nostep.arrows`];
        },
        pattern: /file '.*nostep\.arrows', batch 0, column 'step': Cannot group by step/,
      },
    ];
    for (const c of cases) {
      await t.step(c.name, async () => {
        const args = await c.make();
        const out = `${dir}/out-${c.name.replaceAll(/\W/g, "_")}`;
        const r = await cli(["--out", out, ...args]);
        assert.equal(r.code, c.code ?? 1, r.stderr);
        assertOneLineError(r.stderr, c.pattern);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("analyze: NaN and Inf are counted in the table and run.json, never dropped silently", async () => {
  const dir = await tmpDir();
  try {
    const x = inputs(7, 1)[0];
    x.tensors[0].values[0] = NaN;
    x.tensors[0].values[6] = Infinity;
    x.tensors[0].values[13] = -Infinity;
    await writeBatches(`${dir}/nan.arrows`, [makeRecordBatch(x)]);
    const r = await cli(["--bins", "8", "--format", "arrow", "--out", `${dir}/out`, `${dir}/nan.arrows`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /3 non-finite value\(s\).*excluded/);
    const t = arrow.tableFromIPC(await Deno.readFile(`${dir}/out/neuron_entropy.arrow`));
    const nf = [...t.getChild("nonfinite")!].map(Number);
    assert.deepEqual(nf.slice(0, 2), [2, 1]);
    const run = await readRunJson(`${dir}/out`);
    assert.equal(run.estimators[0].summary.nonfinite, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("analyze: --help documents every option; --plugin loads a user's estimator; usage errors exit 2", async () => {
  const h = await cli(["--help"]);
  assert.equal(h.code, 0);
  for (
    const flag of [
      "--estimators",
      "--out",
      "--format",
      "--by-step",
      "--layers",
      "--seed",
      "--plugin",
      "--bins",
      "--binning",
      "--range",
    ]
  ) {
    assert.ok(h.stdout.includes(flag), flag);
  }
  const dir = await tmpDir();
  try {
    await writeBatches(`${dir}/a.arrows`, inputs(8, 1).map(makeRecordBatch));
    const p = new URL("../scripts/examples/example_mean.ts", import.meta.url).pathname;
    const r = await cli([
      "--plugin",
      p,
      "--estimators",
      "example-mean,entropy",
      "--layers",
      "fc2",
      "--format",
      "arrow",
      "--out",
      `${dir}/out`,
      `${dir}/a.arrows`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const t = arrow.tableFromIPC(await Deno.readFile(`${dir}/out/neuron_moments.arrow`));
    assert.deepEqual([...t.getChild("layer")!], ["fc2", "fc2"]);
    const bad = await cli(["--bins", "0", `${dir}/a.arrows`]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^infotap: Cannot use --bins as it must be >= 1: current value is 0/);
    const unknown = await cli(["--estimators", "nope", `${dir}/a.arrows`]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /Cannot find estimator as it is not registered .*: current value is 'nope'/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
