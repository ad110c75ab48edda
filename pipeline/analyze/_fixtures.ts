/**
 * A small input for this folder's tests: `dir/in.arrows`, three `activations/v1` batches of 10 rows, one layer `fc1`
 * of 2 neurons.
 *
 * @module
 */
import { makeRecordBatch, writeBatches } from "../producers/produce.ts";

/** Writes the dump and returns its path. */
export async function smallDump(dir: string): Promise<string> {
  const path = `${dir}/in.arrows`;
  await writeBatches(
    path,
    [0, 1, 2].map((i) =>
      makeRecordBatch({
        kind: "activations/v1",
        sampleId: BigInt64Array.from({ length: 10 }, (_, r) => BigInt(i * 10 + r)),
        tensors: [{ name: "fc1", width: 2, values: Float32Array.from({ length: 20 }, (_, k) => Math.cos(k + i)) }],
      })
    ),
  );
  return path;
}
