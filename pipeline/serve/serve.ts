/**
 * Live analysis of training runs: {@linkcode serve} accepts wire-format v1 Arrow IPC streams from producers
 * over TCP (and WebSocket), feeds their batches to one set of estimators, and writes results per training-step
 * window while the run goes on.
 *
 * ## Protocol
 * A producer opens a TCP connection, optionally sends one handshake line `INFOTAP1 <token>\n` (required when
 * the server has a token; the server answers `OK\n` or `ERR <message>\n`), then writes one Arrow IPC stream
 * (format 1.0+, the stream format, not the file format) and half-closes its side. When the stream ends the
 * server answers `OK <batches> <rows>\n`; when it refuses something it answers `ERR <message>\n` and closes.
 * WebSocket producers (`--ws HOST:PORT`) send the same stream as binary messages (split anywhere), present the
 * token as the `token` query parameter (`ws://host:port/?token=...`), and get the same answers as text messages.
 * Nothing from a stream is ever used as a path or evaluated: table and file names come from the estimators.
 *
 * ## Windows, snapshots and files
 * With `snapshotEvery: N` (`--snapshot-every N`) every row goes to the window `floor(step / N)`, which has its
 * own estimators (created with `byStep: true`, so results are per step). A window closes once every connected
 * producer has sent a step past its end (each producer's steps are taken to be non-decreasing; a producer that
 * has connected but sent nothing yet holds windows open; the windows still open when the last producer leaves
 * are closed on stop). Batches from all producers go to the same estimators, one batch at a time (updates are
 * serialized on the one JS thread), so the results do not depend on how rows are split among producers.
 * Closing window `k` writes, in this order:
 * 1. `DIR/<table>/part-<k>.parquet` (8 digits) for each result table, each atomically (rename), so the files
 *    can be read while the run goes on, e.g. DuckDB `SELECT * FROM 'DIR/layer_summary/part-*.parquet'`;
 * 2. `DIR/checkpoint/window-<k>.state`: the window's estimator states ({@linkcode encodeState});
 * 3. `DIR/checkpoint/progress.json`: windows closed so far and `next_step`, the first step not yet covered.
 *
 * Closed windows are merged (`Estimator.merge`) into one running set whose results, written on stop as
 * `DIR/<table>.parquet`, equal those of `analyze --by-step` on the same rows. Rows that arrive for a window
 * already closed are not analysed; they are counted as `late_rows` in `run.json`. Without `snapshotEvery`
 * there is one window, closed on stop. A crash loses at most the windows still open.
 *
 * ## Lifecycle
 * `stop()` (SIGINT/SIGTERM in the CLI) stops accepting, lets each producer finish the batch being analysed,
 * drops the partial batches still in transit (reported per producer), closes every open window, writes the
 * final tables and `run.json`. `resume: true` continues from `DIR/checkpoint`: producers replay from
 * `next_step`. A producer that disconnects mid-batch loses only that batch (`status: "disconnected
 * mid-batch"`, `partial_bytes`). Batches are read only as fast as the estimators take them (no read-ahead
 * beyond one message), so a fast producer is slowed by TCP flow control and memory stays bounded; a batch over
 * `maxBatchBytes` is refused before its body is read.
 *
 * ## No first pass
 * A live stream cannot be read twice, so estimators that need a first pass (`plugin.scan`) cannot run unless
 * their options make it unnecessary: for `entropy`, pass `--range LO,HI` (global binning over a fixed range;
 * out-of-range values are clipped and counted). `serve` refuses to start otherwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serve } from "./serve.ts";
 * const out = await Deno.makeTempDir();
 * const server = await serve({ listen: "127.0.0.1:0", out, options: { range: [0, 1] }, log: () => {} });
 * assert.ok(server.port > 0);
 * const run = await server.stop();
 * assert.ok(run.complete === true);
 * ```
 *
 * @module
 */
import type * as arrow from "apache-arrow";
import type { Batch } from "../../schemas/batch.ts";
import { InputError, show } from "../../schemas/errors.ts";
import {
  type Estimator,
  type EstimatorContext,
  type EstimatorPlugin,
  type OptionValues,
  resolveOptions,
} from "../core/plugin.ts";
import {
  adapterRecord,
  type BackendDecision,
  type BackendRequest,
  describeAdapter,
  estimatorBackend,
  selectBackend,
} from "../../plugins/kernels/gpu/device.ts";
import { Registry } from "../core/registry.ts";
import { resultTables, selectLayers } from "../analyze/run.ts";
import { readMessages } from "../../schemas/source.ts";
import { decodeState, encodeState } from "../core/state.ts";
import { sliceBatch } from "../../schemas/batch.ts";
import { atomicWrite, type OutputFormat, writeTable, writeTables } from "../core/write.ts";
import { versions } from "../core/version.ts";
import { checkSameLayout, decodeBatch, type Layout, validateSchema } from "../../schemas/validate.ts";
import type { ProducerConnection } from "../producers/connect.ts";
import { builtinPlugins } from "../../plugins/mod.ts";
import {
  ByteReader,
  frameMessages,
  type FrameState,
  isLoopback,
  parseListen,
  readHello,
  sameToken,
} from "../../schemas/framing.ts";

