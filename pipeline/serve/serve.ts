/**
 * Live analysis of training runs: {@linkcode serve} accepts wire-format v1 Arrow IPC streams from producers
 * over TCP (and WebSocket), feeds their batches to one set of estimators, and writes results per training-step
 * window while the run goes on.
 *
 * ## Protocol
 * A producer opens a TCP connection, optionally sends one handshake line `INFOTAP1 <token>\n` (required when
 * the server has a token; the server answers `OK\n` or `ERR <message>\n`), then writes one Arrow IPC stream
 * (format 1.0+, the stream format, not the file format) and half-closes its side. When the stream ends the
 * server answers `OK <batches> <rows>\n`; when it refuses something it answers `ERR <message>\n` and closes:
 * a malformed handshake (never echoed: it may hold the token), a batch over `maxBatchBytes`, or a batch with a
 * step before the first open one or more than `maxStepJump` after the highest so far (nothing of that batch is
 * analysed; the batches before it are). Past `maxProducers` connections, a new one gets `ERR <message>` at once.
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
 * Every `flushEvery` seconds (`--flush-every`, default 30) the open windows' states go to
 * `DIR/checkpoint/open.state` and `progress.json` names the flush. Every file is written through a temporary
 * name, fsynced and renamed (core/write.ts `atomicWrite`).
 *
 * Closed windows are merged (`Estimator.merge`) into one running set whose results, written on stop as
 * `DIR/<table>.parquet`, equal those of `analyze --by-step` on the same rows. Without `snapshotEvery` there is
 * one window, closed on stop. A crash (even SIGKILL or a power loss) loses at most the rows of the last
 * `flushEvery` seconds.
 *
 * ## Lifecycle
 * `stop()` (SIGINT/SIGTERM in the CLI) stops accepting, lets each producer finish the batch being analysed,
 * drops the partial batches still in transit (reported per producer), closes every open window, writes the
 * final tables and `run.json` (an internal error there still writes `run.json`, `complete: false`). `resume:
 * true` continues from `DIR/checkpoint` (closed windows, and open ones as last flushed): producers replay from
 * `next_step`, which `run.json` states with the flush it resumed from (`resumed_from`). A producer that
 * disconnects mid-batch loses only that batch (`status: "disconnected mid-batch"`, `partial_bytes`); one that
 * completes no batch for `producerTimeout` seconds is cut off (`status: "timed out"`) and holds no window open.
 * Batches are read only as fast as the estimators take them, and all producers' messages share a byte budget
 * (`maxBufferedBytes`: a producer waits for room before a body is read), so a fast producer is slowed by TCP
 * flow control and memory stays bounded; a batch over `maxBatchBytes` is refused before its body is read. A
 * failed accept (out of file descriptors, an aborted connection) is logged and retried after a back-off.
 *
 * ## No first pass
 * A live stream cannot be read twice, so estimators that need a first pass (`plugin.scan`) cannot run unless
 * their options make it unnecessary: `serve` refuses to start otherwise, naming the option the plugin declares
 * (`plugin.liveHint`; e.g. `--range LO,HI` for the binned estimators).
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
import type { EstimatorPlugin, OptionValues } from "../core/plugin.ts";
import { type BackendDecision, type BackendRequest, openRunGpu, selectBackend } from "../core/backend.ts";
import { describeAdapter } from "../../plugins/kernels/gpu/context.ts";
import { resolveThreads } from "../../plugins/kernels/threads.ts";
import { Registry } from "../core/registry.ts";
import { firstPassPlugin, type RunSettings } from "../core/estimator_set.ts";
import { selectLayers } from "../core/select_layers.ts";
import { runRecord, writeRunRecord } from "../core/run_record.ts";
import { readSource } from "../../schemas/source.ts";
import { type OutputFormat, removeStaleTemps, writeTables } from "../core/write.ts";
import { checkSameLayout, decodeBatch, type Layout, validateSchema } from "../../schemas/validate.ts";
import type { ProducerConnection } from "../producers/connect.ts";
import { builtinPlugins } from "../../plugins/mod.ts";
import type { ByteSource } from "../../schemas/bytes.ts";
import type { FrameState } from "../../schemas/framer.ts";
import { sameToken } from "../../schemas/handshake.ts";
import { isLoopback, parseListen } from "./listen.ts";
import { readCheckpoint, removeStaleParts } from "./checkpoint.ts";
import { StepRefusal, Windows } from "./windows.ts";
import { ByteBudget } from "./budget.ts";
import { acceptTcp } from "./tcp.ts";
import { startWs } from "./ws.ts";

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
  /**
   * Seconds between flushes of the open windows' states to `out/checkpoint` (default 30; 0: only when windows
   * close). A kill, even SIGKILL or a power loss, then loses at most this interval: `--resume` continues from
   * the last flush.
   */
  flushEvery?: number;
  /**
   * Bytes all producers' messages may hold at once (default 1 GiB, at least `2 * maxBatchBytes`): a TCP
   * producer waits for room before a batch's body is read; a WebSocket one that overflows it is cut off.
   */
  maxBufferedBytes?: number;
  /** Producers connected at once (default 64); more are refused with a one-line answer. */
  maxProducers?: number;
  /**
   * Seconds a producer may go without completing a batch (idle, or sending one slowly) before it is
   * disconnected and stops holding windows open (default 300; 0: never).
   */
  producerTimeout?: number;
  /**
   * A batch whose step is more than this many steps after the highest step received so far is refused
   * (default 1,000,000; 0: no limit). Steps before the first open step are always refused.
   */
  maxStepJump?: number;
  /** Plugins available (default: the built-ins). */
  registry?: Registry;
  /** Where event lines and the per-snapshot table go (default `console.log`). */
  log?: (line: string) => void;
  /**
   * `auto` (default): estimators with an exact WebGPU path run on a hardware GPU when one exists (never a
   * software adapter); `cpu`; `webgpu`: WebGPU for every estimator with a GPU path, or an error at start when no
   * usable adapter exists (pipeline/core/backend.ts). Data goes up once per batch; results come back once per window.
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
  /** While stopping: result files still to write (part files of open windows, final tables, run.json). */
  readonly left: number;
  /** The estimators' warnings at stop (e.g. values clipped into `--range`), each as `[plugin] warning`. */
  readonly warnings: readonly string[];
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
  /** Bytes of a batch cut off by a disconnect or shutdown (that batch is lost). */
  partial_bytes: number;
  first_step: string | null;
  last_step: string | null;
}

