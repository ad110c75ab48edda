import assert from "node:assert/strict";
import { effectiveInfo } from "./effective_info.ts";

Deno.test("effective information vs beta (fast, 3 seeds): larger beta, less information in the weights and activations", async () => {
  const out = await Deno.makeTempDir();
  try {
    const r = await effectiveInfo({ fast: true, seeds: 3, betas: [1e-4, 1e-3, 3e-3], out });
    assert.equal(r.rows.length, 9);
    for (const t of r.taus) {
      assert.equal(t.infoWeights, -1, `seed ${t.seed}: info_weights`);
      for (const [layer, tau] of Object.entries(t.layers)) assert.equal(tau, -1, `seed ${t.seed} ${layer}: ${tau}`);
      for (const [layer, tau] of Object.entries(t.neurons)) assert.equal(tau, -1, `seed ${t.seed} ${layer} neurons`);
    }
    for (const row of r.rows) {
      assert.ok(row.weightsTerm > 0 && row.weightsTerm < row.infoWeights, `weights term ${row.weightsTerm}`);
      for (const l of row.layers) {
        assert.ok(0 <= l.lower && l.lower <= l.upper && l.upper <= Math.log(60) + 1e-12, JSON.stringify(l));
        assert.ok(l.neuronLower <= l.neuronUpper);
      }
    }
    // The smallest beta keeps the model useful (the trend is not a broken network).
    assert.ok(r.rows.filter((x) => x.beta === 1e-4).every((x) => x.heldOutAccuracy > 0.8));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
