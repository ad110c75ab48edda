/**
 * The one GPU context of a process: the WebGPU adapter (probed once), the shared device opened on it with the
 * adapter's largest limits, and the facts kernels adapt to (software adapters such as llvmpipe get smaller
 * workgroup stages). Estimators receive it as `context.gpu` (pipeline/core/plugin.ts); every GPU kernel opens on it.
 * Which runs use it is the host's decision (pipeline/core/backend.ts). Docs: docs/bench/webgpu.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeAdapter, isSoftwareAdapter } from "./context.ts";
 * const llvmpipe = { description: "llvmpipe (LLVM 15.0.6, 256 bits)", vendor: "65541", isFallbackAdapter: true };
 * assert.ok(isSoftwareAdapter(llvmpipe));
 * assert.ok(!isSoftwareAdapter({ description: "NVIDIA H100 80GB HBM3", vendor: "4318" }));
 * assert.equal(describeAdapter({ description: "Apple M2", vendor: "apple" }), "'Apple M2' (vendor apple)");
 * ```
 *
 * @module
 */

/** What is known of an adapter (fields of `GPUAdapterInfo`, all optional). */
export interface AdapterFacts {
  description?: string;
  vendor?: string;
  architecture?: string;
  device?: string;
  /** `GPUAdapterInfo.isFallbackAdapter` (or the older `GPUAdapter.isFallbackAdapter`). */
  isFallbackAdapter?: boolean;
}

/** The GPU an estimator or kernel runs on. */
export interface GpuContext {
  /** The shared device. */
  readonly device: GPUDevice;
  /** The device's limits (the adapter's largest buffers and workgroup memory). */
  readonly limits: GPUSupportedLimits;
  /** The adapter is a fallback or software one ({@linkcode isSoftwareAdapter}): correct, slow, small stages. */
  readonly software: boolean;
  /** What is known of the adapter. */
  readonly adapter: AdapterFacts;
}

/** Names of software WebGPU / Vulkan / D3D implementations (case-insensitive, anywhere in the info strings). */
const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|microsoft basic render|\bwarp\b|software rasterizer/i;

/** True when the adapter is a fallback adapter or a known software rasterizer. */
export function isSoftwareAdapter(info: AdapterFacts): boolean {
  if (info.isFallbackAdapter === true) return true;
  const text = [info.description, info.vendor, info.architecture, info.device].filter(Boolean).join(" ");
  return SOFTWARE.test(text);
}

/** One line naming the adapter, e.g. `'NVIDIA H100 80GB HBM3' (vendor 4318, architecture hopper)`. */
export function describeAdapter(info: AdapterFacts): string {
  const extra = [
    info.vendor ? `vendor ${info.vendor}` : "",
    info.architecture ? `architecture ${info.architecture}` : "",
    info.isFallbackAdapter ? "fallback adapter" : "",
  ].filter(Boolean);
  return `'${info.description || "unnamed adapter"}'${extra.length ? ` (${extra.join(", ")})` : ""}`;
}

/** Reads the facts of a real adapter (`GPUAdapterInfo` fields; `isFallbackAdapter` from either place). */
export function adapterFacts(adapter: GPUAdapter): AdapterFacts {
  const info = (adapter.info ?? {}) as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const fb = info.isFallbackAdapter ?? (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter;
  return {
    description: info.description ?? "",
    vendor: info.vendor ?? "",
    architecture: info.architecture ?? "",
    device: info.device ?? "",
    isFallbackAdapter: fb === true,
  };
}

/** The adapter (requested once per process; probing it creates no device). */
let adapterHeld: Promise<{ adapter: GPUAdapter; facts: AdapterFacts } | null> | null = null;
/** The shared context (its device created on first use). */
let contextHeld: Promise<GpuContext | null> | null = null;

/** Requests the adapter (high-performance preference); null when WebGPU or an adapter is missing. */
async function requestAdapter(): Promise<GPUAdapter | null> {
  const gpu = (globalThis.navigator as unknown as { gpu?: GPU }).gpu;
  if (!gpu) return null;
  try {
    return await gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch {
    return null;
  }
}

function adapterOnce() {
  adapterHeld ??= requestAdapter().then((adapter) => (adapter ? { adapter, facts: adapterFacts(adapter) } : null));
  return adapterHeld;
}

async function openContext(): Promise<GpuContext | null> {
  const held = await adapterOnce();
  if (!held) return null;
  const L = held.adapter.limits;
  // The largest buffers and workgroup memory the adapter offers (the defaults are 128 MiB / 16 KiB).
  const device = await held.adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
      maxBufferSize: L.maxBufferSize,
      maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: L.maxComputeWorkgroupSizeX,
    },
  });
  return { device, limits: device.limits, software: isSoftwareAdapter(held.facts), adapter: held.facts };
}

/**
 * The adapter's facts, or null when there is none. Only the adapter is requested: no device is created, so a run
 * that stays on the CPU (a software adapter under `auto`) holds no GPU resources.
 */
export async function probeAdapter(): Promise<AdapterFacts | null> {
  return (await adapterOnce())?.facts ?? null;
}

/**
 * The shared GPU context, its device opened on first use on whatever adapter exists (software included: the host
 * decides whether to use it, pipeline/core/backend.ts). A lost or destroyed device is replaced on the next call.
 * Throws when there is no adapter.
 */
export async function gpuContext(): Promise<GpuContext> {
  if (!contextHeld) {
    const mine = openContext();
    contextHeld = mine;
    // A lost (or destroyed) device is replaced on next use; an adapter gives one device, so a new one is requested.
    mine.then((c) =>
      c?.device.lost.then(() => {
        if (contextHeld === mine) {
          contextHeld = null;
          adapterHeld = null;
        }
      })
    );
  }
  const context = await contextHeld;
  if (!context) throw new Error("Cannot run a WebGPU kernel as no WebGPU adapter is available: current value is none");
  return context;
}

/** Destroys the shared device (tests, benchmarks); the next {@linkcode gpuContext} opens a new one. */
export async function releaseGpu(): Promise<void> {
  const context = contextHeld ? await contextHeld : null;
  contextHeld = null;
  adapterHeld = null;
  context?.device.destroy();
}
