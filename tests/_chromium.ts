/**
 * Test helper: opens a local HTML page in headless Chromium (Debian's `chromium` package, no npm browser) and
 * drives it over the DevTools protocol (a WebSocket from Deno): waits for `window.__reportStatus.done`, collects
 * console messages, uncaught exceptions and browser log entries, and can take a full-page screenshot; a tab can
 * stay open on a live page (an http URL) while the test changes what it shows.
 *
 * Usage: `deno run -A tests/_chromium.ts PAGE.html [SCREENSHOT.png]` prints the status as JSON.
 *
 * @module
 */

/**
 * The Chromium binary: `$CHROMIUM` when set (null when that is not a file), else the first of the usual paths that
 * exists; null when none.
 */
export function findChromium(): string | null {
  const env = Deno.env.get("CHROMIUM");
  const candidates = env ? [env] : ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];
  for (const c of candidates) {
    try {
      if (Deno.statSync(c).isFile) return c;
    } catch { /* next */ }
  }
  return null;
}

/** What the page reported and logged. */
export interface PageRun {
  /** `window.__reportStatus` (null when the page never set it before the timeout). */
  status:
    | {
      done: boolean;
      plots: { id: string; marks: number; width: number; height: number; error?: string }[];
      images: number;
      errors: string[];
    }
    | null;
  /** Console messages of level error or warning, uncaught exceptions, and browser log errors. */
  problems: string[];
  /** Every console message, as `level: text`. */
  console: string[];
}

/** Flags for a quiet, offline, throw-away headless Chromium. */
function flags(profile: string): string[] {
  return [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--mute-audio",
    `--user-data-dir=${profile}`,
    "--remote-debugging-port=0",
    "about:blank",
  ];
}

/** A minimal DevTools protocol client over one WebSocket (flat sessions). */
class Cdp {
  #ws: WebSocket;
  #id = 0;
  #pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  onEvent: (method: string, params: any, sessionId?: string) => void = () => {};
  constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data as string);
      if (msg.id !== undefined) {
        const p = this.#pending.get(msg.id);
        this.#pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(`${msg.error.message} (${msg.error.code})`));
        else p?.resolve(msg.result);
      } else this.onEvent(msg.method, msg.params, msg.sessionId);
    };
    ws.onclose = () => {
      for (const p of this.#pending.values()) p.reject(new Error("DevTools connection closed"));
      this.#pending.clear();
    };
  }
  static open(url: string): Promise<Cdp> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.onopen = () => resolve(new Cdp(ws));
      ws.onerror = (e) =>
        reject(new Error(`Cannot connect to Chromium's DevTools at ${url}: ${(e as ErrorEvent).message}`));
    });
  }
  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<any> {
    const id = ++this.#id;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });
  }
  close(): Promise<void> {
    if (this.#ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.#ws.addEventListener("close", () => resolve());
      this.#ws.close();
    });
  }
}

