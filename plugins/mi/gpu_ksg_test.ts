/**
 * The WebGPU KSG kernel against an independent brute-force O(n^2) KSG written here (docs/science.md
 * section 1: k-th Chebyshev neighbour radius among other samples, marginal counts strictly inside it, exact
 * ties when it is 0; differences in float64 as the CPU kernel computes them) and against the CPU kernels. The
 * GPU's per-pair fixed-point sums must equal the brute force's sums of the same table entries exactly (so every
 * `n_x`, `n_y` is equal), and the estimates must be the CPU's bit for bit (JavaScript and WebAssembly kernels,
 * `ksgPairs` on one and two threads): the path is declared "exact".
 */
import assert from "node:assert/strict";
import { gpuContext, probeAdapter, releaseGpu } from "../kernels/gpu/context.ts";
import { allPairs, Rng } from "../../tests/_util.ts";
import { fixedPsi, ksgPair, KsgScratch, prepNeuron } from "./ksg.ts";
import { ksgPairs } from "./ksg_pairs.ts";
import { ksgKernels } from "./ksg_wasm.ts";
import { gpuKsgPairs } from "./gpu_ksg.ts";

const adapter = await probeAdapter();
if (!adapter) console.warn("ksg_test: SKIPPED, no WebGPU adapter at all on this machine");
const ignore = adapter === null;

/** Per sample (n_x, n_y) by brute force; `round` maps each difference (float64, or Math.fround for float32). */
function bruteCounts(x: Float32Array, y: Float32Array, k: number, round = (d: number) => d): Int32Array {
  const n = x.length, out = new Int32Array(2 * n), d = new Float64Array(n - 1);
  for (let i = 0; i < n; i++) {
    let m = 0;
    for (let j = 0; j < n; j++) {
      if (j !== i) d[m++] = Math.max(Math.abs(round(x[i] - x[j])), Math.abs(round(y[i] - y[j])));
    }
    const r = d.sort()[k - 1];
    let nx = 0, ny = 0;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const dx = Math.abs(round(x[i] - x[j])), dy = Math.abs(round(y[i] - y[j]));
      nx += +(r > 0 ? dx < r : dx === 0);
      ny += +(r > 0 ? dy < r : dy === 0);
    }
    out[2 * i] = nx;
    out[2 * i + 1] = ny;
  }
  return out;
}

function fixedSum(counts: Int32Array, table: BigInt64Array): bigint {
  let s = 0n;
  for (const c of counts) s += table[c + 1];
  return s;
}

/** Neuron-major columns: continuous, ReLU (half zeros), rounded (ties), negative with a dead zone, duplicates, constant. */
function mixed(N: number, n: number, seed: number): Float32Array {
  const rng = new Rng(seed), cols = new Float32Array(N * n);
  const z = Array.from({ length: n }, () => rng.normal());
  for (let a = 0; a < N; a++) {
    for (let r = 0; r < n; r++) {
      const v = 0.7 * z[r] + rng.normal() * (1 + a / 4);
      const kind = a % 6;
      cols[a * n + r] = kind === 0
        ? v
        : kind === 1
        ? Math.max(0, v)
        : kind === 2
        ? Math.round(v * 2) / 2
        : kind === 3
        ? (Math.abs(v) < 0.6 ? 0 : v) - 3 // negative, a tie group in the middle (dead zone)
        : kind === 4
        ? (r % 7 === 0 ? 0.5 : Math.max(0, v - 0.5)) // a duplicated value and ReLU zeros
        : (a === 5 ? 1.25 : Math.min(1, Math.max(-1, v))); // a constant neuron, then clipped (two tie groups)
    }
  }
  return cols;
}

/** Every value bit-equal (`Object.is`: NaN equals NaN, -0 differs from 0). */
function assertBits(got: Float64Array, want: Float64Array, label: string) {
  assert.equal(got.length, want.length);
  for (let p = 0; p < got.length; p++) {
    assert.ok(Object.is(got[p], want[p]), `${label} [${p}]: ${got[p]} vs ${want[p]}`);
  }
}

/** The JavaScript kernel (WebAssembly off) on each pair, all rows finite. */
function jsKernel(cols: Float32Array, n: number, pairs: Int32Array, k: number): Float64Array {
  const out = new Float64Array(pairs.length / 2), s = new KsgScratch(n);
  const prep = (a: number) => prepNeuron(cols.subarray(a * n, a * n + n));
  ksgKernels.useWasm = false;
  try {
    for (let p = 0; p < out.length; p++) out[p] = ksgPair(prep(pairs[2 * p]), prep(pairs[2 * p + 1]), k, s);
  } finally {
    ksgKernels.useWasm = true;
  }
  return out;
}

