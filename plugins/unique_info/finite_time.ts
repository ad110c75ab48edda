/**
 * Leave-one-out at finite training time (docs/science.md section 3; method and proofs: docs/unique_info.md).
 * Gradient descent from `w0` on the linearised model gives `w_T = w0 + J^T alpha_T` with
 * `alpha_T = g(Theta + lambda I) r`, `g(x) = (1 - (1 - eta x)^T) / x` (T steps of size eta) or
 * `(1 - exp(-T x)) / x` (gradient flow for time T). With `Theta = V diag(theta) V^T` (one `eigh`) everything is
 * carried in eigen-coordinates; per train sample i (its k rows deleted) this module gives
 * `diff_i = V^T (alpha_T - beta_T,-i)` (beta padded with zeros on block i), from which
 * `si_weights = sum_j theta_j diff_ij^2` and `si_function = ||K_test V diff_i||^2 / n_test`. Three routes:
 * - `chebyshev` (any T, discrete or continuous; the usual choice): g as a Chebyshev series of degree D on the
 *   spectrum (within ~1e-14 of max |g|), the clamped Chebyshev recurrence of each deletion as a Volterra system in
 *   the clamping forces. O(D N^2 (k + 3)) for all samples as matrix products, D ~ sqrt(37 t lambda_max) for the flow
 *   and < T for steps.
 * - `secular` (any T, discrete or continuous): k successive one-row deletions, each by the secular equation
 *   `sum_j z_j^2 / (mu - d_j) = 0` (z = the deleted row in the current eigenbasis; roots interlace the poles;
 *   `plugins/kernels/linalg/secular.ts`), Löwner weights and Cauchy eigenvectors `zhat / (mu - d)`; deflation of tiny
 *   `z_j` and of close poles (Givens rotations) as in LAPACK `dlaed2`. O(k (iterations + 4) N^2) per sample.
 * - `volterra` (discrete steps): the clamped iteration `b_{s+1} = Lambda b_s + eta rho + Z^T phi_s`, `Z b_{s+1} = 0`
 *   is a block lower-triangular Toeplitz system in the clamping forces `phi_s` with kernel `H_m = Z Lambda^m Z^T`;
 *   `diff = -sum_q Lambda^(T-1-q) Z^T phi_q` directly (no cancellation). O(T N^2 (k + 5) / 2) for all samples as
 *   matrix products, plus O(n T^2 k^2 / 2) for the triangular solves.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gain } from "./finite_time.ts";
 * assert.equal(gain(0, { t: 10, lr: 0.1, lambda: 0 }), 1); // eta T where x = 0
 * assert.ok(Math.abs(gain(2, { t: Infinity, lambda: 0 }) - 0.5) < 1e-16);
 * ```
 *
 * @module
 */
import { Worker } from "node:worker_threads";
import { eigh } from "../kernels/linalg/eigh.ts";
import { gemm, matrix, sharedF64, transpose } from "../kernels/linalg/mod.ts";
import { defaultThreads, packViews } from "../kernels/threads.ts";
import { lownerWeights, type SecularRoots, secularRoots } from "../kernels/linalg/secular.ts";

const EPS = 2 ** -53;

/** Training time: `t` steps of size `lr` (discrete), or gradient flow for time `t` (`lr` undefined). */
export interface TrainingTime {
  t: number;
  lr?: number;
  lambda: number;
}

/** `g(x)` at `x = theta + lambda` (the spectral filter of `alpha_T = g(A) r`). */
export function gain(x: number, tt: TrainingTime): number {
  const { t, lr } = tt;
  if (t === Infinity) return 1 / x;
  if (lr === undefined) return x === 0 ? t : -Math.expm1(-t * x) / x;
  if (x === 0) return lr * t;
  const q = 1 - lr * x;
  if (q > 0) return -Math.expm1(t * Math.log1p(-lr * x)) / x;
  return (1 - q ** t) / x;
}

/** The spectral form of the training problem: `Theta = V diag(values) V^T`, `rho = V^T r`. */
export interface Spectral {
  n: number;
  values: Float64Array;
  /** Row-major N x N, column j = eigenvector j (shared memory). */
  vectors: Float64Array;
  rho: Float64Array;
}

/** `Theta` (row-major N x N, lower triangle read) and `r = Y - f0` in spectral form. */
export function spectral(theta: Float64Array, n: number, r: Float64Array): Spectral {
  const { values, vectors } = eigh(theta, n);
  const rho = sharedF64(n);
  for (let i = 0; i < n; i++) {
    const ri = r[i];
    if (ri === 0) continue;
    const row = i * n;
    for (let j = 0; j < n; j++) rho[j] += vectors[row + j] * ri;
  }
  return { n, values, vectors, rho };
}

