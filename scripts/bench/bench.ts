/**
 * `deno task bench [--quick] [--only NAME,...] [--backend cpu|webgpu] [--write]`: runs every benchmark module
 * (each measures infotap's path and a reference in the same run and reports the ratio), prints a Markdown table,
 * and with `--write` replaces the generated section of BENCHMARKS.md with it (machine, date and versions
 * included). `--backend webgpu` also runs the GPU modules (`gpu`: scripts/bench/gpu.ts, histograms, binned-MI
 * joint counts, Fisher diagonal; `gpu_ksg`: scripts/bench/gpu_ksg.ts; `gpu_si`: scripts/bench/gpu_si.ts; each
 * WebGPU path against its CPU path, both figures and the ratio; the first row names the adapter).
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { BenchArgs, BenchRow } from "./_types.ts";

/** Benchmark modules by name. */
const MODULES: Record<
  string,
  () => Promise<{ bench: (a: BenchArgs, onRow?: (r: BenchRow) => void) => Promise<BenchRow[]> }>
> = {
  ingest: () => import("./ingest.ts"),
  binning: () => import("./binning.ts"),
  mi: () => import("./mi.ts"),
  fisher: () => import("./fisher.ts"),
  si: () => import("./si.ts"),
  si_finite: () => import("./si_finite.ts"),
  serve: () => import("./serve.ts"),
  gpu: () => import("./gpu.ts"),
  gpu_ksg: () => import("./gpu_ksg.ts"),
  gpu_si: () => import("./gpu_si.ts"),
};

/** Modules that run only when asked for (`--only`) or with `--backend webgpu`. */
const GPU_ONLY = new Set(["gpu", "gpu_ksg", "gpu_si"]);

function fmt(x: number | undefined): string {
  if (x === undefined || Number.isNaN(x)) return "";
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 1) return x.toFixed(2);
  return x.toPrecision(3);
}

async function machine(): Promise<string> {
  let cpu = "unknown CPU";
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    cpu = /model name\s*:\s*(.*)/.exec(info)?.[1] ?? cpu;
  } catch { /* not Linux */ }
  const mem = Deno.systemMemoryInfo();
  // the machine may be shared: the load average before the run says how busy it was
  const load = Deno.loadavg().map((x) => x.toFixed(1)).join(", ");
  return `${navigator.hardwareConcurrency} cores (${cpu}), ${
    (mem.total / 2 ** 30).toFixed(0)
  } GiB, ${Deno.build.os}-${Deno.build.arch}, Deno ${Deno.version.deno}, load average ${load} at the start`;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean" },
      only: { type: "string" },
      write: { type: "boolean" },
      backend: { type: "string" },
    },
  });
  const backend = values.backend ?? "cpu";
  if (backend !== "cpu" && backend !== "webgpu") {
    console.error(`bench: Cannot use --backend as it must be cpu or webgpu: current value is '${backend}'`);
    Deno.exit(2);
  }
  const names = values.only
    ? values.only.split(",")
    : Object.keys(MODULES).filter((n) => backend === "webgpu" || !GPU_ONLY.has(n));
  const lines = [
    `Measured ${new Date().toISOString().slice(0, 10)} on ${await machine()}${values.quick ? " (--quick sizes)" : ""}${
      backend === "webgpu" ? " (--backend webgpu)" : ""
    }.`,
    "",
    "| benchmark | measurement | value | unit | reference | ratio | note |",
    "| --- | --- | ---: | --- | ---: | ---: | --- |",
  ];
  for (const name of names) {
    const load = MODULES[name];
    if (!load) {
      console.error(
        `bench: Cannot run benchmark as it is unknown (known: ${
          Object.keys(MODULES).join(", ")
        }): current value is '${name}'`,
      );
      Deno.exit(2);
    }
    console.error(`running ${name} ...`);
    const line = (r: BenchRow) =>
      `| ${name} | ${r.name} | ${fmt(r.value)} | ${r.unit} | ${fmt(r.reference)} | ${fmt(r.ratio)} | ${r.note ?? ""} |`;
    // Rows are shown as soon as a module reports them (modules that take the callback), the table at the end.
    let shown = 0;
    const rows = await (await load()).bench({ quick: Boolean(values.quick), backend }, (r) => {
      shown++;
      console.error(line(r));
    });
    for (const r of rows) {
      lines.push(line(r));
      if (shown === 0) console.error(line(r));
    }
  }
  const table = lines.join("\n");
  console.log(table);
  if (values.write) {
    const path = new URL("../../BENCHMARKS.md", import.meta.url);
    const text = await Deno.readTextFile(path);
    const begin = "<!-- bench:begin -->", end = "<!-- bench:end -->";
    const i = text.indexOf(begin), j = text.indexOf(end);
    if (i < 0 || j < 0) {
      throw new Error("Cannot update BENCHMARKS.md as its bench markers are missing: current value is absent");
    }
    await Deno.writeTextFile(path, text.slice(0, i + begin.length) + "\n" + table + "\n" + text.slice(j));
  }
}
