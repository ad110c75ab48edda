import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as tfl from "@tensorflow/tfjs-layers";
import type * as arrow from "apache-arrow";
import { tfjsTap } from "./tap.ts";
import { serve } from "../../serve/serve.ts";
import { decodeBatch, validateSchema } from "../../../schemas/validate.ts";
import { readParquetFile } from "../../../tests/_live.ts";
import { rowsOf } from "../../../tests/_util.ts";

await tf.setBackend("cpu");

function mlp(): tfl.LayersModel {
  const model = tfl.sequential({
    layers: [
      tfl.layers.dense({
        units: 4,
        inputShape: [3],
        name: "fc1",
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
      }),
      tfl.layers.activation({ activation: "relu", name: "act1" }),
      tfl.layers.dense({ units: 2, name: "out", kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
  model.compile({ optimizer: tf.train.sgd(0.1), loss: "meanSquaredError" });
  return model;
}

const PROBE = [[0.5, -1, 2], [1, 1, 1], [-0.3, 0.2, 0.9], [0, 0, 0], [2, -2, 0.5]];
const X = tf.tensor2d(Array.from({ length: 12 }, (_, i) => [Math.sin(i), Math.cos(i), (i % 3) - 1]));
const Y = tf.tensor2d(Array.from({ length: 12 }, (_, i) => [i % 2, (i + 1) % 2]));

Deno.test("tfjsTap: captures the chosen layers' outputs on the probe every N steps, equal to x W + b at that step", async () => {
  const model = mlp();
  const probe = tf.tensor2d(PROBE);
  const got: arrow.RecordBatch[] = [];
  const expected: number[][][] = [];
  const tap = tfjsTap({
    model,
    layers: ["fc1", "act1"],
    probe,
    labels: Int32Array.from([0, 1, 2, 3, 4]),
    every: 2,
    sink: {
      write: (rb) => {
        // Independent truth: the affine map with the weights the model has right now.
        const [w, b] = model.getLayer("fc1").getWeights().map((t) => t.arraySync() as number[][] | number[]);
        expected.push(
          PROBE.map((x) =>
            (b as number[]).map((bj, j) => bj + x.reduce((a, xi, i) => a + xi * (w as number[][])[i][j], 0))
          ),
        );
        got.push(rb);
        return Promise.resolve();
      },
    },
  });
  await model.fit(X, Y, { batchSize: 4, epochs: 2, callbacks: tap, shuffle: false, verbose: 0 });
  assert.deepEqual(tap.captured, [0, 2, 4]); // 3 batches x 2 epochs = steps 0..5
  assert.equal(tap.step, 6);
  for (let c = 0; c < got.length; c++) {
    const batch = decodeBatch(got[c], validateSchema(got[c].schema, "tap", c), "tap", c);
    assert.equal(batch.kind, "activations/v1");
    assert.deepEqual([...batch.step!], Array(5).fill(BigInt(tap.captured[c])));
    assert.deepEqual([...batch.label!], [0, 1, 2, 3, 4]);
    assert.deepEqual(batch.columns.map((col) => [col.name, col.width]), [["fc1", 4], ["act1", 4]]);
    assert.equal(batch.columns[0].metadata.get("infotap.tap.class"), "Dense");
    for (let r = 0; r < 5; r++) {
      for (let j = 0; j < 4; j++) {
        const want = expected[c][r][j];
        assert.ok(Math.abs(batch.columns[0].values[r * 4 + j] - want) < 1e-5, `fc1 step ${c} row ${r}`);
        assert.ok(Math.abs(batch.columns[1].values[r * 4 + j] - Math.max(0, want)) < 1e-5, `act1 step ${c} row ${r}`);
      }
    }
  }
  // Training moved the weights between the first and last capture.
  assert.notDeepEqual(expected[0], expected[2]);
  probe.dispose();
});

Deno.test("tfjsTap: feeds an in-process serve pipeline (snapshots per step window)", async () => {
  const dir = await Deno.makeTempDir();
  const server = await serve({
    listen: null,
    out: dir,
    options: { range: [-3, 3], bins: 10 },
    snapshotEvery: 2,
    log: () => {},
  });
  try {
    const model = mlp();
    const probe = tf.tensor2d(PROBE);
    const sink = server.local();
    const tap = tfjsTap({ model, layers: ["fc1"], probe, every: 2, sink });
    await model.fit(X, Y, { batchSize: 4, epochs: 2, callbacks: tap, shuffle: false, verbose: 0 });
    probe.dispose();
    // Windows [0,1] and [2,3] closed when step 4 arrived; [4,5] closes on stop.
    assert.equal(server.snapshots, 2);
    assert.deepEqual(await sink.close(), { batches: 3, rows: 15 });
    const run = await server.stop();
    assert.equal(run.snapshots, 3);
    const t = await readParquetFile(`${dir}/layer_summary.parquet`);
    assert.deepEqual(rowsOf(t).map((r) => r.step), ["0", "2", "4"]);
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
