import assert from "node:assert/strict";
import { shuffledMnist } from "./shuffled_mnist.ts";

Deno.test("Shuffled MNIST (fast): more random labels -> higher entropy, lower MI on held-out digits", async () => {
  const out = await Deno.makeTempDir();
  const r = await shuffledMnist({ fast: true, betas: [0, 0.5, 1], heldOutN: 400, miSamples: 400, out });
  const [clean, , noise] = r.rows;
  assert.ok(
    clean.heldOutAccuracy > 0.8 && noise.heldOutAccuracy < 0.2,
    `${clean.heldOutAccuracy}, ${noise.heldOutAccuracy}`,
  );
  assert.ok(noise.entropy > clean.entropy, `entropy ${noise.entropy} vs ${clean.entropy}`);
  assert.ok(noise.mi < clean.mi, `MI ${noise.mi} vs ${clean.mi}`);
  assert.ok(r.tauEntropy > 0 && r.tauMi < 0, `tau ${r.tauEntropy}, ${r.tauMi}`);
});
