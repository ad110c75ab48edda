import assert from "node:assert/strict";
import { fisherTraining } from "./fisher_training.ts";

Deno.test("Fisher over training (fast, 5 seeds): the exact true-Fisher trace rises, then falls, for every seed", async () => {
  const out = await Deno.makeTempDir();
  try {
    // The --fast defaults: 196-32-32-10, SGD lr 0.1, 600 steps, a record every 50, 100 probe digits, exact Fisher.
    const r = await fisherTraining({ fast: true, deficits: false, seed: 0, seeds: 5, out });
    assert.equal(r.runs.length, 5);
    for (const run of r.runs) {
      const total = run.curve.trace.total, n = total.length;
      assert.equal(n, 13);
      assert.ok(run.curve.trace.fc1 && run.curve.trace.out, "per-layer traces");
      const at = total.indexOf(run.peakTrace);
      assert.ok(at > 0 && at < n - 3, `seed ${run.seed}: peak at record ${at} of ${n}`);
      assert.ok(run.peakTrace > 2 * total[0], `seed ${run.seed} rise: ${total[0]} -> ${run.peakTrace}`);
      const tail = (total[n - 1] + total[n - 2] + total[n - 3]) / 3;
      assert.ok(tail < 0.92 * run.peakTrace, `seed ${run.seed} fall: peak ${run.peakTrace}, last three ${tail}`);
      assert.ok(run.tauRise > 0.5 && run.tauFall < 0, `seed ${run.seed} tau ${run.tauRise}, ${run.tauFall}`);
    }
    // The median curve and its band.
    const { median, min, max } = r.band;
    assert.ok(median.every((m, i) => min[i] <= m && m <= max[i]));
    assert.ok(r.peakStep > 0 && r.peakStep < 450, `median peak at ${r.peakStep}`);
    assert.ok(r.tauRise > 0.5 && r.tauFall < -0.3, `median tau ${r.tauRise}, ${r.tauFall}`);
    assert.match(r.markdown, /median and band \(min to max\)/);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
