import assert from "node:assert/strict";
import { readInput, readSource, readStream } from "./source.ts";
import { ByteSource } from "./bytes.ts";
import type { FrameState } from "./framer.ts";
import { share, stepBatch, streamBytes, writeDump } from "../tests/_live.ts";
import { InputError } from "./errors.ts";

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