/** GPU sums against brute force; GPU estimates bit-equal to the CPU's (`threads` 1, and 2 when `threaded`). */
async function check(
  cols: Float32Array,
  n: number,
  pairs: Int32Array,
  k: number,
  tilePairs?: number,
  threaded = false,
) {
  const gpu = await gpuKsgPairs(await gpuContext(), cols, n, pairs, k, { tilePairs });
  const cpu = ksgPairs(cols, n, pairs, k, 1);
  const table = fixedPsi(n).values;
  assert.equal(gpu.timing.cpu, 0, "every pair ran on the GPU");
  for (let p = 0; p < pairs.length / 2; p++) {
    const a = pairs[2 * p], b = pairs[2 * p + 1];
    const x = cols.subarray(a * n, a * n + n), y = cols.subarray(b * n, b * n + n);
    const want = fixedSum(bruteCounts(x, y, k), table);
    assert.equal(gpu.sums[p], want, `k=${k} pair (${a}, ${b}): fixed-point sum of psi(n_x+1)+psi(n_y+1)`);
  }
  assert.deepEqual(gpu.samples, cpu.samples);
  assertBits(gpu.mi, cpu.mi, `k=${k} GPU vs ksgPairs (1 thread)`);
  assertBits(gpu.mi, jsKernel(cols, n, pairs, k), `k=${k} GPU vs the JavaScript kernel`);
  if (threaded) assertBits(gpu.mi, ksgPairs(cols, n, pairs, k, 2).mi, `k=${k} GPU vs ksgPairs (2 threads)`);
  return gpu;
}

Deno.test({
  name:
    "GPU KSG: every n_x, n_y equals brute force (ties, ReLU zeros, radius 0, negatives), k = 1..5, MI bit-equal to the CPU's",
  ignore,
  async fn() {
    const N = 12, n = 240;
    const cols = mixed(N, n, 5);
    // duplicated samples in every pair: rows copied once (pairs of equal points), and 7 equal rows (a point
    // shared by more than k samples: radius 0, stored once with its multiplicity by the CPU kernels)
    for (let a = 0; a < N; a++) {
      for (let r = 4; r < n; r += 9) cols[a * n + r] = cols[a * n + r - 1];
      for (let r = 101; r < 107; r++) cols[a * n + r] = cols[a * n + 100];
    }
    const pairs = allPairs(N);
    // k = 3: several tiles, and ksgPairs on two threads too
    for (let k = 1; k <= 5; k++) await check(cols, n, pairs, k, k === 3 ? 7 : undefined, k === 3);
  },
});

Deno.test({
  name: "GPU KSG: exact differences where float32 rounding would change the counts (near-tie distances)",
  ignore,
  async fn() {
    // Values of magnitude 2^-27 and multiples of 1/16 up to 1.5: their differences need up to 51 bits (exact in
    // float64, as the CPU computes them), and float32 rounds many of them onto the 1/16 grid (false ties).
    const rng = new Rng(8), N = 4, n = 300;
    const cols = new Float32Array(N * n);
    for (let i = 0; i < cols.length; i++) {
      cols[i] = rng.next() < 0.4 ? 2 ** -27 * (1 + rng.next()) : (1 + rng.int(24)) / 16;
    }
    const pairs = allPairs(N);
    let differ = 0;
    for (let p = 0; p < pairs.length / 2; p++) {
      const x = cols.subarray(pairs[2 * p] * n, pairs[2 * p] * n + n);
      const y = cols.subarray(pairs[2 * p + 1] * n, pairs[2 * p + 1] * n + n);
      const exact = bruteCounts(x, y, 3), rounded = bruteCounts(x, y, 3, Math.fround);
      for (let i = 0; i < exact.length; i++) differ += +(exact[i] !== rounded[i]);
    }
    assert.ok(differ > 0, "float32 differences would give other counts on this data (the test has power)");
    await check(cols, n, pairs, 3);
    await check(cols, n, pairs, 1);
  },
});

Deno.test({
  name:
    "GPU KSG: NaN/Inf, subnormal-range and widely spread neurons, k > 8 and arrays over the binding size go to the CPU kernel",
  ignore,
  async fn() {
    const N = 6, n = 120;
    const cols = mixed(N, n, 9);
    cols[1 * n + 3] = NaN;
    cols[2 * n + 7] = Infinity;
    cols[3 * n + 5] = 1e-35;
    cols[5 * n + 2] = 1.25 * 2 ** -30; // non-zero exponents 30 apart: float64 differences of float32 may round
    const pairs = allPairs(N);
    const gpu = await gpuKsgPairs(await gpuContext(), cols, n, pairs, 3);
    const cpu = ksgPairs(cols, n, pairs, 3, 1);
    assert.equal(gpu.timing.cpu, 14, "pairs with neuron 1, 2, 3 or 5 ran on the CPU");
    assert.equal(gpu.timing.gpuPairs, 1);
    assert.deepEqual(gpu.samples, cpu.samples);
    assertBits(gpu.mi, cpu.mi, "GPU (one pair) and CPU pairs vs ksgPairs");
    const small = await gpuKsgPairs(await gpuContext(), cols, n, pairs, 3, { maxBinding: 1024 }); // arrays over the binding size
    assert.equal(small.timing.gpuPairs, 0);
    assertBits(small.mi, cpu.mi, "all pairs on the CPU");
    const big = await gpuKsgPairs(await gpuContext(), cols, n, pairs, 9);
    assert.deepEqual(big.mi, ksgPairs(cols, n, pairs, 9, 1).mi);
    assert.equal(big.timing.gpuPairs, 0);
    const tiny = await gpuKsgPairs(await gpuContext(), cols.subarray(0, 2 * 3), 3, new Int32Array([0, 1]), 3);
    assert.ok(Number.isNaN(tiny.mi[0]), "n <= k gives NaN");
  },
});

// Last in this module: free the GPU device, so that no device is left for process teardown.
Deno.test("release the WebGPU device", async () => {
  await releaseGpu();
});
