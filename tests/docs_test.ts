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

Deno.test("README: the layout table names every folder of the tree, and every path it names exists", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", root));
  const layout = readme.split("## Layout")[1].split("\n## ")[0];
  const paths = [...layout.matchAll(/^\| `([^`]+)`/gm)].map((m) => m[1]);
  const estimatorRow = layout.split("\n").find((l) => l.startsWith("| `plugins/<estimator>/`"))!;
  for (const p of paths.filter((p) => !p.includes("<"))) {
    assert.ok(await Deno.stat(new URL(p, root)).catch(() => null), `README layout: ${p} does not exist`);
  }
  const dirs = async (dir: string) => {
    const out: string[] = [];
    for await (const e of Deno.readDir(new URL(dir, root))) if (e.isDirectory) out.push(e.name);
    return out;
  };
  const ignored = (await Deno.readTextFile(new URL(".gitignore", root))).split("\n").map((l) =>
    l.replace(/^\/|\/$/g, "")
  );
  for (const name of await dirs("./")) {
    if (ignored.includes(name) || name === ".git" || name === "node_modules") continue;
    assert.ok(paths.some((p) => p === `${name}/` || p.startsWith(`${name}/`)), `README layout: ${name}/ is not listed`);
  }
  for (const top of ["pipeline", "plugins", "scripts"]) {
    for (const name of await dirs(`${top}/`)) {
      const listed = paths.includes(`${top}/${name}/`) ||
        (top === "plugins" && estimatorRow.includes(`\`${name}\``));
      assert.ok(listed, `README layout: ${top}/${name}/ is not listed`);
    }
  }
});
