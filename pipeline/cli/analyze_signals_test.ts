import assert from "node:assert/strict";
import { makeRecordBatch, writeBatches } from "../producers/produce.ts";
import { streamBytes, waitFor } from "../../tests/_live.ts";

const CLI = new URL("./analyze.ts", import.meta.url).pathname;
const SLOW = new URL("../../tests/_slow_plugin.ts", import.meta.url).pathname;

const batch = (i: number) =>
  makeRecordBatch({
    kind: "activations/v1",
    sampleId: BigInt64Array.from({ length: 50 }, (_, r) => BigInt(i * 50 + r)),
    tensors: [{ name: "fc1", width: 4, values: Float32Array.from({ length: 200 }, (_, k) => Math.sin(i + k)) }],
  });

/** `deno run analyze.ts ...` with stdin piped and TMPDIR in `tmp`; stdout and stderr collected. */
function spawn(args: string[], tmp: string): { child: Deno.ChildProcess; output: Promise<string> } {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: { TMPDIR: tmp },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const text = (s: ReadableStream<Uint8Array>) => new Response(s).text();
  const output = Promise.all([text(child.stdout), text(child.stderr)]).then(([o, e]) => o + e);
  return { child, output };
}

Deno.test("analyze CLI: SIGINT during a stdin spill removes the temporary copy and writes nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // entropy without --range needs two passes: stdin is copied to a temporary file first.
    const { child, output } = spawn(["--estimators", "entropy", "--out", `${dir}/out`, "-"], dir);
    const w = child.stdin.getWriter();
    for (const c of await streamBytes([batch(0), batch(1)])) await w.write(c); // ... and stdin stays open
    const spills = async () =>
      (await Array.fromAsync(Deno.readDir(dir))).filter((e) => e.name.startsWith("infotap-stdin-"));
    await waitFor(async () => (await spills()).length === 1, 20_000, "the stdin copy");
    child.kill("SIGINT");
    const { code } = await child.status;
    await w.close().catch(() => {});
    const text = await output;
    assert.equal(code, 130, text);
    assert.match(text, /infotap: error: Cannot read standard input to its end as the run was interrupted \(SIGINT\)/);
    assert.deepEqual(await spills(), []);
    assert.equal(await Deno.stat(`${dir}/out`).catch(() => null), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("analyze CLI: SIGINT then SIGTERM mid-run: the results of the batches read are written (complete false), exit 130", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const input = `${dir}/in.arrows`;
    await writeBatches(input, Array.from({ length: 1000 }, (_, i) => batch(i)));
    const args = ["--plugin", SLOW, "--estimators", "slow-count", "--delay-ms", "10", "--out", `${dir}/out`, input];
    const { child, output } = spawn(args, dir);
    await child.stdin.close();
    // Once the input is open (reading began), plus a few batches.
    const reading = async () => {
      for await (const fd of Deno.readDir(`/proc/${child.pid}/fd`)) {
        if (await Deno.readLink(`/proc/${child.pid}/fd/${fd.name}`).catch(() => "") === input) return true;
      }
      return false;
    };
    await waitFor(reading, 30_000, "the input to be read");
    await new Promise((r) => setTimeout(r, 300));
    child.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 20));
    child.kill("SIGTERM");
    const { code } = await child.status;
    const text = await output;
    assert.equal(code, 130, text);
    const run = JSON.parse(await Deno.readTextFile(`${dir}/out/run.json`));
    assert.equal(run.complete, false);
    assert.match(
      run.error,
      /^Cannot finish the analysis as it was interrupted \(SIGINT\): current value is \d+ rows read$/,
    );
    const rows = run.inputs[0].rows as number;
    assert.ok(rows > 0 && rows < 1000 * 50, `${rows} rows`);
    assert.ok(await Deno.stat(`${dir}/out/slow_count.parquet`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
