/**
 * Symmetric eigendecomposition `A = V diag(values) V^T` in float64 (LAPACK's `dsyevd` route, docs/unique_info.md):
 * 1. blocked Householder tridiagonalisation `A = Q T Q^T` (`dsytrd`/`dlatrd`: per column one pass over the
 *    lower triangle, the rank-2b update of each block of 32 columns as two {@linkcode gemm} products);
 * 2. Cuppen's divide and conquer on `T` (`dstedc`): tear at the middle, solve both halves, merge by the rank-one
 *    update's secular equation (`secular.ts`: roots relative to the nearer pole, Löwner's weights for orthogonal
 *    eigenvectors), with `dlaed2`'s deflation of tiny weights and close poles; leaves of <= 32 by Jacobi;
 * 3. the back-transformation `V = Q V_T` by blocks of 32 reflectors in compact WY form (two products each).
 * All O(n^3) work is in the SIMD, multi-threaded products of `gemm.ts`; n = 2,000 takes a few seconds.
 *
 * Why not a library: ml-matrix's `EigenvalueDecomposition` (JAMA's `tred2` + `tql2`, scalar JavaScript) took
 * 23 s at n = 1,000 here (about 180 s at n = 2,000, which the leave-one-out at finite time needs in seconds);
 * `@stdlib/lapack` has no symmetric eigensolver; tfjs has none.
 *
 * Accuracy (tested): `||A V - V diag(values)|| <= ~1e-13 ||A||` and `||V^T V - I|| <= ~1e-13`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { eigh } from "./eigh.ts";
 * const { values, vectors } = eigh(new Float64Array([2, 1, 1, 2]), 2);
 * assert.ok(Math.abs(values[0] - 1) < 1e-15 && Math.abs(values[1] - 3) < 1e-15);
 * assert.ok(Math.abs(Math.abs(vectors[0]) - Math.SQRT1_2) < 1e-15); // column 0 = (1, -1) / sqrt 2, up to sign
 * ```
 *
 * @module
 */
import { block, matrix, sharedF64, transpose } from "./matrix.ts";
import { gemm } from "./gemm.ts";
import { lownerWeights, secularRoot, type SecularRoots } from "./secular.ts";
import { symEig } from "./symeig.ts";

const EPS = 2 ** -53;
/** Columns per block of the tridiagonalisation and the back-transformation. */
const NB = 32;
/** Largest divide-and-conquer leaf (solved by Jacobi). */
const LEAF = 32;

/** Eigenvalues (ascending) and eigenvectors (column `j` of the row-major `n x n` `vectors` pairs `values[j]`). */
export interface Eigh {
  values: Float64Array;
  vectors: Float64Array;
}

/**
 * Eigendecomposition of the symmetric row-major `n x n` matrix `a` (lower triangle read; `a` is not changed).
 * `vectors` is in shared memory.
 */
export function eigh(a: Float64Array, n: number): Eigh {
  if (n === 0) return { values: new Float64Array(0), vectors: sharedF64(0) };
  const w = sharedF64(n * n);
  for (let i = 0; i < n; i++) w.set(a.subarray(i * n, i * n + i + 1), i * n);
  const { d, e, tau } = tridiagonalize(w, n);
  const q = tridiagonalEigh(d, e, n); // columns = eigenvectors of T
  // back-transformation on rows = eigenvectors: Zt = Q_T^T, then Zt <- Zt Q^T
  const zt = sharedF64(n * n);
  transposeInto(q, zt, n);
  backTransform(w, tau, zt, n);
  const v = q;
  transposeInto(zt, v, n);
  return { values: d, vectors: v };
}

/** `out = in^T` for `n x n` row-major arrays (blocked). */
function transposeInto(src: Float64Array, dst: Float64Array, n: number): void {
  const B = 32;
  for (let i0 = 0; i0 < n; i0 += B) {
    for (let j0 = 0; j0 < n; j0 += B) {
      const i1 = Math.min(n, i0 + B), j1 = Math.min(n, j0 + B);
      for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) dst[j * n + i] = src[i * n + j];
    }
  }
}

