/**
 * Worker thread of {@linkcode WorkerPool} (pipeline/analyze/parallel.ts): runs a share of the batches through its own
 * scanners or estimators (the estimator set of pipeline/core/estimator_set.ts, on the CPU) and returns their
 * encoded states at the end. Messages are handled one at a time.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { builtinPlugins } from "../../plugins/mod.ts";
import { Registry } from "../core/registry.ts";
import { encodeState } from "../core/state.ts";
import { InputError } from "../../schemas/errors.ts";
import type { Scanner } from "../core/plugin.ts";
import { type Estimators, EstimatorSet } from "../core/estimator_set.ts";
import { type InitMessage, transferables } from "./parallel.ts";

let scanners: (Scanner | null)[] | null = null;
let estimators: Estimators | null = null;
let chain: Promise<void> = Promise.resolve();

async function handle(m: { type: string } & Record<string, unknown>): Promise<void> {
  try {
    if (m.type === "init") {
      const init = m as unknown as InitMessage;
      const registry = new Registry(builtinPlugins);
      for (const url of init.modules) await registry.load(url);
      const set = EstimatorSet.fromPlan(registry, init.plan);
      if (init.mode === "scan") scanners = set.scanners();
      else estimators = set.create();
      self.postMessage({ type: "ready" });
    } else if (m.type === "batch") {
      const batch = m.batch as never;
      if (scanners) { for (const s of scanners) s?.update(batch); }
      else await estimators!.update(batch);
      // hand the batch's buffers back for reuse: every estimator is done with it
      const back = transferables(batch);
      self.postMessage({ type: "ack", buffers: back }, back);
    } else if (m.type === "finish") {
      await estimators?.flush();
      const states = (scanners ? scanners.map((s) => s?.result() ?? null) : estimators!.states()).map(encodeState);
      self.postMessage({ type: "done", states }, states.map((s) => s.buffer as ArrayBuffer));
    }
  } catch (e) {
    const err = e as Error;
    self.postMessage({
      type: "error",
      message: e instanceof InputError ? e.detail : err.message,
      where: e instanceof InputError ? e.where : null,
      name: err.name,
    });
  }
}

self.onmessage = (ev: MessageEvent) => {
  chain = chain.then(() => handle(ev.data));
};
