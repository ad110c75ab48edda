import assert from "node:assert/strict";
import { fisherTraining } from "./fisher_training.ts";

Deno.test("Fisher over training (fast): the true-Fisher trace rises, then falls", async () => {
  const out = await Deno.makeTempDir();
  // lr 0.1: the rise and fall fit in 600 steps (seeds 0, 1, 2 all peak inside the run; seed 1 has the widest margin).
  const r = await fisherTraining({
    fast: true,
    deficits: false,
    steps: 600,
    every: 50,
    lr: 0.1,
    probeN: 200,
    draws: 2,
    seed: 1,
    out,
  });
  const run = r.runs[0], total = run.curve.trace.total, n = total.length;
  assert.equal(n, 13);
  assert.ok(run.curve.trace.fc1 && run.curve.trace.out, "per-layer traces");
  const at = total.indexOf(run.peakTrace);
  assert.ok(at > 0 && at < n - 2, `peak at record ${at} of ${n}`);
  assert.ok(run.peakTrace > 2 * total[0], `rise: ${total[0]} -> ${run.peakTrace}`);
  const tail = (total[n - 1] + total[n - 2] + total[n - 3]) / 3;
  assert.ok(tail < 0.92 * run.peakTrace, `fall: peak ${run.peakTrace}, last three ${tail}`);
  assert.ok(r.tauRise > 0.5 && r.tauFall < 0, `tau ${r.tauRise}, ${r.tauFall}`);
});
