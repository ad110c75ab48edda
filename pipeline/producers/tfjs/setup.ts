/**
 * One place that prepares TensorFlow.js (tfjs-core) for infotap's producers and examples: registers the
 * gradients (tfjs-core alone does not; importing tfjs-layers does), the CPU backend and, on request, the
 * WebAssembly one, and silences the "install tfjs-node" banner (Deno is not Node; tfjs-node is not used).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initTf } from "./setup.ts";
 * const tf = await initTf();
 * assert.ok(tf.getBackend() === "cpu");
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
// tfjs-core's own bundle registers no gradients, and its per-file ESM build uses extensionless imports that
// Deno cannot resolve; tfjs-layers' Node bundle registers all gradients in tfjs' global registry.
import "@tensorflow/tfjs-layers";

/** Selects the tfjs backend (default `cpu`) and returns the tfjs-core namespace. */
export async function initTf(backend = "cpu"): Promise<typeof tf> {
  tf.env().set("IS_NODE", false);
  if (tf.getBackend() !== backend) {
    const ok = await tf.setBackend(backend);
    if (!ok) throw new Error(`Cannot use the tfjs backend as it failed to initialise: current value is '${backend}'`);
  }
  await tf.ready();
  return tf;
}

/** Makes tfjs's WebAssembly backend available to `tf.setBackend("wasm")`, its .wasm files found in its npm package. */
export async function registerWasmBackend(): Promise<void> {
  if (tf.findBackend("wasm")) return;
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  const dir = new URL("./", import.meta.resolve("@tensorflow/tfjs-backend-wasm")).href;
  wasm.setWasmPaths({
    "tfjs-backend-wasm.wasm": dir + "tfjs-backend-wasm.wasm",
    "tfjs-backend-wasm-simd.wasm": dir + "tfjs-backend-wasm-simd.wasm",
    "tfjs-backend-wasm-threaded-simd.wasm": dir + "tfjs-backend-wasm-threaded-simd.wasm",
  });
}
