/**
 * The docs keep up with the code: every built-in estimator has a section in docs/estimators.md naming each option it
 * declares, and the README's estimator table links it.
 */
import assert from "node:assert/strict";
import { builtinPlugins } from "../plugins/mod.ts";

const root = new URL("../", import.meta.url);

Deno.test("docs/estimators.md: a section per built-in estimator naming every option it declares", async () => {
  const doc = await Deno.readTextFile(new URL("docs/estimators.md", root));
  const sections = new Map(
    doc.split(/^## /m).slice(1).map((s) => [/^`([^`]+)`/.exec(s)?.[1] ?? s.split("\n")[0], s] as const),
  );
  for (const p of builtinPlugins) {
    const section = sections.get(p.name);
    assert.ok(section, `no section '## \`${p.name}\`' in docs/estimators.md`);
    for (const option of Object.keys(p.options)) {
      assert.ok(section.includes(`\`--${option}`), `docs/estimators.md, ${p.name}: option --${option} is not named`);
    }
  }
});

Deno.test("README: the estimator table has a row per built-in estimator, each linking its section of docs/estimators.md", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", root));
  for (const p of builtinPlugins) {
    const row = readme.split("\n").find((l) => l.startsWith(`| \`${p.name}\``));
    assert.ok(row, `README: no estimator row for ${p.name}`);
    assert.ok(row.includes(`docs/estimators.md#${p.name}`), `README: the row of ${p.name} does not link its options`);
  }
});
