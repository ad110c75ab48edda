import assert from "node:assert/strict";
import { binKernels, binRows, type LayerRange } from "./binning.ts";
import { binRowsWasm, binWasmAvailable } from "./binning_wasm.ts";
import { fromKey, keyOf, NEVER, thresholds } from "./gpu_thresholds.ts";
import { Rng } from "../../tests/_util.ts";

/** binRows's JavaScript loop (the reference) and the WebAssembly kernel on the same input, starting from the same
 * non-zero totals; asserts bit-identical counts, non-finite and clipped totals. */
function compare(values: Float32Array, width: number, r0: number, r1: number, range: LayerRange, bins: number) {
  const start = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (i * seed) % 5);
  const run = (wasm: boolean) => {
    const counts = Uint32Array.from(start(width * bins, 7));
    const nonfinite = Float64Array.from(start(width, 3)), clipped = Float64Array.from(start(width, 2));
    if (wasm) binRowsWasm(values, width, r0, r1, range.lo, range.hi, bins, counts, nonfinite, clipped);
    else {
      binKernels.useWasm = false;
      try {
        binRows(values, width, r0, r1, range, bins, counts, nonfinite, clipped);
      } finally {
        binKernels.useWasm = binWasmAvailable;
      }
    }
    return { counts, nonfinite, clipped };
  };
  const want = run(false), got = run(true);
  assert.deepEqual(got.counts, want.counts, `counts, bins ${bins}, width ${width}`);
  assert.deepEqual(got.nonfinite, want.nonfinite, `nonfinite, bins ${bins}, width ${width}`);
  assert.deepEqual(got.clipped, want.clipped, `clipped, bins ${bins}, width ${width}`);
  // the test must be able to fail: the reference saw values in several bins
  assert.ok(want.counts.some((c, i) => c !== start(width * bins, 7)[i]));
}

/** Values that sit on and next to every exact float32 bin edge of [lo, hi], plus specials and out-of-range. */
function adversarial(lo: number, hi: number, bins: number): number[] {
  const out = [NaN, Infinity, -Infinity, 0, -0, lo, hi, Math.fround(lo), Math.fround(hi), lo - 1, hi + 1, -1e30, 1e30];
  const th = thresholds(lo, hi, bins);
  for (const e of th) {
    if (e === NEVER) continue;
    for (const d of [-100, -20, -5, -2, -1, 0, 1, 2, 5, 20, 100]) {
      if (e + d >= 0 && e + d <= 0xffffffff) out.push(fromKey(e + d));
    }
  }
  for (const x of [lo, hi]) {
    const k = keyOf(x);
    for (const d of [-2, -1, 1, 2]) out.push(fromKey(k + d));
  }
  return out;
}

Deno.test({
  name: "WebAssembly binning kernel equals binRows's JavaScript loop bit for bit (edges, clipping, NaN/Inf, -0)",
  ignore: !binWasmAvailable,
  fn() {
    for (const bins of [1, 2, 16, 100, 254]) {
      // per-neuron ranges: ordinary, tiny, huge, negative, a constant neuron, an all-zero neuron, a user range
      // (the first four share the kernel's four-lane steps, the rest its one-at-a-time tail)
      const ranges: [number, number][] = [
        [0.25, 0.25],
        [-1.5, 1.7],
        [0, 0],
        [0.1, 0.1000001],
        [-3e5, 7e6],
        [-9, -2],
        [-3, 4],
        [5, 5],
        [-1e30, 1e30],
      ];
      const cols = ranges.map(([lo, hi]) => adversarial(lo, hi, bins));
      const rows = Math.max(...cols.map((c) => c.length));
      const width = ranges.length;
      const values = new Float32Array(rows * width);
      for (let j = 0; j < width; j++) {
        for (let r = 0; r < rows; r++) values[r * width + j] = cols[j][r % cols[j].length];
      }
      const range = { lo: Float64Array.from(ranges, (r) => r[0]), hi: Float64Array.from(ranges, (r) => r[1]) };
      compare(values, width, 0, rows, range, bins);
      compare(values, width, 3, rows - 2, range, bins);
      // each neuron's adversarial values under one global range (the uniform path of binRows)
      for (const [lo, hi] of ranges.filter(([lo, hi]) => hi > lo)) {
        const g = { lo: new Float64Array(width).fill(lo), hi: new Float64Array(width).fill(hi) };
        const col = adversarial(lo, hi, bins);
        const v = new Float32Array(col.length * width);
        for (let i = 0; i < v.length; i++) v[i] = col[(i * 5 + (i % width)) % col.length];
        compare(v, width, 0, col.length, g, bins);
      }
    }
  },
});

Deno.test({
  name: "WebAssembly binning kernel equals binRows on random data for several widths and bins, and binRows uses it",
  ignore: !binWasmAvailable,
  fn() {
    const rng = new Rng(5);
    for (const bins of [1, 2, 16, 100, 254]) {
      for (const width of [1, 3, 64, 257]) {
        const rows = 40 + rng.int(300);
        const values = Float32Array.from({ length: rows * width }, () => rng.normal() * 2);
        for (let i = 0; i < 20; i++) values[rng.int(values.length)] = [NaN, Infinity, -Infinity, -0][i % 4];
        const neuron = {
          lo: Float64Array.from({ length: width }, (_, j) => (j % 5 === 0 ? 0.5 : -2 - rng.next())),
          hi: Float64Array.from({ length: width }, (_, j) => (j % 5 === 0 ? 0.5 : 2 + rng.next())),
        };
        const global = { lo: new Float64Array(width).fill(-1), hi: new Float64Array(width).fill(1.25) };
        compare(values, width, 0, rows, neuron, bins);
        compare(values, width, 7, rows, global, bins);
      }
    }
    // binRows itself takes the WebAssembly kernel on a large call and still gives the reference counts
    const width = 64, rows = 512, bins = 100;
    const values = Float32Array.from({ length: rows * width }, () => rng.normal());
    const range = { lo: new Float64Array(width).fill(-1), hi: new Float64Array(width).fill(1) };
    const a = new Uint32Array(width * bins), b = new Uint32Array(width * bins);
    const z = () => new Float64Array(width);
    binRows(values, width, 0, rows, range, bins, a, z(), z());
    binKernels.useWasm = false;
    try {
      binRows(values, width, 0, rows, range, bins, b, z(), z());
    } finally {
      binKernels.useWasm = binWasmAvailable;
    }
    assert.deepEqual(a, b);
  },
});
