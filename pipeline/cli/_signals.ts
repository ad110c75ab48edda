/**
 * SIGINT and SIGTERM for the long-running commands, watched from the first line of `main` (a signal during
 * start-up is not lost and does not kill the process): the first one starts a clean finish, later ones are
 * acknowledged on stderr and change nothing, so a terminal's Ctrl-C plus a wrapper forwarding it (tmux,
 * `timeout`, `deno task`, systemd, a container stop) never interrupts the final write. SIGKILL still aborts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Signals } from "./_signals.ts";
 * const signals = new Signals(() => "finishing");
 * assert.equal(signals.received, null);
 * signals.dispose();
 * ```
 *
 * @module
 */

/** The signals that stop a command cleanly (SIGTERM is not delivered to Deno on Windows). */
const STOP: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];

/** Watches SIGINT/SIGTERM until disposed. */
export class Signals {
  /** The first signal received (null before one). */
  received: Deno.Signal | null = null;
  readonly #first = Promise.withResolvers<Deno.Signal>();
  readonly #handlers: [Deno.Signal, () => void][] = [];

  /**
   * Installs the listeners. `acknowledge` says, for each later signal, what is going on (printed on stderr as
   * `infotap: <signal>: <what>; send SIGKILL to abort`).
   */
  constructor(readonly acknowledge: () => string, readonly command = "infotap") {
    for (const s of STOP) {
      const h = () => this.#on(s);
      Deno.addSignalListener(s, h);
      this.#handlers.push([s, h]);
    }
  }

  /** Resolves with the first signal. */
  get first(): Promise<Deno.Signal> {
    return this.#first.promise;
  }

  #on(s: Deno.Signal): void {
    if (this.received === null) {
      this.received = s;
      this.#first.resolve(s);
      return;
    }
    console.error(`${this.command}: ${s}: ${this.acknowledge()}; send SIGKILL to abort`);
  }

  /** Removes the listeners (once the command is done: a signal after it ends the process). */
  dispose(): void {
    for (const [s, h] of this.#handlers.splice(0)) Deno.removeSignalListener(s, h);
  }
}
