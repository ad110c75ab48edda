/**
 * Writing result tables: Parquet (zstd; BYTE_STREAM_SPLIT on each floating-point column), Arrow IPC file format
 * and/or CSV (`csv.ts`, for readers without Arrow support).
 *
 * @module
 */
import * as arrow from "apache-arrow";
import * as pq from "parquet-wasm";
import { ByteCollector } from "./byte_collector.ts";
import { writeCsv } from "./csv.ts";
import { combineBatches } from "./table.ts";

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

/** Writes one table as `<base>.<ext>` for each format (made durable by `group`'s commit when given); returns the paths written. */
export async function writeTable(
  base: string,
  table: arrow.Table,
  format: OutputFormat,
  group?: WriteGroup,
): Promise<string[]> {
  const written: string[] = [];
  for (const f of fileFormats(format) ?? []) {
    const p = `${base}.${f}`;
    if (f === "parquet") await atomicWrite(p, large(table) ? await parquetStream(table) : toParquet(table), group);
    else if (f === "arrow") {
      await atomicWrite(p, table.batches.length > 1 ? arrowFileChunks(table) : arrow.tableToIPC(table, "file"), group);
    } else await writeCsv(p, table, group);
    written.push(p);
  }
  return written;
}

/** The Parquet writer properties of a table: zstd; BYTE_STREAM_SPLIT for Float32/Float64 columns only. */
function parquetProperties(table: arrow.Table): pq.WriterProperties {
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
  return builder.build();
}

/**
 * Encodes a table as Parquet bytes (zstd; BYTE_STREAM_SPLIT for Float32/Float64 columns only). A table of several
 * record batches is written as one: parquet-wasm orders the key-value metadata by hash maps whose seeds advance
 * with every map it makes, so the same table in one batch or several would give other bytes (same values).
 */
export function toParquet(table: arrow.Table): Uint8Array {
  // Properties first, then the table: the order of parquet-wasm's calls decides its hash seeds (see above).
  const props = parquetProperties(table);
  return pq.writeParquet(pq.Table.fromIPCStream(arrow.tableToIPC(combineBatches(table), "stream")), props);
}

/**
 * The Parquet values of {@linkcode toParquet}, encoded record batch by record batch: a large table (e.g. the
 * steps of a `--by-step` run, one batch each) is never copied whole into WebAssembly memory. The bytes may differ
 * from `toParquet`'s in the order of the key-value metadata only.
 */
export async function parquetStream(table: arrow.Table): Promise<ReadableStream<Uint8Array>> {
  const batches = table.batches.length ? table.batches : [new arrow.RecordBatch(table.schema)];
  let i = 0;
  const source = new ReadableStream<pq.RecordBatch>({
    pull(c) {
      if (i >= batches.length) return c.close();
      const one = pq.Table.fromIPCStream(arrow.tableToIPC(new arrow.Table(table.schema, [batches[i++]]), "stream"));
      for (const rb of one.recordBatches()) c.enqueue(rb);
    },
  });
  return await pq.transformParquetStream(source, parquetProperties(table));
}

/** Arrow IPC file bytes of a table, written batch by batch. */
function* arrowFileChunks(table: arrow.Table): Generator<Uint8Array> {
  const collector = new ByteCollector();
  const writer = new arrow.RecordBatchFileWriter();
  writer.reset(collector, table.schema);
  for (const b of table.batches) {
    writer.write(b);
    yield collector.take();
  }
  writer.finish();
  yield collector.take();
}

/** Tables above about 64 MB (rows x columns x 8 bytes) are written batch by batch. */
function large(table: arrow.Table): boolean {
  return table.batches.length > 1 && table.numRows * table.numCols * 8 > 64e6;
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

/**
 * Writes a file through a temporary name (`<path>.tmp-<pid>`), fsynced, then renamed over `path` and the
 * directory fsynced: readers never see half a file, and a kill or power loss at any instant leaves either the
 * old file or the new one. The temporary file is removed when the write fails.
 * `bytes` may come in chunks (a stream or async iterable). With a {@linkcode WriteGroup}, the file is only written
 * to its temporary name here; the group's `commit` makes it durable and renames it, with the group's other files.
 */
export async function atomicWrite(
  path: string,
  bytes: Uint8Array | string | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  group?: WriteGroup,
): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    if (group) {
      if (typeof bytes === "string") await Deno.writeTextFile(tmp, bytes);
      else if (bytes instanceof Uint8Array) await Deno.writeFile(tmp, bytes);
      else await writeChunks(tmp, bytes, false);
      group.hold(tmp, path);
      return;
    }
    await writeChunks(tmp, typeof bytes === "string" ? [new TextEncoder().encode(bytes)] : bytes, true);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  await syncDir(dirOf(path));
}

/** Writes `tmp` (created or truncated) from chunks, fsynced when `sync`. */
async function writeChunks(
  tmp: string,
  bytes: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  sync: boolean,
): Promise<void> {
  const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    for await (const data of bytes instanceof Uint8Array ? [bytes] : bytes) {
      let off = 0;
      while (off < data.length) off += await f.write(data.subarray(off));
    }
    if (sync) await f.sync();
  } finally {
    f.close();
  }
}

function dirOf(path: string): string {
  return path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
}

/** Awaits every promise; throws the first failure once all settled. */
async function settleAll(work: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(work)).find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
}

/**
 * Files that {@linkcode atomicWrite} made durable together: `commit` fsyncs them side by side (their disk round
 * trips overlap instead of queueing one after another), then renames each over its path, then fsyncs their
 * directories side by side. Each file keeps `atomicWrite`'s guarantee (old or new, never half); none has its
 * final name before `commit`. `discard` removes the temporary files of a group that will not be committed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { atomicWrite, WriteGroup } from "./write.ts";
 * const dir = await Deno.makeTempDir();
 * const group = new WriteGroup();
 * await atomicWrite(`${dir}/a.txt`, "a", group);
 * await atomicWrite(`${dir}/b.txt`, "b", group);
 * assert.equal(await Deno.stat(`${dir}/b.txt`).catch(() => null), null);
 * await group.commit();
 * assert.equal(await Deno.readTextFile(`${dir}/b.txt`), "b");
 * ```
 */
export class WriteGroup {
  #held = new Map<string, string>(); // temporary name -> final path

  /** Takes a temporary file written (called by `atomicWrite`). */
  hold(tmp: string, path: string): void {
    this.#held.set(tmp, path);
  }

  /** Makes every file held durable under its final name; on a failure the files not renamed are removed. */
  async commit(): Promise<void> {
    const held = this.#held;
    const dirs = new Set([...held.values()].map(dirOf));
    try {
      await settleAll([...held.keys()].map(async (tmp) => {
        const f = await Deno.open(tmp, { write: true });
        try {
          await f.sync();
        } finally {
          f.close();
        }
      }));
      await settleAll([...held].map(async ([tmp, path]) => {
        await Deno.rename(tmp, path);
        held.delete(tmp);
      }));
    } catch (e) {
      await this.discard();
      throw e;
    }
    await Promise.all([...dirs].map(syncDir));
  }

  /** Removes the temporary files not committed. */
  async discard(): Promise<void> {
    const tmps = [...this.#held.keys()];
    this.#held.clear();
    await Promise.all(tmps.map((tmp) => Deno.remove(tmp).catch(() => {})));
  }
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