/**
 * Householder reduction `A = Q T Q^T` (lower triangle of `a`, in place): `d` diagonal, `e` sub-diagonal, and the
 * reflectors `H_j = I - tau_j v v^T` (`v_{j+1} = 1`, `v_i = a[i][j]` for `i > j + 1`), `Q = H_0 ... H_{n-2}`.
 */
export function tridiagonalize(a: Float64Array, n: number): { d: Float64Array; e: Float64Array; tau: Float64Array } {
  const d = new Float64Array(n), e = new Float64Array(Math.max(0, n - 1)), tau = new Float64Array(Math.max(0, n - 1));
  const p = new Float64Array(n), v = new Float64Array(n), y1 = new Float64Array(NB), y2 = new Float64Array(NB);
  for (let j0 = 0; j0 < n - 1; j0 += NB) {
    const jb = Math.min(NB, n - 1 - j0), m = n - j0;
    // V and W of the block: (m x jb) row-major, row i - j0
    const V = sharedF64(m * jb), W = sharedF64(m * jb);
    for (let c = 0; c < jb; c++) {
      const j = j0 + c;
      // bring column j (rows j..n-1) up to date with the block's earlier reflectors
      if (c > 0) {
        const vj = (j - j0) * jb, wj = vj;
        for (let i = j; i < n; i++) {
          const vi = (i - j0) * jb;
          let s = 0;
          for (let t = 0; t < c; t++) s += V[vi + t] * W[wj + t] + W[vi + t] * V[vj + t];
          a[i * n + j] -= s;
        }
      }
      d[j] = a[j * n + j];
      // reflector for x = a[j+1..n-1][j]
      const alpha = a[(j + 1) * n + j];
      let xnorm = 0;
      {
        let scale = 0;
        for (let i = j + 2; i < n; i++) scale = Math.max(scale, Math.abs(a[i * n + j]));
        if (scale > 0) {
          let ss = 0;
          for (let i = j + 2; i < n; i++) ss += (a[i * n + j] / scale) ** 2;
          xnorm = scale * Math.sqrt(ss);
        }
      }
      let t_ = 0, beta = alpha;
      if (xnorm > 0) {
        beta = -(alpha >= 0 ? 1 : -1) * Math.hypot(alpha, xnorm);
        t_ = (beta - alpha) / beta;
        const sc = 1 / (alpha - beta);
        for (let i = j + 2; i < n; i++) a[i * n + j] *= sc;
      }
      tau[j] = t_;
      e[j] = beta;
      a[(j + 1) * n + j] = 1; // v, temporarily
      for (let i = j + 1; i < n; i++) V[(i - j0) * jb + c] = v[i] = a[i * n + j];
      if (t_ !== 0) {
        // p = A22 v over rows/cols j+1..n-1 (lower triangle, stale within the block)
        p.fill(0, j + 1, n);
        let i = j + 1;
        for (; i + 1 < n; i += 2) {
          // two rows at once: each p[t] is loaded and stored once for both
          const r0 = i * n, r1 = r0 + n, v0 = v[i], v1 = v[i + 1];
          let s0 = 0, s1 = 0;
          for (let t = j + 1; t < i; t++) {
            const x0 = a[r0 + t], x1 = a[r1 + t], vt = v[t];
            s0 += x0 * vt;
            s1 += x1 * vt;
            p[t] += x0 * v0 + x1 * v1;
          }
          const x10 = a[r1 + i];
          p[i] += s0 + a[r0 + i] * v0 + x10 * v1;
          p[i + 1] += s1 + x10 * v0 + a[r1 + i + 1] * v1;
        }
        for (; i < n; i++) {
          const row = i * n, vi = v[i];
          let s = 0;
          for (let t = j + 1; t < i; t++) {
            const x = a[row + t];
            s += x * v[t];
            p[t] += x * vi;
          }
          p[i] += s + a[row + i] * vi;
        }
        // minus V (W^T v) + W (V^T v) of the block's earlier columns
        if (c > 0) {
          y1.fill(0), y2.fill(0);
          for (let i = j + 1; i < n; i++) {
            const vi = v[i], r = (i - j0) * jb;
            for (let t = 0; t < c; t++) y1[t] += W[r + t] * vi, y2[t] += V[r + t] * vi;
          }
          for (let i = j + 1; i < n; i++) {
            const r = (i - j0) * jb;
            let s = 0;
            for (let t = 0; t < c; t++) s += V[r + t] * y1[t] + W[r + t] * y2[t];
            p[i] -= s;
          }
        }
        // w = tau p - (tau^2 / 2) (p . v) v
        let pv = 0;
        for (let i = j + 1; i < n; i++) pv += p[i] * v[i];
        const al = -0.5 * t_ * t_ * pv;
        for (let i = j + 1; i < n; i++) W[(i - j0) * jb + c] = t_ * p[i] + al * v[i];
      }
    }
    // trailing block: A22 -= V W^T + W V^T (lower triangle)
    const r0 = j0 + jb, mm = n - r0;
    if (mm > 0) {
      const c = block(matrix(a, n), r0, r0, mm, mm);
      const v = block(matrix(V, m, jb), r0 - j0, 0, mm, jb), w = block(matrix(W, m, jb), r0 - j0, 0, mm, jb);
      gemm(c, v, transpose(w), { alpha: -1, lower: 0 });
      gemm(c, w, transpose(v), { alpha: -1, lower: 0 });
    }
    for (let c = 0; c < jb; c++) a[(j0 + c + 1) * n + j0 + c] = e[j0 + c];
  }
  d[n - 1] = a[(n - 1) * n + n - 1];
  return { d, e, tau };
}

