/**
 * serve under signal sequences (issue 18): two signals to the process group mid-run and mid-final-write, 20
 * runs, each ending with complete final tables equal to `analyze` on the rows received; SIGKILL mid-run then
 * `--resume` loses at most one flush interval. `scripts/experiments/serve_signals.ts` runs more of them.
 *
 * @module
 */
import assert from "node:assert/strict";
import type * as arrow from "apache-arrow";
import { connectProducer } from "../producers/connect.ts";
import { analyze } from "../analyze/run.ts";
import { writeBatches } from "../producers/produce.ts";
import { assertTablesClose } from "../../tests/_util.ts";
import { OPTIONS, readParquetFile, ROWS, ServeProcess, share, stepBatch, waitFor } from "../../tests/_live.ts";

const ENTROPY = [`--range=${OPTIONS.range.join(",")}`, "--bins", String(OPTIONS.bins)];
const SLOW = new URL("../../tests/_slow_plugin.ts", import.meta.url).pathname;

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
    await writeBatches(`${dir}/received.arrows`, sent.slice(0, n));
    const ref = await analyze({
      inputs: [`${dir}/received.arrows`],
      estimators: ["entropy"],
      byStep: true,
      options: OPTIONS,
      out: `${dir}/ref`,
    });
    assert.ok(ref.complete);
    for (const name of ["neuron_entropy", "layer_summary"]) {
      assertTablesClose(
        await readParquetFile(`${out}/${name}.parquet`),
        await readParquetFile(`${dir}/ref/${name}.parquet`),
        0,
        0,
        name,
      );
    }
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

Deno.test("serve CLI: two signals to the process group, mid-run and mid-final-write, 20 runs: all complete, equal to analyze", async () => {
  const trials = signalTrials(20);
  // Four at a time: each is mostly waiting (start-up, the slow results).
  for (let i = 0; i < trials.length; i += 4) {
    await Promise.all(trials.slice(i, i + 4).map((t, j) => signalTrial(t, i + j)));
  }
});

Deno.test("serve CLI: SIGKILL mid-run without windows, then --resume from the last flush, loses at most one flush interval", async () => {
  const dir = await Deno.makeTempDir();
  const out = `${dir}/live`;
  const flushEvery = 0.3;
  const args = ["--listen", "127.0.0.1:0", ...ENTROPY, "--by-step", "--flush-every", String(flushEvery), "--quiet"];
  const first = new ServeProcess(["--out", out, ...args]);
  let second: ServeProcess | null = null;
  try {
    const { port } = await first.listening();
    const p = await connectProducer({ port });
    let s = 0;
    const progress = async () => {
      try {
        return JSON.parse(await Deno.readTextFile(`${out}/checkpoint/progress.json`));
      } catch {
        return null;
      }
    };
    // Stream until two flushes have happened, then a little more, then SIGKILL.
    let flushes = new Set<string>();
    while (flushes.size < 2) {
      await p.write(stepBatch(s++, share(0, 1)));
      await new Promise((r) => setTimeout(r, 20));
      const at = (await progress())?.flushed?.at;
      if (at) flushes = flushes.add(at);
    }
    for (let i = 0; i < 3; i++) await p.write(stepBatch(s++, share(0, 1)));
    const killedAt = Date.now();
    assert.notEqual(await first.stop("SIGKILL"), 0);
    p.abort();
    assert.equal(await Deno.stat(`${out}/run.json`).catch(() => null), null);
    const flushed = (await progress()).flushed;
    // The last flush is at most one interval (plus scheduling slack on a loaded machine) before the kill.
    const age = (killedAt - Date.parse(flushed.at)) / 1000;
    assert.ok(age <= flushEvery + 3, `last flush ${age.toFixed(2)} s before the kill`);

    second = new ServeProcess(["--resume", out, ...args]);
    const { port: port2, line } = await second.listening();
    const from = Number(/replay from step (\d+)/.exec(line)![1]);
    assert.equal(from, flushed.through_step + 1);
    const q = await connectProducer({ port: port2 });
    // A replayed step before next_step is refused with a reply (the checkpoint holds it).
    const late = await connectProducer({ port: port2 });
    await late.write(stepBatch(from - 1, share(0, 1)));
    await assert.rejects(late.close(), /step \d+ comes before step \d+, the first step still open/);
    const last = s + 2;
    for (let t = from; t <= last; t++) await q.write(stepBatch(t, share(0, 1)));
    assert.deepEqual(await q.close(), { batches: last + 1 - from, rows: (last + 1 - from) * ROWS });
    assert.equal(await second.stop("SIGTERM"), 0);
    // Values outside --range are clipped with the warning analyze gives.
    assert.ok(
      second.errors.some((l) => /^infotap: warning: \[entropy\] \d+ value\(s\) outside --range were clipped/.test(l)),
      second.lines.join("\n"),
    );
    const run = JSON.parse(await Deno.readTextFile(`${out}/run.json`));
    assert.equal(run.complete, true);
    assert.equal(run.resumed_from.checkpoint, flushed.at);
    assert.equal(run.resumed_from.next_step, from);
    assert.equal(run.resumed_from.rows, from * ROWS);
    assert.equal(run.rows, (last + 1) * ROWS);

    // One batch per step, replayed from the step after the flush: nothing is lost.
    const batches = Array.from({ length: last + 1 }, (_, t) => stepBatch(t, share(0, 1)));
    await writeBatches(`${dir}/all.arrows`, batches);
    const ref = await analyze({ inputs: [`${dir}/all.arrows`], byStep: true, options: OPTIONS, out: `${dir}/ref` });
    assert.ok(ref.complete);
    for (const name of ["neuron_entropy", "layer_summary"]) {
      assertTablesClose(
        await readParquetFile(`${out}/${name}.parquet`),
        await readParquetFile(`${dir}/ref/${name}.parquet`),
        0,
        0,
        name,
      );
    }
  } finally {
    await first.stop("SIGKILL");
    await second?.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});
