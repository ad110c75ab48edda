/**
 * Rows of a result table as aligned text lines: what `analyze` prints after a run and `serve` after each
 * window (the hosts choose the columns and rows; numbers are right-aligned, non-integers to 4 decimals).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { textTable } from "./text_table.ts";
 * import { tableFromColumns } from "./table.ts";
 * const t = tableFromColumns([
 *   { name: "layer", type: "utf8", values: ["fc1", "fc2"] },
 *   { name: "entropy_mean", type: "float64", values: [1.5, null] },
 * ]);
 * assert.deepEqual(textTable(t, ["layer", "entropy_mean"], [0, 1]), [
 *   "layer  entropy_mean",
 *   "  fc1        1.5000",
 *   "  fc2             -",
 * ]);
 * assert.deepEqual(textTable(t, ["layer"], [1], { indent: "  ", firstLeft: true }), ["  layer", "  fc2  "]);
 * ```
 *
 * @module
 */
import type * as arrow from "apache-arrow";

/** A cell as text: integers as they are, other numbers to 4 decimals, null as `-`. */
export function formatCell(x: unknown): string {
  if (typeof x === "number") return Number.isInteger(x) ? String(x) : x.toFixed(4);
  if (x === null || x === undefined) return "-";
  return String(x);
}

/**
 * The header and the given rows of `columns`, each cell padded to its column's width and joined by two
 * spaces; cells are right-aligned, except the first column's when `firstLeft`; each line starts with `indent`.
 */
export function textTable(
  t: arrow.Table,
  columns: string[],
  rows: number[],
  { indent = "", firstLeft = false }: { indent?: string; firstLeft?: boolean } = {},
): string[] {
  const cells = [columns, ...rows.map((i) => columns.map((n) => formatCell(t.getChild(n)!.get(i))))];
  const widths = columns.map((_, j) => Math.max(...cells.map((r) => r[j].length)));
  return cells.map((r) =>
    indent + r.map((c, j) => (j === 0 && firstLeft ? c.padEnd(widths[j]) : c.padStart(widths[j]))).join("  ")
  );
}
