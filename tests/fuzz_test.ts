/**
 * Hostile input (issue 18): a seeded corpus of mutated valid dumps of the three kinds (`tests/_fuzz.ts`) run
 * through `analyze` in-process, through serve's framer (`readSource` with the socket options) and, for a few, the
 * CLI. Every case ends in one clear line (`complete: false`, a non-zero exit) or is read whole with the valid dump's
 * layout and rows; never an internal error, a stack trace, a hang or a memory blow-up; the batches before the
 * damage keep their results.
 */
import assert from "node:assert/strict";
import { analyze, type AnalyzeResult } from "../pipeline/analyze/run.ts";
import { readSource } from "../schemas/source.ts";
import { ByteSource } from "../schemas/bytes.ts";
import { frameState } from "../schemas/framer.ts";
import { InputError } from "../schemas/errors.ts";
import { makeRecordBatch } from "../pipeline/producers/produce.ts";
import { type Base, baseInputs, BATCHES, type Case, concat, corpus, encode, ROWS, spans, WIDTHS } from "./_fuzz.ts";
import { assertTablesClose } from "./_util.ts";
import { cli } from "./_cli.ts";

const ESTIMATORS: Record<Base, string[]> = { acts: ["entropy", "label-mi"], grads: ["fisher"], jacs: ["unique-info"] };
const OPTIONS = { "si-lambda": 0.5 };
/** Seconds one case may take (a hang fails the test). */
const LIMIT_MS = 10_000;

function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`${what}: hangs`)), LIMIT_MS)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** A clear one-line error: "Cannot <do X> as <reason>: current value is <v>", no internal error. */
function assertClear(message: string, what: string): void {
  assert.ok(!message.includes("\n"), `${what}: more than one line: ${message}`);
  assert.match(message, /Cannot .+ current value is /, `${what}: unclear error`);
  assert.ok(
    !/internal error|is not safe to convert|allocation failed|out of bounds|Invalid typed array/i.test(message),
    `${what}: ${message}`,
  );
}

async function run(path: string, c: Case): Promise<AnalyzeResult | InputError> {
  try {
    return await within(
      analyze({ inputs: [path], estimators: ESTIMATORS[c.base], options: OPTIONS, backend: "cpu", progress: false }),
      c.name,
    );
  } catch (e) {
    // An estimator's result phase may refuse the rows it received (e.g. unique-info's outputs per sample): a
    // one-line InputError, as the CLI prints it. Anything else fails the test.
    if (e instanceof InputError) return e;
    throw new Error(`${c.name}: ${(e as Error).name}: ${(e as Error).message}`);
  }
}