/** One producer connection as the run tracks it. */
export interface Producer {
  record: ProducerRecord;
  lastStep: bigint | null;
  busy: boolean;
  layoutChecked: boolean;
  /** When it connected or last completed a batch (`performance.now()`), for `producerTimeout`. */
  lastActive: number;
  /** Cut by `producerTimeout`. */
  timedOut: boolean;
  close(): void;
}

/** What the transports (tcp.ts, ws.ts) need of the live run. */
export interface Intake {
  /** True once `stop()` began: no new producers. */
  readonly stopping: boolean;
  /** `maxBatchBytes`. */
  readonly maxBatch: number;
  /** `maxBufferedBytes`, shared by every producer. */
  readonly budget: ByteBudget;
  /** A one-line refusal when `maxProducers` are connected, else null (the connection is then not registered). */
  full(): string | null;
  /** Logs a line (accept errors). */
  log(line: string): void;
  /** Registers a connection (`close` cuts it on stop). */
  producer(transport: ProducerRecord["transport"], remote: string, close: () => void): Producer;
  /** True when the producer's token is right or none is needed; otherwise records and logs the refusal. */
  authorized(p: Producer, token: string | null): boolean;
  /** Reads the producer's stream to its end, feeding the windows; returns the answer line (`OK ...`/`ERR ...`). */
  consume(p: Producer, r: ByteSource): Promise<string>;
  /** The producer is gone: forgets it, then closes the windows it alone held open (awaited). */
  leave(p: Producer): Promise<void>;
  /** Keeps a connection's handler until it settles (stop waits for them); its errors are logged. */
  track(work: Promise<void>): void;
}

const DEFAULT_PORT = 7341;
const DEFAULT_MAX_BATCH = 256 * 1024 * 1024;
/** Defaults of the limits (see {@linkcode ServeOptions}). */
export const SERVE_DEFAULTS = { flushEvery: 30, maxProducers: 64, producerTimeout: 300, maxStepJump: 1_000_000 };

/** Starts the server; resolves once it listens. Throws a one-line error on bad options. */
export async function serve(opts: ServeOptions): Promise<ServeHandle> {
  const live = new LiveRun(opts);
  await live.start();
  return live.handle();
}

