/**
 * `--layers`: keeps only the named tensor columns of a batch (used by `analyze` and `serve`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Batch } from "../../schemas/batch.ts";
 * import { selectLayers } from "./select_layers.ts";
 * const column = (name: string) => ({ name, width: 1, values: new Float32Array(1) });
 * const batch = { file: "a.arrows", index: 0, numRows: 1, columns: [column("fc1"), column("fc2")] } as unknown as Batch;
 * assert.deepEqual(selectLayers(batch, ["fc2"]).columns.map((c) => c.name), ["fc2"]);
 * assert.throws(() => selectLayers(batch, ["fc3"]), /file 'a.arrows', batch 0, column 'fc3': Cannot select layer/);
 * ```
 *
 * @module
 */
import type { Batch } from "../../schemas/batch.ts";
import { InputError, show } from "../../schemas/errors.ts";

/** Keeps only the `--layers` columns of a batch (all when `layers` is undefined); unknown names are an error. */
export function selectLayers(batch: Batch, layers: string[] | undefined): Batch {
  if (!layers) return batch;
  const names = new Set(batch.columns.map((c) => c.name));
  for (const l of layers) {
    if (!names.has(l)) {
      throw new InputError(
        `Cannot select layer (--layers) as the stream has no such column (has: ${
          [...names].join(", ")
        }): current value is ${show(l)}`,
        {
          file: batch.file,
          batch: batch.index,
          column: l,
        },
      );
    }
  }
  return { ...batch, columns: batch.columns.filter((c) => layers.includes(c.name)) };
}
