import assert from "node:assert/strict";
import * as arrow from "apache-arrow";
import { combineBatches, concatTables, tableFromColumns } from "./table.ts";

/** The reference: every column through the builder, value by value (what `toParquet` did before). */
function viaBuilder(table: arrow.Table): arrow.Table {
  const children = table.schema.fields.map((f) => {
    const col = table.getChild(f.name)!;
    const b = arrow.makeBuilder({ type: f.type, nullValues: [null, undefined] });
    for (let i = 0; i < table.numRows; i++) b.append(col.get(i));
    return b.finish().toVector().data[0];
  });
  const data = arrow.makeData({ type: new arrow.Struct(table.schema.fields), length: table.numRows, children });
  return new arrow.Table(table.schema, [new arrow.RecordBatch(table.schema, data)]);
}

Deno.test("combineBatches: one batch with the builder's values and IPC bytes (dense, sliced and nullable columns)", () => {
  const part = (k: number, n: number, nulls: boolean) =>
    tableFromColumns([
      { name: "step", type: "int64", values: Array.from({ length: n }, (_, i) => BigInt(k * 100 + i)) },
      { name: "layer", type: "utf8", values: Array.from({ length: n }, (_, i) => (i % 3 ? `fc${k}-${i}` : "")) },
      { name: "neuron", type: "int32", values: Array.from({ length: n }, (_, i) => i - k) },
      {
        name: "h",
        type: "float64",
        values: Array.from({ length: n }, (_, i) => (nulls && i % 4 === 1 ? null : i / 7)),
      },
      { name: "h32", type: "float32", values: Array.from({ length: n }, (_, i) => i * 0.25) },
      { name: "ok", type: "bool", values: Array.from({ length: n }, (_, i) => i % 2 === 0) },
      { name: "note", type: "utf8", values: Array.from({ length: n }, (_, i) => (nulls && i === 2 ? null : `n${i}`)) },
    ], { source: "test" });
  // a sliced batch: its string offsets do not start at 0
  const sliced = part(2, 9, false);
  const slicedTable = new arrow.Table(sliced.schema, [sliced.batches[0].slice(3, 8)]);
  for (
    const [label, tables] of [
      ["dense", [part(0, 5, false), part(1, 4, false), slicedTable]],
      ["with nulls", [part(0, 6, true), slicedTable, part(3, 5, true)]],
    ] as const
  ) {
    const t = concatTables([...tables]);
    assert.ok(t.batches.length === 3, label);
    const one = combineBatches(t);
    assert.equal(one.batches.length, 1, label);
    assert.equal(one.numRows, t.numRows, label);
    assert.deepEqual(one.toArray().map((r) => r.toJSON()), t.toArray().map((r) => r.toJSON()), label);
    assert.deepEqual(one.schema.metadata, t.schema.metadata, label);
    assert.deepEqual(arrow.tableToIPC(one, "stream"), arrow.tableToIPC(viaBuilder(t), "stream"), label);
  }
  const single = part(0, 3, false);
  assert.equal(combineBatches(single), single);
});