/** One deletion: the data to map a vector of the new eigenbasis back to the previous one. */
interface Level {
  m: number;
  rotations: number[]; // (k, j, c, s) quadruples in order of application
  keep: Int32Array;
  dK: Float64Array;
  zhat: Float64Array;
  roots: SecularRoots;
  norm: Float64Array;
  /** New coordinate q: root p (>= 0) or deflated old coordinate j (-1 - j). */
  order: Int32Array;
}

/**
 * Deletes the row `z` (coordinates in the current eigenbasis, poles `d` ascending) and carries `vecs` (coordinates
 * in the current basis) into the new eigenbasis of dimension m - 1; returns the new poles and the level.
 */
function deleteRow(
  d: Float64Array,
  z: Float64Array,
  m: number,
  vecs: Float64Array[],
): { d: Float64Array; level: Level; vecs: Float64Array[] } {
  let dmax = 0, zz2 = 0;
  for (let j = 0; j < m; j++) dmax = Math.max(dmax, Math.abs(d[j])), zz2 += z[j] * z[j];
  const tol = 8 * EPS * dmax, ztol = 8 * EPS * Math.sqrt(zz2);
  const ds = Float64Array.from(d.subarray(0, m)), zs = Float64Array.from(z.subarray(0, m));
  const rotations: number[] = [];
  const keep: number[] = [], defl: number[] = [];
  let prev = -1;
  for (let j = 0; j < m; j++) {
    if (Math.abs(zs[j]) <= ztol) {
      defl.push(j);
      continue;
    }
    if (prev >= 0) {
      const zk = zs[prev], zj = zs[j], h = Math.hypot(zk, zj);
      const c = zj / h, s = -zk / h, t = ds[j] - ds[prev];
      if (Math.abs(t * c * s) <= tol) {
        for (const v of vecs) {
          const a = v[prev], b = v[j];
          v[prev] = c * a + s * b;
          v[j] = -s * a + c * b;
        }
        const a = ds[prev], b = ds[j];
        ds[prev] = c * c * a + s * s * b;
        ds[j] = s * s * a + c * c * b;
        zs[prev] = 0;
        zs[j] = h;
        rotations.push(prev, j, c, s);
        defl.push(prev);
        keep.pop();
      }
    }
    keep.push(j);
    prev = j;
  }
  const K = keep.length;
  const dK = new Float64Array(K), zK = new Float64Array(K), z2 = new Float64Array(K);
  let sum = 0;
  for (let x = 0; x < K; x++) {
    dK[x] = ds[keep[x]];
    zK[x] = zs[keep[x]];
    z2[x] = zK[x] * zK[x];
    sum += z2[x];
  }
  const roots = secularRoots(dK, z2, K, 0);
  const zhat = new Float64Array(K);
  lownerWeights(dK, zK, K, 0, roots, sum, zhat);
  // new basis: deflated coordinates and K - 1 Cauchy vectors, sorted by eigenvalue
  const items: { v: number; src: number }[] = [];
  for (let p = 0; p < K - 1; p++) items.push({ v: dK[roots.origin[p]] + roots.tau[p], src: p });
  for (const j of defl) items.push({ v: ds[j], src: -1 - j });
  items.sort((a, b) => a.v - b.v || a.src - b.src);
  const order = Int32Array.from(items, (it) => it.src);
  const nd = Float64Array.from(items, (it) => it.v);
  // projections onto the Cauchy vectors
  const nv = vecs.length;
  const gathered = vecs.map((v) => Float64Array.from(keep, (j) => v[j]));
  const proj = vecs.map(() => new Float64Array(Math.max(0, K - 1)));
  const norm = new Float64Array(Math.max(0, K - 1));
  for (let p = 0; p < K - 1; p++) {
    const dp = dK[roots.origin[p]], tp = roots.tau[p];
    let ss = 0;
    if (nv === 1) {
      const g0 = gathered[0];
      let a0 = 0;
      for (let x = 0; x < K; x++) {
        const c = zhat[x] / ((dp - dK[x]) + tp);
        ss += c * c;
        a0 += c * g0[x];
      }
      proj[0][p] = a0;
    } else {
      for (let x = 0; x < K; x++) {
        const c = zhat[x] / ((dp - dK[x]) + tp);
        ss += c * c;
        for (let v = 0; v < nv; v++) proj[v][p] += c * gathered[v][x];
      }
    }
    const nr = Math.sqrt(ss);
    norm[p] = nr;
    for (let v = 0; v < nv; v++) proj[v][p] /= nr;
  }
  const out = vecs.map((v, vi) => Float64Array.from(order, (src) => (src >= 0 ? proj[vi][src] : v[-1 - src])));
  return { d: nd, vecs: out, level: { m, rotations, keep: Int32Array.from(keep), dK, zhat, roots, norm, order } };
}

