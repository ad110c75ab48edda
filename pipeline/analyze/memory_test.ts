import assert from "node:assert/strict";
import { analyze } from "./run.ts";
import { makeRecordBatch, writeBatches } from "../producers/produce.ts";
import { main } from "../cli/analyze.ts";
import { BASE_BYTES } from "../core/memory.ts";
import { Rng } from "../../tests/_util.ts";

const WIDTH = 200, ROWS = 100;
/** Binned MI state of one step: 19,900 pairs x 16^2 bins x 4 bytes, about 20 MB. */
const STEP = (WIDTH * (WIDTH - 1)) / 2 * (16 * 16 * 4 + 16) + WIDTH * 8;
/**
 * Binned MI's working buffers, held once: a block of 65,536 coded rows of WIDTH neurons, the kernels' copy of it (the
 * native bit sets: 16 bins / 8 bytes a code), and 8 MiB of counts of a pending block; about 48 MB.
 */
const WORK = WIDTH * 65536 * 3 + 8 * 2 ** 20;

/** Steps in the given order, one batch each, one layer of WIDTH neurons. */
async function dump(dir: string, steps: number[]): Promise<string> {
  const rng = new Rng(7);
  const path = `${dir}/steps-${steps.join("-")}.arrows`;
  await writeBatches(
    path,
    steps.map((s) =>
      makeRecordBatch({
        kind: "activations/v1",
        sampleId: BigInt64Array.from({ length: ROWS }, (_, i) => BigInt(i)),
        step: new BigInt64Array(ROWS).fill(BigInt(s)),
        tensors: [{
          name: "fc",
          width: WIDTH,
          values: Float32Array.from({ length: ROWS * WIDTH }, () => rng.normal()),
        }],
      })
    ),
  );
  return path;
}

const BINNED = { estimators: ["mi"], options: { "mi-estimator": "binned" }, byStep: true, progress: false };

Deno.test("analyze: a run whose estimators would exceed --max-memory is refused up front, naming the option that fits", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const input = await dump(dir, [0, 1, 2]);
    // Room for the base, the working buffers and one step of 16-bin counts, not for the two a finished step may
    // briefly overlap with.
    const r = await analyze({
      ...BINNED,
      inputs: [input],
      maxMemory: BASE_BYTES + WORK + 1.5 * STEP,
      out: `${dir}/out`,
    });
    assert.equal(r.complete, false);
    assert.match(
      r.error!,
      /^Cannot analyze as the estimators would need about \d+ MB \(mi \d+(\.\d)? MB: 2 x \d+(\.\d)? MB of state, \d+(\.\d)? MB of working buffers, 5 x \d+(\.\d)? MB of results\), more than --max-memory \d+ MB; try --mi-bins 8 \(about \d+ MB\) or --mi-pair-sample 8192 \(about \d+ MB\): current value is \d+ MB$/,
    );
    assert.equal(r.run.inputs && (r.run.inputs as { rows: number }[])[0].rows, 0, "no row was analysed");
    // The CLI: one line, exit 1; --mi-bins 8 then runs.
    const errors: string[] = [];
    const orig = console.error;
    console.error = (...a: unknown[]) => void errors.push(a.join(" "));
    try {
      const args = ["--quiet", "--estimators", "mi", "--mi-estimator", "binned", "--by-step", "--out", `${dir}/cli`];
      const mb = `${Math.round((BASE_BYTES + WORK + 1.5 * STEP) / 1e6)}MB`;
      assert.equal(await main([...args, "--max-memory", mb, input]), 1);
      assert.match(errors[0], /^infotap: error: Cannot analyze as the estimators would need about .* try --mi-bins 8/);
      assert.equal(await main([...args, "--max-memory", mb, "--mi-bins", "8", input]), 0);
      assert.equal(await main([...args, "--max-memory", "lots", input]), 2);
      assert.match(errors.at(-1)!, /Cannot use --max-memory as it must be a size such as 8G/);
    } finally {
      console.error = orig;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("analyze --by-step: sorted steps are finished one at a time (fits); the same steps unsorted are refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Six steps: held all at once they need 6 steps of state; finished as they end, 2.
    const budget = BASE_BYTES + WORK + 3 * STEP;
    const sorted = await analyze({ ...BINNED, inputs: [await dump(dir, [0, 1, 2, 3, 4, 5])], maxMemory: budget });
    assert.ok(sorted.complete, sorted.error);
    assert.equal(sorted.tables.neuron_mi.numRows, 6 * (WIDTH * (WIDTH - 1)) / 2);
    const unsorted = await analyze({ ...BINNED, inputs: [await dump(dir, [0, 2, 1, 3, 5, 4])], maxMemory: budget });
    assert.equal(unsorted.complete, false);
    assert.match(
      unsorted.error!,
      /mi \d+ MB: 6 x \d+(\.\d)? MB of state.*try .*input sorted by step \(--by-step then holds one step at a time\)/,
    );
    // Without the limit, unsorted steps are held together and give the same tables as sorted ones.
    const all = await analyze({ ...BINNED, inputs: [await dump(dir, [0, 2, 1, 3, 5, 4])] });
    assert.ok(all.complete);
    assert.equal(all.tables.neuron_mi.numRows, sorted.tables.neuron_mi.numRows);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