/** A number option checked: finite, at least `min`, an integer when asked; its default when absent. */
function limit(value: number | undefined, fallback: number, min: number, flag: string, integer = true): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v < min || (integer && !Number.isSafeInteger(v))) {
    throw new InputError(
      `Cannot use ${flag} as it must be ${integer ? "an integer" : "a number"} >= ${min}: current value is ${
        show(value)
      }`,
    );
  }
  return v;
}

/** One live run: its producers and windows, from start to stop. */
class LiveRun implements Intake {
  readonly opts: ServeOptions;
  readonly registry: Registry;
  readonly every: number;
  readonly maxBatch: number;
  readonly flushEvery: number;
  readonly maxProducers: number;
  readonly producerTimeout: number;
  readonly maxStepJump: number;
  readonly budget: ByteBudget;
  readonly format: OutputFormat;
  readonly log: (line: string) => void;
  /** `--by-step`, `--seed` and the backend (chosen at start). */
  readonly settings: RunSettings;
  readonly requested: EstimatorPlugin[] | null;
  readonly windows: Windows;
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
  #timers: ReturnType<typeof setInterval>[] = [];
  #flushQueued = false;
  readonly t0 = performance.now();
  readonly started = new Date().toISOString();
  resumedFrom: number | null = null;
  /** What the run continued from (`--resume`), as run.json states it. */
  resumed: Record<string, unknown> | null = null;
  stopped: Promise<Record<string, unknown>> | null = null;
  /** Connections refused because `maxProducers` were connected. */
  refusedConnections = 0;
  /** Result files still to write while stopping. */
  left = 0;
  warnings: string[] = [];

  constructor(opts: ServeOptions) {
    this.opts = opts;
    this.registry = opts.registry ?? new Registry(builtinPlugins);
    this.every = limit(opts.snapshotEvery, 0, 0, "--snapshot-every");
    this.maxBatch = limit(opts.maxBatchBytes, DEFAULT_MAX_BATCH, 1024, "--max-batch-bytes");
    this.flushEvery = limit(opts.flushEvery, SERVE_DEFAULTS.flushEvery, 0, "--flush-every", false);
    this.maxProducers = limit(opts.maxProducers, SERVE_DEFAULTS.maxProducers, 1, "--max-producers");
    this.producerTimeout = limit(opts.producerTimeout, SERVE_DEFAULTS.producerTimeout, 0, "--producer-timeout", false);
    this.maxStepJump = limit(opts.maxStepJump, SERVE_DEFAULTS.maxStepJump, 0, "--max-step-jump");
    // Room for the largest message (a batch, or any other message up to 1 MiB more) and one more batch.
    const least = 2 * this.maxBatch + (1 << 20);
    this.budget = new ByteBudget(
      limit(
        opts.maxBufferedBytes,
        Math.max(1 << 30, least),
        least,
        "--max-buffered-bytes (2 x --max-batch-bytes + 1 MiB at least)",
      ),
    );
    this.format = opts.format ?? "parquet";
    this.log = opts.log ?? ((l) => console.log(l));
    this.settings = {
      byStep: this.every > 0 || (opts.byStep ?? false),
      seed: opts.seed ?? 0,
      backend: { backend: "cpu", reason: "not chosen yet", adapter: null },
      request: opts.backend ?? "auto",
      gpu: null,
      threads: resolveThreads(),
    };
    this.requested = opts.estimators?.length ? opts.estimators.map((n) => this.registry.get(n)) : null;
    // No first pass on a live stream: refuse estimators that would need one, naming the option that skips it.
    const p = firstPassPlugin(this.registry, this.requested, opts.options ?? {}, this.settings);
    if (p) {
      const hint = p.liveHint;
      throw new InputError(
        `[${p.name}] Cannot run estimator live as it needs a first pass over all the data, which a live stream lacks${
          hint ? `; pass ${hint.usage}` : ""
        }: current value is no ${hint ? `--${hint.option}` : "option that skips the first pass"}`,
      );
    }
    this.windows = new Windows({
      out: opts.out,
      format: this.format,
      every: this.every,
      log: this.log,
      registry: this.registry,
      requested: this.requested,
      options: opts.options ?? {},
      settings: this.settings,
      layers: opts.layers,
    });
  }

