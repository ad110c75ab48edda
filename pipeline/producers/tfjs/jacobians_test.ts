import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { tfjsJacobians } from "./jacobians.ts";
import { decodeBatch, validateSchema } from "../../../schemas/validate.ts";
import { sketchJacobian } from "../../../schemas/sketch.ts";
import { Rng, rowsOf } from "../../../tests/_util.ts";
import { uniqueInfoPlugin } from "../../../plugins/unique_info/unique_info.ts";
import type { Batch } from "../../../schemas/batch.ts";

// a tiny MLP: x (3) -> tanh(x W1 + b1) (4) -> h W2 + b2 (2 outputs)
const SHAPES = { w1: [3, 4], b1: [4], w2: [4, 2], b2: [2] } as const;
const apply = ([w1, b1, w2, b2]: tf.Tensor[], x: tf.Tensor) =>
  tf.add(tf.matMul(tf.tanh(tf.add(tf.matMul(x as tf.Tensor2D, w1 as tf.Tensor2D), b1)), w2 as tf.Tensor2D), b2);

/** The same MLP in float64, written out by hand: the finite-difference reference. */
function forward64(p: Float64Array[], x: ArrayLike<number>): number[] {
  const [w1, b1, w2, b2] = p;
  const h = [0, 1, 2, 3].map((j) => Math.tanh(b1[j] + [0, 1, 2].reduce((s, i) => s + x[i] * w1[i * 4 + j], 0)));
  return [0, 1].map((c) => b2[c] + h.reduce((s, hj, j) => s + hj * w2[j * 2 + c], 0));
}

function setup() {
  const rng = new Rng(1);
  const params = Object.entries(SHAPES).map(([name, shape]) => ({
    name,
    shape: [...shape],
    values: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * 0.7),
  }));
  const n = 5;
  const inputs = Float32Array.from({ length: n * 3 }, () => rng.normal());
  const targets = Float32Array.from({ length: n * 2 }, () => rng.normal());
  return { params, inputs, targets, n };
}

async function collect(it: AsyncIterable<import("apache-arrow").RecordBatch>): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const rb of it) out.push(decodeBatch(rb, validateSchema(rb.schema, "mem", out.length), "mem", out.length));
  return out;
}

for (const backend of ["cpu", "wasm"] as const) {
  Deno.test(`tfjsJacobians (${backend}) equals central finite differences of the model at w0`, async () => {
    const { params, inputs, targets, n } = setup();
    assert.equal(n, 5);
    const batches = await collect(
      tfjsJacobians({ params, apply, inputs, inputShape: [3], targets, samplesPerBatch: 2, backend }),
    );
    assert.equal(tf.getBackend(), backend);
    assert.deepEqual(batches.map((b) => b.numRows), [4, 4, 2]);
    const p64 = params.map((p) => Float64Array.from(p.values));
    let row = 0;
    for (const b of batches) {
      for (let r = 0; r < b.numRows; r++, row++) {
        const i = Math.floor(row / 2), c = row % 2;
        assert.equal(b.sampleId[r], BigInt(i));
        assert.equal(b.output![r], c);
        assert.equal(b.target![r], targets[i * 2 + c]);
        const x = inputs.subarray(i * 3, i * 3 + 3);
        assert.ok(Math.abs(b.f0![r] - forward64(p64, x)[c]) < 1e-5);
        b.columns.forEach((col, t) => {
          assert.equal(col.name, params[t].name);
          for (let q = 0; q < col.width; q++) {
            const h = 1e-5, save = p64[t][q];
            p64[t][q] = save + h;
            const up = forward64(p64, x)[c];
            p64[t][q] = save - h;
            const down = forward64(p64, x)[c];
            p64[t][q] = save;
            const fd = (up - down) / (2 * h);
            assert.ok(Math.abs(col.values[r * col.width + q] - fd) < 1e-5 + 1e-4 * Math.abs(fd), `${col.name}[${q}]`);
          }
        });
      }
    }
  });
}

Deno.test("tfjsJacobians sketches each column with the shared sketch, and feeds unique-info", async () => {
  const { params, inputs, targets } = setup();
  const plain = await collect(tfjsJacobians({ params, apply, inputs, inputShape: [3], targets }));
  const sketched = await collect(
    tfjsJacobians({ params, apply, inputs, inputShape: [3], targets, sketchDim: 6, seed: 3, samplesPerBatch: 3 }),
  );
  const col = plain[0].columns[2];
  const expected = sketchJacobian(col.values, col.width, 6, 3, "w2");
  const got = Float32Array.from(sketched.flatMap((b) => [...b.columns[2].values]));
  assert.deepEqual(got, expected);
  assert.equal(sketched[0].columns[2].metadata.get("infotap.sketch.seed"), "3");
  assert.equal(sketched[0].columns[2].metadata.get("infotap.sketch.source_dim"), "8");
  // end to end: the estimator takes the producer's batches, sketched or not
  const est = uniqueInfoPlugin.create({ "si-lambda": 0.1, "si-sketch-dim": 6 }, { byStep: false, seed: 3 });
  for (const b of sketched) est.update(b);
  const t = (await est.result()).unique_information;
  assert.equal(t.numRows, 5);
  for (const r of rowsOf(t)) assert.ok((r.si_weights as number) > 0);
});