/** Options of {@linkcode serve}. */
export interface ServeOptions {
  /** `HOST:PORT` for TCP producers (default `127.0.0.1:7341`; port 0 picks a free port); null: no TCP listener
   * (in-process producers only, see `ServeHandle.local`). */
  listen?: string | null;
  /** `HOST:PORT` for WebSocket producers (none by default). */
  ws?: string;
  /** Output directory (created if missing). */
  out: string;
  /** Token producers must present; required when listening on a non-loopback address. */
  token?: string;
  /** Continue from `out/checkpoint` (producers replay from its `next_step`). */
  resume?: boolean;
  /** Estimator names; default: the plugins marked `byDefault` for the stream's kind. */
  estimators?: string[];
  /** Plugin option values by flag name. */
  options?: OptionValues;
  /** Results per step when there are no windows (windows always give results per step). */
  byStep?: boolean;
  /** Seed for every seeded choice. */
  seed?: number;
  /** Analyse only these tensor columns. */
  layers?: string[];
  /** Output format of the part files and final tables (default parquet). */
  format?: OutputFormat;
  /** Window width in steps (0 or absent: one window, closed on stop). */
  snapshotEvery?: number;
  /** Largest record-batch message accepted, in bytes (default 256 MiB). */
  maxBatchBytes?: number;
  /** Plugins available (default: the built-ins). */
  registry?: Registry;
  /** Where event lines and the per-snapshot table go (default `console.log`). */
  log?: (line: string) => void;
  /**
   * `auto` (default): estimators with an exact WebGPU path run on a hardware GPU when one exists (never a
   * software adapter); `cpu`; `webgpu`: WebGPU for every estimator with a GPU path, or an error at start when no
   * usable adapter exists (plugins/kernels/gpu/device.ts). Data goes up once per batch; results come back once per window.
   */
  backend?: BackendRequest;
  /** Let `backend: "webgpu"` use a software adapter; default: `INFOTAP_WEBGPU_ALLOW_SOFTWARE`. */
  allowSoftwareGpu?: boolean;
  /** Extra fields for run.json. */
  extra?: Record<string, unknown>;
}

/** A running server. */
export interface ServeHandle {
  /** Address the TCP listener is bound to. */
  hostname: string;
  /** TCP port (useful with port 0). */
  port: number;
  /** WebSocket port, when `ws` was given. */
  wsPort: number | null;
  /** Windows closed so far (snapshots written). */
  readonly snapshots: number;
  /** Every producer connection so far, as `run.json` will report it. */
  readonly producers: readonly ProducerRecord[];
  /** Stops gracefully and returns the run record written as `run.json`. */
  stop(): Promise<Record<string, unknown>>;
  /**
   * An in-process producer: record batches are validated (`validateSchema`, `decodeBatch`) and analysed as a
   * socket's would be, without serialization; `write` resolves once the batch is analysed.
   */
  local(): ProducerConnection;
}

/** What `run.json` reports per producer connection. */
export interface ProducerRecord {
  id: number;
  transport: "tcp" | "websocket" | "in-process";
  remote: string;
  status: string;
  error: string | null;
  batches: number;
  rows: number;
  bytes: number;
  late_rows: number;
  /** Bytes of a batch cut off by a disconnect or shutdown (that batch is lost). */
  partial_bytes: number;
  first_step: string | null;
  last_step: string | null;
}

interface Producer {
  record: ProducerRecord;
  lastStep: bigint | null;
  busy: boolean;
  layoutChecked: boolean;
  close(): void;
}

const DEFAULT_PORT = 7341;
const DEFAULT_MAX_BATCH = 256 * 1024 * 1024;
const TABLE_NAME = /^[a-z][a-z0-9_]*$/;

function pad(k: number): string {
  return (k < 0 ? "-" : "") + String(Math.abs(k)).padStart(8, "0");
}

function json(x: unknown): string {
  return JSON.stringify(x, (_k, v) => (typeof v === "bigint" ? v.toString() : v), 2) + "\n";
}

/** The progress record of `out/checkpoint/progress.json`. */
interface Progress {
  version: 1;
  snapshot_every: number;
  estimators: string[];
  options: OptionValues[];
  layers: string[] | null;
  seed: number;
  layout: { kind: string; tensors: { name: string; width: number }[]; reserved: string[] } | null;
  windows: number[];
  closed_through: number | null;
  next_step: number | null;
  rows: number;
}

/** Starts the server; resolves once it listens. Throws a one-line error on bad options. */
export async function serve(opts: ServeOptions): Promise<ServeHandle> {
  const live = new LiveRun(opts);
  await live.start();
  return live.handle();
}

