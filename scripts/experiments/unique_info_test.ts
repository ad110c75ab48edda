import assert from "node:assert/strict";
import { pearson, uniqueInfo } from "./unique_info.ts";

Deno.test("pearson: known values", () => {
  assert.ok(Math.abs(pearson([1, 2, 3], [2, 4, 6]) - 1) < 1e-15);
  assert.ok(Math.abs(pearson([1, 2, 3], [3, 2, 1]) + 1) < 1e-15);
  // numpy.corrcoef([1, 2, 3, 4], [1, 3, 2, 4])[0, 1] == 0.8
  assert.ok(Math.abs(pearson([1, 2, 3, 4], [1, 3, 2, 4]) - 0.8) < 1e-15);
});

Deno.test("Unique information (fast): SI predicts actual retraining; flipped labels have high SI", async () => {
  const out = await Deno.makeTempDir();
  const r = await uniqueInfo({ fast: true, check: 10, flipScales: [0.01], out });
  assert.ok(r.convergence < 0.05, `retraining not converged: ${r.convergence}`);
  assert.ok(r.pearsonWeights > 0.8, `weights: Pearson ${r.pearsonWeights}`);
  assert.ok(r.pearsonFunction > 0.9, `function: Pearson ${r.pearsonFunction}`);
  const f = r.flipped![0];
  const chance = f.flipped * 0.1;
  assert.ok(f.inTopWeights > 2 * chance, `${f.inTopWeights} flipped in the top 10% (chance ${chance})`);
});

Deno.test("Unique information (fast, the paper's setting: lambda = 0, finite T): SI predicts retraining by T steps", async () => {
  const out = await Deno.makeTempDir();
  const r = await uniqueInfo({ fast: true, setting: "paper", check: 10, flip: 0, out });
  assert.ok(r.pearsonWeights > 0.7, `weights: Pearson ${r.pearsonWeights}`);
  assert.ok(r.pearsonFunction > 0.7, `function: Pearson ${r.pearsonFunction}`);
  assert.equal(r.lambda, 0);
  await Deno.remove(out, { recursive: true });
});