/** Reads Chromium's stderr until the DevTools address shows up; the caller drains (cancels) the reader. */
async function devtoolsUrl(reader: ReadableStreamDefaultReader<string>, log: string[]): Promise<string> {
  let buf = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Chromium exited before DevTools started: ${log.join("").slice(-400)}`);
    buf += value;
    log.push(value);
    const m = /DevTools listening on (ws:\/\/\S+)/.exec(buf);
    if (m) return m[1];
  }
}

/** A status as the page sets it in `window.__reportStatus`. */
export type PageStatus = NonNullable<PageRun["status"]> & { version?: number };

/** A tab kept open (e.g. a live page): read its status, wait for one, take screenshots, then close it. */
export interface Tab {
  /** Console problems so far (as in {@linkcode PageRun.problems}). */
  problems: string[];
  status(): Promise<PageStatus | null>;
  /** The value of a JavaScript expression in the page (JSON values). */
  evaluate(expression: string): Promise<unknown>;
  /** Waits until `ok(status)` holds (polling every 50 ms); throws after `timeoutMs` with the last status. */
  waitFor(ok: (s: PageStatus) => boolean, timeoutMs?: number): Promise<PageStatus>;
  /** Every console message so far, as `level: text`. */
  console: string[];
  /** A full-page screenshot (PNG) at the tab's width, or the rows `clip` = [top, bottom] of it. */
  screenshot(path: string, clip?: [number, number]): Promise<void>;
  close(): Promise<void>;
}

/** An open headless Chromium: {@linkcode Browser.open} loads one page in a fresh tab. */
export interface Browser {
  open(
    path: string,
    opts?: { timeoutMs?: number; screenshot?: string; width?: number; clip?: [number, number] },
  ): Promise<PageRun>;
  /** Opens a page (a file path or an http URL) in a tab that stays open until closed. */
  tab(url: string, width?: number): Promise<Tab>;
}

/** Starts headless Chromium, runs `use` with it, and always stops it and removes its profile. */
export async function withChromium<T>(chromium: string, use: (browser: Browser) => Promise<T>): Promise<T> {
  const profile = await Deno.makeTempDir({ prefix: "infotap-chromium-" });
  const child = new Deno.Command(chromium, { args: flags(profile), stdout: "null", stderr: "piped", stdin: "null" })
    .spawn();
  const log: string[] = [];
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let draining: Promise<void> | null = null;
  let cdp: Cdp | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const sessions = new Map<string, PageRun>();
  try {
    const url = await Promise.race([
      devtoolsUrl(stderr, log),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("Chromium did not start DevTools within 30 s")), 30_000);
      }),
    ]);
    clearTimeout(timer);
    draining = (async () => {
      try {
        while (!(await stderr.read()).done) { /* Chromium's log is not needed */ }
      } catch { /* cancelled */ }
    })();
    cdp = await Cdp.open(url);
    cdp.onEvent = (method, params, sessionId) => {
      const run = sessionId ? sessions.get(sessionId) : undefined;
      if (!run) return;
      if (method === "Runtime.consoleAPICalled") {
        const text = (params.args as { value?: unknown; description?: string }[]).map((a) =>
          a.value !== undefined ? String(a.value) : a.description ?? ""
        ).join(" ");
        run.console.push(`${params.type}: ${text}`);
        if (params.type === "error" || params.type === "warning" || params.type === "assert") {
          run.problems.push(`console.${params.type}: ${text}`);
        }
      } else if (method === "Runtime.exceptionThrown") {
        const d = params.exceptionDetails;
        run.problems.push(`exception: ${d.exception?.description ?? d.text}`);
      } else if (method === "Log.entryAdded") {
        const e = params.entry;
        if (e.level === "error" || e.level === "warning") run.problems.push(`log.${e.level} (${e.source}): ${e.text}`);
      }
    };
    const tab = async (url: string, width = 1280): Promise<Tab> => {
      const { targetId } = await cdp!.send("Target.createTarget", { url: "about:blank" });
      const { sessionId } = await cdp!.send("Target.attachToTarget", { targetId, flatten: true });
      const run: PageRun = { status: null, problems: [], console: [] };
      sessions.set(sessionId, run);
      const s = (method: string, params: Record<string, unknown> = {}) => cdp!.send(method, params, sessionId);
      await s("Runtime.enable");
      await s("Log.enable");
      await s("Page.enable");
      await s("Emulation.setDeviceMetricsOverride", { width, height: 900, deviceScaleFactor: 1, mobile: false });
      const abs = url.startsWith("/") ? url : `${Deno.cwd()}/${url}`;
      await s("Page.navigate", { url: /^https?:/.test(url) ? url : `file://${encodeURI(abs)}` });
      const status = async () => {
        const r = await s("Runtime.evaluate", {
          expression: "window.__reportStatus ? JSON.stringify(window.__reportStatus) : null",
          returnByValue: true,
        });
        return typeof r.result?.value === "string" ? JSON.parse(r.result.value) as PageStatus : null;
      };
      return {
        problems: run.problems,
        console: run.console,
        status,
        evaluate: async (expression) =>
          (await s("Runtime.evaluate", { expression, returnByValue: true })).result?.value,
        waitFor: async (ok, timeoutMs = 60_000) => {
          const t0 = Date.now();
          let last: PageStatus | null = null;
          while (Date.now() - t0 < timeoutMs) {
            last = await status();
            if (last && ok(last)) return last;
            await new Promise((res) => setTimeout(res, 50));
          }
          throw new Error(`page status not reached within ${timeoutMs} ms: ${JSON.stringify(last)?.slice(0, 400)}`);
        },
        screenshot: async (path, clip) => {
          const h = await s("Runtime.evaluate", {
            expression: "document.documentElement.scrollHeight",
            returnByValue: true,
          });
          const height = Math.min(16000, Number(h.result.value) || 900);
          await s("Emulation.setDeviceMetricsOverride", { width, height, deviceScaleFactor: 1, mobile: false });
          const area = clip ? { x: 0, y: clip[0], width, height: Math.min(height, clip[1]) - clip[0], scale: 1 } : null;
          const shot = await s("Page.captureScreenshot", { format: "png", ...(area ? { clip: area } : {}) });
          await Deno.writeFile(path, Uint8Array.from(atob(shot.data), (c) => c.charCodeAt(0)));
          await s("Emulation.setDeviceMetricsOverride", { width, height: 900, deviceScaleFactor: 1, mobile: false });
        },
        close: async () => {
          await cdp!.send("Target.closeTarget", { targetId });
          sessions.delete(sessionId);
        },
      };
    };
    const browser: Browser = {
      tab,
      open: async (path, opts = {}) => {
        const t = await tab(path, opts.width);
        let status: PageStatus | null = null;
        try {
          status = await t.waitFor((x) => x.done, opts.timeoutMs);
        } catch {
          status = await t.status();
        }
        if (opts.screenshot && status) await t.screenshot(opts.screenshot, opts.clip);
        const run = { status, problems: t.problems, console: t.console };
        await t.close();
        return run;
      },
    };
    const result = await use(browser);
    try {
      await cdp.send("Browser.close");
    } catch { /* already closing */ }
    return result;
  } finally {
    clearTimeout(timer);
    await cdp?.close();
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    await stderr.cancel().catch(() => {});
    await draining;
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const chromium = findChromium();
  if (!chromium) {
    console.error("no chromium found (apt-get install chromium, or set CHROMIUM)");
    Deno.exit(1);
  }
  const r = await withChromium(chromium, (b) =>
    b.open(Deno.args[0], {
      screenshot: Deno.args[1],
      clip: Deno.args[2] ? Deno.args[2].split(":").map(Number) as [number, number] : undefined,
    }));
  console.log(JSON.stringify(r, null, 2));
}
