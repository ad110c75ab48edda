/**
 * `--neurons`: a run on a subset of every layer's neurons gives, for every estimator, the rows of the full run that
 * involve only those neurons, with the layers' own neuron indices (truth: the full run, filtered here).
 */
import assert from "node:assert/strict";
import { analyze } from "./run.ts";
import { neuronIndices, parseNeuronSpec } from "./neurons.ts";
import { makeRecordBatch, writeBatches } from "../producers/produce.ts";
import { Rng } from "../../tests/_util.ts";

function rowsOf(t: { numRows: number; schema: { fields: { name: string }[] }; getChild(n: string): any }) {
  const names = t.schema.fields.map((f) => f.name);
  return Array.from({ length: t.numRows }, (_, i) => Object.fromEntries(names.map((n) => [n, t.getChild(n).get(i)])));
}

Deno.test("--neurons SPEC: parse, clip to the width, errors name the layer", () => {
  assert.deepEqual([...neuronIndices(parseNeuronSpec("1:3,5"), 6, "h")], [1, 2, 5]);
  assert.deepEqual([...neuronIndices(parseNeuronSpec("4:100"), 6, "h")], [4, 5]);
  assert.throws(() => parseNeuronSpec("3:1"), /Cannot use --neurons as each item must be .*: current value is '3:1'/);
  assert.throws(() => parseNeuronSpec("a"), /current value is 'a'/);
  assert.throws(
    () => neuronIndices(parseNeuronSpec("7"), 6, "h"),
    /Cannot select neuron 7 \(--neurons\) as layer 'h' has 6 neurons/,
  );
  assert.throws(() => neuronIndices(parseNeuronSpec("8:9"), 6, "h"), /none of layer 'h'/);
});

Deno.test("--neurons: entropy, mi and label-mi tables equal the full run's rows of the selected neurons, original indices", async () => {
  const rng = new Rng(3), rows = 120;
  const fc1 = Float32Array.from({ length: rows * 6 }, () => rng.normal());
  const fc2 = Float32Array.from({ length: rows * 4 }, () => Math.max(0, rng.normal()));
  const path = await Deno.makeTempFile({ suffix: ".arrows" });
  try {
    await writeBatches(path, [makeRecordBatch({
      kind: "activations/v1",
      sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(i)),
      label: Int32Array.from({ length: rows }, (_, i) => i % 3),
      tensors: [{ name: "fc1", width: 6, values: fc1 }, { name: "fc2", width: 4, values: fc2 }],
    })]);
    // a fixed --range: the global range of a subset would differ from the full run's otherwise
    const options = { range: [-4, 4] as [number, number], "mi-pairs": "all" };
    const estimators = ["entropy", "mi", "label-mi"];
    const full = await analyze({ inputs: [path], estimators, options });
    const sub = await analyze({ inputs: [path], estimators, options, neurons: "1:3,5:6" });
    assert.ok(sub.complete, sub.error);
    const keep: Record<string, number[]> = { fc1: [1, 2, 5], fc2: [1, 2] };
    const kept = (l: unknown, j: unknown) => keep[String(l)].includes(Number(j));
    const pick = {
      neuron_entropy: (r: any) => kept(r.layer, r.neuron),
      label_mi: (r: any) => kept(r.layer, r.neuron),
      neuron_mi: (r: any) => kept(r.layer_a, r.neuron_a) && kept(r.layer_b, r.neuron_b),
    };
    for (const [name, ok] of Object.entries(pick)) {
      const want = rowsOf(full.tables[name]).filter(ok);
      const got = rowsOf(sub.tables[name]);
      assert.ok(want.length > 0);
      assert.deepEqual(got, want, name);
    }
    assert.equal((sub.run.options as Record<string, unknown>).neurons, "1:3,5:6");
    assert.deepEqual(sub.run.neurons, keep);
    assert.equal((full.run.options as Record<string, unknown>).neurons, undefined);
    const bad = await analyze({ inputs: [path], estimators: ["entropy"], options, neurons: "7" });
    assert.equal(bad.complete, false);
    assert.match(bad.error!, /Cannot select neuron 7 \(--neurons\) as layer 'fc1' has 6 neurons/);
  } finally {
    await Deno.remove(path);
  }
});