/** Maps `y` (coordinates in a level's new basis) back to the previous basis. */
function mapBack(lv: Level, y: Float64Array): Float64Array {
  const { m, keep, dK, zhat, roots, norm, order, rotations } = lv;
  const K = keep.length;
  const x = new Float64Array(m), xK = new Float64Array(K);
  for (let q = 0; q < order.length; q++) {
    const src = order[q];
    if (src < 0) {
      x[-1 - src] = y[q];
      continue;
    }
    const coef = y[q] / norm[src];
    if (coef === 0) continue;
    const dp = dK[roots.origin[src]], tp = roots.tau[src];
    for (let j = 0; j < K; j++) xK[j] += coef * zhat[j] / ((dp - dK[j]) + tp);
  }
  for (let j = 0; j < K; j++) x[keep[j]] += xK[j];
  for (let r = rotations.length - 4; r >= 0; r -= 4) {
    const k = rotations[r], j = rotations[r + 1], c = rotations[r + 2], s = rotations[r + 3];
    const a = x[k], b = x[j];
    x[k] = c * a - s * b;
    x[j] = s * a + c * b;
  }
  return x;
}

/**
 * `diff_i = V^T (alpha_T - beta_T,-i)` of sample i (rows `i k .. i k + k - 1`) by successive deletions, into `out`.
 */
export function looSecular(sp: Spectral, k: number, i: number, tt: TrainingTime, out: Float64Array): void {
  const { n: N, values, vectors, rho } = sp;
  let d: Float64Array = Float64Array.from(values);
  let vecs: Float64Array[] = [Float64Array.from(rho)];
  for (let c = 0; c < k; c++) vecs.push(Float64Array.from(vectors.subarray((i * k + c) * N, (i * k + c + 1) * N)));
  const levels: Level[] = [];
  let m = N;
  for (let c = 0; c < k; c++) {
    const z = vecs[1];
    const rest = [vecs[0], ...vecs.slice(2)];
    const r = deleteRow(d, z, m, rest);
    levels.push(r.level);
    d = r.d;
    vecs = r.vecs;
    m--;
  }
  let b: Float64Array = new Float64Array(m);
  for (let q = 0; q < m; q++) b[q] = gain(d[q] + tt.lambda, tt) * vecs[0][q];
  for (let l = levels.length - 1; l >= 0; l--) b = mapBack(levels[l], b);
  for (let j = 0; j < N; j++) out[j] = gain(values[j] + tt.lambda, tt) * rho[j] - b[j];
}

/** A share of the secular route's samples, as posted to a worker (arrays in shared memory). */
export interface SecularJob {
  sp: Spectral;
  k: number;
  tt: TrainingTime;
  diff: Float64Array;
  /** [next sample, samples done by workers] */
  ctl: Int32Array;
}

/** Takes samples from `ctl[0]` until none is left; returns how many this thread did. */
export function looSecularShare(job: SecularJob): number {
  const { sp, k, tt, diff, ctl } = job;
  const N = sp.n, n = N / k;
  let done = 0;
  for (let i = Atomics.add(ctl, 0, 1); i < n; i = Atomics.add(ctl, 0, 1), done++) {
    looSecular(sp, k, i, tt, diff.subarray(i * N, (i + 1) * N));
  }
  return done;
}

const pool: Worker[] = [];

/**
 * `diff_i` of every sample by the secular route, on the calling thread and `threads - 1` worker threads
 * (the samples are independent; each is computed the same way whichever thread takes it).
 */
