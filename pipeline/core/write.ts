/**
 * Writing result tables: Parquet (zstd; BYTE_STREAM_SPLIT on each floating-point column), Arrow IPC file format
 * and/or CSV (`csv.ts`, for readers without Arrow support).
 *
 * @module
 */
import * as arrow from "apache-arrow";
import * as pq from "parquet-wasm";
import { writeCsv } from "./csv.ts";

/** One file format of a result table. */
export type FileFormat = "parquet" | "arrow" | "csv";
/** Output formats of `--format`: one file format, `both` (Parquet and Arrow), or a comma-separated list. */
export type OutputFormat =
  | FileFormat
  | "both"
  | `${FileFormat},${FileFormat}`
  | `${FileFormat},${FileFormat},${FileFormat}`;

/** The file formats of `--format` (`both` is Parquet and Arrow), or null when it is not a valid format. */
export function fileFormats(format: string): FileFormat[] | null {
  const parts = format === "both" ? ["parquet", "arrow"] : format.split(",");
  const all = ["parquet", "arrow", "csv"];
  if (parts.some((p) => !all.includes(p)) || new Set(parts).size !== parts.length) return null;
  return all.filter((f) => parts.includes(f)) as FileFormat[];
}

/** Writes one table as `<base>.<ext>` for each format; returns the paths written. */
export async function writeTable(base: string, table: arrow.Table, format: OutputFormat): Promise<string[]> {
  const written: string[] = [];
  for (const f of fileFormats(format) ?? []) {
    const p = `${base}.${f}`;
    if (f === "parquet") await atomicWrite(p, toParquet(table));
    else if (f === "arrow") await atomicWrite(p, arrow.tableToIPC(table, "file"));
    else await writeCsv(p, table);
    written.push(p);
  }
  return written;
}

/** Encodes a table as Parquet bytes (zstd; BYTE_STREAM_SPLIT for Float32/Float64 columns only). */
export function toParquet(table: arrow.Table): Uint8Array {
  let builder = new pq.WriterPropertiesBuilder()
    .setCompression(pq.Compression.ZSTD)
    .setCreatedBy("infotap");
  for (const f of table.schema.fields) {
    if (arrow.DataType.isFloat(f.type)) {
      builder = builder.setColumnDictionaryEnabled(f.name, false).setColumnEncoding(
        f.name,
        pq.Encoding.BYTE_STREAM_SPLIT,
      );
    }
  }
  const meta = new Map(table.schema.metadata);
  if (meta.size) builder = builder.setKeyValueMetadata(meta);
  const props = builder.build();
  const wasmTable = pq.Table.fromIPCStream(arrow.tableToIPC(table, "stream"));
  return pq.writeParquet(wasmTable, props);
}

/** Writes each table as `<dir>/<name>.parquet`, `.arrow` and/or `.csv`; returns the paths written. */
export async function writeTables(
  dir: string,
  tables: Record<string, arrow.Table>,
  format: OutputFormat,
): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const [name, table] of Object.entries(tables)) {
    written.push(...await writeTable(`${dir}/${name}`, table, format));
  }
  return written;
}

/** Writes a file through a temporary name and a rename, so that readers never see half a file. */
export async function atomicWrite(path: string, bytes: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  if (typeof bytes === "string") await Deno.writeTextFile(tmp, bytes);
  else await Deno.writeFile(tmp, bytes);
  await Deno.rename(tmp, path);
}
