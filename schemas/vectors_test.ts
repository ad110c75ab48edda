/**
 * The shared wire-format vectors (schemas/vectors/, spec in vectors.json), checked here and by the Python package
 * (python/tests/test_wire_vectors.py): the TypeScript writer still writes `<kind>.ts.arrows` byte for byte; the
 * Python writer's `<kind>.py.arrows` validates, decodes to the spec's values, has the same schema (types,
 * nullability, field and schema metadata) and the same record-batch body bytes as the TypeScript one; the Jacobian
 * sketch still gives the bits of sketch.json. `INFOTAP_WRITE_VECTORS=1` rewrites the TypeScript files.
 *
 * @module
 */
import assert from "node:assert/strict";
import * as arrow from "apache-arrow";
import { makeRecordBatch, writeBatches } from "../pipeline/producers/produce.ts";
import type { Kind } from "./batch.ts";
import { readInput } from "./source.ts";
import { sketchJacobian } from "./sketch.ts";

const DIR = new URL("./vectors/", import.meta.url);
const WRITE = Deno.env.get("INFOTAP_WRITE_VECTORS") === "1";

interface TensorSpec {
  name: string;
  width: number;
  bits: string[];
  metadata?: Record<string, string>;
}
interface VectorSpec {
  kind: Kind;
  sample_id: string[];
  step?: string[];
  label?: number[];
  draw?: number[];
  fisher?: "true" | "empirical";
  split?: string[];
  output?: number[];
  f0?: string[];
  target?: (string | null)[];
  tensors: TensorSpec[];
  metadata: Record<string, string>;
}

const spec = JSON.parse(await Deno.readTextFile(new URL("vectors.json", DIR))) as Record<string, VectorSpec>;
const KINDS = ["activations", "gradients", "jacobians"];

/** Float32 values from big-endian hex bit patterns (null: NaN, written as a null element). */
function floats(bits: (string | null)[]): Float32Array {
  const u = Uint32Array.from(bits, (b) => (b === null ? 0x7fc00000 : parseInt(b, 16)));
  return new Float32Array(u.buffer);
}

function hex(values: Float32Array): string[] {
  return Array.from(new Uint32Array(values.slice().buffer), (u) => u.toString(16).padStart(8, "0"));
}

function batchOf(v: VectorSpec): arrow.RecordBatch {
  return makeRecordBatch({
    kind: v.kind,
    sampleId: BigInt64Array.from(v.sample_id, BigInt),
    step: v.step ? BigInt64Array.from(v.step, BigInt) : undefined,
    label: v.label ? Int32Array.from(v.label) : undefined,
    draw: v.draw ? Int32Array.from(v.draw) : undefined,
    fisher: v.fisher,
    split: v.split,
    output: v.output ? Int32Array.from(v.output) : undefined,
    f0: v.f0 ? floats(v.f0) : undefined,
    target: v.target ? floats(v.target) : undefined,
    tensors: v.tensors.map((t) => ({ name: t.name, width: t.width, values: floats(t.bits), metadata: t.metadata })),
    metadata: v.metadata,
  });
}

/** The record-batch messages' bodies of an IPC stream (the bytes after each message's metadata). */
function bodies(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at + 8 <= bytes.length) {
    const metaLen = dv.getInt32(at + 4, true);
    if (metaLen === 0) break;
    const message = arrow.Message.decode(bytes.subarray(at + 8, at + 8 + metaLen));
    const start = at + 8 + metaLen, end = start + Number(message.bodyLength);
    if (message.headerType === arrow.MessageHeader.RecordBatch) out.push(bytes.subarray(start, end));
    at = end;
  }
  return out;
}

function describe(schema: arrow.Schema): unknown {
  return {
    fields: schema.fields.map((f) => ({
      name: f.name,
      type: String(f.type),
      nullable: f.nullable,
      metadata: [...f.metadata],
    })),
    metadata: [...schema.metadata],
  };
}

