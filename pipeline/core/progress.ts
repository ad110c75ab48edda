/**
 * A progress bar on stderr when stderr is a terminal (silent otherwise), one phase at a time: reading passes
 * (bytes, rows of this pass, MB/s, ETA) and work phases (the estimators' results: pairs for MI, the
 * factorisation for unique-info, ... as they report it through `EstimatorContext.progress`). Updates from
 * synchronous work redraw at once (`synchronousUpdate`), so long computations that hold the thread still move.
 *
 * @module
 */
import cliProgress from "cli-progress";
import process from "node:process";

/** Progress of one run, phase by phase. */
export class Progress {
  #bar: cliProgress.SingleBar | null = null;
  readonly #enabled: boolean;
  #bytes = 0;
  #rows = 0;
  #t0 = performance.now();
  #passStart = 0;
  #total = 0;
  #task = "";
  #reading = false;

  /** A reading phase over `totalBytes` (0: unknown) labelled `label`. */
  constructor(label: string, totalBytes: number, enabled = Deno.stderr.isTerminal()) {
    this.#enabled = enabled;
    this.pass(label, totalBytes, 0);
  }

  /**
   * Starts a reading phase: the bar covers `totalBytes` of which `doneBytes` are read (a second pass continues
   * the bar); its row count starts again at 0, so rows are counted once per pass.
   */
  pass(label: string, totalBytes: number, doneBytes = this.#bytes): void {
    this.#total = totalBytes;
    this.#bytes = this.#passStart = doneBytes;
    this.#rows = 0;
    this.#t0 = performance.now();
    this.#reading = true;
    this.#start(
      `${label} |{bar}| {percentage}% | {rows} rows | {mbs} MB/s | ETA {eta_formatted}{task}`,
      Math.max(1, totalBytes),
      doneBytes,
    );
  }

  /** Starts a work phase (no bytes): `work` then reports what is done. */
  phase(label: string): void {
    this.#reading = false;
    this.#task = "";
    this.#start(`${label} |{bar}| {percentage}% | {task}`, 1, 0);
  }

  #start(format: string, total: number, value: number): void {
    if (!this.#enabled) return;
    this.#bar?.stop();
    this.#bar = new cliProgress.SingleBar({
      format,
      stream: process.stderr,
      hideCursor: false,
      clearOnComplete: true,
      etaBuffer: 50,
      fps: 5,
    });
    this.#bar.start(total, value, { rows: this.#rows, mbs: "0", task: "" });
  }

  /** Counts bytes read. */
  bytes(n: number): void {
    this.#bytes += n;
    this.#tick();
  }

  /** Counts rows processed. */
  rows(n: number): void {
    this.#rows += n;
    this.#tick();
  }

  /**
   * Reports work of an estimator: `done` of `total` `unit`s (e.g. pairs; a unit starting with `%`, such as
   * `% factorisation`, is a share of that work) of `name`. In a work phase it moves the
   * bar; while reading (steps finished as they end) it is shown after the reading figures.
   */
  work(name: string, done: number, total: number, unit: string): void {
    if (!this.#bar) return;
    const pct = total > 0 ? Math.floor((100 * done) / total) : 0;
    // A unit starting with % is a share of named work ("% factorisation"): shown as "factorisation 40%".
    const what = unit.startsWith("%")
      ? `${unit.slice(1).trim()} ${pct}%`
      : `${done.toLocaleString("en-US")}/${total.toLocaleString("en-US")} ${unit} (${pct}%)`;
    this.#task = `${this.#reading ? " | " : ""}${name}: ${what}`;
    if (this.#reading) this.#tick();
    else this.#bar.update(total > 0 ? Math.min(1, done / total) : 0, { task: this.#task });
  }

  #tick(): void {
    if (!this.#bar) return;
    const s = (performance.now() - this.#t0) / 1000;
    this.#bar.update(Math.min(this.#bytes, this.#total || this.#bytes), {
      rows: this.#rows,
      mbs: s > 0 ? ((this.#bytes - this.#passStart) / 1e6 / s).toFixed(0) : "0",
      task: this.#task,
    });
  }

  stop(): void {
    this.#bar?.stop();
    this.#bar = null;
  }
}
