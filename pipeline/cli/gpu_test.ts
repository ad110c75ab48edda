/** `--backend` on the command line: exit codes, one-line errors, run.json. */
import assert from "node:assert/strict";
import { makeRecordBatch, writeBatches } from "../producers/produce.ts";
import { isSoftwareAdapter, probeAdapter } from "../../plugins/kernels/gpu/context.ts";
import type { Batch } from "../../schemas/batch.ts";
import { analyze } from "../analyze/run.ts";
import { rowsOf } from "../../tests/_util.ts";
import { mixedActivations } from "../../tests/_contract_fixtures.ts";

const adapter = await probeAdapter();
const ignore = adapter === null;

const CLI = new URL("./analyze.ts", import.meta.url).pathname;
const facts = adapter;

async function cli(args: string[], allowSoftware: boolean) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-env", "--allow-sys", CLI, "--quiet", ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", INFOTAP_WEBGPU_ALLOW_SOFTWARE: allowSoftware ? "1" : "0" },
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("analyze --backend: bad value and unusable adapter exit 2 with one line; allowed software and auto record the adapter", async () => {
  const dir = await Deno.makeTempDir({ prefix: "infotap-gpu-cli-" });
  try {
    const rows = 30, w = 3;
    await writeBatches(`${dir}/a.arrows`, [makeRecordBatch({
      kind: "activations/v1",
      sampleId: BigInt64Array.from({ length: rows }, (_, i) => BigInt(i)),
      tensors: [{ name: "fc1", width: w, values: Float32Array.from({ length: rows * w }, (_, i) => Math.sin(i)) }],
    })]);
    const bad = await cli(["--backend", "gpu", "--out", `${dir}/x`, `${dir}/a.arrows`], false);
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /^infotap: Cannot use --backend as it must be one of auto, cpu, webgpu: current value is 'gpu'\n$/,
    );

    const auto = await cli(["--backend", "auto", "--out", `${dir}/auto`, `${dir}/a.arrows`], true);
    assert.equal(auto.code, 0, auto.stderr);
    const run = JSON.parse(await Deno.readTextFile(`${dir}/auto/run.json`));
    assert.equal(run.backend_request, "auto");
    const soft = facts !== null && isSoftwareAdapter(facts);
    assert.equal(
      run.backend,
      facts && !soft ? "webgpu" : "cpu",
      "auto never takes a software adapter, even when allowed",
    );
    assert.equal(run.adapter?.description ?? null, facts?.description ?? null);

    const gpu = await cli(["--backend", "webgpu", "--out", `${dir}/gpu`, `${dir}/a.arrows`], false);
    if (!facts || soft) {
      assert.equal(gpu.code, 2);
      const lines = gpu.stderr.trim().split("\n");
      assert.equal(lines.length, 1, gpu.stderr);
      assert.match(lines[0], /^infotap: error: Cannot use --backend webgpu as /);
    } else assert.equal(gpu.code, 0, gpu.stderr);

    if (facts) {
      const allowed = await cli(["--backend", "webgpu", "--out", `${dir}/sw`, `${dir}/a.arrows`], true);
      assert.equal(allowed.code, 0, allowed.stderr);
      const r = JSON.parse(await Deno.readTextFile(`${dir}/sw/run.json`));
      assert.equal(r.backend, "webgpu");
      assert.equal(r.adapter.software, soft);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function writeActivations(path: string, batches: Batch[]): Promise<void> {
  await writeBatches(
    path,
    batches.map((b) =>
      makeRecordBatch({
        kind: "activations/v1",
        sampleId: b.sampleId,
        step: b.step ?? undefined,
        tensors: b.columns.map((c) => ({ name: c.name, width: c.width, values: c.values })),
      })
    ),
  );
}

Deno.test({
  name:
    "analyze --backend webgpu (software allowed) equals --backend cpu; run.json records the adapter; auto stays on CPU here",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/acts.arrows`;
      await writeActivations(path, mixedActivations(9, 3, 30));
      const common = { inputs: [path], options: { bins: 12 }, byStep: true, progress: false };
      const cpu = await analyze({ ...common, backend: "cpu" });
      const gpu = await analyze({ ...common, backend: "webgpu", allowSoftwareGpu: true, out: `${dir}/out` });
      assert.ok(cpu.complete && gpu.complete);
      assert.deepEqual(rowsOf(gpu.tables.neuron_entropy), rowsOf(cpu.tables.neuron_entropy));
      assert.equal(gpu.run.backend, "webgpu");
      const run = JSON.parse(await Deno.readTextFile(`${dir}/out/run.json`));
      assert.equal(run.backend, "webgpu");
      assert.equal(run.adapter.description, adapter!.description);
      assert.deepEqual(run.estimators.map((e: { backend: string }) => e.backend), ["webgpu"]);
      assert.equal(cpu.run.backend, "cpu");
      assert.equal(cpu.run.adapter, null);
      const auto = await analyze({ ...common, backend: "auto" });
      if (auto.run.adapter && (auto.run.adapter as { software: boolean }).software) {
        assert.equal(auto.run.backend, "cpu");
        await assert.rejects(
          () => analyze({ ...common, backend: "webgpu", allowSoftwareGpu: false }),
          /fallback\/software/,
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
