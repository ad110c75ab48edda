import assert from "node:assert/strict";
import { connectProducer } from "../producers/connect.ts";
import { makeRecordBatch } from "../producers/produce.ts";
import {
  assertLikeAnalyze,
  OPTIONS,
  ROWS,
  ServeProcess,
  share,
  stepBatch,
  waitFor,
  writeDump,
} from "../../tests/_live.ts";

const ENTROPY = [`--range=${OPTIONS.range.join(",")}`, "--bins", String(OPTIONS.bins)];

Deno.test("serve CLI: kill -9 mid-run, then --resume with the producer replaying from next_step, equals analyze", async () => {
  const dir = await Deno.makeTempDir();
  const out = `${dir}/live`;
  const first = new ServeProcess(["--listen", "127.0.0.1:0", "--out", out, "--snapshot-every", "2", ...ENTROPY]);
  let second: ServeProcess | null = null;
  try {
    const { port } = await first.listening();
    const p = await connectProducer({ port });
    for (let s = 0; s <= 5; s++) await p.write(stepBatch(s, share(0, 1)));
    await waitFor(
      async () => {
        try {
          return JSON.parse(await Deno.readTextFile(`${out}/checkpoint/progress.json`)).windows.length === 2;
        } catch {
          return false;
        }
      },
      20_000,
      "two checkpoints",
    );
    assert.notEqual(await first.stop("SIGKILL"), 0);
    p.abort();
    assert.equal(await Deno.stat(`${out}/run.json`).catch(() => null), null);

    second = new ServeProcess(["--resume", out, "--listen", "127.0.0.1:0", "--snapshot-every", "2", ...ENTROPY]);
    const { port: port2, line } = await second.listening();
    const from = Number(/replay from step (\d+)/.exec(line)![1]);
    assert.equal(from, 4);
    const q = await connectProducer({ port: port2 });
    for (let s = from; s < 8; s++) await q.write(stepBatch(s, share(0, 1)));
    assert.deepEqual(await q.close(), { batches: 8 - from, rows: (8 - from) * ROWS });
    assert.equal(await second.stop("SIGTERM"), 0);
    const run = JSON.parse(await Deno.readTextFile(`${out}/run.json`));
    assert.equal(run.complete, true);
    assert.equal(run.resumed_from_step, 4);
    assert.equal(run.rows, 8 * ROWS);
    assert.equal(run.snapshots, 4);

    await assertLikeAnalyze(out, await writeDump(dir, 8), dir);
  } finally {
    await first.stop("SIGKILL");
    await second?.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve CLI: memory stays bounded under a producer faster than the estimators (backpressure)", async () => {
  const dir = await Deno.makeTempDir();
  const plugin = new URL("../../tests/_slow_plugin.ts", import.meta.url).pathname;
  const server = new ServeProcess([
    "--listen",
    "127.0.0.1:0",
    "--out",
    dir,
    "--plugin",
    plugin,
    "--estimators",
    "slow-count",
    "--delay-ms",
    "2",
    "--quiet",
  ]);
  try {
    const { port } = await server.listening();
    const base = await server.rss("VmRSS");
    const rows = 1024, width = 256; // 1 MiB of activations per batch
    const values = new Float32Array(rows * width).map((_, i) => (i % 997) / 997);
    const rb = makeRecordBatch({
      kind: "activations/v1",
      sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(i)),
      tensors: [{ name: "fc1", width, values }],
    });
    const batches = 400; // 400 MiB in all
    const p = await connectProducer({ port });
    const t0 = performance.now();
    for (let i = 0; i < batches; i++) await p.write(rb);
    const sendMs = performance.now() - t0;
    assert.deepEqual(await p.close(), { batches, rows: batches * rows });
    const peak = await server.rss("VmHWM");
    assert.equal(await server.stop("SIGTERM"), 0);
    const grew = (peak - base) / 2 ** 20;
    // Without backpressure the server would hold most of the 400 MiB sent; with it, it holds a few batches plus
    // the garbage V8 has not collected yet (external ArrayBuffers are collected lazily: about 120 MiB measured).
    assert.ok(grew < 200, `serve's peak RSS grew by ${grew.toFixed(1)} MiB over its idle RSS`);
    // The producer was held back: it could not write faster than the estimator's 2 ms per batch.
    assert.ok(sendMs > batches * 2 * 0.8, `the producer wrote ${batches} batches in ${sendMs.toFixed(0)} ms`);
    const run = JSON.parse(await Deno.readTextFile(`${dir}/run.json`));
    assert.equal(run.rows, batches * rows);
  } finally {
    await server.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve CLI: bad options exit before listening with a one-line error", async () => {
  const { main } = await import("./serve.ts");
  const dir = await Deno.makeTempDir();
  const errors: string[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => void errors.push(a.join(" "));
  try {
    assert.equal(await main(["--out", dir]), 1);
    assert.match(errors.pop()!, /^infotap: error: \[entropy\] Cannot run estimator live .*pass --range LO,HI/);
    assert.equal(await main(["--out", dir, "--range=0,1", "--listen", "0.0.0.0:0"]), 1);
    assert.match(errors.pop()!, /Cannot listen on a non-loopback address without --token/);
    assert.equal(await main(["--out", dir, "--range=0,1", "--listen", "localhost"]), 1);
    assert.match(errors.pop()!, /Cannot use --listen as it must be HOST:PORT/);
    assert.equal(await main(["--out", dir, "--range=0,1", "--snapshot-every=-2"]), 2);
    assert.match(errors.pop()!, /Cannot use --snapshot-every as it must be an integer >= 0/);
    assert.equal(await main(["--resume", dir, "--out", `${dir}/other`, "--range=0,1"]), 2);
    assert.match(errors.pop()!, /Cannot use --out with --resume/);
    assert.equal(await main(["--out", dir, "--range=0,1", "--flush-every=-1"]), 2);
    assert.match(errors.pop()!, /Cannot use --flush-every as it must be a number of seconds >= 0/);
    assert.equal(await main(["--out", dir, "--range=0,1", "--max-producers=0"]), 2);
    assert.match(errors.pop()!, /Cannot use --max-producers as it must be an integer >= 1/);
  } finally {
    console.error = orig;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve CLI: more connections than file descriptors: accept errors are logged and retried, then a real producer streams", async () => {
  const dir = await Deno.makeTempDir();
  // About 25 descriptors are taken at start; 48 leave room for about 20 connections.
  const args = ["--listen", "127.0.0.1:0", "--out", dir, ...ENTROPY, "--producer-timeout", "1", "--quiet"];
  const server = new ServeProcess(args, { limitFiles: 48 });
  const idle: Deno.Conn[] = [];
  try {
    const { port } = await server.listening();
    for (let i = 0; i < 60; i++) idle.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    await server.waitLine(/cannot accept a connection as .*[Tt]oo many open files.*; retrying in \d+ ms/);
    // The idle connections time out (descriptors come back) and accepting goes on by itself.
    const streamed = (async () => {
      const p = await connectProducer({ port });
      for (let s = 0; s < 5; s++) await p.write(stepBatch(s, share(0, 1)));
      return await p.close();
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("the producer got no answer in 30 s: accepting stopped")), 30_000);
    });
    try {
      assert.deepEqual(await Promise.race([streamed, deadline]), { batches: 5, rows: 5 * ROWS });
    } finally {
      clearTimeout(timer);
    }
    assert.equal(await server.stop("SIGTERM"), 0);
    const run = JSON.parse(await Deno.readTextFile(`${dir}/run.json`));
    assert.equal(run.complete, true);
    assert.equal(run.rows, 5 * ROWS);
    const statuses = (run.producers as { status: string }[]).map((p) => p.status);
    assert.ok(statuses.filter((s) => s === "timed out").length >= 10, statuses.join(", "));
    assert.equal(statuses.filter((s) => s === "ended").length, 1);
  } finally {
    for (const c of idle) c.close();
    await server.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});