/** The shared state of one live run: estimators per window, producers, outputs. */
class LiveRun {
  readonly opts: ServeOptions;
  readonly registry: Registry;
  readonly every: number;
  readonly maxBatch: number;
  readonly format: OutputFormat;
  readonly log: (line: string) => void;
  readonly context: EstimatorContext;
  /** The run's backend (chosen at start). */
  decision: BackendDecision = { backend: "cpu", reason: "not chosen yet", adapter: null };
  /**
   * Contexts of the estimators, one per plugin (backend per plugin): the windows' and the run totals' (the totals only
   * merge closed windows, but estimators that compute at the end, such as KSG, then do it on the GPU).
   */
  windowContexts: EstimatorContext[] = [];
  readonly requested: EstimatorPlugin[] | null;
  plugins: EstimatorPlugin[] | null = null;
  optionsByPlugin: OptionValues[] = [];
  layout: Layout | null = null;
  windows = new Map<number, Estimator[]>();
  total: Estimator[] | null = null;
  closedThrough: number | null = null;
  closedList: number[] = [];
  snapshots = 0;
  rows = 0;
  /** Rows of closed windows (the rows a resumed run starts from). */
  closedRows = 0;
  windowRows = new Map<number, number>();
  lateRows = 0;
  producers: ProducerRecord[] = [];
  active = new Set<Producer>();
  connected = new Set<Producer>();
  handlers = new Set<Promise<void>>();
  stopping = false;
  listener: Deno.Listener | null = null;
  wsServer: Deno.HttpServer | null = null;
  hostname = "127.0.0.1";
  port = 0;
  wsPort: number | null = null;
  #lock: Promise<unknown> = Promise.resolve();
  #nextId = 0;
  readonly t0 = performance.now();
  readonly started = new Date().toISOString();
  resumedFrom: number | null = null;
  stopped: Promise<Record<string, unknown>> | null = null;

  constructor(opts: ServeOptions) {
    this.opts = opts;
    this.registry = opts.registry ?? new Registry(builtinPlugins);
    this.every = opts.snapshotEvery ?? 0;
    if (!Number.isSafeInteger(this.every) || this.every < 0) {
      throw new InputError(
        `Cannot use --snapshot-every as it must be an integer >= 0: current value is ${show(opts.snapshotEvery)}`,
      );
    }
    this.maxBatch = opts.maxBatchBytes ?? DEFAULT_MAX_BATCH;
    if (!Number.isSafeInteger(this.maxBatch) || this.maxBatch < 1024) {
      throw new InputError(
        `Cannot use --max-batch-bytes as it must be an integer >= 1024: current value is ${show(opts.maxBatchBytes)}`,
      );
    }
    if (opts.resume && this.every === 0) {
      throw new InputError(
        "Cannot resume without --snapshot-every as only runs with step windows write checkpoints while running: current value is 0",
      );
    }
    this.format = opts.format ?? "parquet";
    this.log = opts.log ?? ((l) => console.log(l));
    this.context = { byStep: this.every > 0 || (opts.byStep ?? false), seed: opts.seed ?? 0, backend: "cpu" };
    this.requested = opts.estimators?.length ? opts.estimators.map((n) => this.registry.get(n)) : null;
    // No first pass on a live stream: refuse estimators that would need one.
    const candidates = this.requested ?? this.registry.all().filter((p) => p.byDefault);
    for (const p of candidates) {
      let o: OptionValues;
      try {
        o = resolveOptions(p, opts.options ?? {});
      } catch (e) {
        // A default estimator for another kind may lack a required option; it is checked if it ever runs.
        if (this.requested) throw e;
        continue;
      }
      if (p.scan?.(o, this.context)) {
        const hint = "range" in p.options ? "; pass --range LO,HI (with --binning global)" : "";
        throw new InputError(
          `[${p.name}] Cannot run estimator live as it needs a first pass over all the data, which a live stream lacks${hint}: current value is no ${
            "range" in p.options ? "--range" : "option that skips the first pass"
          }`,
        );
      }
    }
  }

  async start(): Promise<void> {
    const tcp = this.opts.listen === null ? null : parseListen(this.opts.listen ?? `127.0.0.1:${DEFAULT_PORT}`);
    const ws = this.opts.ws ? parseListen(this.opts.ws, "--ws") : null;
    for (const h of [tcp?.hostname, ws?.hostname]) {
      if (h !== undefined && !isLoopback(h) && !this.opts.token) {
        throw new InputError(
          `Cannot listen on a non-loopback address without --token (producers must present it): current value is ${
            show(h)
          }`,
        );
      }
    }
    if (this.opts.token !== undefined && !/^[\x21-\x7e]{1,256}$/.test(this.opts.token)) {
      throw new InputError(
        "Cannot use --token as it must be 1-256 printable ASCII characters without spaces: current value is a token of " +
          `${this.opts.token.length} characters`,
      );
    }
    this.decision = await selectBackend(this.opts.backend ?? "auto", { allowSoftware: this.opts.allowSoftwareGpu });
    await Deno.mkdir(this.opts.out, { recursive: true });
    if (this.opts.resume) await this.#restore();
    if (tcp) {
      this.listener = Deno.listen({ hostname: tcp.hostname, port: tcp.port, transport: "tcp" });
      const addr = this.listener.addr as Deno.NetAddr;
      this.hostname = addr.hostname;
      this.port = addr.port;
    }
    if (ws) {
      try {
        await this.#startWs(ws.hostname, ws.port);
      } catch (e) {
        this.listener?.close();
        throw e;
      }
    }
    if (this.listener) this.#accept();
    this.log(
      `infotap serve: ${tcp ? `listening on ${this.hostname}:${this.port}` : "in-process"}${
        this.wsPort !== null ? ` (WebSocket on port ${this.wsPort})` : ""
      }; backend ${this.decision.backend}${
        this.decision.backend === "webgpu" && this.decision.adapter
          ? ` (${describeAdapter(this.decision.adapter)})`
          : ""
      }; results in ${this.opts.out}${
        this.resumedFrom !== null ? `; resumed: producers replay from step ${this.resumedFrom}` : ""
      }`,
    );
  }

