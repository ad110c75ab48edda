/**
 * The `--by-step` memory case of issue 18: binned MI over 60 steps x 4,000 rows x 768 neurons (a 742 MB dump),
 * which grew to 24 GB before the steps were finished as they end. Writes the dump (seeded normal activations,
 * one layer `fc`, steps in order), then runs `deno task analyze --estimators mi --mi-estimator binned --by-step`
 * under `/usr/bin/time -v` and prints its maximum resident set size, and the same run with a `--max-memory`
 * below the estimate, which is refused up front with the option that fits.
 *
 * Usage: `deno run -A scripts/experiments/by_step_memory.ts [--steps 60] [--rows 4000] [--width 768] [--dir D]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { makeRecordBatch, writeBatches } from "../../pipeline/producers/produce.ts";
import { rng } from "./_common.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    steps: { type: "string", default: "60" },
    rows: { type: "string", default: "4000" },
    width: { type: "string", default: "768" },
    dir: { type: "string" },
    "max-memory": { type: "string", default: "2G" },
  },
});
const steps = Number(values.steps), rows = Number(values.rows), width = Number(values.width);
const dir = values.dir ?? await Deno.makeTempDir({ prefix: "infotap-by-step-" });
await Deno.mkdir(dir, { recursive: true });
const dump = `${dir}/dump.arrows`;

/** One step's batch: seeded normals (Box-Muller) whose scale drifts with the step. */
function* batches() {
  const u = rng(42);
  for (let s = 0; s < steps; s++) {
    const values = new Float32Array(rows * width);
    for (let i = 0; i < values.length; i += 2) {
      const r = Math.sqrt(-2 * Math.log(1 - u())), t = 2 * Math.PI * u();
      values[i] = r * Math.cos(t) * (1 + s / steps);
      if (i + 1 < values.length) values[i + 1] = r * Math.sin(t) * (1 + s / steps);
    }
    yield makeRecordBatch({
      kind: "activations/v1",
      sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(i)),
      step: new BigInt64Array(rows).fill(BigInt(s)),
      tensors: [{ name: "fc", width, values }],
    });
  }
}

try {
  await Deno.stat(dump);
} catch {
  await writeBatches(dump, batches());
}
console.log(
  `dump: ${dump} (${
    ((await Deno.stat(dump)).size / 1e6).toFixed(0)
  } MB; ${steps} steps x ${rows} rows x ${width} neurons)`,
);

/** Runs analyze under /usr/bin/time -v; returns its exit code, wall time and maximum RSS. */
async function run(extra: string[]): Promise<void> {
  const args = [
    "-v",
    Deno.execPath(),
    "run",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-sys",
    new URL("../../pipeline/cli/analyze.ts", import.meta.url).pathname,
    "--quiet",
    "--estimators",
    "mi",
    "--mi-estimator",
    "binned",
    "--by-step",
    "--out",
    `${dir}/results`,
    ...extra,
    dump,
  ];
  console.log(`$ /usr/bin/time ${args.slice(1).join(" ")}`);
  const out = await new Deno.Command("/usr/bin/time", { args, stdout: "inherit", stderr: "piped" }).output();
  const err = new TextDecoder().decode(out.stderr);
  const rss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(err)?.[1] ?? NaN) * 1024;
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)/.exec(err)?.[1];
  for (const line of err.split("\n").filter((l) => l.startsWith("infotap"))) console.log(line);
  console.log(`exit ${out.code}; wall ${wall}; maximum RSS ${(rss / 1e6).toFixed(0)} MB`);
}

await run(["--max-memory", values["max-memory"]!]);
await run([]);
