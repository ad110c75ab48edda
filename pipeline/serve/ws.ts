/**
 * Serve's WebSocket transport (see serve.ts for the protocol): producers send the same Arrow IPC stream as
 * binary messages (split anywhere), present the token as the `token` query parameter, and get the same answers
 * as text messages. WebSocket has no flow control, so messages are queued; when more than
 * `2 * maxBatchBytes` are waiting the connection is closed and reported: a browser producer should wait for
 * `socket.bufferedAmount` to fall before sending more.
 *
 * @module
 */
import { ByteSource } from "../../schemas/bytes.ts";
import type { Intake } from "./serve.ts";

/** Listens for WebSocket producers; resolves with the server and its port once it listens. */
export async function startWs(
  hostname: string,
  port: number,
  intake: Intake,
): Promise<{ server: Deno.HttpServer; port: number }> {
  const { promise, resolve } = Promise.withResolvers<number>();
  const server = Deno.serve({ hostname, port, onListen: (a) => resolve(a.port) }, (req, info) => {
    if (intake.stopping || req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("infotap serve: WebSocket producers only\n", { status: 400 });
    }
    const refusal = intake.full();
    if (refusal !== null) return new Response(`ERR ${refusal}\n`, { status: 503 });
    const token = new URL(req.url).searchParams.get("token");
    const remote = `${info.remoteAddr.hostname}:${info.remoteAddr.port}`;
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.binaryType = "arraybuffer";
    intake.track(handleWs(socket, remote, token, intake));
    return response;
  });
  return { server, port: await promise };
}

/** One WebSocket producer: its messages queued (bounded) and read as one stream. */
async function handleWs(socket: WebSocket, remote: string, token: string | null, intake: Intake): Promise<void> {
  const p = intake.producer("websocket", remote, () => {
    try {
      socket.close(1001, "server stopping");
    } catch { /* closed */ }
  });
  const queue: Uint8Array[] = [];
  let queued = 0;
  let ended = false;
  let wake: (() => void) | null = null;
  const limit = 2 * intake.maxBatch + (1 << 20);
  let overflow = false;
  const opened = new Promise<void>((res) => {
    if (socket.readyState === WebSocket.OPEN) res();
    socket.onopen = () => res();
  });
  let global = false;
  socket.onmessage = (ev) => {
    if (ended) return;
    const data = typeof ev.data === "string" ? new TextEncoder().encode(ev.data) : new Uint8Array(ev.data);
    // Queued bytes count against this connection's limit and the budget all producers share.
    if (!intake.budget.take(data.length)) global = true;
    else {
      queue.push(data);
      queued += data.length;
    }
    if (queued > limit || global) {
      overflow = true;
      ended = true;
    }
    wake?.();
  };
  socket.onclose = () => {
    ended = true;
    wake?.();
  };
  socket.onerror = () => {
    ended = true;
    wake?.();
  };
  const source = async function* () {
    while (true) {
      if (overflow) {
        throw new Error(
          global
            ? `Cannot buffer the WebSocket producer's messages as the producers' messages would exceed --max-buffered-bytes ${intake.budget.limit} (pace sends with bufferedAmount): current value is ${
              intake.budget.used + queued
            } bytes`
            : `Cannot buffer the WebSocket producer's messages as more than ${limit} bytes are waiting (pace sends with bufferedAmount): current value is ${queued} bytes`,
        );
      }
      if (queue.length) {
        const c = queue.shift()!;
        queued -= c.length;
        intake.budget.release(c.length);
        yield c;
        continue;
      }
      if (ended) return;
      await new Promise<void>((res) => (wake = res));
      wake = null;
    }
  };
  await opened;
  const send = (s: string) => {
    try {
      if (socket.readyState === WebSocket.OPEN) socket.send(s);
    } catch { /* closed */ }
  };
  try {
    if (!intake.authorized(p, token)) {
      send(`ERR ${p.record.error}`);
      return;
    }
    const answer = await intake.consume(p, ByteSource.fromChunks(source()));
    send(answer);
  } finally {
    intake.budget.release(queued);
    queued = 0;
    queue.length = 0;
    const left = intake.leave(p);
    try {
      socket.close(1000);
    } catch { /* closed */ }
    await left;
  }
}
