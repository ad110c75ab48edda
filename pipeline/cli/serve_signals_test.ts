/**
 * serve under signal sequences (issue 18): two signals to the process group mid-run and mid-final-write, 20
 * runs, each ending with complete final tables equal to `analyze` on the rows received; SIGKILL mid-run then
 * `--resume` loses at most one flush interval. `scripts/experiments/serve_signals.ts` runs more trials.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connectProducer } from "../producers/connect.ts";
import { assertLikeAnalyze, OPTIONS, ROWS, ServeProcess, share, stepBatch } from "../../tests/_live.ts";
import { signalTrial, signalTrials } from "../../tests/_signal_trials.ts";

const ENTROPY = [`--range=${OPTIONS.range.join(",")}`, "--bins", String(OPTIONS.bins)];

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
    await assertLikeAnalyze(out, Array.from({ length: last + 1 }, (_, t) => stepBatch(t, share(0, 1))), dir);
  } finally {
    await first.stop("SIGKILL");
    await second?.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});
