/**
 * Backend selection (`--backend auto|cpu|webgpu`) and the one WebGPU device a run shares.
 *
 * Rules ({@linkcode decideBackend}, a pure function of the adapter's info, unit-tested with fake adapters):
 * - `cpu`: never touches WebGPU.
 * - `auto`: WebGPU only when an adapter exists and it is neither a fallback adapter (`info.isFallbackAdapter`,
 *   or the older `adapter.isFallbackAdapter`) nor a software rasterizer (llvmpipe, lavapipe, SwiftShader,
 *   "Microsoft Basic Render", softpipe, ...): software WebGPU is slower than the plain CPU path. Otherwise CPU.
 * - `webgpu`: WebGPU, or a one-line error when there is no adapter or only a fallback/software one, unless
 *   software adapters are explicitly allowed (`allowSoftware`, or the environment variable
 *   `INFOTAP_WEBGPU_ALLOW_SOFTWARE=1`; for tests and CI). `auto` never takes a software adapter.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decideBackend } from "./device.ts";
 * const llvmpipe = { description: "llvmpipe (LLVM 15.0.6, 256 bits)", vendor: "65541", isFallbackAdapter: true };
 * assert.ok(decideBackend("auto", llvmpipe).backend === "cpu");
 * assert.ok(decideBackend("webgpu", llvmpipe, { allowSoftware: true }).backend === "webgpu");
 * assert.ok(decideBackend("auto", { description: "NVIDIA H100 80GB HBM3", vendor: "4318" }).backend === "webgpu");
 * ```
 *
 * @module
 */

/** The backend names `--backend` accepts. */
export const BACKENDS = ["auto", "cpu", "webgpu"] as const;

/** A requested backend. */
export type BackendRequest = (typeof BACKENDS)[number];

/** What is known of an adapter (fields of `GPUAdapterInfo`, all optional). */
export interface AdapterFacts {
  description?: string;
  vendor?: string;
  architecture?: string;
  device?: string;
  /** `GPUAdapterInfo.isFallbackAdapter` (or the older `GPUAdapter.isFallbackAdapter`). */
  isFallbackAdapter?: boolean;
}

/** The outcome of backend selection. */
export interface BackendDecision {
  backend: "cpu" | "webgpu";
  /** Why (one line, for run.json). */
  reason: string;
  /** The adapter looked at, with `software` true when it is a fallback or software rasterizer. */
  adapter: (AdapterFacts & { software: boolean }) | null;
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

/** Thrown when `--backend webgpu` cannot be honoured (one line). */
export class BackendError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BackendError";
  }
}

/**
 * Decides the backend from the request and the adapter found (`null`: none). Pure: no WebGPU calls.
 * Throws {@linkcode BackendError} for `webgpu` without a usable adapter.
 */
export function decideBackend(
  request: BackendRequest,
  adapter: AdapterFacts | null,
  opts: { allowSoftware?: boolean } = {},
): BackendDecision {
  if (!(BACKENDS as readonly string[]).includes(request)) {
    throw new BackendError(
      `Cannot use --backend as it must be one of ${BACKENDS.join(", ")}: current value is '${String(request)}'`,
    );
  }
  const facts = adapter ? { ...adapter, software: isSoftwareAdapter(adapter) } : null;
  if (request === "cpu") return { backend: "cpu", reason: "requested", adapter: facts };
  if (!facts) {
    if (request === "webgpu") {
      throw new BackendError(
        "Cannot use --backend webgpu as no WebGPU adapter is available (no GPU, or no Vulkan/Metal/D3D12 driver): current value is none",
      );
    }
    return { backend: "cpu", reason: "auto: no WebGPU adapter", adapter: null };
  }
  if (facts.software) {
    if (request === "webgpu") {
      if (opts.allowSoftware) {
        return { backend: "webgpu", reason: "requested; software adapter explicitly allowed", adapter: facts };
      }
      throw new BackendError(
        `Cannot use --backend webgpu as the only adapter is a fallback/software one, slower than --backend cpu (set INFOTAP_WEBGPU_ALLOW_SOFTWARE=1 to use it anyway): current value is ${
          describeAdapter(facts)
        }`,
      );
    }
    return {
      backend: "cpu",
      reason: `auto: adapter ${describeAdapter(facts)} is a fallback/software one`,
      adapter: facts,
    };
  }
  return { backend: "webgpu", reason: request === "auto" ? "auto: hardware adapter" : "requested", adapter: facts };
}

