/**
 * The contract every registered estimator must meet (River-style): state round-trip, merge(A, B) equals one
 * pass over A then B, and results independent of batch size. Runs over every built-in plugin and the example
 * plugin; a plugin without a fixture fails the suite.
 */
import { assertTablesClose, prepare } from "./_util.ts";
import { CONTRACT_FIXTURES } from "./_contract_fixtures.ts";
import { builtinPlugins } from "../plugins/mod.ts";
import { examplePlugin } from "../scripts/examples/example_mean.ts";
import { concatBatches, sliceBatch } from "../schemas/batch.ts";
import { decodeState, encodeState } from "../pipeline/core/state.ts";
import type { Batch } from "../schemas/batch.ts";
import type { Estimator, Results } from "../pipeline/core/plugin.ts";

const plugins = [...builtinPlugins, examplePlugin];

function rebatch(batches: Batch[], size: number): Batch[] {
  const all = concatBatches(batches);
  const out: Batch[] = [];
  for (let r = 0; r < all.numRows; r += size) {
    out.push({ ...sliceBatch(all, r, Math.min(all.numRows, r + size)), index: out.length });
  }
  return out;
}

function compare(a: Results, b: Results, label: string, rtol: number): void {
  const ka = Object.keys(a).sort().join(","), kb = Object.keys(b).sort().join(",");
  if (ka !== kb) throw new Error(`${label}: tables differ: ${ka} vs ${kb}`);
  for (const k of Object.keys(a)) assertTablesClose(a[k], b[k], rtol, 1e-12, `${label} ${k}`);
}

for (const plugin of plugins) {
  const fixtures = CONTRACT_FIXTURES[plugin.name];
  Deno.test(`contract: ${plugin.name} has a fixture`, () => {
    if (!fixtures?.length) {
      throw new Error(`plugin '${plugin.name}' has no contract fixture in tests/_contract_fixtures.ts`);
    }
  });
  for (const fx of fixtures ?? []) {
    const name = `contract: ${plugin.name} ${fx.label}`;
    Deno.test(name, async (t) => {
      const batches = fx.batches();
      const { options, context } = prepare(plugin, fx.options, batches, fx.context);
      const feed = async (e: Estimator, bs: Batch[]) => {
        for (const b of bs) await e.update(b);
        return e;
      };
      const full = await feed(plugin.create(options, context), batches);
      const expected = await full.result();
      const rtol = fx.rtol ?? 1e-12;

      await t.step("state round-trip (encode/decode/restore) gives the same results", async () => {
        const bytes = encodeState(full.state());
        const restored = plugin.restore(decodeState(bytes), options, context);
        compare(expected, await restored.result(), "round-trip", rtol);
        // and a restored estimator keeps accumulating like the original
        const half = Math.floor(batches.length / 2);
        const first = await feed(plugin.create(options, context), batches.slice(0, half));
        const cont = await feed(
          plugin.restore(decodeState(encodeState(first.state())), options, context),
          batches.slice(half),
        );
        compare(expected, await cont.result(), "restore-then-continue", rtol);
      });

      await t.step("merge(A, B) equals one pass over A then B", async () => {
        const half = Math.floor(batches.length / 2);
        const a = await feed(plugin.create(options, context), batches.slice(0, half));
        const b = await feed(plugin.create(options, context), batches.slice(half));
        a.merge(b);
        compare(expected, await a.result(), "merge", rtol);
        // merging an empty estimator changes nothing
        const c = await feed(plugin.create(options, context), batches);
        c.merge(plugin.create(options, context));
        compare(expected, await c.result(), "merge-empty", rtol);
      });

      await t.step("results do not depend on batch size", async () => {
        for (const size of fx.batchSizes ?? [1, 7, 1000]) {
          const e = await feed(plugin.create(options, context), rebatch(batches, size));
          compare(expected, await e.result(), `batch size ${size}`, rtol);
        }
      });
    });
  }
}
