import assert from "node:assert/strict";
import { readInput, readSource, readStream } from "./source.ts";
import { ByteSource } from "./bytes.ts";
import type { FrameState } from "./framer.ts";
import { share, stepBatch, streamBytes, writeDump } from "../tests/_live.ts";
import { InputError } from "./errors.ts";
import { makeRecordBatch, writeBatches } from "../pipeline/producers/produce.ts";

Deno.test("readStream: any chunking of the bytes gives the batches readInput gives", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = await writeDump(dir, 3);
    const want = [];
    for await (const { batch } of readInput(path)) want.push(batch);
    const bytes = await Deno.readFile(path);
    const odd = async function* () {
      for (let at = 0; at < bytes.length; at += 997) yield bytes.subarray(at, at + 997);
    };
    const got = [];
    for await (const { batch } of readStream(odd(), path)) got.push(batch);
    assert.equal(got.length, 3);
    for (let i = 0; i < 3; i++) {
      assert.deepEqual([...got[i].step!], [...want[i].step!]);
      assert.deepEqual(got[i].columns.map((c) => [...c.values]), want[i].columns.map((c) => [...c.values]));
    }
    await assert.rejects(async () => {
      for await (const _ of readStream((async function* () {})(), "empty")) { /* none */ }
    }, /file 'empty': Cannot read input as it is empty/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readSource (socket): a batch is yielded as soon as its message is complete (no look-ahead)", async () => {
  const chunks = await streamBytes([stepBatch(0, share(0, 1)), stepBatch(1, share(0, 1))]);
  // A source that hangs after the first chunk (schema + batch 0), like a socket waiting for the next batch.
  let release!: () => void;
  const hold = new Promise<void>((r) => (release = r));
  async function* source() {
    yield chunks[0];
    await hold;
    for (const c of chunks.slice(1)) yield c;
  }
  const state: FrameState = { messages: 0, batches: 0, eos: false, partialBytes: 0, refused: null };
  const socket = { maxMessageBytes: 1 << 20, limitName: "--max-batch-bytes", state };
  const it = readSource(ByteSource.fromChunks(source()), "s", { socket });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const first = await Promise.race([
    it.next(),
    new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error("batch 0 held back")), 5000))),
  ]);
  clearTimeout(timer);
  assert.equal(first.done, false);
  assert.deepEqual([...first.value!.batch.step!], Array(40).fill(0n));
  release();
  const second = await it.next();
  assert.deepEqual([...second.value!.batch.step!], Array(40).fill(1n));
  assert.equal((await it.next()).done, true);
  assert.equal(state.eos, true);
});

Deno.test("readSource (socket): a stream cut mid-message is reported with the bytes received", async () => {
  const chunks = await streamBytes([stepBatch(0, share(0, 1))]);
  async function* cut() {
    yield chunks[0].subarray(0, chunks[0].length - 10);
  }
  const state: FrameState = { messages: 0, batches: 0, eos: false, partialBytes: 0, refused: null };
  await assert.rejects(async () => {
    const socket = { maxMessageBytes: 1 << 20, limitName: "--max-batch-bytes", state };
    for await (const _ of readSource(ByteSource.fromChunks(cut()), "s", { socket })) { /* none */ }
  }, (e: unknown) => e instanceof InputError && /disconnected mid-message/.test(e.message));
  assert.equal(state.messages, 1); // the schema
  assert.ok(state.partialBytes > 0 && state.partialBytes < chunks[0].length);
});

/** The bytes of a small stream (or file) of `steps` batches, as infotap's writer makes them. */
async function dumpBytes(steps: number[], format: "stream" | "file" = "stream"): Promise<Uint8Array> {
  const chunks = format === "stream" ? await streamBytes(steps.map((s) => stepBatch(s, share(0, 1)))) : [
    await Deno.readFile(
      await (async () => {
        const path = await Deno.makeTempFile({ suffix: ".arrow" });
        await writeBatches(
          path,
          steps.map((s) => stepBatch(s, share(0, 1))),
        );
        return path;
      })(),
    ),
  ];
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) out.set(c, (at += c.length) - c.length);
  return out;
}

async function readAll(bytes: Uint8Array, label = "in.arrows"): Promise<{ steps: bigint[]; error: string | null }> {
  const steps: bigint[] = [];
  try {
    for await (
      const { batch } of readStream(
        (async function* () {
          yield bytes;
        })(),
        label,
      )
    ) steps.push(batch.step![0]);
    return { steps, error: null };
  } catch (e) {
    return { steps, error: (e as Error).message };
  }
}

Deno.test("readStream: concatenated streams of one schema are read on; anything else after the end is an error naming the byte", async () => {
  const a = await dumpBytes([0, 1]), b = await dumpBytes([2]);
  const cat = (...parts: Uint8Array[]) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) out.set(p, (at += p.length) - p.length);
    return out;
  };
  assert.deepEqual(await readAll(cat(a, b, a)), { steps: [0n, 1n, 2n, 0n, 1n], error: null });
  const garbage = await readAll(cat(a, new TextEncoder().encode("trailing text")));
  assert.deepEqual(garbage.steps, [0n, 1n]);
  assert.match(
    garbage.error!,
    new RegExp(
      `batch 2: .*the bytes after the end-of-stream marker at byte ${a.length - 8} are not another Arrow stream`,
    ),
  );
  // another schema: a layer of another width
  const other = await streamBytes([makeRecordBatch({
    kind: "activations/v1",
    sampleId: new BigInt64Array([0n]),
    tensors: [{ name: "fc1", width: 7, values: new Float32Array(7) }],
  })]);
  const mixed = await readAll(cat(a, ...other));
  assert.deepEqual(mixed.steps, [0n, 1n]);
  assert.match(
    mixed.error!,
    new RegExp(`Cannot read the stream concatenated after byte ${a.length} as its schema differs`),
  );
});

Deno.test("readInput: a truncated .arrow file keeps its complete batches (read as a stream when the footer is gone)", async () => {
  const file = await dumpBytes([0, 1, 2], "file");
  const dir = await Deno.makeTempDir();
  try {
    const full = await readAll(file, "f.arrow");
    assert.deepEqual(full, { steps: [0n, 1n, 2n], error: null });
    for (const keep of [file.length - 1, file.length - 20, file.length >> 1]) {
      await Deno.writeFile(`${dir}/cut.arrow`, file.subarray(0, keep));
      const steps: bigint[] = [];
      await assert.rejects(async () => {
        for await (const { batch } of readInput(`${dir}/cut.arrow`)) steps.push(batch.step![0]);
      }, /Cannot read the record batch as the input is truncated \(earlier batches are kept\)/);
      // cut in the footer: every batch; cut halfway: the complete batches before the cut
      if (keep > file.length >> 1) assert.deepEqual(steps, [0n, 1n, 2n]);
      else assert.ok(steps.length >= 1 && steps.length < 3 && steps.every((s, i) => s === BigInt(i)), `${steps}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