  handle(): ServeHandle {
    // deno-lint-ignore no-this-alias
    const self = this;
    return {
      hostname: this.hostname,
      port: this.port,
      wsPort: this.wsPort,
      get snapshots() {
        return self.snapshots;
      },
      get producers() {
        return self.producers;
      },
      stop: () => (this.stopped ??= this.#stop()),
      local: () => this.#local(),
    };
  }

  #local(): ProducerConnection {
    const p = this.#newProducer("in-process", "in-process", () => {});
    const rec = p.record;
    const label = `producer ${rec.id} (in-process)`;
    this.active.add(p);
    let index = 0;
    let layout: Layout | null = null;
    let schema: arrow.Schema | null = null;
    let open = true;
    const end = async (status: string) => {
      if (!open) return;
      open = false;
      if (rec.status === "connected") rec.status = status;
      this.active.delete(p);
      this.connected.delete(p);
      await this.#withLock(() => this.#closeReady());
    };
    return {
      write: async (rb) => {
        if (!open || this.stopping) {
          throw new Error(
            `Cannot write a batch as the ${
              open ? "server is stopping" : "producer is closed"
            }: current value is ${rec.status}`,
          );
        }
        try {
          if (rb.schema !== schema) {
            const l = validateSchema(rb.schema, label, index);
            if (layout) checkSameLayout(layout, l, label, index);
            layout = l;
            schema = rb.schema;
          }
          const batch = decodeBatch(rb, layout!, label, index++);
          p.busy = true;
          try {
            await this.#withLock(() => this.#feed(p, batch, layout!));
          } finally {
            p.busy = false;
          }
        } catch (e) {
          rec.status = "error";
          rec.error = (e as Error).message;
          await end("error");
          throw e;
        }
      },
      close: async () => {
        await end("ended");
        if (rec.error) throw new Error(`infotap serve refused the stream: ${rec.error}`);
        return { batches: rec.batches, rows: rec.rows };
      },
      abort: () => void end("aborted"),
    };
  }

