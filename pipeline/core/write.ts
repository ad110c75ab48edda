/**
 * Writing result tables: Parquet (zstd; BYTE_STREAM_SPLIT on each floating-point column) and/or Arrow IPC
 * file format.
 *
 * @module
 */
import * as arrow from "apache-arrow";
import * as pq from "parquet-wasm";

/** Output formats of `--format`. */
export type OutputFormat = "parquet" | "arrow" | "both";

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

/** Writes each table as `<dir>/<name>.parquet` and/or `.arrow`; returns the paths written. */
export async function writeTables(
  dir: string,
  tables: Record<string, arrow.Table>,
  format: OutputFormat,
): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const [name, table] of Object.entries(tables)) {
    if (format === "parquet" || format === "both") {
      const p = `${dir}/${name}.parquet`;
      await atomicWrite(p, toParquet(table));
      written.push(p);
    }
    if (format === "arrow" || format === "both") {
      const p = `${dir}/${name}.arrow`;
      await atomicWrite(p, arrow.tableToIPC(table, "file"));
      written.push(p);
    }
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
