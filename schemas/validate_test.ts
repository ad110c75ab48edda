import assert from "node:assert/strict";
import * as arrow from "apache-arrow";
import { decodeBatch, validateSchema } from "./validate.ts";
import { makeRecordBatch } from "../pipeline/producers/produce.ts";

Deno.test("wire format: the optional Int32 flag column is read on activations and Jacobians, refused in another type", () => {
  const flag = new Int32Array([0, 1, 0]);
  const tensors = [{ name: "fc1", width: 2, values: new Float32Array(6) }];
  const sampleId = new BigInt64Array([1n, 2n, 3n]);
  for (
    const rb of [
      makeRecordBatch({ kind: "activations/v1", sampleId, flag, tensors }),
      makeRecordBatch({
        kind: "jacobians/v1",
        sampleId,
        split: ["train", "train", "test"],
        output: new Int32Array(3),
        f0: new Float32Array(3),
        target: new Float32Array([1, 2, NaN]),
        flag,
        tensors,
      }),
    ]
  ) {
    const layout = validateSchema(rb.schema, "f", 0);
    assert.ok(layout.reserved.includes("flag"));
    assert.deepEqual([...decodeBatch(rb, layout, "f", 0).flag!], [0, 1, 0]);
  }
  const plain = makeRecordBatch({ kind: "activations/v1", sampleId, tensors });
  assert.equal(decodeBatch(plain, validateSchema(plain.schema, "f", 0), "f", 0).flag, null);
  const floats = new arrow.Schema(
    [...plain.schema.fields, new arrow.Field("flag", new arrow.Float32())],
    plain.schema.metadata,
  );
  assert.throws(() => validateSchema(floats, "f", 0), /flag/);
});