/**
 * `zt <- zt Q^T` for the reflectors of {@linkcode tridiagonalize} (rows of `zt` are vectors; i.e. every vector
 * `x <- Q x`), a block of reflectors at a time: `Q_b = I - Y T Y^T`, `zt <- zt - ((zt Y) T^T) Y^T`.
 */
function backTransform(a: Float64Array, tau: Float64Array, zt: Float64Array, n: number): void {
  const blocks: number[] = [];
  for (let j0 = 0; j0 < n - 1; j0 += NB) blocks.push(j0);
  for (let b = blocks.length - 1; b >= 0; b--) {
    const j0 = blocks[b], jb = Math.min(NB, n - 1 - j0), r0 = j0 + 1, m = n - r0;
    // Y (m x jb, row i - r0) and Yt (jb x m)
    const Y = sharedF64(m * jb), Yt = sharedF64(jb * m);
    for (let c = 0; c < jb; c++) {
      const j = j0 + c;
      Y[(j + 1 - r0) * jb + c] = 1;
      Yt[c * m + j + 1 - r0] = 1;
      for (let i = j + 2; i < n; i++) {
        const v = a[i * n + j];
        Y[(i - r0) * jb + c] = v;
        Yt[c * m + i - r0] = v;
      }
    }
    // T (upper, jb x jb): T[c][c] = tau_c, T[0:c, c] = -tau_c T[0:c, 0:c] (Y[:, 0:c]^T y_c)
    const T = new Float64Array(jb * jb), g = new Float64Array(jb);
    for (let c = 0; c < jb; c++) {
      const tc = tau[j0 + c];
      T[c * jb + c] = tc;
      for (let x = 0; x < c; x++) {
        let s = 0;
        for (let i = 0; i < m; i++) s += Yt[x * m + i] * Yt[c * m + i];
        g[x] = s;
      }
      for (let x = 0; x < c; x++) {
        let s = 0;
        for (let y = x; y < c; y++) s += T[x * jb + y] * g[y];
        T[x * jb + c] = -tc * s;
      }
    }
    // G = zt Y (n x jb), G2 = G T^T, zt -= G2 Y^T
    const G = sharedF64(n * jb), G2 = sharedF64(n * jb);
    const z = block(matrix(zt, n), 0, r0, n, m);
    gemm(matrix(G, n, jb), z, transpose(matrix(Yt, jb, m)));
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < jb; c++) {
        let s = 0;
        for (let x = c; x < jb; x++) s += G[r * jb + x] * T[c * jb + x];
        G2[r * jb + c] = s;
      }
    }
    gemm(z, matrix(G2, n, jb), transpose(matrix(Y, m, jb)), { alpha: -1 });
  }
}

