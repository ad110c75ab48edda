import assert from "node:assert/strict";
import {
  block,
  choleskyInPlace,
  choleskySolve,
  gemm,
  gram,
  invertSpd,
  kernels,
  matrix,
  NotPositiveDefiniteError,
  sharedF64,
  transpose,
  wasmSimd,
} from "./mod.ts";
import { threadStats } from "../threads.ts";
import { Rng } from "../../../tests/_util.ts";

/** Runs a test with the WebAssembly SIMD kernels and with the scalar JavaScript kernels. */
function both(name: string, fn: () => void): void {
  for (const useWasm of [true, false]) {
    Deno.test(`${name} (${useWasm ? "wasm simd" : "js"} kernels)`, () => {
      const saved = kernels.useWasm;
      kernels.useWasm = useWasm;
      try {
        fn();
      } finally {
        kernels.useWasm = saved;
      }
    });
  }
}

Deno.test("the WebAssembly SIMD kernels load on this engine", () => assert.equal(wasmSimd, true));

/** A random SPD matrix B B^T / n + d I (lower and upper filled). */
function spd(n: number, rng: Rng, d = 0.5): Float64Array {
  const b = Array.from({ length: n * n }, () => rng.normal());
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < n; t++) s += b[i * n + t] * b[j * n + t];
      a[i * n + j] = s / n + (i === j ? d : 0);
    }
  }
  return a;
}

/** Naive unblocked Cholesky (Cholesky-Banachiewicz), the reference. */
function naiveCholesky(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j];
      for (let t = 0; t < j; t++) s -= l[i * n + t] * l[j * n + t];
      l[i * n + j] = i === j ? Math.sqrt(s) : s / l[j * n + j];
    }
  }
  return l;
}

/** Naive Gauss-Jordan inverse with partial pivoting (independent of Cholesky). */
function gaussJordanInverse(a: Float64Array, n: number): Float64Array {
  const w = 2 * n;
  const m = new Float64Array(n * w);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) m[i * w + j] = a[i * n + j];
    m[i * w + n + i] = 1;
  }
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * w + c]) > Math.abs(m[p * w + c])) p = r;
    for (let j = 0; j < w; j++) [m[c * w + j], m[p * w + j]] = [m[p * w + j], m[c * w + j]];
    const d = m[c * w + c];
    for (let j = 0; j < w; j++) m[c * w + j] /= d;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r * w + c];
      if (f !== 0) { for (let j = 0; j < w; j++) m[r * w + j] -= f * m[c * w + j]; }
    }
  }
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) inv[i * n + j] = m[i * w + n + j];
  return inv;
}

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0, err = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]));
    err = Math.max(err, Math.abs(a[i] - b[i]));
  }
  return err / scale;
}

both("choleskyInPlace equals the naive Cholesky (blocked sizes around the block edge)", () => {
  const rng = new Rng(1);
  for (const n of [1, 3, 5, 63, 64, 65, 130]) {
    const a = spd(n, rng);
    const l = Float64Array.from(a);
    choleskyInPlace(l, n);
    const ref = naiveCholesky(a, n);
    assert.ok(maxRel(l, ref) < 1e-12, `n=${n}: ${maxRel(l, ref)}`);
  }
});

both("invertSpd equals Gauss-Jordan inversion and A A^-1 = I", () => {
  const rng = new Rng(2);
  for (const n of [1, 2, 7, 64, 129]) {
    const a = spd(n, rng);
    const inv = invertSpd(a, n);
    assert.ok(maxRel(inv, gaussJordanInverse(a, n)) < 1e-11, `n=${n}`);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let t = 0; t < n; t++) s += a[i * n + t] * inv[t * n + j];
        assert.ok(Math.abs(s - (i === j ? 1 : 0)) < 1e-11);
      }
    }
  }
});

both("choleskySolve solves A y = b", () => {
  const rng = new Rng(3);
  const n = 70;
  const a = spd(n, rng);
  const b = Array.from({ length: n }, () => rng.normal());
  const l = Float64Array.from(a);
  choleskyInPlace(l, n);
  const y = choleskySolve(l, n, b);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let t = 0; t < n; t++) s += a[i * n + t] * y[t];
    assert.ok(Math.abs(s - b[i]) < 1e-10);
  }
});

both("choleskyInPlace rejects a matrix that is not positive definite", () => {
  const a = new Float64Array([1, 2, 2, 1]);
  assert.throws(() => choleskyInPlace(a, 2), NotPositiveDefiniteError);
  assert.throws(() => choleskyInPlace(new Float64Array([NaN]), 1), /not positive definite at pivot 0/);
});

both("gram equals naive dot products, bit for bit whatever the blocking", () => {
  const rng = new Rng(4);
  const p = 2500; // crosses the inner tile
  const rows = Array.from({ length: 11 }, () => Float32Array.from({ length: p }, () => rng.normal()));
  const n = rows.length;
  const naive = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < p; t++) s += rows[i][t] * rows[j][t];
      naive[i * n + j] = s;
    }
  }
  const full = new Float64Array(n * n);
  gram(matrix(full, n), rows, rows);
  assert.deepEqual(full, naive);
  // lower triangle in pieces: rows 0..4 against themselves, then rows 5..10 against all
  const pieces = new Float64Array(n * n);
  gram(block(matrix(pieces, n), 0, 0, 5, 5), rows.slice(0, 5), rows.slice(0, 5), { lower: 0 });
  gram(block(matrix(pieces, n), 5, 0, n - 5, n), rows.slice(5), rows, { lower: 5 });
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) assert.equal(pieces[i * n + j], j <= i ? naive[i * n + j] : 0);
  }
});

