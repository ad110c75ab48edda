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

/**
 * Writes a file through a temporary name (`<path>.tmp-<pid>`), fsynced, then renamed over `path` and the
 * directory fsynced: readers never see half a file, and a kill or power loss at any instant leaves either the
 * old file or the new one. The temporary file is removed when the write fails.
 */
export async function atomicWrite(path: string, bytes: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  try {
    const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
    try {
      let off = 0;
      while (off < data.length) off += await f.write(data.subarray(off));
      await f.sync();
    } finally {
      f.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  await syncDir(path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".");
}

/** Flushes a directory's entries (a rename in it) to disk; a file system that cannot is left alone. */
async function syncDir(dir: string): Promise<void> {
  let d: Deno.FsFile | null = null;
  try {
    d = await Deno.open(dir, { read: true });
    await d.sync();
  } catch {
    /* not supported here (e.g. some network file systems): the rename still happened */
  } finally {
    d?.close();
  }
}

/** Temporary files of {@linkcode atomicWrite} left by processes that are gone (killed mid-write): `name.tmp-<pid>`. */
export const TEMP_FILE = /\.tmp-(\d+)$/;

/**
 * Removes the temporary files that killed processes left in `dir` and its sub-directories one level down (a
 * live process's own are kept); returns how many were removed.
 */
export async function removeStaleTemps(dir: string): Promise<number> {
  let n = 0;
  const visit = async (d: string, depth: number) => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(d));
    } catch {
      return;
    }
    for (const e of entries) {
      const m = TEMP_FILE.exec(e.name);
      if (e.isFile && m && !alive(Number(m[1]))) {
        await Deno.remove(`${d}/${e.name}`).then(() => n++, () => {});
      } else if (e.isDirectory && depth > 0) await visit(`${d}/${e.name}`, depth - 1);
    }
  };
  await visit(dir, 1);
  return n;
}

/** True when a process with this id runs (ours included), or when there is no /proc to ask (nothing removed then). */
function alive(pid: number): boolean {
  if (pid === Deno.pid) return true;
  try {
    Deno.statSync("/proc/self");
  } catch {
    return true;
  }
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}