/**
 * Eigenvectors of the symmetric tridiagonal matrix (`d` diagonal, `e` off-diagonal; `d` is overwritten with the
 * eigenvalues, ascending) by divide and conquer; returns the row-major `n x n` matrix whose columns are the vectors.
 */
export function tridiagonalEigh(d: Float64Array, e: Float64Array, n: number): Float64Array {
  const q = sharedF64(n * n);
  const diag = Float64Array.from(d);
  solve(diag, e, d, q, n, 0, n);
  return q;
}

/** Divide and conquer on rows/columns `s..s+len` of the tridiagonal (`diag` is modified by the tears). */
function solve(
  diag: Float64Array,
  e: Float64Array,
  values: Float64Array,
  q: Float64Array,
  n: number,
  s: number,
  len: number,
): void {
  if (len <= LEAF) {
    const t = new Float64Array(len * len);
    for (let i = 0; i < len; i++) {
      t[i * len + i] = diag[s + i];
      if (i + 1 < len) t[i * len + i + 1] = t[(i + 1) * len + i] = e[s + i];
    }
    const r = symEig(t, len); // descending
    for (let j = 0; j < len; j++) {
      const src = len - 1 - j;
      values[s + j] = r.values[src];
      for (let i = 0; i < len; i++) q[(s + i) * n + s + j] = r.vectors[i * len + src];
    }
    return;
  }
  const n1 = len >> 1;
  const beta = e[s + n1 - 1], rho = Math.abs(beta), sign = beta < 0 ? -1 : 1;
  diag[s + n1 - 1] -= rho;
  diag[s + n1] -= rho;
  solve(diag, e, values, q, n, s, n1);
  solve(diag, e, values, q, n, s + n1, len - n1);
  merge(values, q, n, s, n1, len, rho, sign);
}