both("gemm with a lower mask and per-block start", () => {
  const rng = new Rng(5);
  const m = 9, k = 13;
  const a = Float64Array.from({ length: m * k }, () => rng.normal());
  const c = new Float64Array(m * m);
  const a2 = block(matrix(a, m, k), 0, 2, m, k - 2); // columns 2.. of A
  gemm(matrix(c, m), a2, transpose(a2), { alpha: -2, lower: 0 });
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let t = 2; t < k; t++) s += a[i * k + t] * a[j * k + t];
      assert.ok(Math.abs(c[i * m + j] - (j <= i ? -2 * s : 0)) < 1e-12);
    }
  }
});

Deno.test("gram: the SIMD kernel gives the same bits as the scalar one, across row and parameter tiles", () => {
  const rng = new Rng(6);
  const p = 1100, n = 150;
  const rows = Array.from({ length: n }, () => Float32Array.from({ length: p }, () => rng.normal()));
  const other = rows.slice(3, 141);
  const run = (useWasm: boolean, lower: boolean) => {
    kernels.useWasm = useWasm;
    const out = new Float64Array((n + 5) * (n + 7));
    const b = lower ? rows : other;
    gram(block(matrix(out, n + 5, n + 7), 2, 5, n, b.length), rows, b, { lower: lower ? 2 - 5 : null });
    kernels.useWasm = wasmSimd;
    return out;
  };
  for (const lower of [false, true]) assert.deepEqual(run(true, lower), run(false, lower));
});

both("gemm across tiles, with offsets, a lower mask and per-block starts that skip exact zeros", () => {
  const rng = new Rng(7);
  const m = 137, n = 133, k = 1100, ld = 1105;
  const a = Float64Array.from({ length: (m + 2) * ld }, () => rng.normal());
  const b = Float64Array.from({ length: (n + 1) * ld }, () => rng.normal());
  // row i of A is zero before 3 + (first row of its 4-row block), as in a triangular factor: upperA 3
  for (let i = 0; i < m; i++) for (let t = 0; t < 3 + i - (i % 4); t++) a[(i + 2) * ld + t] = 0;
  const c = new Float64Array((m + 1) * (n + 2));
  const A = block(matrix(a, m + 2, ld), 2, 0, m, k), B = block(matrix(b, n + 1, ld), 1, 0, n, k);
  gemm(block(matrix(c, m + 1, n + 2), 1, 2, m, n), A, transpose(B), { alpha: 0.5, lower: -3, upperA: 3 });
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 3; t < k; t++) s += a[(i + 2) * ld + t] * b[(j + 1) * ld + t];
      const got = c[(i + 1) * (n + 2) + j + 2];
      if (j <= i - 3) assert.ok(Math.abs(got - 0.5 * s) < 1e-9, `${i},${j}: ${got} vs ${0.5 * s}`);
      else assert.equal(got, 0);
    }
  }
});

Deno.test("worker threads: shared-memory Gram, Cholesky and inverse give the same bits with 1 and 2 threads", async () => {
  const rng = new Rng(11);
  const m = 262, p = 2000; // 1.4e8 multiply-adds (workers help from 2e7); not a multiple of any tile
  const buf = new SharedArrayBuffer(m * p * 4);
  const rows = Array.from({ length: m }, (_, i) => {
    const r = new Float32Array(buf, i * p * 4, p);
    for (let t = 0; t < p; t++) r[t] = rng.normal();
    return r;
  });
  const run = (threads: number) => {
    const g = sharedF64(m * m);
    gram(block(matrix(g, m), 0, 0, 100, m), rows.slice(0, 100), rows, { lower: 0, threads });
    gram(block(matrix(g, m), 100, 0, m - 100, m), rows.slice(100), rows, { lower: 100, threads });
    const full = sharedF64(m * 300);
    gram(block(matrix(full, m, 300), 0, 0, m, m), rows, rows, { threads }); // columns 0..m-1 of a 300-wide array
    const a = sharedF64(m * m);
    for (let i = 0; i < m; i++) for (let j = 0; j <= i; j++) a[i * m + j] = g[i * m + j] + (i === j ? 1 : 0);
    const inv = invertSpd(a, m, { threads });
    choleskyInPlace(a, m, { threads });
    return { g, full, a, inv };
  };
  const one = run(1);
  // a worker starts in tens of milliseconds (and, when type-checked, needs this thread's event loop): repeat, with
  // pauses, until one has taken chunks (else this test would prove nothing)
  let two = run(2);
  for (let tries = 0; threadStats.workerChunks === 0 && tries < 100; tries++) {
    await new Promise((r) => setTimeout(r, 50));
    two = run(2);
  }
  assert.ok(threadStats.workerChunks > 0, "no worker thread took part");
  for (const key of ["g", "full", "a", "inv"] as const) {
    assert.deepEqual(two[key], one[key], key);
  }
  // and the Gram is the naive float64 sum
  for (const [i, j] of [[0, 0], [261, 17], [150, 149], [99, 0]]) {
    let s = 0;
    for (let t = 0; t < p; t++) s += rows[i][t] * rows[j][t];
    assert.equal(one.g[i * m + j], s);
    assert.equal(one.full[i * 300 + j], s);
  }
  // inverse check: A A^-1 = I on a few entries
  const a0 = run(1).g;
  for (const [i, j] of [[0, 0], [5, 200], [261, 261]]) {
    let s = 0;
    for (let t = 0; t < m; t++) {
      const x = t <= i ? a0[i * m + t] : a0[t * m + i];
      s += (x + (t === i ? 1 : 0)) * one.inv[t * m + j];
    }
    assert.ok(Math.abs(s - (i === j ? 1 : 0)) < 1e-9, `${i},${j}: ${s}`);
  }
});
