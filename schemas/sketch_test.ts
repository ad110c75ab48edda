import assert from "node:assert/strict";
import { fnv1a, sketchJacobian } from "./sketch.ts";
import { Rng } from "../tests/_util.ts";

/** The documented formula, written out directly (no chunks, no sign table): the reference. */
function naiveSketch(values: Float32Array, width: number, m: number, seed: number, name: string): Float32Array {
  const fmix = (h: number) => {
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  };
  const sign = (p: number, j: number) => {
    const word = fmix(fmix(fmix(fmix((seed >>> 0) ^ 0x9e3779b9) ^ fnv1a(name)) ^ p) ^ (j >>> 5));
    return ((word >>> (j & 31)) & 1) === 1 ? -1 : 1;
  };
  const rows = values.length / width;
  const out = new Float32Array(rows * m);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let p = 0; p < width; p++) s += values[r * width + p] * sign(p, j);
      out[r * m + j] = s * (1 / Math.sqrt(m));
    }
  }
  return out;
}

Deno.test("sketchJacobian equals the documented formula bit for bit, whatever the row batching", () => {
  const rng = new Rng(1);
  const width = 700, m = 45, rows = 5; // crosses the 256-parameter chunk and a 32-bit sign word
  const v = Float32Array.from({ length: rows * width }, () => rng.normal());
  const s = sketchJacobian(v, width, m, 123, "fc1.weight");
  assert.deepEqual(s, naiveSketch(v, width, m, 123, "fc1.weight"));
  const parts = [
    sketchJacobian(v.subarray(0, 2 * width), width, m, 123, "fc1.weight"),
    sketchJacobian(v.subarray(2 * width), width, m, 123, "fc1.weight"),
  ];
  assert.deepEqual(s, Float32Array.from([...parts[0], ...parts[1]]));
});

Deno.test("sketchJacobian: +-1/sqrt(m) entries, seed and name change it, norms are preserved on average", () => {
  const m = 64, width = 50;
  const eye = new Float32Array(width * width);
  for (let i = 0; i < width; i++) eye[i * width + i] = 1;
  const s = sketchJacobian(eye, width, m, 7, "w");
  for (const x of s) assert.equal(Math.abs(x), Math.fround(1 / Math.sqrt(m)));
  assert.notDeepEqual(s, sketchJacobian(eye, width, m, 8, "w"));
  assert.notDeepEqual(s, sketchJacobian(eye, width, m, 7, "b"));
  // E ||S^T x||^2 = ||x||^2: over many random unit rows, the mean squared norm is near 1
  const rng = new Rng(3);
  const rows = 200;
  const v = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) {
    let n = 0;
    for (let p = 0; p < width; p++) n += (v[r * width + p] = rng.normal()) ** 2;
    for (let p = 0; p < width; p++) v[r * width + p] /= Math.sqrt(n);
  }
  const t = sketchJacobian(v, width, m, 7, "w");
  let mean = 0;
  for (let r = 0; r < rows; r++) for (let j = 0; j < m; j++) mean += t[r * m + j] ** 2 / rows;
  assert.ok(Math.abs(mean - 1) < 0.05, `mean squared norm ${mean}`);
  assert.throws(() => sketchJacobian(v, width, 0, 1, "w"), /sketch dimension must be a positive integer/);
});
