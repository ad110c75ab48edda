import assert from "node:assert/strict";
import type { Batch } from "../../schemas/batch.ts";
import { InputError } from "../../schemas/errors.ts";
import { cpuSettings, EstimatorSet } from "./estimator_set.ts";
import type { OptionValues } from "./plugin.ts";
import { Registry } from "./registry.ts";
import { StepChunks } from "./step_chunks.ts";
import { builtinPlugins } from "../../plugins/mod.ts";
import { mixedActivations, mixedGradients } from "../../tests/_contract_fixtures.ts";
import { assertTablesClose } from "../../tests/_util.ts";

const registry = new Registry(builtinPlugins);

/** Batches whose steps change inside batches too (a step spans batch ends), sorted. */
function spanning(batches: Batch[], every: number): Batch[] {
  let row = 0;
  return batches.map((b) => ({
    ...b,
    step: BigInt64Array.from({ length: b.numRows }, () => BigInt(Math.floor(row++ / every))),
  }));
}

/** The set with its first pass run over `batches`. */
function scanned(names: string[], options: OptionValues, batches: Batch[]): EstimatorSet {
  const set = EstimatorSet.of(names.map((n) => registry.get(n)), options, cpuSettings(true, 0));
  const scanners = set.scanners();
  for (const b of batches) for (const s of scanners) s?.update(b);
  return set.withScans(scanners.map((s) => s?.result()));
}

const cases: { label: string; names: string[]; options: OptionValues; batches: () => Batch[] }[] = [
  {
    label: "entropy + mi (binned) + label-mi",
    names: ["entropy", "mi", "label-mi"],
    options: { "mi-estimator": "binned", "mi-bins": 5 },
    batches: () => spanning(mixedActivations(3, 8, 25), 37),
  },
  {
    label: "entropy (kNN, ties and non-finite values counted)",
    names: ["entropy"],
    options: { "entropy-estimator": "knn", "entropy-samples": 20 },
    batches: () => spanning(mixedActivations(7, 8, 25), 37),
  },
  {
    label: "mi binned, all pairs",
    names: ["mi"],
    options: { "mi-estimator": "binned", "mi-pairs": "all", "mi-bins": 4 },
    batches: () => spanning(mixedActivations(4, 6, 30), 41),
  },
  {
    label: "fisher with sketch and diagonal",
    names: ["fisher"],
    options: { "fisher-rank": 3, "fisher-diag": true, "prior-var": 1, beta: 0.5 },
    batches: () => spanning(mixedGradients(5, 6, 20), 33),
  },
];

for (const c of cases) {
  Deno.test(`StepChunks: ${c.label}: steps finished one or two at a time give the tables and summaries of one set`, async () => {
    const batches = c.batches();
    const set = scanned(c.names, c.options, batches);
    assert.ok(set.stepLocal());
    const one = set.create();
    for (const b of batches) await one.update(b);
    const want = await one.tables(), wantSummaries = one.summaries();
    one.dispose();
    for (const steps of [1, 2]) {
      const chunks = new StepChunks(set, { steps, maxHeld: Infinity });
      for (const b of batches) await chunks.update(b);
      assert.ok(chunks.finished > 0, "some steps were finished early");
      const got = await chunks.tables();
      assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort());
      for (const name of Object.keys(want)) assertTablesClose(got[name], want[name], 0, 0, `${name}, ${steps} step(s)`);
      assert.deepEqual(chunks.summaries(), wantSummaries);
      chunks.dispose();
    }
  });
}

Deno.test("KSG MI is not step-local (its ties summary cannot be combined over steps finished apart)", () => {
  assert.equal(scanned(["mi"], {}, []).stepLocal(), false);
  assert.equal(scanned(["mi"], { "mi-estimator": "binned" }, []).stepLocal(), true);
});

Deno.test("StepChunks: a step before a finished one, or more steps than maxHeld, is an InputError naming the batch", async () => {
  const batches = spanning(mixedActivations(6, 6, 20), 20); // one step per batch: 0..5
  const set = scanned(["entropy"], {}, batches);
  const chunks = new StepChunks(set, { steps: 2, maxHeld: 3, why: "3 steps fit in --max-memory" });
  for (const b of batches.slice(0, 3)) await chunks.update(b); // steps 0, 1 finished when 2 came
  await assert.rejects(
    chunks.update({ ...batches[1], index: 9 }),
    (e) =>
      e instanceof InputError &&
      /step 1 comes after step 1 was finished \(the input's steps are not sorted/.test(e.message) &&
      e.where.batch === 9,
  );
  chunks.dispose();
  // Steps going back inside the open chunk stop the finishing; then maxHeld bounds them.
  const back = new StepChunks(set, { steps: 2, maxHeld: 3, why: "3 steps fit in --max-memory" });
  for (const i of [0, 2, 1]) await back.update(batches[i]);
  assert.equal(back.finished, 0);
  await assert.rejects(
    back.update(batches[3]),
    /more than 3 steps would be held at once \(the input's steps are not sorted; 3 steps fit in --max-memory\): current value is 4 steps/,
  );
  back.dispose();
});
