import assert from "node:assert/strict";
import { examplePlugin } from "./example_mean.ts";
import { mixedActivations } from "../../tests/_contract_fixtures.ts";
import { runPlugin } from "../../tests/_util.ts";

Deno.test("example-mean equals a direct two-pass mean and variance, excluding NaN/Inf", async () => {
  const batches = mixedActivations(9);
  const { results } = await runPlugin(examplePlugin, {}, batches);
  const t = results.neuron_moments;
  let row = 0;
  for (const layer of ["fc1", "fc2"]) {
    const width = batches[0].columns.find((c) => c.name === layer)!.width;
    for (let j = 0; j < width; j++, row++) {
      const xs: number[] = [];
      let nf = 0;
      for (const b of batches) {
        const c = b.columns.find((c) => c.name === layer)!;
        for (let r = 0; r < b.numRows; r++) {
          const x = c.values[r * width + j];
          if (Number.isFinite(x)) xs.push(x);
          else nf++;
        }
      }
      const mean = xs.reduce((a, x) => a + x, 0) / xs.length;
      const variance = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / xs.length;
      assert.equal(t.getChild("layer")!.get(row), layer);
      assert.ok(Math.abs(t.getChild("mean")!.get(row) - mean) <= 1e-12 * Math.max(1, Math.abs(mean)));
      assert.ok(Math.abs(t.getChild("variance")!.get(row) - variance) <= 1e-9 * Math.max(1, variance));
      assert.equal(Number(t.getChild("nonfinite")!.get(row)), nf);
    }
  }
  assert.ok(
    Number(t.getChild("nonfinite")!.get(3)) + Number(t.getChild("nonfinite")!.get(7)) > 0,
    "fixture has NaN/Inf",
  );
});
