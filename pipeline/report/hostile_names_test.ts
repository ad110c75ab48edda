/**
 * Layer names from the input are data, never code or paths (issue 18): names holding `/`, `..`, a newline, quotes
 * and HTML go through `analyze` and `report`; only the estimators' own file names are written, and the page,
 * opened in headless Chromium, runs none of the names' scripts and renders them as text.
 *
 * @module
 */
import assert from "node:assert/strict";
import { analyze } from "../analyze/run.ts";
import { main as report } from "../cli/report.ts";
import { makeRecordBatch, writeBatches } from "../producers/produce.ts";
import { findChromium, withChromium } from "../../tests/_chromium.ts";
import { Rng } from "../../tests/_util.ts";

const NAMES = [
  `fc"</script><script>console.log("PWNED-script")</script>`,
  `<img src=x onerror="console.log('PWNED-img')">`,
  "../../escaped",
  "a/b\nc",
  `it's "quoted"`,
];

const chromium = findChromium();

Deno.test({
  name: "hostile layer names: no file but the estimators' own, and the report runs no script of theirs",
  ignore: !chromium && !Deno.env.get("CI"),
  async fn() {
    if (!chromium) throw new Error("Chromium is required when CI is set (apt-get install -y chromium)");
    const dir = await Deno.makeTempDir();
    try {
      const rng = new Rng(11), rows = 60;
      await writeBatches(`${dir}/in.arrows`, [
        makeRecordBatch({
          kind: "activations/v1",
          sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(i)),
          label: Int32Array.from({ length: rows }, (_, i) => i % 3),
          tensors: NAMES.map((name) => ({
            name,
            width: 3,
            values: Float32Array.from({ length: rows * 3 }, () => rng.normal()),
          })),
        }),
      ]);
      const out = `${dir}/out`;
      const r = await analyze({ inputs: [`${dir}/in.arrows`], estimators: ["entropy", "mi", "label-mi"], out });
      assert.ok(r.complete, r.error);
      assert.deepEqual(r.tables.layer_summary.getChild("layer")!.toArray(), NAMES);
      assert.equal(await report([out, "--out", `${dir}/page.html`]), 0);
      // Only the estimators' tables and run.json in out; nothing written next to it or above it.
      const files = (await Array.fromAsync(Deno.readDir(out))).map((e) => e.name).sort();
      assert.deepEqual(files, [
        "label_mi.parquet",
        "layer_summary.parquet",
        "neuron_entropy.parquet",
        "neuron_mi.parquet",
        "run.json",
      ]);
      assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort(), [
        "in.arrows",
        "out",
        "page.html",
      ]);
      const [run] = await withChromium(chromium, async (b) => [await b.open(`${dir}/page.html`)]);
      assert.ok(run.status?.done, JSON.stringify(run));
      assert.deepEqual(run.status!.errors, []);
      assert.ok(!run.console.some((l) => l.includes("PWNED")), run.console.join("\n"));
      assert.ok(run.status!.plots.length > 0 && run.status!.plots.every((p) => !p.error));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