Deno.test("fuzz: every mutated dump ends in one clear line or is read whole; no internal error, hang or blow-up", async () => {
  const dir = await Deno.makeTempDir({ prefix: "infotap-fuzz-" });
  try {
    const cases = await corpus(20260305, 40);
    assert.ok(cases.length > 600, `corpus of ${cases.length} cases`);
    const outcomes = { read: 0, refused: 0 };
    for (const [i, c] of cases.entries()) {
      const path = `${dir}/case${i}${c.file ? ".arrow" : ".arrows"}`;
      await Deno.writeFile(path, c.bytes);
      const r = await run(path, c);
      if (r instanceof InputError) {
        assert.notEqual(c.expect, "ok", `${c.name}: ${r.message}`);
        assertClear(r.message, c.name);
        outcomes.refused++;
      } else {
        const rows = (r.run.inputs as { rows: number }[])[0].rows;
        if (r.complete) {
          assert.notEqual(c.expect, "error", `${c.name}: read whole (${rows} rows), an error was expected`);
          assert.equal(rows, c.rows ?? ROWS[c.base] * BATCHES, `${c.name}: rows`);
          const layers = (r.run.layers as { width: number }[]).map((l) => l.width);
          assert.deepEqual(layers, Object.values(WIDTHS[c.base]), `${c.name}: layer widths`);
          outcomes.read++;
        } else {
          assert.notEqual(c.expect, "ok", `${c.name}: ${r.error}`);
          assertClear(r.error!, c.name);
          if (c.rows !== undefined) assert.equal(rows, c.rows, `${c.name}: rows kept (${r.error})`);
          outcomes.refused++;
        }
      }
      // serve's framer: the same bytes from a socket (the file format is refused there)
      if (!c.file) {
        const socket = { maxMessageBytes: 1 << 20, limitName: "--max-batch-bytes", state: frameState() };
        try {
          await within(
            (async () => {
              for await (const _ of readSource(ByteSource.fromChunks([c.bytes]), "producer 1", { socket })) {
                /* read */
              }
            })(),
            `${c.name} (serve)`,
          );
        } catch (e) {
          assert.ok(e instanceof InputError, `${c.name} (serve): ${(e as Error).name}: ${(e as Error).message}`);
          assertClear(e.message, `${c.name} (serve)`);
        }
      }
    }
    assert.ok(outcomes.read > 80 && outcomes.refused > 500, JSON.stringify(outcomes));
    const rss = Deno.memoryUsage().rss;
    assert.ok(rss < 1.5e9, `resident memory ${rss} bytes after the corpus`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fuzz: a dump cut anywhere keeps the results of its complete batches", async () => {
  const dir = await Deno.makeTempDir({ prefix: "infotap-fuzz-" });
  try {
    const batches = baseInputs("acts").map(makeRecordBatch);
    const bytes = await encode(batches);
    const options = { estimators: ["entropy", "label-mi"], backend: "cpu" as const, progress: false };
    const ref = [];
    for (let k = 1; k <= BATCHES; k++) {
      await Deno.writeFile(`${dir}/ref${k}.arrows`, await encode(batches.slice(0, k)));
      ref[k] = await analyze({ inputs: [`${dir}/ref${k}.arrows`], ...options });
    }
    const sp = spans(bytes); // schema, batch 0, batch 1, batch 2
    for (let i = 2; i < sp.length; i++) {
      const s = sp[i], k = i - 1; // cut inside batch i - 1: batches 0..i-2 are complete
      for (const at of [s.offset + 4, s.bodyStart + (s.bodyLength >> 1), s.end - 1]) {
        await Deno.writeFile(`${dir}/cut.arrows`, bytes.slice(0, at));
        const r = await analyze({ inputs: [`${dir}/cut.arrows`], ...options });
        assert.equal(r.complete, false);
        assert.deepEqual(Object.keys(r.tables).sort(), ["label_mi", "layer_summary", "neuron_entropy"]);
        for (const name of Object.keys(ref[k].tables)) {
          assertTablesClose(r.tables[name], ref[k].tables[name], 0, 0, `cut at ${at}: ${name}`);
        }
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fuzz: through the CLI, hostile dumps exit 1 with one error line and no stack; concatenated stdin is read whole", async () => {
  const dir = await Deno.makeTempDir({ prefix: "infotap-fuzz-" });
  try {
    const cases = await corpus(7, 0);
    const pick = (name: string) => cases.find((c) => c.name === name)!;
    for (
      const name of [
        "acts: list size of 'fc1' set to 2147483647",
        "acts: garbage after the stream",
        "grads: a acts stream after the stream",
        "acts: file cut inside its footer",
        "jacs: an output of 2^31-1",
      ]
    ) {
      const c = pick(name);
      const path = `${dir}/in${c.file ? ".arrow" : ".arrows"}`;
      await Deno.writeFile(path, c.bytes);
      const lambda = c.base === "jacs" ? ["--si-lambda", "0.5"] : [];
      const r = await cli(["--estimators", ESTIMATORS[c.base].join(","), ...lambda, "--out", `${dir}/out`, path]);
      assert.equal(r.code, 1, `${name}: ${r.stderr}`);
      const errors = r.stderr.split("\n").filter((l) => l.startsWith("infotap: error: "));
      assert.equal(errors.length, 1, `${name}: ${r.stderr}`);
      assertClear(errors[0], name);
      assert.ok(!/\n\s+at /.test(r.stderr), `${name}: a stack trace:\n${r.stderr}`);
    }
    // cat a.arrows a.arrows a.arrows | analyze -
    const one = await encode(baseInputs("acts").map(makeRecordBatch));
    const r = await cli(["--estimators", "entropy", "--out", `${dir}/stdin`, "-"], concat([one, one, one]));
    assert.equal(r.code, 0, r.stderr);
    const runJson = JSON.parse(await Deno.readTextFile(`${dir}/stdin/run.json`));
    assert.equal(runJson.complete, true);
    assert.equal(runJson.inputs[0].rows, 3 * ROWS.acts * BATCHES);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