/**
 * The backend one estimator gets: WebGPU when the run chose it and the plugin has a GPU path that is `exact`
 * (bit-equal to the CPU), or `approximate` (within a float tolerance) and WebGPU was explicitly requested:
 * `auto` changes speed, never results.
 */
export function estimatorBackend(
  run: "cpu" | "webgpu",
  request: BackendRequest,
  path: "exact" | "approximate" | null | undefined,
): "cpu" | "webgpu" {
  if (run !== "webgpu") return "cpu";
  return path === "exact" || (path === "approximate" && request === "webgpu") ? "webgpu" : "cpu";
}

/** The adapter of a decision as run.json records it (null when none was looked at). */
export function adapterRecord(decision: BackendDecision): Record<string, string | boolean> | null {
  const a = decision.adapter;
  if (!a) return null;
  return {
    description: a.description ?? "",
    vendor: a.vendor ?? "",
    architecture: a.architecture ?? "",
    device: a.device ?? "",
    fallback: a.isFallbackAdapter === true,
    software: a.software,
  };
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

/** True when `INFOTAP_WEBGPU_ALLOW_SOFTWARE` is set to 1/true (needs --allow-env; false without it). */
export function softwareAllowedByEnv(): boolean {
  try {
    return /^(1|true|yes)$/i.test(Deno.env.get("INFOTAP_WEBGPU_ALLOW_SOFTWARE") ?? "");
  } catch {
    return false;
  }
}

/** The adapter (requested once per process; probing it creates no device). */
let adapterHeld: Promise<{ adapter: GPUAdapter; facts: AdapterFacts } | null> | null = null;
/** The shared device (created on first use by a kernel). */
let deviceHeld: Promise<GPUDevice | null> | null = null;

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

async function openDevice(): Promise<GPUDevice | null> {
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
  return device;
}

/**
 * The adapter's facts, or null when there is none. Only the adapter is requested: no device is created, so a run
 * that stays on the CPU (a software adapter under `auto`) holds no GPU resources.
 */
export async function probeAdapter(): Promise<AdapterFacts | null> {
  return (await adapterOnce())?.facts ?? null;
}

/**
 * Chooses the backend of a run: probes the adapter (unless `cpu`) and applies {@linkcode decideBackend}.
 * `allowSoftware` defaults to the environment variable `INFOTAP_WEBGPU_ALLOW_SOFTWARE`.
 */
export async function selectBackend(
  request: BackendRequest,
  opts: { allowSoftware?: boolean } = {},
): Promise<BackendDecision> {
  if (request === "cpu") return decideBackend("cpu", null);
  const facts = await probeAdapter();
  return decideBackend(request, facts, { allowSoftware: opts.allowSoftware ?? softwareAllowedByEnv() });
}

/**
 * The shared WebGPU device. Estimators call this when their context says `backend: "webgpu"` (the run has
 * then already chosen a usable adapter; a caller constructing such an estimator directly gets whatever adapter
 * exists, software included). Throws {@linkcode BackendError} when there is none.
 */
export async function gpuDevice(): Promise<GPUDevice> {
  if (!deviceHeld) {
    const mine = openDevice();
    deviceHeld = mine;
    // A lost (or destroyed) device is replaced on next use; an adapter gives one device, so a new one is requested.
    mine.then((d) =>
      d?.lost.then(() => {
        if (deviceHeld === mine) {
          deviceHeld = null;
          adapterHeld = null;
        }
      })
    );
  }
  const device = await deviceHeld;
  if (!device) {
    throw new BackendError("Cannot run a WebGPU kernel as no WebGPU adapter is available: current value is none");
  }
  return device;
}

/** The limits of the shared device (after {@linkcode gpuDevice}). */
export async function gpuLimits(): Promise<GPUSupportedLimits> {
  return (await gpuDevice()).limits;
}

/** Destroys the shared device (tests, benchmarks); the next {@linkcode gpuDevice} opens a new one. */
export async function releaseGpu(): Promise<void> {
  const device = deviceHeld ? await deviceHeld : null;
  deviceHeld = null;
  adapterHeld = null;
  device?.destroy();
}
