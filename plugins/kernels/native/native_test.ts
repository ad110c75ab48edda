/**
 * The native kernels against the WebAssembly and JavaScript paths: binned-MI joint counts (bins 1..64, rows across
 * the 64- and 512-row word edges, padded strides, non-finite codes, counts from a pair on, codes loaded once for
 * several calls, several threads) and the MI of many tables (same bits, tables of 2^16 rows or more handed back). Where the library
 * is not built (no C compiler) or the CPU lacks AVX-512 VPOPCNTDQ, only the fallback is checked; in CI (`CI` set) on a
 * machine with a C compiler a missing library fails the test, as `npm install` builds it there.
 */
import assert from "node:assert/strict";
import { NATIVE_PATH, nativeKernels, nativeSwitch } from "./native.ts";
import { addPairCounts, mutualInformation, mutualInformationMany, NONFINITE } from "../../_shared/pair_counts.ts";
import { allPairs, hasCompiler, Rng } from "../../../tests/_util.ts";

const built = (() => {
  try {
    Deno.statSync(NATIVE_PATH);
    return true;
  } catch {
    return false;
  }
})();

Deno.test("native kernels: built by npm install, loaded where the CPU has AVX-512 VPOPCNTDQ", () => {
  if (Deno.env.get("CI") && hasCompiler()) {
    assert.ok(built, `native library missing: ${NATIVE_PATH} (npm install builds it with the machine's C compiler)`);
  }
  if (!built) assert.equal(nativeKernels, null);
  if (nativeKernels) assert.equal(nativeKernels.avx512, nativeKernels.symbols.itn_supported() === 1);
  if (nativeKernels) {
    assert.equal(nativeKernels.ksgKernel === 2, nativeKernels.symbols.itn_ksg_supported() === 1);
    // the binned counts' CPU has what the AVX-512 KSG kernel needs too
    if (nativeKernels.avx512) assert.equal(nativeKernels.ksgKernel, 2);
  }
});

/** Joint counts of pairs by a plain loop over the rows (non-finite rows left out of their pairs). */
function plainCounts(codes: Uint8Array, rows: number, stride: number, pairs: Int32Array, bins: number): Uint32Array {
  const P = pairs.length / 2, B2 = bins * bins, out = new Uint32Array(P * B2);
  for (let p = 0; p < P; p++) {
    for (let r = 0; r < rows; r++) {
      const x = codes[pairs[2 * p] * stride + r], y = codes[pairs[2 * p + 1] * stride + r];
      if (x !== NONFINITE && y !== NONFINITE) out[p * B2 + x * bins + y]++;
    }
  }
  return out;
}

Deno.test({
  name: "native binned-MI counts equal a plain count and the WebAssembly kernel's (bins, row edges, strides, NaN)",
  ignore: !nativeKernels?.avx512,
  fn() {
    const rng = new Rng(7);
    try {
      for (const bins of [1, 2, 3, 5, 16, 17, 20, 64]) {
        for (const rows of [1, 63, 64, 65, 511, 512, 513, 1000]) {
          const stride = rows + (rows % 3), N = 7;
          const codes = new Uint8Array(N * stride);
          for (let i = 0; i < codes.length; i++) codes[i] = rng.int(bins);
          // skewed neuron (most rows in one bin) and a neuron with non-finite rows
          for (let r = 0; r < rows; r++) if (rng.next() < 0.8) codes[1 * stride + r] = bins - 1;
          const dirty = new Uint8Array(N);
          if (rows > 2) (codes[4 * stride + 1] = NONFINITE, codes[4 * stride + rows - 1] = NONFINITE, dirty[4] = 1);
          const pairs = new Int32Array([0, 1, 1, 2, 0, 4, 4, 3, 3, 6, 6, 5, 2, 2, 5, 0]);
          const P = pairs.length / 2, B2 = bins * bins;
          const want = plainCounts(codes, rows, stride, pairs, bins);
          for (const native of [true, false]) {
            nativeSwitch.use = native;
            const got = new Uint32Array(P * B2);
            addPairCounts(codes, rows, pairs, 0, 3, bins, dirty, got, stride);
            addPairCounts(codes, rows, pairs, 3, P, bins, dirty, got, stride);
            assert.deepEqual(got, want, `bins ${bins} rows ${rows} ${native ? "native" : "wasm"}`);
            // counts from pair 3 on, added to what is there, codes already loaded
            const tail = new Uint32Array((P - 3) * B2).fill(5);
            addPairCounts(codes, rows, pairs, 3, P, bins, dirty, tail, stride, 3, true);
            for (let i = 0; i < tail.length; i++) assert.equal(tail[i], want[3 * B2 + i] + 5);
          }
        }
      }
    } finally {
      nativeSwitch.use = nativeKernels !== null;
    }
  },
});

