/**
 * Seeded Rademacher Johnson-Lindenstrauss sketch of Jacobian (or gradient) rows ({@linkcode sketchJacobian}), shared
 * by producers and the `unique-info` estimator so that both agree bit for bit: a column of width `P` becomes `m`
 * values `fround(sum_p v[p] R[p][j] / sqrt(m))`, summed in float64 in a fixed order, the signs drawn from a hash
 * of (seed, column name, p, j) and never stored whole. Pre-sketched columns carry {@linkcode sketchMetadata}. The
 * exact sign function: schemas/README.md, "Sketched Jacobians"; docs/science.md section 3, "Large P".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sketchJacobian } from "./sketch.ts";
 * const rows = new Float32Array([1, 0, 0, 0, 0, 1, 0, 0]); // 2 rows, width 4
 * const s = sketchJacobian(rows, 4, 3, 7, "fc1.weight");
 * assert.ok(s.length === 6 && Math.abs(Math.abs(s[0]) - 1 / Math.sqrt(3)) < 1e-7);
 * ```
 *
 * @module
 */
import { SKETCH_SEED_KEY, SKETCH_SOURCE_DIM_KEY } from "./validate.ts";

/** Parameters generated per chunk of the projection matrix. */
const CHUNK = 256;

/** The murmur3 32-bit finaliser (exported for other seeded hashes of the project). */
export function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** 32-bit FNV-1a of the UTF-8 bytes of a string. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(s)) {
    h ^= b;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Projects `rows x width` row-major values to `rows x m` with the seeded Rademacher sketch of column `name`.
 * Returns a new `Float32Array`.
 */
export function sketchJacobian(
  values: Float32Array,
  width: number,
  m: number,
  seed: number,
  name: string,
): Float32Array {
  if (!Number.isInteger(m) || m < 1) {
    throw new Error(`Cannot sketch as the sketch dimension must be a positive integer: current value is ${m}`);
  }
  if (!Number.isInteger(width) || width < 1 || values.length % width !== 0) {
    throw new Error(
      `Cannot sketch as the values (${values.length}) are not rows of width ${width}: current value is ${width}`,
    );
  }
  const rows = values.length / width;
  const acc = new Float64Array(rows * m);
  const words = Math.ceil(m / 32);
  const base = mix(mix((seed >>> 0) ^ 0x9e3779b9) ^ fnv1a(name));
  const signs = new Float64Array(CHUNK * m);
  for (let p0 = 0; p0 < width; p0 += CHUNK) {
    const p1 = Math.min(width, p0 + CHUNK);
    for (let p = p0; p < p1; p++) {
      const hp = mix(base ^ p);
      const o = (p - p0) * m;
      for (let w = 0; w < words; w++) {
        const bits = mix(hp ^ w);
        const j1 = Math.min(m, (w + 1) * 32);
        for (let j = w * 32; j < j1; j++) signs[o + j] = (bits >>> (j & 31)) & 1 ? -1 : 1;
      }
    }
    for (let r = 0; r < rows; r++) {
      const ro = r * m, vo = r * width;
      for (let p = p0; p < p1; p++) {
        const v = values[vo + p];
        const o = (p - p0) * m;
        for (let j = 0; j < m; j++) acc[ro + j] += v * signs[o + j];
      }
    }
  }
  const s = 1 / Math.sqrt(m);
  const out = new Float32Array(rows * m);
  for (let i = 0; i < out.length; i++) out[i] = acc[i] * s;
  return out;
}

/** Field metadata marking a column as sketched with `seed` from `sourceDim` parameters. */
export function sketchMetadata(seed: number, sourceDim: number): Record<string, string> {
  return { [SKETCH_SEED_KEY]: String(seed), [SKETCH_SOURCE_DIM_KEY]: String(sourceDim) };
}
