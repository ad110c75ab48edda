import assert from "node:assert/strict";
import { serve } from "./serve.ts";
import { Registry } from "../core/registry.ts";
import { builtinPlugins } from "../../plugins/mod.ts";
import { makeRecordBatch } from "../producers/produce.ts";
import { connectProducer } from "../producers/connect.ts";
import { analyze } from "../analyze/run.ts";
import { assertTablesClose, rowsOf } from "../../tests/_util.ts";
import {
  exists,
  OPTIONS,
  readParquetFile,
  readText,
  ROWS,
  share,
  stepBatch,
  streamBytes,
  waitFor,
  writeAll,
  writeDump,
} from "../../tests/_live.ts";

const quiet = () => {};

Deno.test("serve: two concurrent producers give the tables of analyze --by-step; snapshots appear while they run", async () => {
  const dir = await Deno.makeTempDir();
  const out = `${dir}/live`;
  const server = await serve({ listen: "127.0.0.1:0", out, options: OPTIONS, snapshotEvery: 2, log: quiet });
  try {
    const [a, b] = await Promise.all([connectProducer({ port: server.port }), connectProducer({ port: server.port })]);
    const send = async (p: typeof a, who: number, steps: number[]) => {
      for (const s of steps) await p.write(stepBatch(s, share(who, 2)));
    };
    await Promise.all([send(a, 0, [0, 1, 2, 3, 4]), send(b, 1, [0, 1, 2, 3, 4])]);
    // Both producers are at step 4: windows 0 (steps 0-1) and 1 (steps 2-3) are closed while they still run.
    await waitFor(() => server.snapshots >= 2, 10_000, "two snapshots");
    assert.equal(server.snapshots, 2);
    const part = await readParquetFile(`${out}/layer_summary/part-00000001.parquet`);
    assert.deepEqual([...new Set(rowsOf(part).map((r) => r.step))], ["2", "3"]);
    const progress = JSON.parse(await Deno.readTextFile(`${out}/checkpoint/progress.json`));
    assert.deepEqual(progress.windows, [0, 1]);
    assert.equal(progress.next_step, 4);
    await Promise.all([send(a, 0, [5, 6, 7]), send(b, 1, [5, 6, 7])]);
    assert.deepEqual(await a.close(), { batches: 8, rows: 8 * ROWS / 2 });
    assert.deepEqual(await b.close(), { batches: 8, rows: 8 * ROWS / 2 });
    const run = await server.stop();
    assert.equal(run.complete, true);
    assert.equal(run.rows, 8 * ROWS);
    assert.equal(run.snapshots, 4);
    assert.deepEqual((run.producers as { status: string }[]).map((p) => p.status), ["ended", "ended"]);

    const ref = await analyze({ inputs: [await writeDump(dir, 8)], byStep: true, options: OPTIONS, out: `${dir}/ref` });
    assert.ok(ref.complete);
    for (const name of ["neuron_entropy", "layer_summary"]) {
      const live = await readParquetFile(`${out}/${name}.parquet`);
      const want = await readParquetFile(`${dir}/ref/${name}.parquet`);
      assert.ok(live.numRows > 0);
      assertTablesClose(live, want, 0, 0, name);
    }
    // The part files together hold the same rows as the final table.
    const parts = [];
    for (let k = 0; k < 4; k++) {
      parts.push(...rowsOf(await readParquetFile(`${out}/neuron_entropy/part-0000000${k}.parquet`)));
    }
    assert.deepEqual(parts, rowsOf(await readParquetFile(`${out}/neuron_entropy.parquet`)));
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: a producer that disconnects mid-batch loses only that batch (reported in run.json)", async () => {
  const dir = await Deno.makeTempDir();
  const server = await serve({ listen: "127.0.0.1:0", out: dir, options: OPTIONS, log: quiet });
  try {
    const chunks = await streamBytes([stepBatch(0, share(0, 1)), stepBatch(1, share(0, 1)), stepBatch(2, share(0, 1))]);
    // chunks: [schema + batch 0], [batch 1], [batch 2], [end of stream]
    assert.equal(chunks.length, 4);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    try {
      await writeAll(conn, chunks[0]);
      await writeAll(conn, chunks[1]);
      await writeAll(conn, chunks[2].subarray(0, 100));
    } finally {
      conn.close();
    }
    await waitFor(() => server.producers[0]?.status === "disconnected mid-batch", 10_000, "the disconnect");
    const run = await server.stop();
    const [p] = run.producers as { status: string; partial_bytes: number; rows: number; batches: number }[];
    assert.equal(p.status, "disconnected mid-batch");
    assert.equal(p.partial_bytes, 100);
    assert.equal(p.batches, 2);
    assert.equal(run.lost_partial_batches, 1);
    assert.equal(run.rows, 2 * ROWS);
    const t = await readParquetFile(`${dir}/neuron_entropy.parquet`);
    assert.deepEqual([...new Set(rowsOf(t).map((r) => r.samples))], [String(2 * ROWS)]);
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: a batch over --max-batch-bytes is refused with a clear error; others go on", async () => {
  const dir = await Deno.makeTempDir();
  const server = await serve({ listen: "127.0.0.1:0", out: dir, options: OPTIONS, maxBatchBytes: 2048, log: quiet });
  try {
    const big = await connectProducer({ port: server.port });
    await assert.rejects(
      async () => {
        await big.write(stepBatch(0, share(0, 1))); // 40 rows x 10 floats: about 2.3 KB
        await big.close();
      },
      /Cannot accept record batch as it exceeds --max-batch-bytes 2048: current value is \d+ bytes/,
    );
    big.abort();
    const small = await connectProducer({ port: server.port });
    await small.write(stepBatch(0, [0, 1, 2]));
    assert.deepEqual(await small.close(), { batches: 1, rows: 3 });
    const run = await server.stop();
    const ps = run.producers as { status: string; error: string }[];
    assert.equal(ps[0].status, "refused");
    assert.match(ps[0].error, /--max-batch-bytes 2048/);
    assert.equal(ps[1].status, "ended");
    assert.equal(run.rows, 3);
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: tokens: a wrong or missing token is refused; off loopback a token is required", async () => {
  const dir = await Deno.makeTempDir();
  await assert.rejects(
    () => serve({ listen: "0.0.0.0:0", out: dir, options: OPTIONS, log: quiet }),
    /Cannot listen on a non-loopback address without --token/,
  );
  const server = await serve({ listen: "127.0.0.1:0", out: dir, options: OPTIONS, token: "s3cret", log: quiet });
  try {
    await assert.rejects(() => connectProducer({ port: server.port, token: "wrong" }), /token is wrong/);
    // A producer that skips the handshake and sends Arrow bytes directly.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    let answer: string;
    try {
      await writeAll(conn, (await streamBytes([stepBatch(0, [0])]))[0]);
      answer = await readText(conn);
    } finally {
      conn.close();
    }
    assert.match(answer, /^ERR Cannot accept producer as this server requires a token/);
    const ok = await connectProducer({ port: server.port, token: "s3cret" });
    await ok.write(stepBatch(0, [0, 1]));
    assert.deepEqual(await ok.close(), { batches: 1, rows: 2 });
    const run = await server.stop();
    assert.deepEqual((run.producers as { status: string }[]).map((p) => p.status), ["refused", "refused", "ended"]);
    assert.equal(run.rows, 2);
    assert.ok(!JSON.stringify(run).includes("s3cret"));
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: refuses estimators that need a first pass, telling the user to pass --range", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      () => serve({ listen: "127.0.0.1:0", out: dir, log: quiet }),
      /\[entropy\] Cannot run estimator live as it needs a first pass .*pass --range LO,HI/,
    );
    assert.equal(await exists(`${dir}/run.json`), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: WebSocket producers send the stream as binary messages, with the token as a query parameter", async () => {
  const dir = await Deno.makeTempDir();
  const server = await serve({
    listen: "127.0.0.1:0",
    ws: "127.0.0.1:0",
    out: dir,
    options: OPTIONS,
    token: "t0k",
    log: quiet,
  });
  const talk = async (token: string, bytes: Uint8Array[]) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.wsPort}/?token=${token}`);
    const answers: string[] = [];
    const closed = new Promise<void>((res) => (ws.onclose = () => res()));
    ws.onmessage = (e) => answers.push(String(e.data));
    await new Promise<void>((res, rej) => {
      ws.onopen = () => res();
      ws.onerror = () => rej(new Error("ws error"));
    });
    for (const b of bytes) ws.send(b);
    // The stream's end-of-stream marker ends it; the server answers and closes.
    await closed;
    return answers;
  };
  try {
    const chunks = await streamBytes([stepBatch(0, share(0, 1)), stepBatch(1, share(0, 1))]);
    // Split anywhere: one byte, then the rest.
    const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) all.set(c, (at += c.length) - c.length);
    assert.deepEqual(await talk("t0k", [all.subarray(0, 1), all.subarray(1, 700), all.subarray(700)]), [
      `OK 2 ${2 * ROWS}`,
    ]);
    const bad = await talk("nope", [all]);
    assert.match(bad[0], /^ERR Cannot accept producer as its token is wrong/);
    const run = await server.stop();
    assert.equal(run.rows, 2 * ROWS);
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: a WebSocket producer that outruns the server is cut off with a clear error (no unbounded queue)", async () => {
  const dir = await Deno.makeTempDir();
  const server = await serve({
    listen: null,
    ws: "127.0.0.1:0",
    out: dir,
    options: OPTIONS,
    maxBatchBytes: 1024,
    log: quiet,
  });
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${server.wsPort}/`);
    const answers: string[] = [];
    const closed = new Promise<void>((res) => (ws.onclose = () => res()));
    ws.onmessage = (e) => answers.push(String(e.data));
    await new Promise<void>((res) => (ws.onopen = () => res()));
    ws.send(new Uint8Array(3 << 20)); // more than 2 x 1024 + 1 MiB waiting at once
    await closed;
    assert.match(answers[0], /^ERR Cannot buffer the WebSocket producer's messages as more than \d+ bytes are waiting/);
    const run = await server.stop();
    assert.equal((run.producers as { status: string }[])[0].status, "error");
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: a batch with steps before the first open step, or far past the highest, is refused with a reply", async () => {
  const dir = await Deno.makeTempDir();
  const server = await serve({ listen: "127.0.0.1:0", out: dir, options: OPTIONS, snapshotEvery: 2, log: quiet });
  try {
    const a = await connectProducer({ port: server.port });
    for (let s = 0; s <= 4; s++) await a.write(stepBatch(s, share(0, 1)));
    await waitFor(() => server.snapshots === 2, 10_000, "windows 0 and 1 to close");
    // A late producer: its step 1 is in a closed window. Told so, not counted as analysed.
    const late = await connectProducer({ port: server.port });
    await late.write(stepBatch(1, share(0, 1)));
    await assert.rejects(
      late.close(),
      /Cannot analyse batch as its step 1 comes before step 4, the first step still open/,
    );
    // An outlier step (2^62) would close every window: refused before anything of it is analysed.
    const wild = await connectProducer({ port: server.port });
    await wild.write(stepBatch(5, share(0, 1)));
    await wild.write(stepBatch(2 ** 62, [0]));
    await assert.rejects(
      wild.close(),
      /Cannot analyse batch as its step 4611686018427387904 is more than 1000000 steps after step 5, the highest so far \(--max-step-jump\)/,
    );
    await a.write(stepBatch(5, share(0, 1)));
    assert.deepEqual(await a.close(), { batches: 6, rows: 6 * ROWS });
    const run = await server.stop();
    const ps = run.producers as { status: string; batches: number }[];
    assert.deepEqual(ps.map((p) => [p.status, p.batches]), [["ended", 6], ["refused", 0], ["refused", 1]]);
    assert.equal(run.rows, 7 * ROWS);
    assert.equal(run.next_step, 6);
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: --max-producers refuses extra connections with a one-line answer", async () => {
  const dir = await Deno.makeTempDir();
  const server = await serve({ listen: "127.0.0.1:0", out: dir, options: OPTIONS, maxProducers: 2, log: quiet });
  const conns: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 2; i++) conns.push(await Deno.connect({ hostname: "127.0.0.1", port: server.port }));
    await waitFor(() => server.producers.length === 2, 10_000, "two producers");
    const extra = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    assert.equal(
      await readText(extra),
      "ERR Cannot accept producer as 2 producers are connected (--max-producers): current value is 2\n",
    );
    extra.close();
    for (const c of conns.splice(0)) c.close();
    await waitFor(() => server.producers.every((p) => p.status !== "connected"), 10_000, "the two to leave");
    const p = await connectProducer({ port: server.port });
    await p.write(stepBatch(0, share(0, 1)));
    assert.deepEqual(await p.close(), { batches: 1, rows: ROWS });
    const run = await server.stop();
    assert.equal(run.refused_connections, 1);
    assert.equal(run.rows, ROWS);
  } finally {
    for (const c of conns) c.close();
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: --producer-timeout cuts idle and one-byte-at-a-time producers, which then hold no window open", async () => {
  const dir = await Deno.makeTempDir();
  const server = await serve({
    listen: "127.0.0.1:0",
    out: dir,
    options: OPTIONS,
    snapshotEvery: 2,
    producerTimeout: 0.5,
    log: quiet,
  });
  const idle = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  const slow = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  let dripping = true;
  try {
    await writeAll(slow, new TextEncoder().encode("INFOTAP1 \n"));
    const chunks = await streamBytes([stepBatch(0, share(0, 1))]);
    const drip = (async () => {
      for (let i = 0; dripping && i < chunks[0].length; i++) {
        await writeAll(slow, chunks[0].subarray(i, i + 1)).catch(() => (dripping = false));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    // An active producer reaches step 4: the idle and the dripping connections hold windows 0 and 1 open until
    // they time out; the active one keeps sending (one row per 50 ms) meanwhile.
    const a = await connectProducer({ port: server.port });
    const t0 = Date.now();
    let batches = 0;
    for (let s = 0; s <= 4; s++, batches++) await a.write(stepBatch(s, share(0, 1)));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(server.snapshots, 0);
    while (server.snapshots < 2) {
      assert.ok(Date.now() - t0 < 15_000, "windows 0 and 1 close once the slow producers are cut");
      await a.write(stepBatch(4, [0]));
      batches++;
      await new Promise((r) => setTimeout(r, 50));
    }
    dripping = false;
    await drip;
    assert.equal((await a.close()).batches, batches);
    const run = await server.stop();
    const ps = run.producers as { status: string; error: string; partial_bytes: number }[];
    assert.deepEqual(ps.map((p) => p.status).sort(), ["ended", "timed out", "timed out"]);
    for (const p of ps.filter((p) => p.status === "timed out")) {
      assert.match(p.error, /completed no batch for 0.5 s \(--producer-timeout\)/);
    }
    assert.ok(ps.some((p) => p.partial_bytes > 0), "the dripping producer's partial batch is reported");
  } finally {
    dripping = false;
    idle.close();
    slow.close();
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: --max-buffered-bytes bounds the bytes all producers' batches hold at once; producers wait for room", async () => {
  const dir = await Deno.makeTempDir();
  const registry = new Registry(builtinPlugins);
  await registry.load(new URL("../../tests/_slow_plugin.ts", import.meta.url).pathname);
  const maxBatchBytes = 512 * 1024, maxBufferedBytes = 2 * maxBatchBytes + (1 << 20);
  const server = await serve({
    listen: "127.0.0.1:0",
    out: dir,
    registry,
    estimators: ["slow-count"],
    options: { "delay-ms": 5 },
    maxBatchBytes,
    maxBufferedBytes,
    log: quiet,
  });
  try {
    // Eight producers, each sending batches of about 400 KB as fast as they can.
    const rows = 1000, width = 100;
    const rb = makeRecordBatch({
      kind: "activations/v1",
      sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(i)),
      tensors: [{ name: "fc1", width, values: new Float32Array(rows * width).fill(0.5) }],
    });
    const replies = await Promise.all(Array.from({ length: 8 }, async () => {
      const p = await connectProducer({ port: server.port });
      for (let i = 0; i < 5; i++) await p.write(rb);
      return await p.close();
    }));
    assert.deepEqual(replies, Array(8).fill({ batches: 5, rows: 5 * rows }));
    const run = await server.stop();
    assert.equal(run.rows, 40 * rows);
    assert.ok((run.buffered_peak_bytes as number) <= maxBufferedBytes, `peak ${run.buffered_peak_bytes}`);
    assert.ok((run.buffered_peak_bytes as number) > 2 * 400_000, `peak ${run.buffered_peak_bytes}`);
    assert.ok((run.buffered_waits as number) > 0, "some producers waited for room");
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: a malformed handshake never copies the token into the answer, the log or run.json", async () => {
  const dir = await Deno.makeTempDir();
  const token = "s3cret-token-42";
  const lines: string[] = [];
  const server = await serve({ listen: "127.0.0.1:0", out: dir, options: OPTIONS, token, log: (l) => lines.push(l) });
  try {
    for (const hello of [`INFOTAP1 ${token} \n`, `INFOTAP1 ${token}\tx\n`, `INFOTAP1  ${token}\n`]) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await writeAll(conn, new TextEncoder().encode(hello));
      const answer = await readText(conn);
      conn.close();
      assert.match(answer, /^ERR Cannot accept producer as its handshake line is not 'INFOTAP1 <token>'/);
      assert.ok(!answer.includes(token));
    }
    await server.stop();
    const written = await Deno.readTextFile(`${dir}/run.json`);
    assert.equal(JSON.parse(written).producers.length, 3);
    assert.ok(!written.includes(token) && !lines.join("\n").includes(token), "the token reached an output");
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
