/**
 * `--neurons SPEC`: analyse a subset of every layer's neurons, for every estimator (as the paper's code takes the
 * first 64 CLS neurons of each BERT layer; docs/science.md section 1). Like `--layers`, the selection happens on
 * the host as batches are read, so estimators see narrower layers; the result tables' neuron indices
 * (`neuron`, `neuron_a`, `neuron_b` beside `layer`, `layer_a`, `layer_b`) are mapped back to the layer's own indices
 * at the end.
 *
 * SPEC: comma-separated items, each an index `i` or a half-open range `a:b` (`a` defaults to 0, `b` to the layer's
 * width; a range is clipped to the width as a Python slice is); the union, in increasing order. Only
 * `activations/v1` streams have neurons.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { neuronIndices, parseNeuronSpec } from "./neurons.ts";
 * const spec = parseNeuronSpec("0:3,7,5:");
 * assert.deepEqual([...neuronIndices(spec, 8, "fc1")], [0, 1, 2, 5, 6, 7]);
 * assert.deepEqual([...neuronIndices(parseNeuronSpec(":64"), 10, "fc1")], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
 * ```
 *
 * @module
 */
import * as arrow from "apache-arrow";
import type { Batch } from "../../schemas/batch.ts";
import { InputError, show } from "../../schemas/errors.ts";

/** A parsed SPEC: single indices and half-open ranges (`hi` null: to the end). */
export interface NeuronSpec {
  text: string;
  items: { lo: number; hi: number | null; single: boolean }[];
}

/** Parses SPEC; throws a one-line error on bad syntax. */
export function parseNeuronSpec(text: string): NeuronSpec {
  const items: NeuronSpec["items"] = [];
  const int = (s: string) => /^\d+$/.test(s) ? Number(s) : NaN;
  for (const part of text.split(",")) {
    const p = part.trim();
    const m = /^(\d*):(\d*)$/.exec(p);
    const lo = m ? (m[1] === "" ? 0 : int(m[1])) : int(p);
    const hi = m ? (m[2] === "" ? null : int(m[2])) : lo + 1;
    if (!Number.isSafeInteger(lo) || (hi !== null && !Number.isSafeInteger(hi)) || (hi !== null && hi <= lo)) {
      throw new InputError(
        `Cannot use --neurons as each item must be an index i or a range a:b with a < b: current value is ${show(p)}`,
      );
    }
    items.push({ lo, hi, single: !m });
  }
  return { text, items };
}

/** The neurons of a layer of `width` that SPEC selects, in increasing order; an error when none or out of range. */
export function neuronIndices(spec: NeuronSpec, width: number, layer: string): Int32Array {
  const keep = new Uint8Array(width);
  for (const it of spec.items) {
    if (it.single && it.lo >= width) {
      throw new InputError(
        `Cannot select neuron ${it.lo} (--neurons) as layer ${show(layer)} has ${width} neurons: current value is ${
          show(spec.text)
        }`,
      );
    }
    keep.fill(1, Math.min(it.lo, width), Math.min(it.hi ?? width, width));
  }
  const out: number[] = [];
  keep.forEach((k, j) => k && out.push(j));
  if (out.length === 0) {
    throw new InputError(
      `Cannot select neurons (--neurons) as none of layer ${show(layer)}'s ${width} neurons is in the selection: ` +
        `current value is ${show(spec.text)}`,
    );
  }
  return Int32Array.from(out);
}

/**
 * Keeps the selected neurons of every tensor column of an activations batch (copies); `chosen` caches each
 * layer's indices (and is what {@linkcode originalNeuronIndices} maps back with).
 */
export function selectNeurons(batch: Batch, spec: NeuronSpec | null, chosen: Map<string, Int32Array>): Batch {
  if (!spec) return batch;
  if (batch.kind !== "activations/v1") {
    throw new InputError(
      `Cannot use --neurons as the input's tensors are not neurons (only activations/v1 has them): current value is ${batch.kind}`,
      { file: batch.file, batch: batch.index },
    );
  }
  let copied = 0;
  const columns = batch.columns.map((c) => {
    let idx = chosen.get(c.name);
    if (!idx) chosen.set(c.name, idx = neuronIndices(spec, c.width, c.name));
    if (idx.length === c.width) return c;
    copied++;
    const w = idx.length, values = new Float32Array(batch.numRows * w);
    for (let r = 0; r < batch.numRows; r++) {
      const src = r * c.width, dst = r * w;
      for (let j = 0; j < w; j++) values[dst + j] = c.values[src + idx[j]];
    }
    return { ...c, width: w, values };
  });
  // the copies belong to this batch alone; columns kept whole still view the input's buffers
  return { ...batch, columns, owned: batch.owned || copied === columns.length };
}

const INDEX_COLUMNS: [string, string][] = [["layer", "neuron"], ["layer_a", "neuron_a"], ["layer_b", "neuron_b"]];

/**
 * The result tables with every neuron index column (`neuron`, `neuron_a`, `neuron_b`, read with the layer column
 * beside it) mapped from its position in the selection to the layer's own index; other tables unchanged.
 */
export function originalNeuronIndices(
  tables: Record<string, arrow.Table>,
  chosen: Map<string, Int32Array>,
): Record<string, arrow.Table> {
  const out: Record<string, arrow.Table> = {};
  for (const [name, t] of Object.entries(tables)) {
    const pairs = INDEX_COLUMNS.filter(([l, j]) => t.getChild(l) && t.getChild(j));
    if (pairs.length === 0 || t.numRows === 0) {
      out[name] = t;
      continue;
    }
    const mapped = new Map<string, arrow.Vector>();
    for (const [l, j] of pairs) {
      const layer = t.getChild(l)!, index = t.getChild(j)!;
      const b = arrow.makeBuilder({ type: index.type, nullValues: [null, undefined] });
      for (let i = 0; i < t.numRows; i++) {
        const v = index.get(i), idx = chosen.get(String(layer.get(i)));
        b.append(v === null || !idx ? v : idx[Number(v)]);
      }
      mapped.set(j, b.finish().toVector());
    }
    const vectors = t.schema.fields.map((f) => mapped.get(f.name) ?? t.getChild(f.name)!);
    const data = arrow.makeData({
      type: new arrow.Struct(t.schema.fields),
      length: t.numRows,
      nullCount: 0,
      children: vectors.map((v) => v.data.length === 1 ? v.data[0] : concatData(v)),
    });
    out[name] = new arrow.Table(t.schema, [new arrow.RecordBatch(t.schema, data)]);
  }
  return out;
}

/** One Data of a chunked vector (a table of several batches). */
function concatData(v: arrow.Vector): arrow.Data {
  const b = arrow.makeBuilder({ type: v.type, nullValues: [null, undefined] });
  for (let i = 0; i < v.length; i++) b.append(v.get(i));
  return b.finish().toVector().data[0];
}
