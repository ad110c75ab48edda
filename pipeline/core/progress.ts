/**
 * A progress bar on stderr (rows, MB/s, ETA) when stderr is a terminal; silent otherwise.
 *
 * @module
 */
import cliProgress from "cli-progress";
import process from "node:process";

/** Progress over a known (or unknown, 0) number of bytes. */
export class Progress {
  #bar: cliProgress.SingleBar | null = null;
  #bytes = 0;
  #rows = 0;
  #t0 = performance.now();
  #total: number;

  constructor(label: string, totalBytes: number, enabled = Deno.stderr.isTerminal()) {
    this.#total = totalBytes;
    if (!enabled) return;
    this.#bar = new cliProgress.SingleBar({
      format: `${label} |{bar}| {percentage}% | {rows} rows | {mbs} MB/s | ETA {eta_formatted}`,
      stream: process.stderr,
      hideCursor: false,
      clearOnComplete: true,
      etaBuffer: 50,
      fps: 5,
    });
    this.#bar.start(Math.max(1, totalBytes), 0, { rows: 0, mbs: "0" });
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

  #tick(): void {
    if (!this.#bar) return;
    const s = (performance.now() - this.#t0) / 1000;
    this.#bar.update(Math.min(this.#bytes, this.#total || this.#bytes), {
      rows: this.#rows,
      mbs: s > 0 ? (this.#bytes / 1e6 / s).toFixed(0) : "0",
    });
  }

  stop(): void {
    this.#bar?.stop();
  }
}