/** Merges two solved halves of block `s..s+len` (`diag(D1, D2) + rho v v^T`, v = (last row Q1, sign first row Q2)). */
function merge(
  values: Float64Array,
  q: Float64Array,
  n: number,
  s: number,
  n1: number,
  len: number,
  rho: number,
  sign: number,
): void {
  const z = new Float64Array(len), d = new Float64Array(len);
  for (let j = 0; j < len; j++) {
    z[j] = j < n1 ? q[(s + n1 - 1) * n + s + j] : sign * q[(s + n1) * n + s + j];
    d[j] = values[s + j];
  }
  // sort by d (two sorted runs)
  const perm = Array.from({ length: len }, (_, j) => j).sort((x, y) => d[x] - d[y] || x - y);
  // columns of the block in perm order: col(j) = block column perm[j]; rotations change columns in place
  const cols = Int32Array.from(perm);
  const ds = Float64Array.from(perm, (j) => d[j]), zs = Float64Array.from(perm, (j) => z[j]);
  let dmax = 0, zmax = 0;
  for (let j = 0; j < len; j++) dmax = Math.max(dmax, Math.abs(ds[j])), zmax = Math.max(zmax, Math.abs(zs[j]));
  const tol = 8 * EPS * Math.max(dmax, rho * zmax);
  // block column c is zero outside the top rows (part 0: c < n1), the bottom rows (1), or mixed by a rotation (2)
  const part = Int8Array.from({ length: len }, (_, c) => (c < n1 ? 0 : 1));
  const deflated: number[] = []; // positions j (in sorted order) with eigenvalue ds[j] and column cols[j]
  const keep: number[] = [];
  let prev = -1;
  for (let j = 0; j < len; j++) {
    if (rho * Math.abs(zs[j]) <= tol) {
      deflated.push(j);
      continue;
    }
    if (prev >= 0) {
      const zk = zs[prev], zj = zs[j];
      const h = Math.hypot(zk, zj);
      const c = zj / h, sn = -zk / h, t = ds[j] - ds[prev];
      if (Math.abs(t * c * sn) <= tol) {
        // rotate columns prev and j: col_prev' = c col_prev + sn col_j, col_j' = -sn col_prev + c col_j
        const cp = s + cols[prev], cj = s + cols[j];
        if (part[cols[prev]] !== part[cols[j]]) part[cols[prev]] = part[cols[j]] = 2;
        for (let i = s; i < s + len; i++) {
          const x = q[i * n + cp], y = q[i * n + cj];
          q[i * n + cp] = c * x + sn * y;
          q[i * n + cj] = -sn * x + c * y;
        }
        const dk = ds[prev], dj = ds[j];
        ds[prev] = c * c * dk + sn * sn * dj;
        ds[j] = sn * sn * dk + c * c * dj;
        zs[j] = h;
        zs[prev] = 0;
        deflated.push(prev);
        keep.pop();
      }
    }
    keep.push(j);
    prev = j;
  }
  const K = keep.length;
  const dk = Float64Array.from(keep, (j) => ds[j]), zk = Float64Array.from(keep, (j) => zs[j]);
  const z2 = zk.map((x) => x * x);
  const roots: SecularRoots = { origin: new Int32Array(K), tau: new Float64Array(K), iterations: 0 };
  for (let m = 0; m < K; m++) roots.iterations += secularRoot(dk, z2, K, 1 / rho, m, roots);
  const zh = new Float64Array(K);
  lownerWeights(dk, zk, K, 1 / rho, roots, 0, zh);
  // U^T (K x K): row p = normalised zhat_j / (d_j - x_p)
  const ut = sharedF64(K * K);
  for (let p = 0; p < K; p++) {
    let ss = 0;
    const dp = dk[roots.origin[p]], tp = roots.tau[p];
    for (let j = 0; j < K; j++) {
      const u = zh[j] / ((dk[j] - dp) - tp);
      ut[p * K + j] = u;
      ss += u * u;
    }
    const inv = 1 / Math.sqrt(ss);
    for (let j = 0; j < K; j++) ut[p * K + j] *= inv;
  }
  // new vectors = Qc U, Qc (len x K) = kept columns. A column from the first half is zero below row n1, one from the
  // second half above it (unless a rotation mixed the two): the top rows take the top and mixed columns, the bottom
  // rows the bottom and mixed ones, two products of half the size (LAPACK dlaed3's split)
  const qn = sharedF64(len * K);
  for (const [r0, rows, side] of [[0, n1, 0], [n1, len - n1, 1]]) {
    const xs: number[] = [];
    for (let x = 0; x < K; x++) if (part[cols[keep[x]]] !== 1 - side) xs.push(x);
    const w = xs.length;
    if (w === 0 || rows === 0) continue;
    const qc = sharedF64(rows * w), us = sharedF64(K * w);
    for (let i = 0; i < rows; i++) {
      const row = (s + r0 + i) * n + s;
      for (let y = 0; y < w; y++) qc[i * w + y] = q[row + cols[keep[xs[y]]]];
    }
    for (let p = 0; p < K; p++) for (let y = 0; y < w; y++) us[p * w + y] = ut[p * K + xs[y]];
    gemm(block(matrix(qn, len, K), r0, 0, rows, K), matrix(qc, rows, w), transpose(matrix(us, K, w)));
  }
  // all eigenvalues, sorted: roots (from qn) and deflated (old columns)
  const items: { v: number; src: number }[] = []; // src >= 0: column of qn; < 0: -1 - deflated position
  for (let p = 0; p < K; p++) items.push({ v: dk[roots.origin[p]] + roots.tau[p], src: p });
  for (const j of deflated) items.push({ v: ds[j], src: -1 - j });
  items.sort((x, y) => x.v - y.v);
  const row = new Float64Array(len);
  for (let i = 0; i < len; i++) {
    const r = (s + i) * n + s;
    for (let j = 0; j < len; j++) row[j] = q[r + j];
    for (let x = 0; x < len; x++) {
      const it = items[x];
      q[r + x] = it.src >= 0 ? qn[i * K + it.src] : row[cols[-1 - it.src]];
    }
  }
  for (let x = 0; x < len; x++) values[s + x] = items[x].v;
}