  /** The run's backend (chosen at start). */
  get decision(): BackendDecision {
    return this.settings.backend;
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
    this.settings.backend = await selectBackend(this.settings.request, { allowSoftware: this.opts.allowSoftwareGpu });
    this.settings.gpu = await openRunGpu(this.settings.backend);
    await Deno.mkdir(this.opts.out, { recursive: true });
    // Half-written files of a run that was killed mid-write (the complete ones they were replacing are kept).
    await removeStaleTemps(this.opts.out);
    if (this.opts.resume) await this.#resume();
    if (tcp) {
      this.listener = Deno.listen({ hostname: tcp.hostname, port: tcp.port, transport: "tcp" });
      const addr = this.listener.addr as Deno.NetAddr;
      this.hostname = addr.hostname;
      this.port = addr.port;
    }
    if (ws) {
      try {
        const started = await startWs(ws.hostname, ws.port, this);
        this.wsServer = started.server;
        this.wsPort = started.port;
      } catch (e) {
        this.listener?.close();
        throw e;
      }
    }
    if (this.listener) acceptTcp(this.listener, this);
    if (this.flushEvery > 0) this.#timers.push(setInterval(() => this.#flushSoon(), this.flushEvery * 1000));
    if (this.producerTimeout > 0) {
      this.#timers.push(setInterval(() => this.#sweep(), Math.min(1000, this.producerTimeout * 250)));
    }
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
        return self.windows.snapshots;
      },
      get producers() {
        return self.producers;
      },
      get left() {
        return self.left;
      },
      get warnings() {
        return self.warnings;
      },
      stop: () => (this.stopped ??= this.#stop()),
      local: () => this.#local(),
    };
  }

  /** `--resume`: continues from the checkpoint in `out` (producers replay from its `next_step`). */
  async #resume(): Promise<void> {
    const out = this.opts.out;
    const cp = await readCheckpoint(out, {
      every: this.every,
      layers: this.opts.layers,
      seed: this.settings.seed,
      registry: this.registry,
      requested: this.requested,
      options: this.opts.options ?? {},
    });
    if (!cp) {
      this.resumedFrom = 0;
      this.resumed = { checkpoint: null, next_step: 0 };
      this.log(`infotap serve: --resume: no checkpoint in ${out} yet; starting from step 0`);
      return;
    }
    await this.windows.resume(cp);
    const next = this.windows.nextStep();
    this.resumedFrom = next ?? 0;
    this.resumed = {
      checkpoint: cp.progress.flushed?.at ?? null,
      closed_windows: cp.progress.windows.length,
      open_windows: this.windows.openCount,
      rows: this.windows.rows,
      next_step: next,
    };
    // Part files of windows after the checkpoint are stale (written before a crash): they will be rewritten.
    await removeStaleParts(out, this.windows.closedThrough);
  }

  #local(): ProducerConnection {
    const p = this.producer("in-process", "in-process", () => {});
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
      await this.leave(p);
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

  track(work: Promise<void>): void {
    const q = work.catch((e) => this.log(`infotap serve: internal error: ${(e as Error)?.message ?? e}`)).finally(
      () => this.handlers.delete(q),
    );
    this.handlers.add(q);
  }

  full(): string | null {
    if (this.connected.size < this.maxProducers) return null;
    this.refusedConnections++;
    return `Cannot accept producer as ${this.maxProducers} producers are connected (--max-producers): current value is ${this.connected.size}`;
  }

  producer(transport: ProducerRecord["transport"], remote: string, close: () => void): Producer {
    const record: ProducerRecord = {
      id: ++this.#nextId,
      transport,
      remote,
      status: "connected",
      error: null,
      batches: 0,
      rows: 0,
      bytes: 0,
      partial_bytes: 0,
      first_step: null,
      last_step: null,
    };
    this.producers.push(record);
    const p = {
      record,
      lastStep: null,
      busy: false,
      layoutChecked: false,
      lastActive: performance.now(),
      timedOut: false,
      close,
    };
    this.connected.add(p);
    return p;
  }

  leave(p: Producer): Promise<void> {
    this.active.delete(p);
    this.connected.delete(p);
    return this.#withLock(() => this.#closeReady());
  }

  authorized(p: Producer, token: string | null): boolean {
    if (this.opts.token === undefined) return true;
    if (token !== null && sameToken(token, this.opts.token)) return true;
    p.record.status = "refused";
    p.record.error = token === null
      ? "Cannot accept producer as this server requires a token and none was presented (send 'INFOTAP1 <token>\\n' first): current value is no handshake"
      : "Cannot accept producer as its token is wrong: current value is a token that does not match";
    this.log(`infotap serve: producer ${p.record.id} (${p.record.remote}) refused: ${p.record.error}`);
    return false;
  }

  /** Cuts producers that completed no batch for `producerTimeout` seconds (idle, or sending one slowly). */
  #sweep(): void {
    const now = performance.now(), ms = this.producerTimeout * 1000;
    for (const p of this.connected) {
      if (p.busy || p.timedOut || p.record.transport === "in-process" || now - p.lastActive <= ms) continue;
      p.timedOut = true;
      p.record.status = "timed out";
      p.record.error =
        `Cannot keep producer as it completed no batch for ${this.producerTimeout} s (--producer-timeout): current value is ${
          ((now - p.lastActive) / 1000).toFixed(1)
        } s`;
      this.log(`infotap serve: producer ${p.record.id} (${p.record.remote}) timed out: ${p.record.error}`);
      p.close();
    }
  }

  /** Reads one producer's stream to its end; returns the answer line (`OK ...` or `ERR ...`). */
  async consume(p: Producer, r: ByteSource): Promise<string> {
    this.active.add(p);
    const rec = p.record;
    const label = `producer ${rec.id} (${rec.remote})`;
    const state: FrameState = { messages: 0, batches: 0, eos: false, partialBytes: 0, refused: null };
    let stoppedEarly = false;
    const before = r.received;
    // Bytes received after the last whole batch: a batch cut off (its body is read into place, not buffered).
    let whole = r.position;
    const cut = () => Math.max(0, r.received - whole);
    // The bytes of the message being read or analysed, held in the shared budget (the previous one is done).
    let held = 0;
    const reserve = async (n: number) => {
      this.budget.release(held);
      held = 0;
      p.busy = true;
      try {
        await this.budget.acquire(n);
      } finally {
        p.busy = false;
        p.lastActive = performance.now();
      }
      held = n;
    };
    try {
      const socket = { maxMessageBytes: this.maxBatch, limitName: "--max-batch-bytes", state, reserve };
      for await (const { batch, layout } of readSource(r, label, { socket })) {
        p.busy = true;
        try {
          await this.#withLock(() => this.#feed(p, batch, layout));
        } finally {
          p.busy = false;
          p.lastActive = performance.now();
          whole = r.position;
        }
        if (this.stopping) {
          stoppedEarly = true;
          break;
        }
      }
      rec.bytes = r.received;
      if (p.timedOut) {
        rec.partial_bytes = cut();
        return `ERR ${rec.error}`;
      }
      rec.status = stoppedEarly ? "stopped by shutdown" : state.eos ? "ended" : "ended without end-of-stream marker";
      return `OK ${rec.batches} ${rec.rows}`;
    } catch (e) {
      rec.bytes = r.received;
      const msg = (e as Error)?.message ?? String(e);
      if (p.timedOut) {
        rec.partial_bytes = state.partialBytes || cut();
        return `ERR ${rec.error}`;
      }
      if (state.refused) {
        rec.status = "refused";
        rec.error = msg;
      } else if (this.stopping) {
        rec.status = "interrupted by shutdown";
        rec.partial_bytes = state.partialBytes || cut();
      } else if (state.partialBytes > 0) {
        rec.status = "disconnected mid-batch";
        rec.partial_bytes = state.partialBytes;
        rec.error = msg;
      } else if (
        state.messages === 0 && r.received === before && e instanceof InputError && /as it is empty/.test(msg)
      ) {
        rec.status = "ended without data";
      } else {
        rec.status = e instanceof StepRefusal ? "refused" : "error";
        rec.error = msg;
      }
      if (rec.status !== "ended without data") this.log(`infotap serve: ${rec.status}: ${msg}`);
      return `ERR ${msg}`;
    } finally {
      this.budget.release(held);
    }
  }

  #withLock<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.#lock.then(fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  /** Queues a flush of the open windows (one at a time; skipped while one waits). */
  #flushSoon(): void {
    if (this.#flushQueued || this.stopping) return;
    this.#flushQueued = true;
    this.#withLock(async () => {
      this.#flushQueued = false;
      if (!this.stopping) await this.windows.flush();
    }).catch((e) => this.log(`infotap serve: cannot flush the open windows: ${(e as Error)?.message ?? e}`));
  }

  /** Closes every window that all connected producers have passed. */
  async #closeReady(): Promise<void> {
    if (this.every === 0 || this.active.size === 0) return;
    let min: bigint | null = null;
    for (const p of this.active) {
      if (p.lastStep === null) return;
      if (min === null || p.lastStep < min) min = p.lastStep;
    }
    await this.windows.closeThrough(this.windows.windowOf(min) - 1);
  }

  /** One batch of a producer: its layout checked, its steps checked, its layers selected, its rows into their windows. */
  async #feed(p: Producer, raw: Batch, layout: Layout): Promise<void> {
    const rec = p.record;
    if (!p.layoutChecked) {
      this.windows.admit(layout, raw.file, raw.index);
      p.layoutChecked = true;
    }
    const steps = this.windows.checkSteps(raw, this.maxStepJump);
    const batch = selectLayers(raw, this.opts.layers);
    await this.windows.add(batch);
    const n = batch.numRows;
    rec.batches++;
    rec.rows += n;
    if (steps) {
      if (rec.first_step === null) rec.first_step = steps.lo.toString();
      if (p.lastStep === null || steps.hi > p.lastStep) p.lastStep = steps.hi;
      rec.last_step = p.lastStep.toString();
    }
    await this.#closeReady();
  }

  async #stop(): Promise<Record<string, unknown>> {
    this.stopping = true;
    this.left = (this.windows.openCount + 1) * this.windows.tablesPerWindow() + 1;
    for (const t of this.#timers) clearInterval(t);
    this.listener?.close();
    await this.wsServer?.shutdown();
    // Producers waiting for bytes are cut now; one analysing a batch finishes it, then stops.
    for (const p of this.connected) if (!p.busy) p.close();
    while (this.handlers.size > 0) await Promise.allSettled([...this.handlers]);
    for (const p of this.connected) if (p.record.status === "connected") p.record.status = "open at shutdown";
    return await this.#withLock(async () => {
      const w = this.windows;
      const perWindow = w.tablesPerWindow();
      this.left = (w.openCount + 1) * perWindow + 1;
      let tables: Record<string, arrow.Table> = {}, files: string[] = [];
      let failure: unknown = null;
      try {
        await w.closeAll(() => (this.left -= perWindow));
        tables = await w.totals();
        files = Object.keys(tables).length ? await writeTables(this.opts.out, tables, this.format) : [];
        this.left = 1;
        await w.finished();
      } catch (e) {
        failure = e;
        this.log(`infotap serve: cannot finish the run: ${(e as Error)?.message ?? e}`);
      }
      const summaries = w.summaries();
      this.warnings = summaries.warnings;
      const lost = this.producers.filter((p) => p.partial_bytes > 0);
      const run = runRecord({
        head: { mode: "serve" },
        error: failure === null ? null : ((failure as Error)?.message ?? String(failure)),
        kind: w.layout?.kind ?? null,
        source: {
          rows: w.rows,
          snapshots: w.snapshots,
          next_step: w.nextStep(),
          resumed_from_step: this.resumedFrom,
          resumed_from: this.resumed,
          last_flush: w.flushed?.at ?? null,
          lost_partial_batches: lost.length,
          refused_connections: this.refusedConnections,
          buffered_peak_bytes: this.budget.peak,
          buffered_waits: this.budget.waits,
          producers: this.producers,
        },
        layout: w.layout,
        layers: this.opts.layers,
        estimators: summaries.records,
        warnings: summaries.warnings,
        options: {
          byStep: this.settings.byStep,
          seed: this.settings.seed,
          format: this.format,
          more: {
            snapshot_every: this.every,
            max_batch_bytes: this.maxBatch,
            flush_every_s: this.flushEvery,
            max_producers: this.maxProducers,
            producer_timeout_s: this.producerTimeout,
            max_buffered_bytes: this.budget.limit,
            max_step_jump: this.maxStepJump,
            listen: `${this.hostname}:${this.port}`,
            websocket_port: this.wsPort,
            token: this.opts.token ? "required" : "none",
          },
        },
        backend: this.decision,
        request: this.settings.request,
        tables,
        started: this.started,
        extra: this.opts.extra,
      });
      w.dispose();
      const record = await writeRunRecord(run, {
        out: this.opts.out,
        files,
        timings: { total_s: (performance.now() - this.t0) / 1000 },
      });
      this.left = 0;
      if (failure !== null) throw failure;
      return record;
    });
  }
}