export async function looSecularAll(
  sp: Spectral,
  k: number,
  tt: TrainingTime,
  diff: Float64Array,
  threads: number = defaultThreads(),
): Promise<void> {
  const ctl = new Int32Array(new SharedArrayBuffer(8));
  const job: SecularJob = { sp, k, tt, diff, ctl };
  // workers take ~0.1 s to start: only for large jobs (about 1e9 secular terms)
  const big = 8 * sp.n * sp.n * sp.n >= 1e9;
  const helpers = big ? Math.max(0, Math.min(threads - 1, sp.n / k - 1)) : 0;
  const shared = diff.buffer instanceof SharedArrayBuffer && sp.vectors.buffer instanceof SharedArrayBuffer;
  const waits: Promise<boolean>[] = [];
  if (shared) {
    try {
      while (pool.length < helpers) {
        const w = new Worker(new URL("./_finite_worker.ts", import.meta.url));
        w.unref();
        pool.push(w);
      }
    } catch { /* no worker threads: this thread does every sample */ }
    for (const w of pool.slice(0, helpers)) {
      waits.push(
        new Promise<boolean>((resolve) => {
          const done = (ok: boolean) => {
            w.off("error", fail);
            w.unref();
            resolve(ok);
          };
          const fail = () => {
            w.off("message", done);
            w.unref();
            resolve(false);
          };
          w.once("message", done);
          w.once("error", fail);
          w.ref(); // keeps the process alive while the job is out
          w.postMessage(packViews(job)); // typed arrays as buffer + offset + length: kernels/threads.ts
        }),
      );
    }
  }
  looSecularShare(job);
  const oks = await Promise.all(waits);
  if (oks.some((ok) => !ok)) {
    throw new Error(
      `Cannot finish the leave-one-out as a worker thread failed: current value is ${
        oks.filter((o) => !o).length
      } failed`,
    );
  }
}

/**
 * `diff_i` of every sample by the Volterra route (discrete steps only), into `out` (n x N, row i = sample i).
 * Products run on the shared-memory kernels of `plugins/kernels/linalg` (threads).
 */
export function looVolterra(
  sp: Spectral,
  k: number,
  tt: TrainingTime,
  out: Float64Array,
  threads: number = defaultThreads(),
): void {
  const { n: N, values, vectors: V, rho } = sp;
  const eta = tt.lr!, T = tt.t, lam = tt.lambda;
  if (eta === undefined || !Number.isInteger(T)) {
    throw new Error(
      `Cannot use the Volterra route as it needs a whole number of discrete steps: current value is ${T}`,
    );
  }
  const n = N / k, kk = (k * (k + 1)) / 2;
  const mult = Float64Array.from(values, (v) => 1 - eta * (v + lam));
  // P (T x N): P[s][j] = mult_j^s; B2 (T x N): B2[s][j] = rho_j g_{s+1}(x_j); Pt (N x T)
  const P = sharedF64(T * N), B2 = sharedF64(T * N), Pt = sharedF64(N * T);
  for (let j = 0; j < N; j++) {
    const x = values[j] + lam, mj = mult[j];
    let pw = 1;
    for (let s = 0; s < T; s++) {
      P[s * N + j] = pw;
      Pt[j * T + s] = pw;
      pw = mj ** (s + 1);
      B2[s * N + j] = rho[j] * gain(x, { t: s + 1, lr: eta, lambda: 0 });
    }
  }
  // H[(i, c, c')][s] = sum_j V[ic][j] V[ic'][j] P[s][j]
  const PZ = sharedF64(n * kk * N);
  for (let i = 0, r = 0; i < n; i++) {
    for (let c = 0; c < k; c++) {
      for (let c2 = 0; c2 <= c; c2++, r++) {
        const a = (i * k + c) * N, b = (i * k + c2) * N;
        for (let j = 0; j < N; j++) PZ[r * N + j] = V[a + j] * V[b + j];
      }
    }
  }
  const H = sharedF64(n * kk * T);
  gemm(matrix(H, n * kk, T), matrix(PZ, n * kk, N), transpose(matrix(P, T, N)), { threads });
  // a[(i, c)][s] = (alpha_{s+1})_{ic} = sum_j V[ic][j] B2[s][j]
  const A = sharedF64(N * T);
  gemm(matrix(A, N, T), matrix(V, N), transpose(matrix(B2, T, N)), { threads });
  // per sample: phi_s = H0^-1 (-a_{s+1} - sum_{q<s} H_{s-q} phi_q), stored reversed: Phi[ic][T-1-s]
  const Phi = sharedF64(N * T);
  const h = (i: number, c: number, c2: number, s: number) => {
    const [x, y] = c >= c2 ? [c, c2] : [c2, c];
    return H[(i * kk + (x * (x + 1)) / 2 + y) * T + s];
  };
  const h0 = new Float64Array(k * k), inv = new Float64Array(k * k), rhs = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < k; c++) for (let c2 = 0; c2 < k; c2++) h0[c * k + c2] = h(i, c, c2, 0);
    invertSmall(h0, k, inv);
    for (let s = 0; s < T; s++) {
      for (let c = 0; c < k; c++) {
        let acc = -A[(i * k + c) * T + s];
        for (let c2 = 0; c2 < k; c2++) {
          const [x, y] = c >= c2 ? [c, c2] : [c2, c];
          const hr = (i * kk + (x * (x + 1)) / 2 + y) * T, pr = (i * k + c2) * T + T - 1;
          // sum_{q<s} H[s-q] phi_q, phi_q at Phi[pr - q]
          for (let q = 0; q < s; q++) acc -= H[hr + s - q] * Phi[pr - q];
        }
        rhs[c] = acc;
      }
      for (let c = 0; c < k; c++) {
        let v = 0;
        for (let c2 = 0; c2 < k; c2++) v += inv[c * k + c2] * rhs[c2];
        Phi[(i * k + c) * T + T - 1 - s] = v;
      }
    }
  }
  // R[ic][j] = sum_q phi_q[c] mult_j^(T-1-q) = sum_{q'} Phi[ic][q'] Pt[j][q']
  const R = sharedF64(N * N);
  gemm(matrix(R, N), matrix(Phi, N, T), transpose(matrix(Pt, N, T)), { threads });
  for (let i = 0; i < n; i++) {
    const o = i * N;
    for (let j = 0; j < N; j++) out[o + j] = 0;
    for (let c = 0; c < k; c++) {
      const r = (i * k + c) * N;
      for (let j = 0; j < N; j++) out[o + j] -= V[r + j] * R[r + j];
    }
  }
}

