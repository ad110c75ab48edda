/**
 * Frequent Directions (Liberty 2013; Ghashami et al. 2016): a deterministic, mergeable sketch `B` (at most
 * `2 ell` rows) of a stream of rows `G` with `0 <= x^T (G^T G - B^T B) x <= Delta` for every unit x, `Delta`
 * tracked exactly ({@linkcode FdSketch.delta}); the buffered variant, shrinking through the Jacobi eigen-solver of
 * `B B^T` in float64. The bounds, the shrink and its cost: docs/estimators.md#fisher.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FdSketch } from "./fd_sketch.ts";
 * const s = new FdSketch(2, 3);
 * s.append(new Float64Array([1, 0, 0]));
 * s.append(new Float64Array([0, 2, 0]));
 * const { values } = s.eigenvalues();
 * assert.ok(Math.abs(values[0] - 4) < 1e-12 && Math.abs(values[1] - 1) < 1e-12 && s.delta === 0);
 * ```
 *
 * @module
 */
import { symEig } from "../kernels/linalg/symeig.ts";

/** The serializable state of a sketch. */
export interface FdState {
  ell: number;
  dim: number;
  rows: number;
  n: number;
  delta: number;
  shrinks: number;
  buf: Float64Array;
}

const BLOCK = 512;

/** A Frequent Directions sketch of rows of width `dim`, with `ell` directions. */
export class FdSketch {
  readonly ell: number;
  readonly dim: number;
  /** Rows currently held (at most `2 ell - 1` between calls). */
  rows = 0;
  /** Rows appended in total (including those folded in by merges). */
  n = 0;
  /** Sum of shrinkage thresholds: the bound on `||G^T G - B^T B||_2`. */
  delta = 0;
  /** Number of shrinks done. */
  shrinks = 0;
  buf: Float64Array;

  constructor(ell: number, dim: number) {
    if (!(Number.isInteger(ell) && ell >= 1)) {
      throw new Error(
        `Cannot build a Frequent Directions sketch as ell must be an integer >= 1: current value is ${ell}`,
      );
    }
    this.ell = ell;
    this.dim = dim;
    this.buf = new Float64Array(Math.min(2 * ell, 4) * dim);
  }

  /** The row being written next (grow the buffer if needed); call {@linkcode commit} to keep it. */
  slot(): Float64Array {
    const need = (this.rows + 1) * this.dim;
    if (this.buf.length < need) {
      const grown = new Float64Array(Math.min(2 * this.ell, Math.max(this.rows + 1, 2 * (this.rows || 1))) * this.dim);
      grown.set(this.buf.subarray(0, this.rows * this.dim));
      this.buf = grown;
    }
    return this.buf.subarray(this.rows * this.dim, need);
  }

  /** Keeps the row written into {@linkcode slot}; shrinks when the buffer is full. */
  commit(count = 1): void {
    this.rows++;
    this.n += count;
    if (this.rows === 2 * this.ell) this.shrink();
  }

  /** Appends one row (copied). */
  append(row: ArrayLike<number>): void {
    this.slot().set(row);
    this.commit();
  }

  /** Gram matrix `B B^T` of the current rows (`rows x rows`, float64), blocked over columns. */
  gram(): Float64Array {
    const m = this.rows, d = this.dim, b = this.buf;
    const g = new Float64Array(m * m);
    for (let c0 = 0; c0 < d; c0 += BLOCK) {
      const c1 = Math.min(d, c0 + BLOCK);
      for (let i = 0; i < m; i++) {
        const oi = i * d;
        let j = i;
        // Four dot products at a time: row i is loaded once per four (register tiling).
        for (; j + 3 < m; j += 4) {
          const o0 = j * d, o1 = o0 + d, o2 = o1 + d, o3 = o2 + d;
          let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
          for (let c = c0; c < c1; c++) {
            const x = b[oi + c];
            s0 += x * b[o0 + c];
            s1 += x * b[o1 + c];
            s2 += x * b[o2 + c];
            s3 += x * b[o3 + c];
          }
          g[i * m + j] += s0;
          g[i * m + j + 1] += s1;
          g[i * m + j + 2] += s2;
          g[i * m + j + 3] += s3;
        }
        for (; j < m; j++) {
          const oj = j * d;
          let s0 = 0;
          for (let c = c0; c < c1; c++) s0 += b[oi + c] * b[oj + c];
          g[i * m + j] += s0;
        }
      }
    }
    for (let i = 0; i < m; i++) for (let j = 0; j < i; j++) g[i * m + j] = g[j * m + i];
    return g;
  }