Deno.test({
  name: "native binned-MI counts on several threads equal one thread's (shares of the pairs, disjoint counts)",
  ignore: !nativeKernels?.avx512,
  fn() {
    const rng = new Rng(9);
    const N = 40, rows = 700, bins = 16, B2 = bins * bins;
    const codes = new Uint8Array(N * rows);
    for (let i = 0; i < codes.length; i++) codes[i] = rng.next() < 0.01 ? NONFINITE : rng.int(bins);
    const pairs = allPairs(N), P = pairs.length / 2;
    const want = plainCounts(codes, rows, rows, pairs, bins);
    for (const threads of [1, 2, 3, 7]) {
      const got = new Uint32Array(P * B2);
      addPairCounts(codes, rows, pairs, 0, P, bins, new Uint8Array(N).fill(1), got, rows, 0, false, threads);
      assert.deepEqual(got, want, `threads ${threads}`);
    }
  },
});

Deno.test({
  name: "addPairCounts: codes said loaded are recopied by a kernel that did not load them (switching mid-run)",
  ignore: !nativeKernels?.avx512,
  fn() {
    const rng = new Rng(13);
    const N = 6, rows = 300, bins = 16, B2 = bins * bins;
    const pairs = allPairs(N), P = pairs.length / 2, dirty = new Uint8Array(N);
    try {
      for (const first of [false, true]) {
        // stale codes in both kernels first, then a run of calls that switches kernel at every call
        const stale = new Uint8Array(N * rows).fill(3);
        for (const use of [true, false]) {
          nativeSwitch.use = use;
          addPairCounts(stale, rows, pairs, 0, P, bins, dirty, new Uint32Array(P * B2), rows);
        }
        const codes = Uint8Array.from({ length: N * rows }, () => rng.int(bins));
        const want = plainCounts(codes, rows, rows, pairs, bins), got = new Uint32Array(P * B2);
        for (let p = 0; p < P; p++) {
          nativeSwitch.use = (p % 2 === 0) === first;
          addPairCounts(codes, rows, pairs, p, p + 1, bins, dirty, got, rows, 0, p > 0);
        }
        assert.deepEqual(got, want, `native first: ${first}`);
      }
    } finally {
      nativeSwitch.use = nativeKernels !== null;
    }
  },
});

Deno.test("mutualInformationMany: native and JavaScript give the bits of mutualInformation (empty, sparse, 2^16 rows)", () => {
  const rng = new Rng(11);
  const B = 16, B2 = B * B, T = 40;
  const counts = new Uint32Array(T * B2);
  for (let t = 0; t < T; t++) {
    const kind = t % 5;
    for (let i = 0; i < B2; i++) {
      if (kind === 0) counts[t * B2 + i] = 0; // empty: NaN, 0 rows
      else if (kind === 1) counts[t * B2 + i] = rng.next() < 0.1 ? rng.int(50) : 0; // sparse
      else if (kind === 2) counts[t * B2 + i] = rng.int(300) + 200; // 2^16 rows or more: handed back
      else counts[t * B2 + i] = rng.int(200);
    }
  }
  const want = new Float64Array(T), wantN = new Float64Array(T);
  const rs = new Float64Array(B), cs = new Float64Array(B);
  for (let t = 0; t < T; t++) {
    want[t] = mutualInformation(counts, t * B2, B, B, rs, cs);
    wantN[t] = rs.reduce((a, b) => a + b, 0);
  }
  assert.ok(wantN.some((n) => n >= 65536) && wantN.some((n) => n === 0));
  try {
    for (const native of nativeKernels ? [true, false] : [false]) {
      nativeSwitch.use = native;
      const mi = new Float64Array(T + 2).fill(-1), n = new Float64Array(T + 2).fill(-1);
      mutualInformationMany(counts, B2, T - 1, B, B, mi, n, 2); // tables 1.. into entries 2..
      assert.equal(mi[0], -1);
      assert.equal(mi[1], -1);
      for (let t = 1; t < T; t++) {
        assert.ok(Object.is(mi[t + 1], want[t]), `table ${t} ${native ? "native" : "js"}: ${mi[t + 1]} vs ${want[t]}`);
        assert.equal(n[t + 1], wantN[t]);
      }
    }
  } finally {
    nativeSwitch.use = nativeKernels !== null;
  }
});