/** A Chebyshev series of the filter g on the spectrum `[a, b]` of `A`: `g(x) ~ sum_s c_s T_s(y)`, `y = (x - mid) / half`. */
export interface ChebyshevFilter {
  coefficients: Float64Array;
  mid: number;
  half: number;
}

/** The largest degree {@linkcode chebyshevFilter} tries (beyond it the secular route is cheaper anyway). */
export const CHEBYSHEV_MAX_DEGREE = 8192;

/**
 * Chebyshev coefficients of `g` (the filter of `tt`) on `[a, b]`, truncated where every later coefficient of the
 * interpolant at `M` Chebyshev points (M doubled until the series has converged to half of them) is below
 * `2^-56 max |g|`: the series is then within ~`2^-55 max |g|` of g on `[a, b]` (aliasing of an analytic function's
 * geometrically vanishing tail). Null when more than {@linkcode CHEBYSHEV_MAX_DEGREE} terms would be needed.
 */
export function chebyshevFilter(a: number, b: number, tt: TrainingTime): ChebyshevFilter | null {
  const mid = (a + b) / 2, half = Math.max((b - a) / 2, Math.abs(mid) * EPS, Number.MIN_VALUE);
  for (let M = 32; M <= 2 * CHEBYSHEV_MAX_DEGREE; M *= 2) {
    const f = new Float64Array(M);
    let fmax = 0;
    for (let m = 0; m < M; m++) {
      f[m] = gain(mid + half * Math.cos((Math.PI * (m + 0.5)) / M), tt);
      fmax = Math.max(fmax, Math.abs(f[m]));
    }
    // c_s = (2 / M) sum_m f_m cos(pi s (m + 1/2) / M), from a table of cos(pi j / (2 M))
    const cos = Float64Array.from({ length: 4 * M }, (_, j) => Math.cos((Math.PI * j) / (2 * M)));
    const c = new Float64Array(M);
    for (let s = 0; s < M; s++) {
      // compensated (Neumaier) sum: the coefficients' rounding noise stays near eps max |g| / sqrt(M)
      let acc = 0, comp = 0;
      for (let m = 0; m < M; m++) {
        const v = f[m] * cos[(s * (2 * m + 1)) % (4 * M)], t = acc + v;
        comp += Math.abs(acc) >= Math.abs(v) ? (acc - t) + v : (v - t) + acc;
        acc = t;
      }
      c[s] = ((s === 0 ? 1 : 2) * (acc + comp)) / M;
    }
    const tol = fmax * 2 ** -52;
    let D = M - 1;
    while (D > 0 && Math.abs(c[D]) <= tol) D--;
    if (D < M / 2) return { coefficients: c.slice(0, D + 1), mid, half };
  }
  return null;
}

/**
 * `diff_i` of every sample by the Chebyshev route (any T, discrete or continuous), into `out` (n x N): the filter as
 * a Chebyshev series of degree D on the spectrum of `A` (`cheb`), and the clamped Chebyshev recurrence of each
 * deletion as a Volterra system (docs/unique_info.md). Products on the shared-memory kernels (threads).
 */
