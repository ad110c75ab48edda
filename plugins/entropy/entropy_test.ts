/**
 * `entropy` against an independent direct computation with numpy.histogram semantics (docs/science.md section 1):
 * bins over [min, max] (global or per neuron), k = floor((x - lo) / (hi - lo) * B) clipped to [0, B-1],
 * H = -sum p log p in nats, NaN/Inf excluded and counted.
 */
import assert from "node:assert/strict";
import { entropyPlugin } from "./entropy.ts";
import { mixedActivations } from "../../tests/_contract_fixtures.ts";
import { activationBatch, Rng, runPlugin } from "../../tests/_util.ts";
import type { Batch } from "../../schemas/batch.ts";

/** Direct reference: gathers every value, then bins and sums in the most literal way. */
function reference(batches: Batch[], bins: number, binning: "global" | "neuron", range?: [number, number]) {
  const layers = batches[0].columns.map((c) => ({ name: c.name, width: c.width }));
  const values = (name: string, j: number) => {
    const xs: number[] = [];
    for (const b of batches) {
      const c = b.columns.find((c) => c.name === name)!;
      for (let r = 0; r < b.numRows; r++) xs.push(c.values[r * c.width + j]);
    }
    return xs;
  };
  let gmin = Infinity, gmax = -Infinity;
  for (const l of layers) {
    for (let j = 0; j < l.width; j++) {
      for (const x of values(l.name, j)) {
        if (Number.isFinite(x)) {
          gmin = Math.min(gmin, x);
          gmax = Math.max(gmax, x);
        }
      }
    }
  }
  if (range) [gmin, gmax] = range;
  const out: { layer: string; neuron: number; entropy: number; samples: number; nonfinite: number }[] = [];
  for (const l of layers) {
    for (let j = 0; j < l.width; j++) {
      const xs = values(l.name, j);
      const finite = xs.filter(Number.isFinite);
      const lo = binning === "global" ? gmin : Math.min(...finite);
      const hi = binning === "global" ? gmax : Math.max(...finite);
      const counts = new Array(bins).fill(0);
      for (const x of finite) {
        let k = hi > lo ? Math.floor(((x - lo) / (hi - lo)) * bins) : 0;
        k = Math.min(bins - 1, Math.max(0, k));
        counts[k]++;
      }
      let h = 0;
      for (const c of counts) if (c > 0) h -= (c / finite.length) * Math.log(c / finite.length);
      out.push({ layer: l.name, neuron: j, entropy: h, samples: finite.length, nonfinite: xs.length - finite.length });
    }
  }
  return out;
}

for (
  const [binning, bins, range] of [["global", 10, undefined], ["neuron", 7, undefined], ["global", 5, [-1, 1]]] as const
) {
  Deno.test(`entropy equals the direct numpy.histogram computation to 1e-9 (${binning}, ${bins} bins${range ? ", range" : ""})`, async () => {
    const batches = mixedActivations(11);
    const { results } = await runPlugin(
      entropyPlugin,
      { bins, binning, range: range as [number, number] | undefined },
      batches,
    );
    const t = results.neuron_entropy;
    const ref = reference(batches, bins, binning, range as [number, number] | undefined);
    assert.equal(t.numRows, ref.length);
    for (let i = 0; i < ref.length; i++) {
      assert.equal(t.getChild("layer")!.get(i), ref[i].layer);
      assert.equal(t.getChild("neuron")!.get(i), ref[i].neuron);
      assert.ok(Math.abs(t.getChild("entropy")!.get(i) - ref[i].entropy) <= 1e-9, `row ${i}`);
      assert.equal(Number(t.getChild("samples")!.get(i)), ref[i].samples);
      assert.equal(Number(t.getChild("nonfinite")!.get(i)), ref[i].nonfinite);
    }
    // the fixture's constant neuron (fc2[0]) has entropy 0 with per-neuron binning, and NaN/Inf were seen
    if (binning === "neuron") assert.equal(t.getChild("entropy")!.get(5), 0);
    assert.ok(ref.some((r) => r.nonfinite > 0));
  });
}

Deno.test("entropy of a uniform neuron is log B (closed form), and of a constant neuron 0", async () => {
  const B = 16, per = 50, n = B * per;
  const v = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    v[i * 2] = (i % B) + 0.5; // exactly `per` values in each of B equal-width bins over [0.5, 15.5]
    v[i * 2 + 1] = 3;
  }
  const { results } = await runPlugin(entropyPlugin, { bins: B, binning: "neuron" }, [
    activationBatch(n, { h: { width: 2, values: v } }),
  ]);
  const h = results.neuron_entropy.getChild("entropy")!;
  assert.ok(Math.abs(h.get(0) - Math.log(B)) < 1e-12);
  assert.equal(h.get(1), 0);
});

Deno.test("entropy by step: one row set per step, each equal to a run on that step's rows alone", async () => {
  const rng = new Rng(5);
  const rows = 60;
  const v = Float32Array.from({ length: rows * 3 }, () => rng.normal());
  const step = BigInt64Array.from({ length: rows }, (_, i) => BigInt(i < 25 ? 10 : 20));
  const all = activationBatch(rows, { h: { width: 3, values: v } }, { step });
  const { results } = await runPlugin(entropyPlugin, { bins: 8, range: [-3, 3] }, [all], { byStep: true });
  const t = results.neuron_entropy;
  assert.deepEqual([...t.getChild("step")!].map(String), ["10", "10", "10", "20", "20", "20"]);
  const only10 = activationBatch(25, { h: { width: 3, values: v.slice(0, 75) } });
  const r10 = (await runPlugin(entropyPlugin, { bins: 8, range: [-3, 3] }, [only10])).results.neuron_entropy;
  for (let j = 0; j < 3; j++) assert.equal(t.getChild("entropy")!.get(j), r10.getChild("entropy")!.get(j));
  assert.equal(results.layer_summary.numRows, 2);
});

Deno.test("entropy: --range with --binning neuron is refused with a clear error", async () => {
  await assert.rejects(
    () => runPlugin(entropyPlugin, { bins: 8, binning: "neuron", range: [0, 1] }, mixedActivations(1)),
    /\[entropy\] Cannot use --range with --binning neuron/,
  );
});
