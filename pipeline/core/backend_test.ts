import assert from "node:assert/strict";
import { type AdapterFacts, isSoftwareAdapter, probeAdapter } from "../../plugins/kernels/gpu/context.ts";
import { BackendError, decideBackend, estimatorBackend, selectBackend } from "./backend.ts";

const H100: AdapterFacts = { description: "NVIDIA H100 80GB HBM3", vendor: "4318", architecture: "", device: "8961" };
const APPLE: AdapterFacts = { description: "Apple M2", vendor: "apple", architecture: "metal-3" };
const SOFTWARE: [string, AdapterFacts][] = [
  ["llvmpipe (Deno on a machine without GPU)", {
    description: "llvmpipe (LLVM 15.0.6, 256 bits)",
    vendor: "65541",
    isFallbackAdapter: true,
  }],
  ["llvmpipe without the fallback flag", { description: "llvmpipe (LLVM 17.0.6, 256 bits)", vendor: "65541" }],
  ["lavapipe", { description: "", vendor: "mesa", architecture: "", device: "lavapipe" }],
  ["SwiftShader", { description: "SwiftShader Device (Subzero)", vendor: "google" }],
  ["Microsoft Basic Render Driver", { description: "Microsoft Basic Render Driver", vendor: "0x1414" }],
  ["a fallback adapter with an unknown name", { description: "Some GPU", isFallbackAdapter: true }],
];

Deno.test("auto never picks a fallback or software adapter", () => {
  for (const [label, info] of SOFTWARE) {
    assert.ok(isSoftwareAdapter(info), label);
    const d = decideBackend("auto", info);
    assert.equal(d.backend, "cpu", label);
    assert.equal(d.adapter?.software, true, label);
    assert.match(d.reason, /fallback\/software/);
    // Even with software adapters allowed, auto stays on the CPU.
    assert.equal(decideBackend("auto", info, { allowSoftware: true }).backend, "cpu", label);
  }
});

Deno.test("auto picks WebGPU on a hardware adapter, and the CPU without any adapter", () => {
  for (const info of [H100, APPLE]) {
    assert.ok(!isSoftwareAdapter(info));
    const d = decideBackend("auto", info);
    assert.equal(d.backend, "webgpu");
    assert.equal(d.adapter?.description, info.description);
    assert.equal(d.adapter?.software, false);
  }
  assert.deepEqual(decideBackend("auto", null), { backend: "cpu", reason: "auto: no WebGPU adapter", adapter: null });
});

Deno.test("--backend webgpu: a hardware adapter, a software one only when explicitly allowed, else a one-line error", () => {
  assert.equal(decideBackend("webgpu", H100).backend, "webgpu");
  assert.throws(() => decideBackend("webgpu", null), (e: Error) => {
    assert.ok(e instanceof BackendError);
    assert.match(e.message, /^Cannot use --backend webgpu as no WebGPU adapter is available.*current value is none$/);
    assert.ok(!e.message.includes("\n"));
    return true;
  });
  const llvmpipe = SOFTWARE[0][1];
  assert.throws(
    () => decideBackend("webgpu", llvmpipe),
    /Cannot use --backend webgpu as the only adapter is a fallback\/software one.*INFOTAP_WEBGPU_ALLOW_SOFTWARE=1.*current value is 'llvmpipe/,
  );
  const d = decideBackend("webgpu", llvmpipe, { allowSoftware: true });
  assert.equal(d.backend, "webgpu");
  assert.equal(d.adapter?.software, true);
  assert.equal(decideBackend("cpu", H100).backend, "cpu");
  assert.throws(() => decideBackend("gpu" as never, H100), /must be one of auto, cpu, webgpu/);
});

Deno.test("selectBackend on this machine: auto chooses a hardware adapter only", async () => {
  const facts = await probeAdapter();
  const d = await selectBackend("auto", { allowSoftware: false });
  if (!facts) assert.equal(d.backend, "cpu");
  else assert.equal(d.backend, isSoftwareAdapter(facts) ? "cpu" : "webgpu");
  assert.equal((await selectBackend("cpu")).backend, "cpu");
});

Deno.test("estimatorBackend: exact GPU paths under auto and webgpu; approximate ones only when webgpu is asked for", () => {
  assert.equal(estimatorBackend("webgpu", "auto", "exact"), "webgpu");
  assert.equal(estimatorBackend("webgpu", "auto", "approximate"), "cpu");
  assert.equal(estimatorBackend("webgpu", "webgpu", "approximate"), "webgpu");
  assert.equal(estimatorBackend("webgpu", "webgpu", null), "cpu");
  assert.equal(estimatorBackend("webgpu", "webgpu", undefined), "cpu");
  assert.equal(estimatorBackend("cpu", "auto", "exact"), "cpu");
  assert.equal(estimatorBackend("cpu", "cpu", "exact"), "cpu");
});
