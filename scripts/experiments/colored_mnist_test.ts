import assert from "node:assert/strict";
import { coloredMnist } from "./colored_mnist.ts";

Deno.test("Colored MNIST (fast): stronger spurious colour -> lower entropy, higher MI on the held-out set", async () => {
  const out = await Deno.makeTempDir();
  const r = await coloredMnist({ fast: true, rhos: [0, 0.25, 0.5], heldOutN: 400, miSamples: 400, out });
  const [strong, , none] = r.rows;
  // The colour is learned when it predicts the label: the rho = 0 model fails on the held-out colours.
  assert.ok(
    strong.heldOutAccuracy < none.heldOutAccuracy - 0.2,
    `${strong.heldOutAccuracy} vs ${none.heldOutAccuracy}`,
  );
  assert.ok(strong.entropy < none.entropy, `entropy ${strong.entropy} vs ${none.entropy}`);
  assert.ok(strong.mi > none.mi, `MI ${strong.mi} vs ${none.mi}`);
  assert.ok(r.tauEntropy > 0 && r.tauMi < 0, `tau ${r.tauEntropy}, ${r.tauMi}`);
  for (const row of r.rows) {
    await Deno.stat(`${row.dir}/neuron_entropy.parquet`);
    await Deno.stat(`${row.dir}/neuron_mi.parquet`);
  }
});
