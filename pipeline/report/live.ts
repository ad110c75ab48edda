/**
 * The live report (`report --watch DIR...`, `serve --report HOST:PORT`): a tiny HTTP server on a loopback address
 * that serves the report page of results directories that are still being written, and re-builds it whenever their
 * files change (a `serve` window closing writes part files and `checkpoint/progress.json`; stopping writes the final
 * tables and `run.json`). The page polls `version` and, when it changed, fetches `page` (its content and plots as
 * JSON) and re-draws itself in place. It serves nothing else and never reads outside the directories; `out`, when
 * given, is rewritten as a static page at each update too. See docs/report.md, "Live page".
 *
 * @example
 * ```ts ignore
 * import { serveReport } from "./live.ts";
 * const live = await serveReport({ dirs: ["infotap-live"], listen: "127.0.0.1:7342" });
 * console.log(`open ${live.url}`);
 * ```
 *
 * @module
 */
import { InputError, show } from "../../schemas/errors.ts";
import { isLoopback, parseListen } from "../core/listen.ts";
import type { ReportRun } from "../core/report_contract.ts";
import { atomicWrite } from "../core/write.ts";
import { readResults } from "./results.ts";
import { htmlPage, type PageParts, pageParts, type ReportOptions, runNames } from "./report.ts";

/** Options of {@linkcode serveReport}: the page's options, and where to listen and what to watch. */
export interface LiveReportOptions extends Omit<ReportOptions, "live"> {
  /** The results directories (one page; several are overlaid). */
  dirs: string[];
  /** Their names on the page (default: {@linkcode runNames}). */
  names?: string[];
  /** `HOST:PORT` on a loopback address (default `127.0.0.1:7342`; port 0: any free port). */
  listen?: string;
  /** How often the directories are checked for changes, and the page checks the server (default 1000 ms). */
  everyMs?: number;
  /** A file rewritten with the static page at each update. */
  out?: string;
  /** Where progress lines go (default: nowhere). */
  log?: (line: string) => void;
}

/** A running live report. */
export interface LiveReport {
  port: number;
  url: string;
  /** The page's update count (1 after the first build). */
  readonly version: number;
  /** Checks the directories now and re-builds the page when they changed; resolves when done. */
  refresh(): Promise<void>;
  /** Stops watching and serving. */
  stop(): Promise<void>;
}

/** What changes when a directory's results change: names, sizes and times of its table files and parts. */
async function signature(dir: string): Promise<string> {
  const out: string[] = [];
  const add = async (path: string) => {
    try {
      const s = await Deno.stat(path);
      out.push(`${path}:${s.size}:${s.mtime?.getTime()}`);
    } catch { /* gone meanwhile */ }
  };
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && /\.(parquet|arrow|csv|json)$/.test(e.name)) await add(`${dir}/${e.name}`);
      else if (e.isDirectory && e.name !== "checkpoint") {
        for await (const p of Deno.readDir(`${dir}/${e.name}`)) {
          if (/^part-/.test(p.name) && !p.name.includes(".tmp-")) out.push(`${e.name}/${p.name}`);
        }
      }
    }
    await add(`${dir}/checkpoint/progress.json`);
  } catch {
    return "missing";
  }
  return out.sort().join("\n");
}

/** Starts the live report server; throws {@linkcode InputError} for an address off loopback. */
export async function serveReport(opts: LiveReportOptions): Promise<LiveReport> {
  const { hostname, port } = parseListen(opts.listen ?? "127.0.0.1:7342", "--listen");
  if (!isLoopback(hostname)) {
    throw new InputError(
      `Cannot serve the live report off loopback as it has no access control (use 127.0.0.1 and an SSH tunnel): current value is ${
        show(hostname)
      }`,
    );
  }
  const every = opts.everyMs ?? 1000;
  const names = opts.names ?? runNames(opts.dirs);
  const log = opts.log ?? (() => {});
  let version = 0;
  let seen = "";
  let parts: PageParts | null = null;
  let html = "";

  const build = async () => {
    version++;
    const live = { version, every_ms: every };
    const runs: ReportRun[] = [];
    const waiting: string[] = [];
    for (let i = 0; i < opts.dirs.length; i++) {
      try {
        runs.push({ name: names[i], results: await readResults(opts.dirs[i]) });
      } catch (e) {
        waiting.push(`${opts.dirs[i]}: ${(e as Error).message}`);
      }
    }
    if (runs.length === 0) {
      parts = {
        title: "infotap live report: waiting",
        content:
          `<h1>infotap live report</h1><p id="live">Live: update ${version}.</p><p class="warn">Waiting for results (the page updates by itself): ${
            waiting.map((w) => w.replaceAll("&", "&amp;").replaceAll("<", "&lt;")).join("; ")
          }</p>`,
        data: { plots: [], images: [], version, live },
      };
    } else {
      parts = await pageParts(runs.length > 1 ? runs : runs[0].results, { ...opts, live });
    }
    html = await htmlPage(parts);
    if (opts.out) await atomicWrite(opts.out, html);
    log(`infotap report: update ${version} (${runs.length} of ${opts.dirs.length} run(s) with results)`);
  };

  let pending: Promise<void> = Promise.resolve();
  const refresh = () => {
    pending = pending.then(async () => {
      const sig = (await Promise.all(opts.dirs.map(signature))).join("\n--\n");
      if (sig === seen && parts) return;
      seen = sig;
      await build();
    }).catch((e) => log(`infotap report: error: ${(e as Error).message}`));
    return pending;
  };
  await refresh();

  const json = (x: unknown) =>
    new Response(JSON.stringify(x), { headers: { "content-type": "application/json", "cache-control": "no-store" } });
  const server = Deno.serve({ hostname, port, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (req.method !== "GET") return new Response("method not allowed", { status: 405 });
    if (path === "/" || path === "/index.html") {
      return new Response(html, {
        headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
      });
    }
    if (path === "/version") return json({ version });
    if (path === "/favicon.ico") return new Response(null, { status: 204 });
    if (path === "/page") return json({ version, title: parts!.title, content: parts!.content, data: parts!.data });
    return new Response("not found", { status: 404 });
  });
  const addr = server.addr as Deno.NetAddr;
  let timer: ReturnType<typeof setTimeout> | undefined, stopped = false;
  const tick = async () => {
    await refresh();
    if (!stopped) timer = setTimeout(tick, every);
  };
  timer = setTimeout(tick, every);
  return {
    port: addr.port,
    url: `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${addr.port}/`,
    get version() {
      return version;
    },
    refresh,
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await pending;
      await server.shutdown();
    },
  };
}
