/**
 * Bundles infotap's engine for the Python package (python/README.md): each CLI entry point
 * (pipeline/cli/{analyze,serve,report,compare}.ts) becomes one JavaScript file that `deno run` executes with no
 * npm packages and no network. Usage: `deno run -A scripts/python/bundle.ts OUT_DIR` (scripts/python/bundle.sh).
 *
 * What a bundle cannot inline is placed next to it and the bundle is pointed there: worker modules
 * (`new URL("./x_worker.ts", import.meta.url)`, found in the bundle under its `// path/module.ts` comments and
 * bundled under a name derived from their source path, so two `_worker.ts` never collide), parquet-wasm's `.wasm`
 * (the bundles define `__dirname` as their own folder) and, for `report`, the Vega builds with the licences of
 * their dependency closure (`new URL("../../node_modules/", import.meta.url)` becomes `./node_modules/`). Any other
 * `import.meta.url` asset is an error, so a new one is noticed here and not on a user's machine.
 *
 * @module
 */
import { dirname, join, normalize, resolve } from "node:path";

const ROOT = normalize(join(import.meta.dirname!, "../.."));
const ENTRIES = ["analyze", "serve", "report", "compare"];
/** Libraries `report` inlines (pipeline/report/report.ts), read from ./node_modules/ next to the bundle. */
const REPORT_LIBRARIES = ["vega", "vega-lite", "vega-embed"];
const deno = join(ROOT, "node_modules/deno/deno");

function fail(message: string): never {
  console.error(`bundle: ${message}`);
  Deno.exit(1);
}

