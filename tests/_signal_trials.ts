/**
 * The signal trials of serve (issue 18): a producer streams, then two signals go to serve's process group
 * (SIGINT then SIGINT or SIGTERM, mid-run or mid-final-write); each run must end complete, with the final tables
 * of `analyze` on the rows received. Used by pipeline/cli/serve_signals_test.ts (20 trials) and
 * scripts/experiments/serve_signals.ts (as many as asked).
 *
 * @module
 */
import assert from "node:assert/strict";
import type * as arrow from "apache-arrow";
import { connectProducer } from "../pipeline/producers/connect.ts";
import { assertLikeAnalyze, OPTIONS, ROWS, ServeProcess, share, stepBatch, waitFor } from "./_live.ts";

const ENTROPY = [`--range=${OPTIONS.range.join(",")}`, "--bins", String(OPTIONS.bins)];
const SLOW = new URL("./_slow_plugin.ts", import.meta.url).pathname;

/** One run: a producer streaming, then `first` and `second` sent to serve's process group. */
export interface SignalTrial {
  second: "SIGINT" | "SIGTERM";
  /** `run`: the second signal as soon as the first is seen; `write`: once the final write has begun. */
  when: "run" | "write";
  /** `--snapshot-every 3` (windows closing while running), else `--by-step` with one window. */
  windows: boolean;
}

/** Runs one trial; throws when the run did not end complete with the tables of analyze on the rows received. */
export async function signalTrial({ second, when, windows }: SignalTrial, seed: number): Promise<void> {
  const dir = await Deno.makeTempDir();
  const out = `${dir}/live`;
  const server = new ServeProcess([
    "--listen",
    "127.0.0.1:0",
    "--out",
    out,
    ...ENTROPY,
    "--plugin",
    SLOW,
    "--estimators",
    "entropy,slow-count",
    "--delay-ms",
    "0",
    // Each window's result takes 150 ms: the final write lasts long enough to be signalled in the middle of.
    "--result-delay-ms",
    "150",
    "--flush-every",
    "0.2",
    ...(windows ? ["--snapshot-every", "3"] : ["--by-step"]),
    "--quiet",
  ], { group: true });
  const rnd = (n: number) => Math.floor(((seed * 7919 + 13) % 1000) / 1000 * n);
  try {
    const { port } = await server.listening();
    const p = await connectProducer({ port });
    const sent: arrow.RecordBatch[] = [];
    let written = 0;
    const streaming = (async () => {
      for (let s = 0; s < 10_000; s++) {
        const b = stepBatch(s, share(0, 1));
        sent.push(b);
        try {
          await p.write(b);
        } catch {
          return;
        }
        written++;
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    await waitFor(() => written >= 8 + rnd(8), 20_000, "batches written");
    server.signalGroup("SIGINT");
    // Two SIGINTs in quick succession are one to the kernel (signals of a kind do not queue): the second is sent
    // once the first is seen, right away (producers still being cut) or into the final write.
    await server.waitLine(/finishing the batches in progress/);
    if (when === "write") await new Promise((r) => setTimeout(r, 30 + rnd(100)));
    server.signalGroup(second);
    assert.equal(await server.exited(), 0, server.lines.join("\n"));
    p.abort();
    await streaming;
    const ack = server.errors.find((l) => l.includes(`${second}: finishing,`));
    assert.match(ack ?? "", /finishing, \d+ tables? left; send SIGKILL to abort/, server.lines.join("\n"));
    if (when === "write") assert.match(ack!, /finishing, [1-9]\d* tables? left/);

    const run = JSON.parse(await Deno.readTextFile(`${out}/run.json`));
    assert.equal(run.complete, true);
    const n = run.producers[0].batches as number;
    assert.ok(n >= 1, `${n} batches analysed`);
    assert.equal(run.rows, n * ROWS);
    for await (const f of Deno.readDir(out)) assert.doesNotMatch(f.name, /\.tmp-/);
    // The rows received are the first n batches sent (one connection: in order, whole batches only).
    await assertLikeAnalyze(out, sent.slice(0, n), dir);
  } finally {
    try {
      server.signalGroup("SIGKILL");
    } catch { /* gone */ }
    await server.exited();
    await Deno.remove(dir, { recursive: true });
  }
}

/** The 20 trials: both signal pairs, mid-run and mid-final-write, with and without windows. */
export function signalTrials(count = 20): SignalTrial[] {
  return Array.from({ length: count }, (_, i) => ({
    second: i % 2 === 0 ? "SIGINT" : "SIGTERM",
    when: i % 4 < 2 ? "run" : "write",
    windows: i % 8 < 4,
  }));
}
