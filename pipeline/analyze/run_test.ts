import assert from "node:assert/strict";
import { analyze } from "./run.ts";
import { makeRecordBatch, writeBatches } from "../producers/produce.ts";

Deno.test("analyze: the same path given twice counts each input's rows and batches by its index in run.json", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/a.arrows`;
    await writeBatches(
      path,
      [0, 1, 2].map((b) =>
        makeRecordBatch({
          kind: "activations/v1",
          sampleId: BigInt64Array.from({ length: 10 }, (_, r) => BigInt(b * 10 + r)),
          tensors: [{
            name: "fc1",
            width: 2,
            values: Float32Array.from({ length: 20 }, (_, k) => Math.sin(k * 7 + b)),
          }],
        })
      ),
    );
    for (const threads of [undefined, 2]) {
      const r = await analyze({ inputs: [path, path], estimators: ["entropy"], threads, progress: false });
      assert.equal(r.complete, true);
      const inputs = r.run.inputs as { path: string; rows: number; batches: number }[];
      assert.deepEqual(
        inputs.map((i) => [i.path, i.rows, i.batches]),
        [[path, 30, 3], [path, 30, 3]],
        `threads ${threads}`,
      );
      assert.equal(r.tables.neuron_entropy.getChild("samples")!.get(0), 60n);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