export function looChebyshev(
  sp: Spectral,
  k: number,
  tt: TrainingTime,
  out: Float64Array,
  threads: number = defaultThreads(),
  cheb: ChebyshevFilter | null = null,
): void {
  const { n: N, values, vectors: V, rho } = sp;
  const n = N / k, kk = (k * (k + 1)) / 2, lam = tt.lambda;
  cheb ??= chebyshevFilter(values[0] + lam, values[N - 1] + lam, tt);
  if (!cheb) {
    throw new Error(
      `Cannot use the Chebyshev route as the filter needs more than ${CHEBYSHEV_MAX_DEGREE} terms: current value is t = ${tt.t}`,
    );
  }
  const c = cheb.coefficients, D = c.length - 1;
  if (D === 0) { // a constant filter: g(A_{-i}) r_{-i} = c_0 r_{-i}, diff = c_0 Z^T Z rho
    for (let i = 0; i < n; i++) {
      const o = i * N;
      out.fill(0, o, o + N);
      for (let q = 0; q < k; q++) {
        const r = (i * k + q) * N;
        let zr = 0;
        for (let j = 0; j < N; j++) zr += V[r + j] * rho[j];
        for (let j = 0; j < N; j++) out[o + j] += c[0] * V[r + j] * zr;
      }
    }
    return;
  }
  const y = Float64Array.from(values, (v) => (v + lam - cheb.mid) / cheb.half);
  // TU ((2D - 1) x N): rows 0..D-1 = T_1..T_D at y_j, rows D..2D-2 = U_1..U_{D-1}; TR (D x N) = T_s(y_j) rho_j
  const TU = sharedF64((2 * D - 1) * N), TR = sharedF64(D * N), py = new Float64Array(N);
  const Wt = sharedF64(N * D); // Wt[j][q] = W_q(y_j) = sum_{s > q} c_s U_{s-q-1}(y_j) (Clenshaw)
  for (let j = 0; j < N; j++) {
    const yj = y[j];
    let t0 = 1, t1 = yj, u0 = 1, u1 = 2 * yj, p = c[0] + c[1] * yj;
    for (let s = 1; s <= D; s++) {
      TU[(s - 1) * N + j] = t1;
      TR[(s - 1) * N + j] = t1 * rho[j];
      if (s < D) TU[(D + s - 1) * N + j] = u1;
      const t2 = 2 * yj * t1 - t0, u2 = 2 * yj * u1 - u0;
      t0 = t1, t1 = t2, u0 = u1, u1 = u2;
      if (s + 1 <= D) p += c[s + 1] * t1;
    }
    py[j] = p;
    let w1 = 0, w2 = 0; // W_{q+1}, W_{q+2}
    for (let q = D - 1; q >= 0; q--) {
      const w = c[q + 1] + 2 * yj * w1 - w2;
      Wt[j * D + q] = w;
      w2 = w1, w1 = w;
    }
  }
  // PZ[(i, c, c')][j] = V[ic][j] V[ic'][j]; GH = PZ TU^T: G_s = Z T_s Z^T (cols 0..D-1), H_m = Z U_m Z^T (D..2D-2)
  const PZ = sharedF64(n * kk * N);
  for (let i = 0, r = 0; i < n; i++) {
    for (let a = 0; a < k; a++) {
      for (let b = 0; b <= a; b++, r++) {
        const x = (i * k + a) * N, z = (i * k + b) * N;
        for (let j = 0; j < N; j++) PZ[r * N + j] = V[x + j] * V[z + j];
      }
    }
  }
  const W2 = 2 * D - 1, GH = sharedF64(n * kk * W2);
  gemm(matrix(GH, n * kk, W2), matrix(PZ, n * kk, N), transpose(matrix(TU, W2, N)), { threads });
  // AS[ic][s-1] = (Z T_s(A~) rho)_c
  const AS = sharedF64(N * D);
  gemm(matrix(AS, N, D), matrix(V, N), transpose(matrix(TR, D, N)), { threads });
  const zr = new Float64Array(N); // (Z rho) of every row
  for (let x = 0; x < N; x++) {
    let s = 0;
    for (let j = 0; j < N; j++) s += V[x * N + j] * rho[j];
    zr[x] = s;
  }
  // per sample: H_0 phi_{s-1} = -(a_s - G_s Z rho) - sum_{q <= s-2} H_{s-1-q} phi_q, s = 1..D; Phi[ic][q]
  const Phi = sharedF64(N * D);
  const gh = (i: number, a: number, b: number, col: number) => {
    const [x, z] = a >= b ? [a, b] : [b, a];
    return GH[(i * kk + (x * (x + 1)) / 2 + z) * W2 + col];
  };
  const h0 = new Float64Array(k * k), inv = new Float64Array(k * k), rhs = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < k; a++) {
      for (let b = 0; b < k; b++) {
        const x = (i * k + a) * N, z = (i * k + b) * N;
        let s = 0;
        for (let j = 0; j < N; j++) s += V[x + j] * V[z + j];
        h0[a * k + b] = s;
      }
    }
    invertSmall(h0, k, inv);
    for (let s = 1; s <= D; s++) {
      for (let a = 0; a < k; a++) {
        let acc = -AS[(i * k + a) * D + s - 1];
        for (let b = 0; b < k; b++) {
          acc += gh(i, a, b, s - 1) * zr[i * k + b];
          const [x, z] = a >= b ? [a, b] : [b, a];
          const hr = (i * kk + (x * (x + 1)) / 2 + z) * W2 + D - 1, pr = (i * k + b) * D;
          // sum_{q <= s-2} H_{s-1-q} phi_q, H_m at GH[hr + m]
          for (let q = 0; q <= s - 2; q++) acc -= GH[hr + s - 1 - q] * Phi[pr + q];
        }
        rhs[a] = acc;
      }
      for (let a = 0; a < k; a++) {
        let v = 0;
        for (let b = 0; b < k; b++) v += inv[a * k + b] * rhs[b];
        Phi[(i * k + a) * D + s - 1] = v;
      }
    }
  }
  // R[ic][j] = sum_q phi_q[c] W_q(y_j); diff_i = p(A~) Z^T Z rho - sum_c Z_c^T-weighted R
  const R = sharedF64(N * N);
  gemm(matrix(R, N), matrix(Phi, N, D), transpose(matrix(Wt, N, D)), { threads });
  for (let i = 0; i < n; i++) {
    const o = i * N;
    for (let j = 0; j < N; j++) out[o + j] = 0;
    for (let a = 0; a < k; a++) {
      const r = (i * k + a) * N, za = zr[i * k + a];
      for (let j = 0; j < N; j++) out[o + j] += V[r + j] * (py[j] * za - R[r + j]);
    }
  }
}

