import assert from "node:assert/strict";
import { makeRecordBatch, writeBatches } from "./produce.ts";
import { connectProducer } from "./connect.ts";
import { serve } from "../serve/serve.ts";
import { readInput } from "../../schemas/source.ts";

const batch = (width: number, step: number) =>
  makeRecordBatch({
    kind: "activations/v1",
    sampleId: new BigInt64Array([0n, 1n]),
    step: new BigInt64Array([BigInt(step), BigInt(step)]),
    tensors: [{ name: "fc1", width, values: new Float32Array(2 * width).fill(step / 10) }],
  });

Deno.test("writeBatches refuses a batch whose schema changed (apache-arrow would drop it silently); the batches before it are a valid stream", async () => {
  for (const suffix of [".arrows", ".arrow"]) {
    const path = await Deno.makeTempFile({ suffix });
    try {
      await assert.rejects(
        () => writeBatches(path, [batch(3, 0), batch(3, 1), batch(4, 2), batch(3, 3)]),
        /^Error: Cannot write batch 2 as its schema differs from the first batch's \(column 'fc1' is FixedSizeList<Float32>\[4\], not FixedSizeList<Float32>\[3\]; .*\): current value is \["sample_id","step","fc1"\]$/,
      );
      const steps = [];
      for await (const { batch: b } of readInput(path)) steps.push(b.step![0]);
      assert.deepEqual(steps, [0n, 1n], suffix);
    } finally {
      await Deno.remove(path);
    }
  }
});

Deno.test("connectProducer refuses a batch whose schema changed, before sending it; the stream goes on", async () => {
  const out = await Deno.makeTempDir();
  const server = await serve({ listen: "127.0.0.1:0", out, options: { range: [0, 1] }, log: () => {} });
  try {
    const p = await connectProducer({ port: server.port });
    await p.write(batch(3, 0));
    await assert.rejects(
      () => p.write(batch(5, 1)),
      /Cannot write the batch as its schema differs from the connection's first batch \(column 'fc1' is FixedSizeList<Float32>\[5\], not FixedSizeList<Float32>\[3\]/,
    );
    await p.write(batch(3, 2));
    assert.deepEqual(await p.close(), { batches: 2, rows: 4 });
  } finally {
    await server.stop();
    await Deno.remove(out, { recursive: true });
  }
});