  async #accept(): Promise<void> {
    const listener = this.listener!;
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return; // closed
      }
      if (this.stopping) {
        conn.close();
        continue;
      }
      this.#track(this.#handleTcp(conn));
    }
  }

  #track(p: Promise<void>): void {
    const q = p.catch((e) => this.log(`infotap serve: internal error: ${(e as Error)?.message ?? e}`)).finally(() =>
      this.handlers.delete(q)
    );
    this.handlers.add(q);
  }

  #newProducer(transport: ProducerRecord["transport"], remote: string, close: () => void): Producer {
    const record: ProducerRecord = {
      id: ++this.#nextId,
      transport,
      remote,
      status: "connected",
      error: null,
      batches: 0,
      rows: 0,
      bytes: 0,
      late_rows: 0,
      partial_bytes: 0,
      first_step: null,
      last_step: null,
    };
    this.producers.push(record);
    const p = { record, lastStep: null, busy: false, layoutChecked: false, close };
    this.connected.add(p);
    return p;
  }

  async #handleTcp(conn: Deno.Conn): Promise<void> {
    const addr = conn.remoteAddr as Deno.NetAddr;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch { /* already closed */ }
    };
    const p = this.#newProducer("tcp", `${addr.hostname}:${addr.port}`, close);
    const r = new ByteReader(conn.readable);
    const reply = async (line: string) => {
      try {
        const b = new TextEncoder().encode(line.replaceAll("\n", " ") + "\n");
        let off = 0;
        while (off < b.length) off += await conn.write(b.subarray(off));
      } catch { /* the producer is gone */ }
    };
    try {
      let token: string | null;
      try {
        token = await readHello(r);
      } catch (e) {
        p.record.status = "refused";
        p.record.error = (e as Error).message;
        await reply(`ERR ${p.record.error}`);
        return;
      }
      if (!this.#authorized(p, token)) {
        await reply(`ERR ${p.record.error}`);
        return;
      }
      if (token !== null) await reply("OK");
      this.active.add(p);
      const answer = await this.#consume(p, r);
      await reply(answer);
      if (answer.startsWith("ERR")) await this.#drain(conn, r);
    } finally {
      this.active.delete(p);
      this.connected.delete(p);
      close();
      await this.#withLock(() => this.#closeReady());
    }
  }

  #authorized(p: Producer, token: string | null): boolean {
    if (this.opts.token === undefined) return true;
    if (token !== null && sameToken(token, this.opts.token)) return true;
    p.record.status = "refused";
    p.record.error = token === null
      ? "Cannot accept producer as this server requires a token and none was presented (send 'INFOTAP1 <token>\\n' first): current value is no handshake"
      : "Cannot accept producer as its token is wrong: current value is a token that does not match";
    this.log(`infotap serve: producer ${p.record.id} (${p.record.remote}) refused: ${p.record.error}`);
    return false;
  }

  /** Reads for up to a second (64 MiB) after a refusal, so that the producer can read the answer before EOF. */
  async #drain(conn: Deno.Conn, r: ByteReader): Promise<void> {
    await conn.closeWrite().catch(() => {});
    const deadline = Date.now() + 1000;
    let n = 0;
    while (Date.now() < deadline && n < 64 << 20) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<false>((res) => (timer = setTimeout(() => res(false), deadline - Date.now())));
      const more = r.fill(r.available + 1).catch(() => false);
      const ok = await Promise.race([more, timeout]);
      clearTimeout(timer);
      if (!ok) break;
      n += r.available;
      r.take(r.available);
    }
  }

  /** Reads one producer's stream to its end; returns the answer line (`OK ...` or `ERR ...`). */
  async #consume(p: Producer, r: ByteReader): Promise<string> {
    const rec = p.record;
    const label = `producer ${rec.id} (${rec.remote})`;
    const state: FrameState = { messages: 0, batches: 0, eos: false, partialBytes: 0, refused: null };
    let stoppedEarly = false;
    const before = r.received;
    try {
      const frames = frameMessages(r, this.maxBatch, state, label);
      for await (const { batch, layout } of readMessages(frames, label)) {
        p.busy = true;
        try {
          await this.#withLock(() => this.#feed(p, batch, layout));
        } finally {
          p.busy = false;
        }
        if (this.stopping) {
          stoppedEarly = true;
          break;
        }
      }
      rec.bytes = r.received;
      rec.status = stoppedEarly ? "stopped by shutdown" : state.eos ? "ended" : "ended without end-of-stream marker";
      return `OK ${rec.batches} ${rec.rows}`;
    } catch (e) {
      rec.bytes = r.received;
      const msg = (e as Error)?.message ?? String(e);
      if (state.refused) {
        rec.status = "refused";
        rec.error = msg;
      } else if (this.stopping) {
        rec.status = "interrupted by shutdown";
        rec.partial_bytes = r.available;
      } else if (state.partialBytes > 0) {
        rec.status = "disconnected mid-batch";
        rec.partial_bytes = state.partialBytes;
        rec.error = msg;
      } else if (
        state.messages === 0 && r.received === before && e instanceof InputError && /as it is empty/.test(msg)
      ) {
        rec.status = "ended without data";
      } else {
        rec.status = "error";
        rec.error = msg;
      }
      if (rec.status !== "ended without data") this.log(`infotap serve: ${rec.status}: ${msg}`);
      return `ERR ${msg}`;
    }
  }

  #withLock<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.#lock.then(fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  #choose(layout: Layout): void {
    const plugins = this.registry.choose(this.requested, layout.kind);
    this.plugins = plugins;
    this.optionsByPlugin = plugins.map((p) => resolveOptions(p, this.opts.options ?? {}));
    this.#setContexts();
    this.total = plugins.map((p, i) => p.create(this.optionsByPlugin[i], this.windowContexts[i]));
  }

  /** Per plugin: WebGPU for the window estimators when the run chose it and the plugin's path qualifies. */
  #setContexts(): void {
    this.windowContexts = this.plugins!.map((p, i) => ({
      ...this.context,
      backend: estimatorBackend(this.decision.backend, this.opts.backend ?? "auto", p.gpu?.(this.optionsByPlugin[i])),
    }));
  }

  #windowOf(step: bigint | null): number {
    if (this.every === 0 || step === null) return 0;
    return Math.floor(Number(step) / this.every);
  }

  async #feed(p: Producer, raw: Batch, layout: Layout): Promise<void> {
    const rec = p.record;
    if (!p.layoutChecked) {
      if (!this.layout) {
        if (!this.plugins) this.#choose(layout);
        this.layout = layout;
      } else checkSameLayout(this.layout, layout, raw.file, raw.index);
      p.layoutChecked = true;
    }
    const batch = selectLayers(raw, this.opts.layers);
    if (this.every > 0 && !batch.step) {
      throw new InputError(
        `Cannot snapshot every ${this.every} steps (--snapshot-every) as the stream has no 'step' column: current value is missing`,
        { file: batch.file, batch: batch.index, column: "step" },
      );
    }
    // Runs of rows in the same window.
    const n = batch.numRows;
    let r0 = 0;
    for (let r = 1; r <= n; r++) {
      const k0 = this.#windowOf(batch.step ? batch.step[r0] : null);
      if (r < n && this.#windowOf(batch.step ? batch.step[r] : null) === k0) continue;
      const part = r0 === 0 && r === n ? batch : sliceBatch(batch, r0, r);
      r0 = r;
      if (this.closedThrough !== null && k0 <= this.closedThrough) {
        rec.late_rows += part.numRows;
        this.lateRows += part.numRows;
        continue;
      }
      let ests = this.windows.get(k0);
      if (!ests) {
        ests = this.plugins!.map((pl, i) => pl.create(this.optionsByPlugin[i], this.windowContexts[i]));
        this.windows.set(k0, ests);
      }
      this.windowRows.set(k0, (this.windowRows.get(k0) ?? 0) + part.numRows);
      for (let i = 0; i < ests.length; i++) {
        try {
          await ests[i].update(part);
        } catch (e) {
          if (e instanceof InputError) throw e;
          throw new InputError(`[${this.plugins![i].name}] ${(e as Error).message}`, {
            file: part.file,
            batch: part.index,
          });
        }
      }
    }
    rec.batches++;
    rec.rows += n;
    this.rows += n;
    if (batch.step && n > 0) {
      let lo = batch.step[0], hi = batch.step[0];
      for (let i = 1; i < n; i++) {
        if (batch.step[i] < lo) lo = batch.step[i];
        if (batch.step[i] > hi) hi = batch.step[i];
      }
      if (rec.first_step === null) rec.first_step = lo.toString();
      if (p.lastStep === null || hi > p.lastStep) p.lastStep = hi;
      rec.last_step = p.lastStep.toString();
    }
    await this.#closeReady();
  }

  /** Closes every window that all connected producers have passed. */
  async #closeReady(): Promise<void> {
    if (this.every === 0 || this.active.size === 0) return;
    let min: bigint | null = null;
    for (const p of this.active) {
      if (p.lastStep === null) return;
      if (min === null || p.lastStep < min) min = p.lastStep;
    }
    const through = this.#windowOf(min) - 1;
    await this.#closeThrough(through);
  }

  async #closeThrough(through: number): Promise<void> {
    const ks = [...this.windows.keys()].filter((k) => k <= through).sort((a, b) => a - b);
    for (const k of ks) await this.#closeWindow(k);
    if (this.closedThrough === null || through > this.closedThrough) this.closedThrough = through;
  }

  async #closeWindow(k: number): Promise<void> {
    const ests = this.windows.get(k)!;
    const plugins = this.plugins!;
    const tables = await resultTables(plugins, ests);
    const out = this.opts.out;
    for (const [name, t] of Object.entries(tables)) {
      if (!TABLE_NAME.test(name)) {
        throw new Error(`Cannot write table as its name is not ${TABLE_NAME}: current value is ${show(name)}`);
      }
      await Deno.mkdir(`${out}/${name}`, { recursive: true });
      await writeTable(`${out}/${name}/part-${pad(k)}`, t, this.format);
    }
    await Deno.mkdir(`${out}/checkpoint`, { recursive: true });
    await atomicWrite(
      `${out}/checkpoint/window-${pad(k)}.state`,
      encodeState({ window: k, estimators: ests.map((e) => e.state()) }),
    );
    for (let i = 0; i < ests.length; i++) {
      this.total![i].merge(ests[i]);
      ests[i].dispose?.();
    }
    this.windows.delete(k);
    this.closedRows += this.windowRows.get(k) ?? 0;
    this.windowRows.delete(k);
    this.closedList.push(k);
    if (this.closedThrough === null || k > this.closedThrough) this.closedThrough = k;
    await atomicWrite(`${out}/checkpoint/progress.json`, json(this.#progress()));
    // Counted once its files, checkpoint and progress are all written (ServeHandle.snapshots promises that).
    this.snapshots++;
    this.#printSnapshot(k, tables);
  }

  #progress(): Progress {
    return {
      version: 1,
      snapshot_every: this.every,
      estimators: this.plugins?.map((p) => p.name) ?? [],
      options: this.optionsByPlugin,
      layers: this.opts.layers ?? null,
      seed: this.context.seed,
      layout: this.layout
        ? { kind: this.layout.kind, tensors: this.layout.tensors, reserved: this.layout.reserved }
        : null,
      windows: this.closedList,
      closed_through: this.closedThrough,
      next_step: this.every > 0 && this.closedThrough !== null ? (this.closedThrough + 1) * this.every : null,
      rows: this.closedRows,
    };
  }

  /** Prints the window's `layer_summary` at its last step (or its tables' sizes). */
  #printSnapshot(k: number, tables: Record<string, arrow.Table>): void {
    const t = tables.layer_summary;
    const head = this.every > 0
      ? `snapshot ${this.snapshots}: steps ${k * this.every}..${(k + 1) * this.every - 1}`
      : `snapshot ${this.snapshots}`;
    if (!t || t.numRows === 0) {
      this.log(`${head}: ${Object.entries(tables).map(([n, x]) => `${n} ${x.numRows} rows`).join(", ")}`);
      return;
    }
    const stepCol = t.getChild("step");
    let last: bigint | null = null;
    for (let i = 0; i < t.numRows; i++) {
      const s = stepCol?.get(i) as bigint | null;
      if (s !== null && s !== undefined && (last === null || s > last)) last = s;
    }
    const names = t.schema.fields.map((f) => f.name).filter((n) => n !== "step");
    const rows: string[][] = [names];
    for (let i = 0; i < t.numRows; i++) {
      if (last !== null && stepCol?.get(i) !== last) continue;
      rows.push(names.map((n) => {
        const v = t.getChild(n)!.get(i);
        return typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : v === null ? "-" : String(v);
      }));
    }
    const widths = names.map((_, j) => Math.max(...rows.map((r) => r[j].length)));
    this.log(`${head}${last !== null ? ` (layers at step ${last})` : ""}`);
    for (const r of rows) {
      this.log("  " + r.map((c, j) => (j === 0 ? c.padEnd(widths[j]) : c.padStart(widths[j]))).join("  "));
    }
  }

  async #restore(): Promise<void> {
    const dir = `${this.opts.out}/checkpoint`;
    let progress: Progress;
    try {
      progress = JSON.parse(await Deno.readTextFile(`${dir}/progress.json`));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        this.resumedFrom = 0;
        this.log(`infotap serve: --resume: no checkpoint in ${this.opts.out} yet; starting from step 0`);
        return;
      }
      throw new InputError(
        `Cannot resume as the checkpoint is unreadable: current value is ${show((e as Error).message)}`,
        { file: `${dir}/progress.json` },
      );
    }
    const mismatch = (what: string, was: unknown, now: unknown) => {
      throw new InputError(
        `Cannot resume as ${what} differs from the checkpoint's (${JSON.stringify(was)}): current value is ${
          JSON.stringify(now)
        }`,
        { file: `${dir}/progress.json` },
      );
    };
    if (progress.version !== 1) mismatch("the checkpoint version", 1, progress.version);
    if (progress.snapshot_every !== this.every) mismatch("--snapshot-every", progress.snapshot_every, this.every);
    if (JSON.stringify(progress.layers) !== JSON.stringify(this.opts.layers ?? null)) {
      mismatch("--layers", progress.layers, this.opts.layers ?? null);
    }
    if (progress.seed !== this.context.seed) mismatch("--seed", progress.seed, this.context.seed);
    const plugins = progress.estimators.map((n) => this.registry.get(n));
    if (this.requested && this.requested.map((p) => p.name).join() !== plugins.map((p) => p.name).join()) {
      mismatch("--estimators", progress.estimators, this.requested.map((p) => p.name));
    }
    const options = plugins.map((p) => resolveOptions(p, this.opts.options ?? {}));
    if (JSON.stringify(options) !== JSON.stringify(progress.options)) {
      mismatch("the estimator options", progress.options, options);
    }
    this.plugins = plugins;
    this.optionsByPlugin = options;
    this.#setContexts();
    this.total = plugins.map((p, i) => p.create(options[i], this.windowContexts[i]));
    if (progress.layout) {
      this.layout = {
        kind: progress.layout.kind as Layout["kind"],
        tensors: progress.layout.tensors,
        reserved: progress.layout.reserved,
        metadata: new Map(),
      };
    }
    for (const k of progress.windows) {
      const file = `${dir}/window-${pad(k)}.state`;
      const st = decodeState(await Deno.readFile(file)) as { window: number; estimators: unknown[] };
      if (st.window !== k || st.estimators.length !== plugins.length) {
        throw new InputError(`Cannot resume as a window state does not match progress.json: current value is ${k}`, {
          file,
        });
      }
      for (let i = 0; i < plugins.length; i++) {
        const e = plugins[i].restore(st.estimators[i] as never, options[i], this.context);
        this.total[i].merge(e);
      }
    }
    this.closedList = [...progress.windows];
    this.closedThrough = progress.closed_through;
    this.snapshots = progress.windows.length;
    this.rows = this.closedRows = progress.rows;
    this.resumedFrom = progress.next_step ?? 0;
    // Part files of windows after the checkpoint are stale (written before a crash): they will be rewritten.
    for await (const d of Deno.readDir(this.opts.out)) {
      if (!d.isDirectory || !TABLE_NAME.test(d.name)) continue;
      for await (const f of Deno.readDir(`${this.opts.out}/${d.name}`)) {
        const m = /^part-(-?\d+)\.(parquet|arrow|csv)$/.exec(f.name);
        if (m && (this.closedThrough === null || Number(m[1]) > this.closedThrough)) {
          await Deno.remove(`${this.opts.out}/${d.name}/${f.name}`);
        }
      }
    }
  }

  async #stop(): Promise<Record<string, unknown>> {
    this.stopping = true;
    this.listener?.close();
    await this.wsServer?.shutdown();
    // Producers waiting for bytes are cut now; one analysing a batch finishes it, then stops.
    for (const p of this.connected) if (!p.busy) p.close();
    while (this.handlers.size > 0) await Promise.allSettled([...this.handlers]);
    for (const p of this.connected) if (p.record.status === "connected") p.record.status = "open at shutdown";
    return await this.#withLock(async () => {
      const open = [...this.windows.keys()];
      if (open.length > 0) await this.#closeThrough(Math.max(...open));
      const tables = this.total && this.rows > 0 ? await resultTables(this.plugins!, this.total) : {};
      const files = Object.keys(tables).length ? await writeTables(this.opts.out, tables, this.format) : [];
      const lost = this.producers.filter((p) => p.partial_bytes > 0);
      const run: Record<string, unknown> = {
        complete: true,
        error: null,
        mode: "serve",
        kind: this.layout?.kind ?? null,
        layers: this.layout?.tensors.filter((t) => !this.opts.layers || this.opts.layers.includes(t.name)) ?? [],
        estimators: (this.plugins ?? []).map((p, i) => ({
          name: p.name,
          options: this.optionsByPlugin[i],
          backend: this.windowContexts[i]?.backend ?? "cpu",
          summary: (this.total![i] as Estimator & { summary?: () => unknown }).summary?.() ?? null,
        })),
        options: {
          by_step: this.context.byStep,
          seed: this.context.seed,
          layers: this.opts.layers ?? null,
          format: this.format,
          snapshot_every: this.every,
          max_batch_bytes: this.maxBatch,
          listen: `${this.hostname}:${this.port}`,
          websocket_port: this.wsPort,
          token: this.opts.token ? "required" : "none",
        },
        rows: this.rows,
        snapshots: this.snapshots,
        next_step: this.#progress().next_step,
        resumed_from_step: this.resumedFrom,
        late_rows: this.lateRows,
        lost_partial_batches: lost.length,
        producers: this.producers,
        tables: Object.fromEntries(Object.entries(tables).map(([n, t]) => [n, { rows: t.numRows }])),
        files: files.map((f) => f.slice(this.opts.out.length + 1)),
        backend: this.decision.backend,
        backend_request: this.opts.backend ?? "auto",
        backend_reason: this.decision.reason,
        adapter: adapterRecord(this.decision),
        versions: versions(),
        started: this.started,
        finished: new Date().toISOString(),
        timings: { total_s: (performance.now() - this.t0) / 1000 },
        ...this.opts.extra,
      };
      for (const e of this.total ?? []) e.dispose?.();
      await atomicWrite(`${this.opts.out}/run.json`, json(run));
      return run;
    });
  }

  async #startWs(hostname: string, port: number): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<number>();
    this.wsServer = Deno.serve({ hostname, port, onListen: (a) => resolve(a.port) }, (req, info) => {
      if (this.stopping || req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("infotap serve: WebSocket producers only\n", { status: 400 });
      }
      const token = new URL(req.url).searchParams.get("token");
      const remote = `${info.remoteAddr.hostname}:${info.remoteAddr.port}`;
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.binaryType = "arraybuffer";
      this.#track(this.#handleWs(socket, remote, token));
      return response;
    });
    this.wsPort = await promise;
  }

  /**
   * A WebSocket producer. WebSocket has no flow control, so messages are queued; when more than
   * `2 * maxBatchBytes` are waiting the connection is closed (1009) and reported: a browser producer should
   * wait for `socket.bufferedAmount` to fall before sending more.
   */
  async #handleWs(socket: WebSocket, remote: string, token: string | null): Promise<void> {
    const p = this.#newProducer("websocket", remote, () => {
      try {
        socket.close(1001, "server stopping");
      } catch { /* closed */ }
    });
    const queue: Uint8Array[] = [];
    let queued = 0;
    let ended = false;
    let wake: (() => void) | null = null;
    const limit = 2 * this.maxBatch + (1 << 20);
    let overflow = false;
    const opened = new Promise<void>((res) => {
      if (socket.readyState === WebSocket.OPEN) res();
      socket.onopen = () => res();
    });
    socket.onmessage = (ev) => {
      if (ended) return;
      const data = typeof ev.data === "string" ? new TextEncoder().encode(ev.data) : new Uint8Array(ev.data);
      queue.push(data);
      queued += data.length;
      if (queued > limit) {
        overflow = true;
        ended = true;
      }
      wake?.();
    };
    socket.onclose = () => {
      ended = true;
      wake?.();
    };
    socket.onerror = () => {
      ended = true;
      wake?.();
    };
    const source = async function* () {
      while (true) {
        if (overflow) {
          throw new Error(
            `Cannot buffer the WebSocket producer's messages as more than ${limit} bytes are waiting (pace sends with bufferedAmount): current value is ${queued} bytes`,
          );
        }
        if (queue.length) {
          const c = queue.shift()!;
          queued -= c.length;
          yield c;
          continue;
        }
        if (ended) return;
        await new Promise<void>((res) => (wake = res));
        wake = null;
      }
    };
    await opened;
    const send = (s: string) => {
      try {
        if (socket.readyState === WebSocket.OPEN) socket.send(s);
      } catch { /* closed */ }
    };
    try {
      if (!this.#authorized(p, token)) {
        send(`ERR ${p.record.error}`);
        return;
      }
      this.active.add(p);
      const r = new ByteReader(source());
      const answer = await this.#consume(p, r);
      send(answer);
    } finally {
      this.active.delete(p);
      this.connected.delete(p);
      try {
        socket.close(1000);
      } catch { /* closed */ }
      await this.#withLock(() => this.#closeReady());
    }
  }
}