/** Inverse of a small symmetric positive-definite matrix (Gauss-Jordan; k <= a few dozen). */
function invertSmall(a: Float64Array, k: number, out: Float64Array): void {
  const m = Float64Array.from(a);
  out.fill(0);
  for (let i = 0; i < k; i++) out[i * k + i] = 1;
  for (let c = 0; c < k; c++) {
    let piv = c;
    for (let r = c + 1; r < k; r++) if (Math.abs(m[r * k + c]) > Math.abs(m[piv * k + c])) piv = r;
    for (let t = 0; t < k; t++) {
      [m[c * k + t], m[piv * k + t]] = [m[piv * k + t], m[c * k + t]];
      [out[c * k + t], out[piv * k + t]] = [out[piv * k + t], out[c * k + t]];
    }
    const p = m[c * k + c];
    for (let t = 0; t < k; t++) m[c * k + t] /= p, out[c * k + t] /= p;
    for (let r = 0; r < k; r++) {
      if (r === c) continue;
      const f = m[r * k + c];
      if (f === 0) continue;
      for (let t = 0; t < k; t++) m[r * k + t] -= f * m[c * k + t], out[r * k + t] -= f * out[c * k + t];
    }
  }
}

/** The leave-one-out routes. */
export type FiniteRoute = "secular" | "volterra" | "chebyshev";

/** The most values of one table of the Volterra and Chebyshev routes (200 MB of float64). */
export const TABLE_LIMIT = 2.5e7;

/**
 * Multiply-adds of each route for all samples (a cost model for {@linkcode chooseRoute}); `degree` is the
 * Chebyshev route's D ({@linkcode chebyshevFilter}; Infinity or undefined: not available). A route whose tables
 * would exceed {@linkcode TABLE_LIMIT} values costs Infinity.
 */
export function routeCosts(
  N: number,
  k: number,
  tt: TrainingTime,
  degree?: number,
): { secular: number; volterra: number; chebyshev: number } {
  const n = N / k, kk = (k * (k + 1)) / 2;
  // secular: ~8 passes over N^2 per deleted row, each term with a division (~4x a multiply-add)
  const secular = 8 * 4 * k * N * N * n;
  const volterra = tt.lr === undefined || !Number.isInteger(tt.t) || tt.t === Infinity || tt.t * N > TABLE_LIMIT
    ? Infinity
    : tt.t * N * N * ((k * (k + 1)) / 2 / k + 2) + n * tt.t * tt.t * k * k * 2;
  const D = degree ?? Infinity;
  const chebyshev = !Number.isFinite(D) || 2 * D * Math.max(N, n * kk) > TABLE_LIMIT
    ? Infinity
    : D * N * N * (k + 3) + n * D * D * k * k * 2;
  return { secular, volterra, chebyshev };
}

