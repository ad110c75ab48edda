import assert from "node:assert/strict";
import { analyze } from "../analyze/run.ts";
import { makeRecordBatch, writeBatches } from "../producers/produce.ts";
import { Rng } from "../../tests/_util.ts";
import { batchesOf, problem, recordBatchOf } from "../../tests/_si_problem.ts";

const CLI = new URL("./analyze.ts", import.meta.url).pathname;

/** Runs the analyze CLI on a terminal (a pseudo-terminal from util-linux `script`); returns what it drew. */
async function onTerminal(args: string[], dir: string): Promise<string> {
  const log = `${dir}/typescript`;
  const cmd = [Deno.execPath(), "run", "-A", CLI, ...args].map((a) => `'${a}'`).join(" ");
  const { code } = await new Deno.Command("script", { args: ["-qec", cmd, log], stdout: "null", stderr: "null" })
    .output();
  assert.equal(code, 0);
  // The bar redraws in place: every frame, one per line.
  return (await Deno.readTextFile(log)).replaceAll("\r", "\n").replaceAll("\x1b[1G", "\n")
    // deno-lint-ignore no-control-regex
    .replaceAll(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]/g, "");
}

/** An activations dump: two layers, 3 steps of 400 rows. */
async function activations(path: string): Promise<number> {
  const rng = new Rng(3), rows = 400;
  await writeBatches(
    path,
    [0, 1, 2].map((s) =>
      makeRecordBatch({
        kind: "activations/v1",
        sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(i)),
        step: new BigInt64Array(rows).fill(BigInt(s)),
        tensors: [
          { name: "fc1", width: 12, values: Float32Array.from({ length: rows * 12 }, () => rng.normal()) },
          { name: "fc2", width: 6, values: Float32Array.from({ length: rows * 6 }, () => rng.normal()) },
        ],
      })
    ),
  );
  return 3 * rows;
}

const hasScript = await new Deno.Command("script", { args: ["--version"], stdout: "null", stderr: "null" }).output()
  .then((o) => o.success, () => false);

Deno.test({
  name: "analyze on a terminal: each pass, rows counted once per pass, then the results phase with MI pairs done",
  ignore: !hasScript && !Deno.env.get("CI"),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const input = `${dir}/acts.arrows`;
      const rows = await activations(input);
      const screen = await onTerminal(["--estimators", "entropy,mi", "--out", `${dir}/out`, input], dir);
      const frames = screen.split("\n");
      const rowsIn = (label: string) =>
        frames.filter((f) => f.startsWith(label)).map((f) => Number(/\| (\d+) rows \|/.exec(f)?.[1] ?? NaN));
      const pass1 = rowsIn("pass 1/2"), pass2 = rowsIn("pass 2/2");
      assert.ok(pass1.length > 0 && pass2.length > 0, screen);
      // The first pass counts the rows; the second counts them again from 0, not on top.
      assert.equal(Math.max(...pass1), rows);
      assert.equal(Math.max(...pass2), rows);
      assert.equal(pass2[0], 0);
      assert.ok(frames.some((f) => /^results \|.*\| mi: \d[\d,]*\/81 pairs \(\d+%\)/.test(f)), screen);
      // One line per phase in run.json's timings, each estimator's result time too.
      const run = JSON.parse(await Deno.readTextFile(`${dir}/out/run.json`));
      for (const k of ["scan_s", "estimate_s", "result_s", "result_entropy_s", "result_mi_s", "write_s", "total_s"]) {
        assert.equal(typeof run.timings[k], "number", k);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("analyze: the estimators report their result work (MI pairs, unique-info's factorisation) while it runs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const acts = `${dir}/acts.arrows`;
    await activations(acts);
    const seen: Record<string, [number, number, string][]> = {};
    // The progress bar is off (not a terminal), but the estimators' reports still reach it: spy on them.
    const { Progress } = await import("../core/progress.ts");
    const work = Progress.prototype.work;
    Progress.prototype.work = function (name, done, total, unit) {
      (seen[name] ??= []).push([done, total, unit]);
    };
    try {
      assert.ok((await analyze({ inputs: [acts], estimators: ["mi"], byStep: true })).complete);
      assert.ok(
        (await analyze({ inputs: [acts], estimators: ["mi"], options: { "mi-estimator": "binned" } })).complete,
      );
      const jac = `${dir}/jac.arrows`;
      await writeBatches(jac, batchesOf(problem(5, 60, 10, 2, 30), 40).map(recordBatchOf));
      assert.ok((await analyze({ inputs: [jac], options: { "si-lambda": 0.5 } })).complete);
    } finally {
      Progress.prototype.work = work;
    }
    const pairs = seen.mi.filter(([, , u]) => u === "pairs");
    // KSG by step (3 steps x 81 pairs), then binned (81 pairs): the counts reach their totals.
    assert.ok(pairs.some(([d, t]) => t === 3 * 81 && d === 3 * 81));
    assert.ok(pairs.some(([d, t]) => t === 81 && d === 81));
    const si = seen["unique-info"].map(([d, t, u]) => `${u}:${Math.round((100 * d) / t)}`);
    assert.ok(si.includes("% factorisation:100") && si.includes("% inverse:100"), si.join(" "));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
