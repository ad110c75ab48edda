/**
 * Result tables as CSV (RFC 4180), for readers without Arrow or Parquet support (e.g. pandas without pyarrow):
 * a header row of column names, then one line per row. Numbers are written in the shortest form that reads back
 * to the same float64 (an int64 as its digits), NaN as `NaN`, infinities as `inf` and `-inf`, null as an empty
 * field, booleans as `true`/`false`; text is quoted when it holds a comma, quote, line break or edge space, or is
 * empty. Reading back (`parseCsv`) infers each column's type from its cells. See docs/report.md, "CSV".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCsv, toCsv } from "./csv.ts";
 * import { tableFromColumns } from "./table.ts";
 * const t = tableFromColumns([
 *   { name: "layer", type: "utf8", values: ["fc1", "a,b"] },
 *   { name: "h", type: "float64", values: [0.1, NaN] },
 *   { name: "n", type: "int64", values: [1n, null] },
 * ]);
 * const text = toCsv(t);
 * assert.equal(text, 'layer,h,n\nfc1,0.1,1\n"a,b",NaN,\n');
 * assert.deepEqual(parseCsv(text).rows[1], { layer: "a,b", h: NaN, n: null });
 * ```
 *
 * @module
 */
import type * as arrow from "apache-arrow";
import { atomicWrite, type WriteGroup } from "./write.ts";

/** Rows written per chunk by {@linkcode writeCsv} (bounds the memory of a large table's text). */
const CHUNK_ROWS = 50_000;

/** One field: quoted when needed. */
function field(s: string): string {
  return s === "" || /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** One cell as CSV text. */
function cellText(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") {
    if (Number.isNaN(v)) return "NaN";
    if (v === Infinity) return "inf";
    if (v === -Infinity) return "-inf";
    return String(v);
  }
  if (typeof v === "bigint" || typeof v === "boolean") return String(v);
  return field(String(v));
}

/** The CSV text of rows `from` to `to` (exclusive) of `table`, with the header when `from` is 0. */
function chunk(table: arrow.Table, from: number, to: number): string {
  const names = table.schema.fields.map((f) => f.name);
  const cols = names.map((n) => table.getChild(n)!);
  const lines: string[] = from === 0 ? [names.map(field).join(",")] : [];
  for (let i = from; i < to; i++) lines.push(cols.map((c) => cellText(c.get(i))).join(","));
  return lines.length ? lines.join("\n") + "\n" : "";
}

/** The whole table as CSV text. */
export function toCsv(table: arrow.Table): string {
  return chunk(table, 0, table.numRows);
}

/**
 * Writes the table as CSV to `path` (through a temporary name, fsynced and renamed: see `atomicWrite`; by
 * `group`'s commit when given).
 */
export async function writeCsv(path: string, table: arrow.Table, group?: WriteGroup): Promise<void> {
  const enc = new TextEncoder();
  await atomicWrite(
    path,
    (function* () {
      for (let from = 0; from === 0 || from < table.numRows; from += CHUNK_ROWS) {
        yield enc.encode(chunk(table, from, Math.min(table.numRows, from + CHUNK_ROWS)));
      }
    })(),
    group,
  );
}

/** A cell read back from CSV. */
export type CsvCell = number | string | boolean | null;

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^NaN$|^[+-]?inf$/;
const INTEGER = /^[+-]?\d+$/;

/** Splits CSV text into records of fields (RFC 4180: quoted fields may hold commas, quotes and line breaks). */
function records(text: string): { fields: string[]; quoted: boolean[] }[] {
  const out: { fields: string[]; quoted: boolean[] }[] = [];
  let fields: string[] = [], quoted: boolean[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    let value = "", q = false;
    if (text[i] === '"') {
      q = true;
      i++;
      while (i < n) {
        const j = text.indexOf('"', i);
        if (j < 0) throw new SyntaxError(`Cannot read CSV as a quoted field is not closed: current value is ${i}`);
        value += text.slice(i, j);
        if (text[j + 1] === '"') {
          value += '"';
          i = j + 2;
        } else {
          i = j + 1;
          break;
        }
      }
    } else {
      let j = i;
      while (j < n && text[j] !== "," && text[j] !== "\n" && text[j] !== "\r") j++;
      value = text.slice(i, j);
      i = j;
    }
    fields.push(value);
    quoted.push(q);
    if (text[i] === ",") {
      i++;
      continue;
    }
    if (text[i] === "\r") i++;
    if (text[i] === "\n") i++;
    out.push({ fields, quoted });
    fields = [];
    quoted = [];
  }
  return out;
}

/**
 * Parses CSV text with a header row. Each column's type is inferred from its non-empty cells: all numbers
 * (including `NaN`, `inf`, `-inf`) give numbers (an integer beyond 2^53 stays text, as `readResults` gives an
 * int64 that large), all `true`/`false` give booleans, else text. An empty unquoted field is null.
 */
export function parseCsv(text: string): { columns: string[]; rows: Record<string, CsvCell>[] } {
  const recs = records(text);
  if (recs.length === 0) return { columns: [], rows: [] };
  const columns = recs[0].fields;
  const body = recs.slice(1);
  const kinds = columns.map((_, c) => {
    let numbers = true, bools = true, any = false;
    for (const r of body) {
      const s = r.fields[c] ?? "";
      if (s === "" && !r.quoted[c]) continue;
      any = true;
      if (!NUMBER.test(s)) numbers = false;
      if (s !== "true" && s !== "false") bools = false;
    }
    return !any ? "text" : numbers ? "number" : bools ? "boolean" : "text";
  });
  const rows = body.map((r) => {
    const row: Record<string, CsvCell> = {};
    columns.forEach((name, c) => {
      const s = r.fields[c] ?? "";
      if (s === "" && !r.quoted[c]) row[name] = null;
      else if (kinds[c] === "boolean") row[name] = s === "true";
      else if (kinds[c] === "number") {
        const x = s === "NaN" ? NaN : s.endsWith("inf") ? (s.startsWith("-") ? -Infinity : Infinity) : Number(s);
        row[name] = INTEGER.test(s) && !Number.isSafeInteger(x) ? s.replace(/^\+/, "") : x;
      } else row[name] = s;
    });
    return row;
  });
  return { columns, rows };
}