  /** Eigenvalues of `B^T B` (descending; as many as rows held) and the eigenvectors of `B B^T`. */
  eigenvalues(): { values: Float64Array; vectors: Float64Array } {
    if (this.rows === 0) return { values: new Float64Array(0), vectors: new Float64Array(0) };
    const e = symEig(this.gram(), this.rows);
    for (let i = 0; i < e.values.length; i++) if (e.values[i] < 0) e.values[i] = 0;
    return e;
  }

  /** The FD shrink: keeps `sqrt(max(s_i^2 - s_ell^2, 0)) v_i^T` for the rows whose value stays positive. */
  shrink(): void {
    const m = this.rows, d = this.dim;
    if (m <= this.ell - 1) return;
    const { values, vectors } = this.eigenvalues();
    const delta = values[this.ell - 1];
    let keep = 0;
    while (keep < m && values[keep] - delta > 0) keep++;
    // New row i = sqrt((lambda_i - delta) / lambda_i) * u_i^T B, computed column block by column block in place.
    const coef = new Float64Array(keep * m);
    for (let i = 0; i < keep; i++) {
      const f = Math.sqrt((values[i] - delta) / values[i]);
      for (let k = 0; k < m; k++) coef[i * m + k] = vectors[k * m + i] * f;
    }
    const b = this.buf;
    const tmp = new Float64Array(keep * BLOCK);
    for (let c0 = 0; c0 < d; c0 += BLOCK) {
      const w = Math.min(d, c0 + BLOCK) - c0;
      tmp.fill(0);
      for (let i = 0; i < keep; i++) {
        const ot = i * BLOCK;
        let k = 0;
        // Four source rows at a time: one load and store of tmp per four multiply-adds.
        for (; k + 3 < m; k += 4) {
          const a0 = coef[i * m + k], a1 = coef[i * m + k + 1], a2 = coef[i * m + k + 2], a3 = coef[i * m + k + 3];
          const o0 = k * d + c0, o1 = o0 + d, o2 = o1 + d, o3 = o2 + d;
          for (let c = 0; c < w; c++) tmp[ot + c] += a0 * b[o0 + c] + a1 * b[o1 + c] + a2 * b[o2 + c] + a3 * b[o3 + c];
        }
        for (; k < m; k++) {
          const a = coef[i * m + k], ob = k * d + c0;
          for (let c = 0; c < w; c++) tmp[ot + c] += a * b[ob + c];
        }
      }
      for (let i = 0; i < keep; i++) b.set(tmp.subarray(i * BLOCK, i * BLOCK + w), i * d + c0);
    }
    b.fill(0, keep * d, m * d);
    this.rows = keep;
    this.delta += delta;
    this.shrinks++;
  }

  /** Folds in another sketch's rows (in order) and its shrinkage, as FD's merge does. */
  merge(other: FdSketch): void {
    if (other.dim !== this.dim || other.ell !== this.ell) {
      throw new Error(
        `Cannot merge Frequent Directions sketches of different shape: current value is ${other.ell}x${other.dim}, expected ${this.ell}x${this.dim}`,
      );
    }
    const n0 = this.n;
    for (let r = 0; r < other.rows; r++) {
      this.slot().set(other.buf.subarray(r * other.dim, (r + 1) * other.dim));
      this.commit(0);
    }
    this.n = n0 + other.n;
    this.delta += other.delta;
    this.shrinks += other.shrinks;
  }

  /** A serializable snapshot (only the rows held are stored). */
  state(): FdState {
    return {
      ell: this.ell,
      dim: this.dim,
      rows: this.rows,
      n: this.n,
      delta: this.delta,
      shrinks: this.shrinks,
      buf: this.buf.slice(0, this.rows * this.dim),
    };
  }

  /** Restores a sketch from {@linkcode state}. */
  static from(s: FdState): FdSketch {
    const f = new FdSketch(s.ell, s.dim);
    f.buf = new Float64Array(Math.max(s.rows, Math.min(2 * s.ell, 4)) * s.dim);
    f.buf.set(s.buf);
    f.rows = s.rows;
    f.n = s.n;
    f.delta = s.delta;
    f.shrinks = s.shrinks;
    return f;
  }
}
