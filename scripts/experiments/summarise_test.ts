import assert from "node:assert/strict";
import { summarise } from "./summarise.ts";

Deno.test("Dataset summarisation (fast): SI ranks, retrains, and the SI share view is written", async () => {
  const out = await Deno.makeTempDir();
  const r = await summarise({ fast: true, out });
  assert.equal(r.rows.length, 3);
  for (const row of r.rows) {
    assert.ok(row.siAccuracy > 0.1 && row.randomAccuracy > 0.1, `better than chance: ${JSON.stringify(row)}`);
    // the kept (highest-SI) samples hold more than their share of the total SI
    assert.ok(row.siShareKept > 1 - row.removed, `share ${row.siShareKept} at ${row.removed} removed`);
  }
  // removing 90% at random costs accuracy against the full set
  assert.ok(r.rows[2].randomAccuracy < r.fullAccuracy, `${r.rows[2].randomAccuracy} vs ${r.fullAccuracy}`);
  await Deno.stat(`${out}/unique_information_summary.parquet`);
  await Deno.stat(`${out}/accuracy.vl.json`);
  await Deno.remove(out, { recursive: true });
});