/** The cheapest exact route by {@linkcode routeCosts}. */
export function chooseRoute(N: number, k: number, tt: TrainingTime, degree?: number): FiniteRoute {
  const c = routeCosts(N, k, tt, degree);
  if (c.chebyshev <= c.volterra && c.chebyshev < c.secular) return "chebyshev";
  return c.volterra < c.secular ? "volterra" : "secular";
}

/** Weight SI and function SI of every sample from the `diff` rows (n x N) and `KV = K_test V` (rows x N). */
export function siFromDiff(
  sp: Spectral,
  diff: Float64Array,
  nSamples: number,
  kv: Float64Array | null,
  testRows: number,
  nTest: number,
  si: Float64Array,
  fsi: Float64Array,
  threads: number = defaultThreads(),
): void {
  const N = sp.n, th = sp.values;
  for (let i = 0; i < nSamples; i++) {
    let s = 0;
    for (let j = 0; j < N; j++) s += th[j] * diff[i * N + j] ** 2;
    si[i] = s;
  }
  if (kv && testRows > 0) {
    const F = sharedF64(nSamples * testRows);
    gemm(matrix(F, nSamples, testRows), matrix(diff, nSamples, N), transpose(matrix(kv, testRows, N)), { threads });
    for (let i = 0; i < nSamples; i++) {
      let s = 0;
      for (let t = 0; t < testRows; t++) s += F[i * testRows + t] ** 2;
      fsi[i] = s / nTest;
    }
  }
}

/** Result of {@linkcode finiteTimeSi}. */
export interface FiniteSi {
  si: Float64Array;
  fsi: Float64Array;
  route: FiniteRoute;
  /** Degree of the Chebyshev series (chebyshev route only). */
  degree?: number;
  /** `alpha_T - beta_T,-i` of sample i in the dual (row) coordinates, for the weight-change vectors. */
  dual(i: number): Float64Array;
}

/**
 * SI and F-SI of every sample at finite training time: `theta` (N x N, lower triangle read, sample-major rows),
 * `r = Y - f0`, `ktest` (testRows x N) or null.
 */
export async function finiteTimeSi(
  theta: Float64Array,
  N: number,
  k: number,
  r: Float64Array,
  ktest: Float64Array | null,
  testRows: number,
  nTest: number,
  tt: TrainingTime,
  route: "auto" | FiniteRoute = "auto",
  threads: number = defaultThreads(),
): Promise<FiniteSi> {
  const n = N / k;
  const sp = spectral(theta, N, r);
  const cheb = route === "secular" || route === "volterra" || tt.t === Infinity
    ? null
    : chebyshevFilter(sp.values[0] + tt.lambda, sp.values[N - 1] + tt.lambda, tt);
  const degree = cheb ? cheb.coefficients.length - 1 : Infinity;
  const chosen = route === "auto" ? chooseRoute(N, k, tt, degree) : route;
  const diff = sharedF64(n * N);
  if (chosen === "volterra") looVolterra(sp, k, tt, diff, threads);
  else if (chosen === "chebyshev") looChebyshev(sp, k, tt, diff, threads, cheb);
  else await looSecularAll(sp, k, tt, diff, threads);
  let kv: Float64Array | null = null;
  if (ktest && testRows > 0) {
    kv = sharedF64(testRows * N);
    // KV = K_test V: rows of K_test against columns of V (rows of V^T)
    const vt = sharedF64(N * N);
    for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) vt[j * N + i] = sp.vectors[i * N + j];
    gemm(matrix(kv, testRows, N), matrix(ktest, testRows, N), transpose(matrix(vt, N)), { threads });
  }
  const si = new Float64Array(n), fsi = new Float64Array(n);
  siFromDiff(sp, diff, n, kv, testRows, nTest, si, fsi, threads);
  const dual = (i: number) => {
    const out = new Float64Array(N), V = sp.vectors, o = i * N;
    for (let x = 0; x < N; x++) {
      let s = 0;
      for (let j = 0; j < N; j++) s += V[x * N + j] * diff[o + j];
      out[x] = s;
    }
    return out;
  };
  return { si, fsi, route: chosen, dual, ...(chosen === "chebyshev" ? { degree } : {}) };
}
