import assert from "node:assert/strict";
import { Registry } from "./registry.ts";
import { builtinPlugins } from "../../plugins/mod.ts";
import { main } from "../cli/analyze.ts";

/** A plugin module as a data: URL (no network needed). */
const source = `export default {
  name: "data-count", description: "Counts rows.", inputs: ["activations/v1"], options: {},
  create: () => ({ update() {}, merge() {}, state: () => null, result: () => ({}) }),
  restore: () => ({ update() {}, merge() {}, state: () => null, result: () => ({}) }),
};`;
const dataUrl = `data:application/javascript;base64,${btoa(source)}`;

Deno.test("Registry.load: local paths and file: URLs only, unless URLs are allowed (--allow-remote-plugin)", async () => {
  const registry = new Registry(builtinPlugins);
  for (const url of ["https://example.com/plugin.ts", dataUrl, "npm:left-pad"]) {
    await assert.rejects(
      registry.load(url),
      (e) =>
        (e as Error).name === "PluginError" &&
        /^Cannot load plugin as it is a (https|data|npm): URL/.test((e as Error).message),
    );
  }
  assert.equal((await registry.load(dataUrl, { allowUrl: true })).name, "data-count");
  const local = new URL("../../scripts/examples/example_mean.ts", import.meta.url);
  assert.equal((await registry.load(local.href)).name, "example-mean");
});

Deno.test("analyze CLI: --plugin with a URL is bad usage (exit 2) naming --allow-remote-plugin", async () => {
  const errors: string[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => void errors.push(a.join(" "));
  try {
    assert.equal(await main(["--plugin", "https://example.com/p.ts", "x.arrows"]), 2);
  } finally {
    console.error = orig;
  }
  assert.match(errors[0], /^infotap: error: Cannot load plugin as it is a https: URL.*--allow-remote-plugin/);
});
