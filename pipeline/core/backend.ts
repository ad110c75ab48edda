/**
 * The host's backend decision (`--backend auto|cpu|webgpu`): which runs use the GPU, and which estimators get it
 * as `context.gpu` ({@linkcode decideBackend}, a pure function of the adapter's info; {@linkcode estimatorBackend}):
 * `auto` takes only a hardware adapter and only the exact GPU paths, so it changes speed, never results; `webgpu`
 * runs every GPU path or fails in one line. The GPU itself is plugins/kernels/gpu/context.ts. The rules:
 * docs/internals.md, "Backends and the GPU".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decideBackend } from "./backend.ts";
 * const llvmpipe = { description: "llvmpipe (LLVM 15.0.6, 256 bits)", vendor: "65541", isFallbackAdapter: true };
 * assert.ok(decideBackend("auto", llvmpipe).backend === "cpu");
 * assert.ok(decideBackend("webgpu", llvmpipe, { allowSoftware: true }).backend === "webgpu");
 * assert.ok(decideBackend("auto", { description: "NVIDIA H100 80GB HBM3", vendor: "4318" }).backend === "webgpu");
 * ```
 *
 * @module
 */
import {
  type AdapterFacts,
  describeAdapter,
  type GpuContext,
  gpuContext,
  isSoftwareAdapter,
  probeAdapter,
} from "../../plugins/kernels/gpu/context.ts";

/** The backend names `--backend` accepts. */
export const BACKENDS = ["auto", "cpu", "webgpu"] as const;

/** A requested backend. */
export type BackendRequest = (typeof BACKENDS)[number];

/** The outcome of backend selection. */
export interface BackendDecision {
  backend: "cpu" | "webgpu";
  /** Why (one line, for run.json). */
  reason: string;
  /** The adapter looked at, with `software` true when it is a fallback or software rasterizer. */
  adapter: (AdapterFacts & { software: boolean }) | null;
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

/**
 * The `context.gpu` of one estimator: the run's GPU context (from {@linkcode openRunGpu}) when
 * {@linkcode estimatorBackend} gives the plugin's path WebGPU, else null.
 */
export function estimatorGpu(
  run: GpuContext | null,
  request: BackendRequest,
  path: "exact" | "approximate" | null | undefined,
): GpuContext | null {
  return run && estimatorBackend("webgpu", request, path) === "webgpu" ? run : null;
}

/**
 * The run's GPU context: the shared device when the decision is WebGPU (opened now), else null. Throws
 * {@linkcode BackendError} when the device cannot be opened.
 */
export async function openRunGpu(decision: BackendDecision): Promise<GpuContext | null> {
  if (decision.backend !== "webgpu") return null;
  try {
    return await gpuContext();
  } catch (e) {
    throw new BackendError(
      `Cannot open the WebGPU device as the adapter refused it: current value is ${(e as Error).message}`,
    );
  }
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

/** True when `INFOTAP_WEBGPU_ALLOW_SOFTWARE` is set to 1/true (needs --allow-env; false without it). */
export function softwareAllowedByEnv(): boolean {
  try {
    return /^(1|true|yes)$/i.test(Deno.env.get("INFOTAP_WEBGPU_ALLOW_SOFTWARE") ?? "");
  } catch {
    return false;
  }
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
