import assert from "node:assert/strict";
import { examplePlugin } from "./example_mean.ts";
import * as arrow from "apache-arrow";
import { mixedActivations } from "../../tests/_contract_fixtures.ts";
import { runPlugin } from "../../tests/_util.ts";
import { makeRecordBatch, writeBatches } from "../../mod.ts";

Deno.test("example-mean equals a direct two-pass mean and variance, excluding NaN/Inf", async () => {
  const batches = mixedActivations(9);
  const { results } = await runPlugin(examplePlugin, {}, batches);
  const t = results.neuron_moments;
  let row = 0;
  for (const layer of ["fc1", "fc2"]) {
    const width = batches[0].columns.find((c) => c.name === layer)!.width;
    for (let j = 0; j < width; j++, row++) {
      const xs: number[] = [];
      let nf = 0;
      for (const b of batches) {
        const c = b.columns.find((c) => c.name === layer)!;
        for (let r = 0; r < b.numRows; r++) {
          const x = c.values[r * width + j];
          if (Number.isFinite(x)) xs.push(x);
          else nf++;
        }
      }
      const mean = xs.reduce((a, x) => a + x, 0) / xs.length;
      const variance = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / xs.length;
      assert.equal(t.getChild("layer")!.get(row), layer);
      assert.ok(Math.abs(t.getChild("mean")!.get(row) - mean) <= 1e-12 * Math.max(1, Math.abs(mean)));
      assert.ok(Math.abs(t.getChild("variance")!.get(row) - variance) <= 1e-9 * Math.max(1, variance));
      assert.equal(Number(t.getChild("nonfinite")!.get(row)), nf);
    }
  }
  assert.ok(
    Number(t.getChild("nonfinite")!.get(3)) + Number(t.getChild("nonfinite")!.get(7)) > 0,
    "fixture has NaN/Inf",
  );
});

Deno.test("example-mean, copied outside the repository as a user would, loads with `deno task analyze --plugin`", async () => {
  const repo = new URL("../../", import.meta.url);
  const source = await Deno.readTextFile(new URL("./example_mean.ts", import.meta.url));
  // The published entry point is the only import: an internal path would not resolve from the copy.
  assert.deepEqual([...source.matchAll(/^(?:import\b[^\n]*|\})\s*from\s*"([^"]+)"/gm)].map((m) => m[1]), [
    "../../mod.ts",
  ]);
  const dir = await Deno.makeTempDir({ prefix: "infotap-user-plugin-" });
  try {
    assert.ok(!dir.startsWith(repo.pathname.replace(/\/$/, "")), `${dir} is outside ${repo.pathname}`);
    const copy = source.replace(`from "../../mod.ts"`, `from ${JSON.stringify(new URL("mod.ts", repo).href)}`);
    await Deno.writeTextFile(`${dir}/my_plugin.ts`, copy);
    const values = Float32Array.from({ length: 30 }, (_, i) => (i * 37) % 11 - 4);
    await writeBatches(`${dir}/a.arrows`, [
      makeRecordBatch({
        kind: "activations/v1",
        sampleId: BigInt64Array.from({ length: 10 }, (_, i) => BigInt(i)),
        tensors: [{ name: "fc1", width: 3, values }],
      }),
    ]);
    // `deno task` runs in the checkout's root, as the README's commands do; the plugin lives elsewhere.
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "-q", "analyze", "--quiet", "--plugin", `${dir}/my_plugin.ts`, "--estimators", "example-mean"]
        .concat(["--format", "arrow", "--out", `${dir}/out`, `${dir}/a.arrows`]),
      cwd: repo.pathname,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const t = arrow.tableFromIPC(await Deno.readFile(`${dir}/out/neuron_moments.arrow`));
    for (let j = 0; j < 3; j++) {
      const xs = Array.from({ length: 10 }, (_, r) => values[r * 3 + j]);
      const mean = xs.reduce((a, x) => a + x, 0) / xs.length;
      assert.ok(Math.abs(t.getChild("mean")!.get(j) - mean) <= 1e-12 * Math.max(1, Math.abs(mean)));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
