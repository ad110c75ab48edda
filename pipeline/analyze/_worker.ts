/**
 * Worker thread of {@linkcode WorkerPool} (pipeline/analyze/parallel.ts): runs a share of the batches through its own
 * scanners or estimators and returns their encoded states at the end. Messages are handled one at a time.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { builtinPlugins } from "../../plugins/mod.ts";
import { Registry } from "../core/registry.ts";
import { encodeState } from "../core/state.ts";
import { InputError } from "../../schemas/errors.ts";
import type { Estimator, Scanner } from "../core/plugin.ts";
import { type InitMessage, transferables } from "./parallel.ts";

let units: { scanner?: Scanner; estimator?: Estimator }[] = [];
let chain: Promise<void> = Promise.resolve();

async function handle(m: { type: string } & Record<string, unknown>): Promise<void> {
  try {
    if (m.type === "init") {
      const init = m as unknown as InitMessage;
      const registry = new Registry(builtinPlugins);
      for (const url of init.modules) await registry.load(url);
      units = init.plugins.map((p) => {
        const plugin = registry.get(p.name);
        return init.mode === "scan"
          ? { scanner: plugin.scan!(p.options, p.context)! }
          : { estimator: plugin.create(p.options, p.context) };
      });
      self.postMessage({ type: "ready" });
    } else if (m.type === "batch") {
      for (const u of units) {
        if (u.scanner) u.scanner.update(m.batch as never);
        else await u.estimator!.update(m.batch as never);
      }
      // hand the batch's buffers back for reuse: every estimator is done with it
      const back = transferables(m.batch as never);
      self.postMessage({ type: "ack", buffers: back }, back);
    } else if (m.type === "finish") {
      for (const u of units) await u.estimator?.flush?.();
      const states = units.map((u) => encodeState(u.scanner ? u.scanner.result() : u.estimator!.state()));
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
