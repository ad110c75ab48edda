import assert from "node:assert/strict";
import { analyze } from "./run.ts";
import { smallDump } from "./_fixtures.ts";

Deno.test("analyze: the same path given twice counts each input's rows and batches by its index in run.json", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = await smallDump(dir);
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