async function denoBundle(source: string, extra: string[] = []): Promise<string> {
  const tmp = await Deno.makeTempFile({ suffix: ".js" });
  try {
    const r = await new Deno.Command(deno, {
      args: ["bundle", "-q", "--platform", "deno", ...extra, "-o", tmp, source],
      cwd: ROOT,
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!r.success) fail(`Cannot bundle ${source} as deno bundle failed: current value is exit code ${r.code}`);
    return await Deno.readTextFile(tmp);
  } finally {
    await Deno.remove(tmp);
  }
}

/**
 * Writes `code` (a relocated bundle) minified to `path`: half the size, and without comments, so that no JSDoc
 * example of the sources is found again in python/ by `deno test --doc` (which does not read .gitignore).
 */
async function writeMinified(path: string, code: string): Promise<void> {
  const tmp = await Deno.makeTempFile({ suffix: ".js" });
  try {
    await Deno.writeTextFile(tmp, code);
    await Deno.writeTextFile(path, await denoBundle(tmp, ["--minify", "--keep-names", "--no-config"]));
  } finally {
    await Deno.remove(tmp);
  }
}

/** Worker source path (relative to the root) -> bundled file name. */
const workers = new Map<string, string>();
let needsLibraries = false;

/**
 * Rewrites the `new URL("...", import.meta.url)` of `code` (a bundle of `source`) to files next to the bundle,
 * bundling each worker module it names.
 */
async function relocate(code: string, source: string): Promise<string> {
  const lines = code.split("\n");
  let module = source;
  const url = /new URL\((["'])([^"'`]+)\1, import\.meta\.url\)/g;
  for (let i = 0; i < lines.length; i++) {
    const head = /^\/\/ (\S+\.(?:ts|js|mjs|cjs|json))$/.exec(lines[i]);
    if (head) module = head[1];
    if (!lines[i].includes("import.meta.url)")) continue;
    const found: [string, string][] = [];
    for (const m of lines[i].matchAll(url)) found.push([m[0], m[2]]);
    for (const [whole, rel] of found) {
      const target = normalize(join(dirname(module), rel));
      let to: string;
      if (/\.(ts|js)$/.test(target) && !target.startsWith("..")) {
        to = await worker(target);
      } else if (target === "node_modules" || target === "node_modules/") {
        needsLibraries = true;
        to = "node_modules/";
      } else if (target.startsWith("build/native/")) {
        // the optional native kernels (plugins/kernels/native/) are not in the wheel: a path that is never there,
        // so the bundled engine keeps its WebAssembly kernels (which give the same results)
        to = `native-kernels-not-bundled/${target.slice("build/native/".length)}`;
      } else {
        fail(
          `Cannot place the asset that ${module} loads by URL as the bundler does not know it (teach scripts/python/bundle.ts): current value is '${rel}'`,
        );
      }
      lines[i] = lines[i].replace(whole, `new URL("./${to}", import.meta.url)`);
    }
  }
  const out = lines.join("\n");
  if (/import\.meta\.url\)/.test(out.replace(url, ""))) {
    const line = out.split("\n").find((l) => /import\.meta\.url\)/.test(l.replace(url, "")));
    if (line && /new URL\(/.test(line)) {
      fail(`Cannot relocate a computed URL of ${source}: current value is ${JSON.stringify(line.trim())}`);
    }
  }
  return `const __dirname = import.meta.dirname;\n${out}`;
}

async function worker(source: string): Promise<string> {
  const known = workers.get(source);
  if (known) return known;
  const name = source.replace(/\.(ts|js)$/, "").replaceAll("/", ".") + ".js";
  workers.set(source, name);
  await writeMinified(join(out, name), await relocate(await denoBundle(source), source));
  return name;
}

/** Package names in the dependency closure of `roots` (under node_modules). */
async function closure(roots: string[]): Promise<string[]> {
  const seen = new Set<string>();
  const queue = [...roots];
  while (queue.length) {
    const name = queue.shift()!;
    if (seen.has(name)) continue;
    let pkg;
    try {
      pkg = JSON.parse(await Deno.readTextFile(join(ROOT, "node_modules", name, "package.json")));
    } catch {
      continue; // report.ts skips packages it cannot read the same way
    }
    seen.add(name);
    queue.push(...Object.keys(pkg.dependencies ?? {}));
  }
  return [...seen];
}

async function copyLibraries(): Promise<void> {
  const builds: Record<string, string> = {
    vega: "build/vega.min.js",
    "vega-lite": "build/vega-lite.min.js",
    "vega-embed": "build/vega-embed.min.js",
  };
  for (const name of await closure(REPORT_LIBRARIES)) {
    const from = join(ROOT, "node_modules", name);
    const to = join(out, "node_modules", name);
    await Deno.mkdir(to, { recursive: true });
    const files = ["package.json", ...(builds[name] ? [builds[name]] : [])];
    for await (const e of Deno.readDir(from)) {
      if (e.isFile && /^licen[cs]e/i.test(e.name)) files.push(e.name);
    }
    for (const f of files) {
      await Deno.mkdir(dirname(join(to, f)), { recursive: true });
      await Deno.copyFile(join(from, f), join(to, f));
    }
  }
}

if (!Deno.args[0]) fail("Cannot bundle as no output directory was given: current value is none");
const out = resolve(Deno.args[0]);
await Deno.remove(out, { recursive: true }).catch(() => {});
await Deno.mkdir(out, { recursive: true });
for (const entry of ENTRIES) {
  const source = `pipeline/cli/${entry}.ts`;
  await writeMinified(join(out, `${entry}.js`), await relocate(await denoBundle(source), source));
}
await Deno.copyFile(
  join(ROOT, "node_modules/parquet-wasm/node/parquet_wasm_bg.wasm"),
  join(out, "parquet_wasm_bg.wasm"),
);
if (needsLibraries) await copyLibraries();
const pkg = JSON.parse(await Deno.readTextFile(join(ROOT, "package.json")));
const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
await Deno.writeTextFile(
  join(out, "manifest.json"),
  JSON.stringify(
    {
      infotap: config.version,
      deno: pkg.devDependencies.deno,
      entries: Object.fromEntries(ENTRIES.map((e) => [e, `${e}.js`])),
      workers: Object.fromEntries(workers),
    },
    null,
    2,
  ) + "\n",
);
// Smoke test: every entry point starts from the bundle alone, in a folder with no deno.json and no node_modules.
const cwd = await Deno.makeTempDir();
for (const entry of ENTRIES) {
  const r = await new Deno.Command(deno, {
    args: ["run", "--no-config", "--no-lock", "-A", join(out, `${entry}.js`), "--help"],
    cwd,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!r.success) {
    fail(
      `Cannot use the ${entry} bundle as it does not start: current value is ${
        JSON.stringify(new TextDecoder().decode(r.stderr).trim().split("\n")[0])
      }`,
    );
  }
}
await Deno.remove(cwd, { recursive: true });
let bytes = 0;
const walk = async (d: string) => {
  for await (const e of Deno.readDir(d)) {
    if (e.isDirectory) await walk(join(d, e.name));
    else bytes += (await Deno.stat(join(d, e.name))).size;
  }
};
await walk(out);
console.log(
  `bundle: ${ENTRIES.length} entry points and ${workers.size} worker(s) in ${out} (${
    (bytes / 2 ** 20).toFixed(1)
  } MiB)`,
);
