import assert from "node:assert/strict";
import { DuckDBInstance } from "@duckdb/node-api";
import { parseCsv, toCsv } from "./csv.ts";
import { tableFromColumns } from "./table.ts";
import { fileFormats, writeTables } from "./write.ts";
import { analyze } from "../analyze/run.ts";
import { readResults } from "../report/results.ts";
import { makeRecordBatch, writeBatches } from "../producers/produce.ts";
import { Rng } from "../../tests/_util.ts";

/** A table with every kind of awkward cell: NaN, infinities, nulls, huge int64, quotes, commas, line breaks. */
function awkward() {
  return tableFromColumns([
    { name: "name", type: "utf8", values: ["plain", 'say "hi"', "a,b", "two\nlines", " edge ", null] },
    { name: "x", type: "float64", values: [0.1, NaN, Infinity, -Infinity, 1e-300, null] },
    { name: "f", type: "float32", values: [0.1, -8.010683059692383, 3, NaN, 1e-7, 2] },
    { name: "n", type: "int64", values: [1n, -2n, 2n ** 62n, null, 0n, 7n] },
    { name: "i", type: "int32", values: [1, 2, 3, 4, 5, null] },
  ]);
}

/** Every row of a file read by DuckDB, the CSV with the column types DuckDB finds in the Parquet file. */
async function duckRows(parquet: string, csv: string): Promise<{ p: unknown[][]; c: unknown[][] }> {
  const db = await DuckDBInstance.create(":memory:");
  const con = await db.connect();
  try {
    const types = (await con.runAndReadAll(`describe select * from read_parquet('${parquet}')`)).getRowObjects();
    const columns = types.map((t) => `'${t.column_name}': '${t.column_type}'`).join(", ");
    const p = (await con.runAndReadAll(`select * from read_parquet('${parquet}')`)).getRows();
    const c = (await con.runAndReadAll(
      `select * from read_csv('${csv}', header = true, auto_detect = false, columns = {${columns}})`,
    )).getRows();
    return { p, c };
  } finally {
    con.closeSync();
  }
}

Deno.test("--format: one file format, both (parquet and arrow), or a list; anything else is refused", () => {
  assert.deepEqual(fileFormats("csv"), ["csv"]);
  assert.deepEqual(fileFormats("both"), ["parquet", "arrow"]);
  assert.deepEqual(fileFormats("csv,parquet"), ["parquet", "csv"]);
  for (const bad of ["", "json", "csv,csv", "both,csv", "parquet,"]) assert.equal(fileFormats(bad), null, bad);
});

Deno.test("CSV: awkward cells round-trip through parseCsv, and DuckDB reads the CSV equal to the Parquet", async () => {
  const t = awkward();
  const text = toCsv(t);
  assert.ok(text.startsWith('name,x,f,n,i\nplain,0.1,0.10000000149011612,1,1\n"say ""hi""",NaN,'));
  assert.ok(text.includes('\n"two\nlines",-inf,NaN,,4\n'));
  const back = parseCsv(text);
  assert.deepEqual(back.columns, ["name", "x", "f", "n", "i"]);
  assert.deepEqual(back.rows.map((r) => r.name), ["plain", 'say "hi"', "a,b", "two\nlines", " edge ", null]);
  assert.deepEqual(back.rows.map((r) => r.x), [0.1, NaN, Infinity, -Infinity, 1e-300, null]);
  assert.deepEqual(back.rows.map((r) => r.n), [1, -2, String(2n ** 62n), null, 0, 7]);
  const dir = await Deno.makeTempDir();
  try {
    const written = await writeTables(dir, { t }, "parquet,csv");
    assert.deepEqual(written, [`${dir}/t.parquet`, `${dir}/t.csv`]);
    const { p, c } = await duckRows(`${dir}/t.parquet`, `${dir}/t.csv`);
    assert.equal(p.length, 6);
    assert.deepEqual(c, p);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("analyze --format parquet,csv: every CSV table equals its Parquet table (DuckDB and readResults)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const rng = new Rng(5), rows = 80;
    const batches = [0, 1].map((s) => {
      const v = Float32Array.from({ length: rows * 4 }, () => rng.normal() * (1 + s));
      v[3] = NaN; // counted as non-finite in every table
      return makeRecordBatch({
        kind: "activations/v1",
        sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(i)),
        step: new BigInt64Array(rows).fill(BigInt(10 * s)),
        label: Int32Array.from({ length: rows }, () => rng.int(3)),
        tensors: [{ name: "fc1", width: 4, values: v }],
      });
    });
    await writeBatches(`${dir}/a.arrows`, batches);
    const both = await analyze({
      inputs: [`${dir}/a.arrows`],
      estimators: ["entropy", "mi", "label-mi"],
      byStep: true,
      format: "parquet,csv",
      out: `${dir}/both`,
      progress: false,
    });
    assert.ok(both.complete, both.error ?? "");
    const names = ["neuron_entropy", "layer_summary", "neuron_mi", "label_mi"];
    for (const n of names) {
      const { p, c } = await duckRows(`${dir}/both/${n}.parquet`, `${dir}/both/${n}.csv`);
      assert.ok(p.length > 0, n);
      assert.deepEqual(c, p, n);
    }
    // --format csv alone: the report's reader gives the same rows as from the Parquet files.
    const csv = await analyze({
      inputs: [`${dir}/a.arrows`],
      estimators: ["entropy", "mi", "label-mi"],
      byStep: true,
      format: "csv",
      out: `${dir}/csv`,
      progress: false,
    });
    assert.deepEqual(csv.run.files, names.map((n) => `${n}.csv`));
    const fromCsv = await readResults(`${dir}/csv`), fromParquet = await readResults(`${dir}/both`);
    for (const n of names) {
      assert.deepEqual(fromCsv.tables[n].files, [`${n}.csv`]);
      assert.deepEqual(fromCsv.tables[n].columns, fromParquet.tables[n].columns, n);
      assert.deepEqual(fromCsv.tables[n].rows, fromParquet.tables[n].rows, n);
    }
    assert.ok(fromCsv.tables.neuron_entropy.rows.some((r) => r.nonfinite === 1));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
