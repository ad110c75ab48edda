import assert from "node:assert/strict";
import { analyze } from "./run.ts";
import { main } from "../cli/analyze.ts";
import { makeRecordBatch, writeBatches } from "../producers/produce.ts";

/** A plugin whose first pass (or result) fails with an internal error (a bug, not bad input) at batch `at`. */
const fragile = (where: "scan" | "result", at = 1) => `
let seen = 0;
const est = () => ({
  update() {}, merge() {}, state: () => null,
  result() { if (${where === "result"}) throw new TypeError("fragile result failed"); return {}; },
});
export default {
  name: "fragile", description: "Fails (tests only).", inputs: ["activations/v1"], options: {},
  scan: () => ({ update() { if (${
  where === "scan"
} && ++seen > ${at}) throw new TypeError("fragile scan failed"); }, result: () => null }),
  create: est, restore: est,
};`;

async function dump(dir: string): Promise<string> {
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

Deno.test("analyze: a missing input writes nothing (no output directory, no run.json)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await analyze({ inputs: [`${dir}/missing.arrows`], out: `${dir}/out`, progress: false });
    assert.equal(r.complete, false);
    assert.equal(r.written, false);
    assert.match(r.error!, /Cannot open input as it does not exist/);
    assert.equal(await Deno.stat(`${dir}/out`).catch(() => null), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("analyze: an internal error writes run.json (complete false, the error) before it is thrown; the CLI exits 70", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const input = await dump(dir);
    for (const where of ["scan", "result"] as const) {
      const plugin = `${dir}/fragile_${where}.ts`;
      await Deno.writeTextFile(plugin, fragile(where));
      const errors: string[] = [];
      const orig = console.error;
      console.error = (...a: unknown[]) => void errors.push(a.join(" "));
      try {
        const out = `${dir}/out-${where}`;
        assert.equal(
          await main(["--quiet", "--plugin", plugin, "--estimators", "fragile,entropy", "--out", out, input]),
          70,
        );
        assert.match(errors.join("\n"), new RegExp(`infotap: internal error: fragile ${where} failed`));
        const run = JSON.parse(await Deno.readTextFile(`${out}/run.json`));
        assert.equal(run.complete, false);
        assert.match(run.error, new RegExp(`^internal error: fragile ${where} failed`));
      } finally {
        console.error = orig;
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
