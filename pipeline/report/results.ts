/**
 * Reading an infotap results directory back: every result table as plain rows, and `run.json`.
 *
 * A table is read from `DIR/<table>.parquet`, else `DIR/<table>.arrow`, else `DIR/<table>.csv` (what `analyze`
 * and `serve` write on stop), else from the parts `DIR/<table>/part-<k>.parquet` (or `.arrow`, `.csv`) that
 * `serve` writes while a run goes on, concatenated in window order. Parquet is decoded with parquet-wasm to Arrow
 * IPC, then apache-arrow; CSV with `parseCsv` (column types inferred from the cells, no schema metadata).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readResults } from "./results.ts";
 * import { writeTables } from "../core/write.ts";
 * import { tableFromColumns } from "../core/table.ts";
 * const dir = await Deno.makeTempDir();
 * await writeTables(dir, { t: tableFromColumns([{ name: "x", type: "int64", values: [1n, 2n] }]) }, "parquet");
 * const r = await readResults(dir);
 * assert.ok(r.tables.t.rows[1].x === 2 && r.run === null);
 * ```
 *
 * @module
 */
import * as arrow from "apache-arrow";
import * as pq from "parquet-wasm";
import { InputError, show } from "../../schemas/errors.ts";
import type { Cell, ResultDirectory, ResultTable } from "../core/report_contract.ts";
import { parseCsv } from "../core/csv.ts";

export type { Cell, ResultDirectory, ResultTable } from "../core/report_contract.ts";

const TABLE_FILE = /^([A-Za-z0-9_]+)\.(parquet|arrow|csv)$/;
const PART_FILE = /^part-(-?\d+)\.(parquet|arrow|csv)$/;
/** Which file of a table (or part) is read when there are several: the lowest. */
const PREFERENCE: Record<string, number> = { parquet: 0, arrow: 1, csv: 2 };

function cell(v: unknown): Cell {
  if (v === null || v === undefined) return null;
  if (typeof v === "bigint") {
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString();
  }
  if (typeof v === "number" || typeof v === "string" || typeof v === "boolean") return v;
  return String(v);
}

/** One table file: an Arrow table, or the rows of a CSV file. */
async function readTableFile(path: string): Promise<arrow.Table | ReturnType<typeof parseCsv>> {
  const bytes = await Deno.readFile(path);
  try {
    if (path.endsWith(".csv")) return parseCsv(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    if (path.endsWith(".parquet")) return arrow.tableFromIPC(pq.readParquet(bytes).intoIPCStream());
    return arrow.tableFromIPC(bytes);
  } catch (e) {
    throw new InputError(
      `Cannot read result table as it is not valid ${
        path.endsWith(".parquet") ? "Parquet" : path.endsWith(".csv") ? "CSV" : "Arrow IPC"
      }: current value is ${show((e as Error).message ?? String(e))}`,
      { file: path },
    );
  }
}

function appendRows(into: ResultTable, t: arrow.Table | ReturnType<typeof parseCsv>): void {
  if (!("schema" in t)) {
    for (const n of t.columns) if (!into.columns.includes(n)) into.columns.push(n);
    into.rows.push(...t.rows);
    return;
  }
  const names = t.schema.fields.map((f) => f.name);
  for (const n of names) if (!into.columns.includes(n)) into.columns.push(n);
  for (const [k, v] of t.schema.metadata) into.metadata[k] ??= v;
  const cols = names.map((n) => t.getChild(n)!);
  for (let i = 0; i < t.numRows; i++) {
    const r: Record<string, Cell> = {};
    for (let j = 0; j < names.length; j++) r[names[j]] = cell(cols[j].get(i));
    into.rows.push(r);
  }
}

async function listDir(dir: string): Promise<Deno.DirEntry[]> {
  const out: Deno.DirEntry[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e);
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Reads every result table and `run.json` of `dir`. Throws {@linkcode InputError} (one line) when the directory
 * is missing, is not a directory, or holds neither a table nor `run.json`.
 */
export async function readResults(dir: string): Promise<ResultDirectory> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch {
    throw new InputError(`Cannot read results as the directory does not exist: current value is ${show(dir)}`);
  }
  if (!info.isDirectory) {
    throw new InputError(`Cannot read results as the path is not a directory: current value is ${show(dir)}`);
  }
  const entries = await listDir(dir);
  const results: ResultDirectory = { dir, run: null, tables: {} };
  const table = (name: string) => (results.tables[name] ??= { columns: [], rows: [], files: [], metadata: {} });
  // Final files: parquet first, then arrow, then csv.
  const finals = new Map<string, string>();
  const better = (m: RegExpExecArray, have: string | undefined) =>
    have === undefined || PREFERENCE[m[2]] < PREFERENCE[have.slice(have.lastIndexOf(".") + 1)];
  for (const e of entries) {
    const m = e.isFile ? TABLE_FILE.exec(e.name) : null;
    if (m && better(m, finals.get(m[1]))) finals.set(m[1], e.name);
  }
  for (const [name, file] of finals) {
    appendRows(table(name), await readTableFile(`${dir}/${file}`));
    table(name).files.push(file);
  }
  // Live parts, for tables without a final file.
  for (const e of entries) {
    if (!e.isDirectory || finals.has(e.name) || !/^[A-Za-z0-9_]+$/.test(e.name) || e.name === "checkpoint") continue;
    const parts = new Map<number, string>();
    for (const p of await listDir(`${dir}/${e.name}`)) {
      const m = p.isFile ? PART_FILE.exec(p.name) : null;
      if (m && better(m, parts.get(Number(m[1])))) parts.set(Number(m[1]), p.name);
    }
    for (const k of [...parts.keys()].sort((a, b) => a - b)) {
      const file = `${e.name}/${parts.get(k)}`;
      appendRows(table(e.name), await readTableFile(`${dir}/${file}`));
      table(e.name).files.push(file);
    }
  }
  try {
    results.run = JSON.parse(await Deno.readTextFile(`${dir}/run.json`));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new InputError(`Cannot read run.json as it is not valid JSON: current value is ${show(String(e))}`, {
        file: `${dir}/run.json`,
      });
    }
  }
  if (Object.keys(results.tables).length === 0 && results.run === null) {
    throw new InputError(
      `Cannot make a report as the directory holds no result table (<table>.parquet, .arrow or .csv, <table>/part-*) and no run.json: current value is ${
        show(dir)
      }`,
    );
  }
  return results;
}
