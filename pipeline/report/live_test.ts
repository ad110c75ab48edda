import assert from "node:assert/strict";
import { serve } from "../serve/serve.ts";
import { connectProducer } from "../producers/connect.ts";
import { serveReport } from "./live.ts";
import { OPTIONS, stepBatch, waitFor } from "../../tests/_live.ts";
import { findChromium, withChromium } from "../../tests/_chromium.ts";

const chromium = findChromium();
const inCI = Boolean(Deno.env.get("CI"));
/** A folder for the screenshots (`INFOTAP_REPORT_SHOTS=/tmp/shots`), to look at them. */
const shots = Deno.env.get("INFOTAP_REPORT_SHOTS");

Deno.test("live report: off loopback is refused; the page of a directory not yet written says it waits", async () => {
  await assert.rejects(serveReport({ dirs: ["x"], listen: "0.0.0.0:0" }), /Cannot serve the live report off loopback/);
  const dir = await Deno.makeTempDir();
  const live = await serveReport({ dirs: [`${dir}/later`], listen: "127.0.0.1:0", everyMs: 100 });
  try {
    const page = await (await fetch(live.url)).text();
    assert.match(page, /Waiting for results/);
    assert.deepEqual(await (await fetch(`${live.url}version`)).json(), { version: 1 });
    assert.equal((await fetch(`${live.url}nope`)).status, 404);
    assert.equal((await fetch(live.url, { method: "POST" })).status, 405);
  } finally {
    await live.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "live report in headless Chromium: the page re-draws itself as serve closes windows, then shows the complete run",
  ignore: !chromium && !inCI,
  async fn() {
    if (!chromium) throw new Error("Chromium is required when CI is set (apt-get install -y chromium)");
    const dir = await Deno.makeTempDir();
    const out = `${dir}/live`;
    const server = await serve({ listen: "127.0.0.1:0", out, options: OPTIONS, snapshotEvery: 2, log: () => {} });
    const live = await serveReport({ dirs: [out], listen: "127.0.0.1:0", everyMs: 150 });
    try {
      await withChromium(chromium, async (b) => {
        const tab = await b.tab(live.url, 1400);
        const first = await tab.waitFor((s) => s.done);
        assert.equal(first.plots.length, 0); // nothing written yet
        const p = await connectProducer({ port: server.port });
        const ids = Array.from({ length: 40 }, (_, i) => i);
        const marks = async (windows: number) => {
          await waitFor(() => server.snapshots >= windows, 20_000, `${windows} window(s)`);
          // The server re-builds the page by itself; refresh() waits for a check that sees this window's files.
          await live.refresh();
          const want = live.version;
          const s = await tab.waitFor((s) => s.done && (s.version ?? 0) >= want, 30_000);
          assert.deepEqual(s.errors, []);
          assert.ok(s.plots.length > 0 && s.plots.every((p) => p.marks > 0 && !p.error), JSON.stringify(s.plots));
          return { s, summary: s.plots.find((p) => p.id === "summary-entropy_mean")?.marks ?? 0 };
        };
        // Window 0 (steps 0, 1) closes when step 2 arrives; window 1 (steps 2, 3) when step 4 does.
        for (const step of [0, 1, 2]) await p.write(stepBatch(step, ids));
        const one = await marks(1);
        assert.ok(await tab.evaluate(`document.body.innerText.includes("No run.json in this directory")`));
        if (shots) await tab.screenshot(`${shots}/live-1.png`);
        for (const step of [3, 4]) await p.write(stepBatch(step, ids));
        const two = await marks(2);
        // The layer summary over steps has more points after the second window (2 more steps).
        assert.ok(two.summary > one.summary, `${two.summary} vs ${one.summary}`);
        assert.ok(two.s.version! > one.s.version!);
        if (shots) await tab.screenshot(`${shots}/live-2.png`);
        await p.close();
        await server.stop();
        await live.refresh();
        await tab.waitFor((s) => s.done && (s.version ?? 0) >= live.version, 30_000);
        assert.ok(await tab.evaluate(`document.body.innerText.includes("Complete run")`));
        // Values outside --range were clipped: the page says so among its warnings.
        assert.ok(await tab.evaluate(`document.getElementById("warnings").innerText.includes("clipped")`));
        if (shots) await tab.screenshot(`${shots}/live-3.png`);
        assert.deepEqual(tab.problems, []);
        await tab.close();
      });
    } finally {
      await server.stop().catch(() => {});
      await live.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("serve --report: the CLI prints the live page's address and serves it until stopped", async () => {
  const dir = await Deno.makeTempDir();
  const cli = new URL("../cli/serve.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      cli,
      "--listen",
      "127.0.0.1:0",
      "--out",
      `${dir}/live`,
      "--range=-2,2",
      "--report",
      "127.0.0.1:0",
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const lines: string[] = [];
  const drained = (async () => {
    for await (const t of child.stdout.pipeThrough(new TextDecoderStream())) lines.push(...t.split("\n"));
  })();
  const errors = new Response(child.stderr).text();
  try {
    let url: string | undefined;
    await waitFor(
      () => (url = lines.map((l) => /live report at (\S+)/.exec(l)?.[1]).find(Boolean)) !== undefined,
      20_000,
      "the live report line",
    );
    const page = await fetch(url!);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /window\.__reportStatus/);
  } finally {
    child.kill("SIGTERM");
    const { code } = await child.status;
    await drained;
    assert.equal(code, 0, await errors);
    await Deno.remove(dir, { recursive: true });
  }
});