for (const name of KINDS) {
  const v = spec[name];
  Deno.test(`wire vectors: TypeScript writes ${name}.ts.arrows byte for byte`, async () => {
    const path = await Deno.makeTempFile({ suffix: ".arrows" });
    try {
      await writeBatches(path, [batchOf(v)]);
      const bytes = await Deno.readFile(path);
      if (WRITE) await Deno.writeFile(new URL(`${name}.ts.arrows`, DIR), bytes);
      assert.deepEqual(bytes, await Deno.readFile(new URL(`${name}.ts.arrows`, DIR)));
    } finally {
      await Deno.remove(path);
    }
  });

  Deno.test(`wire vectors: Python's ${name}.py.arrows validates, decodes to the spec and matches TypeScript's`, async () => {
    const pyUrl = new URL(`${name}.py.arrows`, DIR);
    const read = [];
    for await (const { batch } of readInput(pyUrl.pathname)) read.push(batch);
    assert.equal(read.length, 1);
    const b = read[0];
    assert.equal(b.kind, v.kind);
    assert.deepEqual([...b.sampleId].map(String), v.sample_id);
    assert.deepEqual(b.step ? [...b.step].map(String) : undefined, v.step);
    assert.deepEqual(b.label ? [...b.label] : undefined, v.label);
    assert.deepEqual(b.draw ? [...b.draw] : undefined, v.draw);
    assert.deepEqual(b.output ? [...b.output] : undefined, v.output);
    assert.deepEqual(b.split ? [...b.split].map((s) => (s === 0 ? "train" : "test")) : undefined, v.split);
    assert.deepEqual(b.f0 ? hex(b.f0) : undefined, v.f0);
    if (v.target) {
      assert.deepEqual(hex(b.target!).map((h, i) => (v.target![i] === null ? null : h)), v.target);
      assert.ok(v.target.every((t, i) => t !== null || Number.isNaN(b.target![i])));
    }
    assert.deepEqual(b.columns.map((c) => [c.name, c.width]), v.tensors.map((t) => [t.name, t.width]));
    for (const [i, t] of v.tensors.entries()) {
      assert.deepEqual(hex(b.columns[i].values), t.bits);
      assert.deepEqual(Object.fromEntries(b.columns[i].metadata), t.metadata ?? {});
    }
    // Same schema as the TypeScript writer's vector, and the same record-batch body bytes when no column has
    // nulls or strings (for those, apache-arrow's builders pad validity bitmaps to 64 bytes and offsets to 8,
    // where pyarrow pads both to 8: the values above are the same bits either way).
    const py = await Deno.readFile(pyUrl), ts = await Deno.readFile(new URL(`${name}.ts.arrows`, DIR));
    const schemaOf = (bytes: Uint8Array) => arrow.tableFromIPC(bytes).schema;
    assert.deepEqual(describe(schemaOf(py)), describe(schemaOf(ts)));
    assert.equal(bodies(py).length, 1);
    if (!v.target && !v.split) assert.deepEqual(bodies(py), bodies(ts));
  });
}

interface SketchCase {
  seed: number;
  name: string;
  rows: number;
  width: number;
  m: number;
  bits?: string[];
}

/** The sketch cases' inputs: `((i * 7919) % 1000 - 500) / 256` (exact in float32, the same in both languages). */
function sketchInput(c: SketchCase): Float32Array {
  return Float32Array.from({ length: c.rows * c.width }, (_, i) => (((i * 7919) % 1000) - 500) / 256);
}

Deno.test("wire vectors: sketchJacobian gives the bits of sketch.json", async () => {
  const url = new URL("sketch.json", DIR);
  const cases = JSON.parse(await Deno.readTextFile(url)) as { about: string; cases: SketchCase[] };
  for (const c of cases.cases) {
    const bits = hex(sketchJacobian(sketchInput(c), c.width, c.m, c.seed, c.name));
    if (WRITE) c.bits = bits;
    assert.equal(bits.length, c.rows * c.m);
    assert.deepEqual(bits, c.bits, `seed ${c.seed}, ${c.name}, ${c.rows} x ${c.width} -> ${c.m}`);
  }
  if (WRITE) await Deno.writeTextFile(url, JSON.stringify(cases, null, 2) + "\n");
});
