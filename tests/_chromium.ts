/**
 * Test helper: opens a local HTML page in headless Chromium (Debian's `chromium` package, no npm browser) and
 * drives it over the DevTools protocol (a WebSocket from Deno): waits for `window.__reportStatus.done`, collects
 * console messages, uncaught exceptions and browser log entries, and can take a full-page screenshot.
 *
 * Usage: `deno run -A tests/_chromium.ts PAGE.html [SCREENSHOT.png]` prints the status as JSON.
 *
 * @module
 */

/** The Chromium binary: `$CHROMIUM`, else the first of the usual paths that exists; null when none. */
export function findChromium(): string | null {
  const env = Deno.env.get("CHROMIUM");
  const candidates = [
    ...(env ? [env] : []),
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
  ];
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
    | { done: boolean; plots: { id: string; marks: number; error?: string }[]; images: number; errors: string[] }
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

/** Reads Chromium's stderr until the DevTools address shows up; keeps draining it afterwards. */
async function devtoolsUrl(stderr: ReadableStream<Uint8Array>, log: string[]): Promise<string> {
  const reader = stderr.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Chromium exited before DevTools started: ${log.join("").slice(-400)}`);
    buf += value;
    log.push(value);
    const m = /DevTools listening on (ws:\/\/\S+)/.exec(buf);
    if (m) {
      (async () => {
        try {
          while (!(await reader.read()).done) { /* drain */ }
        } catch { /* closed */ }
      })();
      return m[1];
    }
  }
}

/**
 * Opens `path` in headless Chromium, waits (up to `timeoutMs`) for `window.__reportStatus.done`, and returns
 * the status and the problems logged; with `screenshot`, writes a full-page PNG there.
 */
export async function openPage(
  chromium: string,
  path: string,
  opts: { timeoutMs?: number; screenshot?: string; width?: number } = {},
): Promise<PageRun> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const profile = await Deno.makeTempDir({ prefix: "infotap-chromium-" });
  const child = new Deno.Command(chromium, { args: flags(profile), stdout: "null", stderr: "piped", stdin: "null" })
    .spawn();
  const log: string[] = [];
  let cdp: Cdp | null = null;
  const problems: string[] = [];
  const consoleLines: string[] = [];
  let timer: number | undefined;
  try {
    const url = await Promise.race([
      devtoolsUrl(child.stderr, log),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("Chromium did not start DevTools within 15 s")), 15_000);
      }),
    ]);
    clearTimeout(timer);
    cdp = await Cdp.open(url);
    cdp.onEvent = (method, params) => {
      if (method === "Runtime.consoleAPICalled") {
        const text = (params.args as { value?: unknown; description?: string }[]).map((a) =>
          a.value !== undefined ? String(a.value) : a.description ?? ""
        ).join(" ");
        consoleLines.push(`${params.type}: ${text}`);
        if (params.type === "error" || params.type === "warning" || params.type === "assert") {
          problems.push(`console.${params.type}: ${text}`);
        }
      } else if (method === "Runtime.exceptionThrown") {
        const d = params.exceptionDetails;
        problems.push(`exception: ${d.exception?.description ?? d.text}`);
      } else if (method === "Log.entryAdded") {
        const e = params.entry;
        if (e.level === "error" || e.level === "warning") problems.push(`log.${e.level} (${e.source}): ${e.text}`);
      }
    };
    const { targetId } = await cdp.send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await cdp.send("Target.attachToTarget", { targetId, flatten: true });
    const s = (method: string, params: Record<string, unknown> = {}) => cdp!.send(method, params, sessionId);
    await s("Runtime.enable");
    await s("Log.enable");
    await s("Page.enable");
    const width = opts.width ?? 1280;
    await s("Emulation.setDeviceMetricsOverride", { width, height: 900, deviceScaleFactor: 1, mobile: false });
    const abs = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
    await s("Page.navigate", { url: `file://${encodeURI(abs)}` });
    const t0 = Date.now();
    let status: PageRun["status"] = null;
    while (Date.now() - t0 < timeoutMs) {
      const r = await s("Runtime.evaluate", {
        expression: "window.__reportStatus ? JSON.stringify(window.__reportStatus) : null",
        returnByValue: true,
      });
      if (typeof r.result?.value === "string") {
        status = JSON.parse(r.result.value);
        if (status?.done) break;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    if (opts.screenshot && status) {
      const h = await s("Runtime.evaluate", {
        expression: "document.documentElement.scrollHeight",
        returnByValue: true,
      });
      const height = Math.min(16000, Number(h.result.value) || 900);
      await s("Emulation.setDeviceMetricsOverride", { width, height, deviceScaleFactor: 1, mobile: false });
      const shot = await s("Page.captureScreenshot", { format: "png" });
      const bin = atob(shot.data);
      await Deno.writeFile(opts.screenshot, Uint8Array.from(bin, (c) => c.charCodeAt(0)));
    }
    try {
      await cdp.send("Browser.close");
    } catch { /* already closing */ }
    return { status, problems, console: consoleLines };
  } finally {
    clearTimeout(timer);
    await cdp?.close();
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const chromium = findChromium();
  if (!chromium) {
    console.error("no chromium found (apt-get install chromium, or set CHROMIUM)");
    Deno.exit(1);
  }
  const r = await openPage(chromium, Deno.args[0], { screenshot: Deno.args[1] });
  console.log(JSON.stringify(r, null, 2));
}
