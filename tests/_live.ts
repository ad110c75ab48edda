/**
 * Test helpers for `serve`: a small dump with steps, raw stream bytes per message, reading Parquet results.
 *
 * @module
 */
import * as arrow from "apache-arrow";
import * as pq from "parquet-wasm";
import { makeRecordBatch, writeBatches, writeBatchesTo } from "../pipeline/producers/produce.ts";
import { assertTablesClose, Rng } from "./_util.ts";
import { analyze } from "../pipeline/analyze/run.ts";

/** Layers of the test dump. */
export const LAYERS = { fc1: 6, fc2: 4 } as const;
/** Rows per step (sample ids 0..ROWS-1). */
export const ROWS = 40;
/** Entropy options used live and in `analyze`: values fall partly outside the range (clipped and counted). */
export const OPTIONS = { range: [-1.5, 1.5] as [number, number], bins: 20 };

/** One record batch holding the rows `ids` of one step (deterministic values per (step, id)). */
export function stepBatch(step: number, ids: number[]): arrow.RecordBatch {
  const tensors = Object.entries(LAYERS).map(([name, width]) => {
    const values = new Float32Array(ids.length * width);
    ids.forEach((id, r) => {
      const rng = new Rng(step * 100_003 + id * 31 + width);
      for (let j = 0; j < width; j++) values[r * width + j] = rng.normal() * (0.5 + 0.1 * step) + 0.05 * j;
    });
    return { name, width, values };
  });
  return makeRecordBatch({
    kind: "activations/v1",
    sampleId: BigInt64Array.from(ids, BigInt),
    step: new BigInt64Array(ids.length).fill(BigInt(step)),
    tensors,
  });
}

/** Sample ids of one producer's share: producer `p` of `n` takes ids with `id % n == p`. */
export function share(p: number, n: number): number[] {
  return Array.from({ length: ROWS }, (_, i) => i).filter((i) => i % n === p);
}

/** Writes steps `[0, steps)` (all rows) as one dump file; returns its path. */
export async function writeDump(dir: string, steps: number): Promise<string> {
  const path = `${dir}/dump.arrows`;
  await writeBatches(path, Array.from({ length: steps }, (_, s) => stepBatch(s, share(0, 1))));
  return path;
}

/** The bytes of an IPC stream, one chunk per write (the first holds the schema and first batch). */
export async function streamBytes(batches: arrow.RecordBatch[]): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  const sink = new WritableStream<Uint8Array>({
    write(c) {
      chunks.push(c.slice());
    },
  });
  await writeBatchesTo(sink.getWriter(), batches);
  return chunks;
}

/**
 * Asserts that serve's final entropy tables in `out` equal those of `analyze --by-step` (entropy, OPTIONS) on the
 * rows received: `received`, a dump's path or the batches (written to `scratch` first).
 */
export async function assertLikeAnalyze(
  out: string,
  received: string | arrow.RecordBatch[],
  scratch: string,
): Promise<void> {
  let input = received as string;
  if (typeof received !== "string") await writeBatches(input = `${scratch}/received.arrows`, received);
  const ref = await analyze({
    inputs: [input],
    estimators: ["entropy"],
    byStep: true,
    options: OPTIONS,
    out: `${scratch}/ref`,
  });
  if (!ref.complete) throw new Error(`analyze failed: ${ref.error}`);
  for (const name of ["neuron_entropy", "layer_summary"]) {
    assertTablesClose(
      await readParquetFile(`${out}/${name}.parquet`),
      await readParquetFile(`${scratch}/ref/${name}.parquet`),
      0,
      0,
      name,
    );
  }
}

/** Reads a Parquet file as an Arrow table. */
export async function readParquetFile(path: string): Promise<arrow.Table> {
  return arrow.tableFromIPC(pq.readParquet(await Deno.readFile(path)).intoIPCStream());
}

/** Polls until `check()` is true (or throws after `ms`). */
export async function waitFor(check: () => boolean | Promise<boolean>, ms = 10_000, what = "condition"): Promise<void> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** True when the path exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Writes all bytes to a connection. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** Reads a connection to its end as text (the server's answer lines). */
export async function readText(conn: Deno.Conn): Promise<string> {
  let s = "";
  const buf = new Uint8Array(4096);
  while (true) {
    let n: number | null;
    try {
      n = await conn.read(buf);
    } catch {
      break;
    }
    if (n === null) break;
    s += new TextDecoder().decode(buf.subarray(0, n));
  }
  return s;
}

const SERVE_CLI = new URL("../pipeline/cli/serve.ts", import.meta.url).pathname;

/**
 * A `deno task serve` subprocess; its stdout and stderr lines are collected as they come. With `group` it runs
 * in a process group of its own (`setsid`), which {@linkcode ServeProcess.signalGroup} signals as a terminal's
 * Ctrl-C does; with `limitFiles` it runs under `prlimit --nofile` (that many file descriptors at most).
 */
export class ServeProcess {
  child: Deno.ChildProcess;
  /** stdout and stderr lines, in arrival order. */
  lines: string[] = [];
  /** stderr lines. */
  errors: string[] = [];
  #drained: Promise<void>;
  constructor(args: string[], { group = false, limitFiles }: { group?: boolean; limitFiles?: number } = {}) {
    const deno = [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-sys",
      SERVE_CLI,
      ...args,
    ];
    const command = [Deno.execPath(), ...deno];
    if (limitFiles !== undefined) command.unshift("prlimit", `--nofile=${limitFiles}:${limitFiles}`);
    if (group) command.unshift("setsid");
    this.child = new Deno.Command(command[0], {
      args: command.slice(1),
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const collect = async (s: ReadableStream<Uint8Array>, err: boolean) => {
      for await (const text of s.pipeThrough(new TextDecoderStream())) {
        const lines = text.split("\n");
        this.lines.push(...lines);
        if (err) this.errors.push(...lines);
      }
    };
    this.#drained = Promise.all([collect(this.child.stdout, false), collect(this.child.stderr, true)]).then(() => {});
  }
  /** Waits for the listening line; returns the port and the line. */
  async listening(): Promise<{ port: number; line: string }> {
    const found = await this.waitLine(/listening on/, 30_000);
    return { port: Number(/listening on [^ ]+:(\d+)/.exec(found)![1]), line: found };
  }
  /** Waits for a line matching `re`; returns it. */
  async waitLine(re: RegExp, ms = 20_000): Promise<string> {
    let found: string | undefined;
    await waitFor(() => (found = this.lines.find((l) => re.test(l))) !== undefined, ms, String(re)).catch((e) => {
      throw new Error(`${e.message}; output: ${this.lines.join("\n")}`);
    });
    return found!;
  }
  async rss(kind: "VmRSS" | "VmHWM"): Promise<number> {
    const status = await Deno.readTextFile(`/proc/${this.child.pid}/status`);
    return Number(new RegExp(`${kind}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
  }
  /** Signals the process group (started with `group`), as a terminal does. */
  signalGroup(signal: Deno.Signal): void {
    Deno.kill(-this.child.pid, signal);
  }
  /** The exit code (once it exits), all output read. */
  async exited(): Promise<number> {
    const { code } = await this.child.status;
    await this.#drained;
    return code;
  }
  /** Sends a signal and waits for the exit code. */
  async stop(signal: Deno.Signal): Promise<number> {
    try {
      this.child.kill(signal);
    } catch { /* exited */ }
    return await this.exited();
  }
}
