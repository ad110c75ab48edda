/**
 * The matrix view the linear-algebra kernels take: a float64 array read as a `rows x cols` matrix, row-major with a
 * stride (so that a block of a larger matrix is a view, not a copy), optionally transposed. Docs:
 * plugins/kernels/linalg/mod.ts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { at, block, matrix, transpose } from "./matrix.ts";
 * const m = matrix(new Float64Array([1, 2, 3, 4, 5, 6]), 2, 3); // [[1, 2, 3], [4, 5, 6]]
 * const b = block(m, 0, 1, 2, 2); // [[2, 3], [5, 6]]
 * assert.equal(at(b, 1, 0), 5);
 * assert.equal(at(transpose(b), 0, 1), 5);
 * ```
 *
 * @module
 */

/** A `rows x cols` view of `data`: element `(i, j)` at `data[offset + i * stride + j]` (`[offset + j * stride + i]` when transposed). */
export interface Matrix {
  readonly data: Float64Array;
  readonly rows: number;
  readonly cols: number;
  /** Elements from one stored row to the next. */
  readonly stride: number;
  /** Index in `data` of element `(0, 0)`. */
  readonly offset: number;
  /** The view is the transpose of the stored rows (a stored row is a column). */
  readonly transposed: boolean;
}

/** `data` as a row-major `rows x cols` matrix (contiguous rows). */
export function matrix(data: Float64Array, rows: number, cols: number = rows): Matrix {
  if (!(rows >= 0 && cols >= 0 && rows * cols <= data.length)) {
    throw new RangeError(
      `Cannot view ${data.length} values as a ${rows} x ${cols} matrix as they are too few: current value is ${data.length}`,
    );
  }
  return { data, rows, cols, stride: cols, offset: 0, transposed: false };
}

/** Rows `i0 .. i0 + rows - 1`, columns `j0 .. j0 + cols - 1` of `m` (a view of the same data). */
export function block(m: Matrix, i0: number, j0: number, rows: number, cols: number): Matrix {
  if (!(i0 >= 0 && j0 >= 0 && rows >= 0 && cols >= 0 && i0 + rows <= m.rows && j0 + cols <= m.cols)) {
    throw new RangeError(
      `Cannot take a ${rows} x ${cols} block at (${i0}, ${j0}) as it leaves the ${m.rows} x ${m.cols} matrix: current value is (${i0}, ${j0})`,
    );
  }
  const [r, c] = m.transposed ? [j0, i0] : [i0, j0];
  return { ...m, rows, cols, offset: m.offset + r * m.stride + c };
}

/** The transpose of `m` (a view of the same data). */
export function transpose(m: Matrix): Matrix {
  return { ...m, rows: m.cols, cols: m.rows, transposed: !m.transposed };
}

/** Element `(i, j)` of `m`. */
export function at(m: Matrix, i: number, j: number): number {
  return m.data[m.offset + (m.transposed ? j * m.stride + i : i * m.stride + j)];
}

/** A Float64Array of `n` zeros in shared memory (worker threads can read and write it). */
export function sharedF64(n: number): Float64Array {
  return new Float64Array(new SharedArrayBuffer(Math.max(8, n * 8)), 0, n);
}

/** True when the array lives in a SharedArrayBuffer (worker threads see it in place). */
export function isShared(x: { buffer: ArrayBufferLike }): boolean {
  return x.buffer instanceof SharedArrayBuffer;
}
