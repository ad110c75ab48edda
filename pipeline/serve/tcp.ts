/**
 * Serve's TCP transport (see serve.ts for the protocol): accepts producers until the listener closes; each may
 * send the handshake line `INFOTAP1 <token>\n` (answered `OK` or `ERR <message>`), then one Arrow IPC stream,
 * answered `OK <batches> <rows>` or `ERR <message>`. After a refusal the rest of the stream is read for up to a
 * second, so that the producer sees the answer rather than a reset connection.
 *
 * @module
 */
import { ByteSource } from "../../schemas/bytes.ts";
import { readHello } from "../../schemas/handshake.ts";
import type { Intake } from "./serve.ts";

/** Longest pause after a failed accept (the pause doubles from 10 ms while accepting fails). */
const MAX_BACKOFF_MS = 1000;

/**
 * Accepts TCP producers until `listener` is closed; connections that come while stopping are closed at once,
 * and those over `--max-producers` get a one-line refusal. A failed accept (out of file descriptors, a
 * connection aborted before it was taken) is logged, waited out and retried: accepting never stops on its own.
 */
export async function acceptTcp(listener: Deno.Listener, intake: Intake): Promise<void> {
  let backoff = 0;
  while (true) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
      backoff = 0;
    } catch (e) {
      if (intake.stopping || e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted) return;
      backoff = Math.min(MAX_BACKOFF_MS, backoff ? backoff * 2 : 10);
      intake.log(
        `infotap serve: cannot accept a connection as ${(e as Error)?.message ?? e}; retrying in ${backoff} ms`,
      );
      await new Promise((r) => setTimeout(r, backoff));
      continue;
    }
    if (intake.stopping) {
      conn.close();
      continue;
    }
    const refusal = intake.full();
    if (refusal !== null) {
      refuse(conn, refusal);
      continue;
    }
    intake.track(handleTcp(conn, intake));
  }
}

/** Answers `ERR <message>` and closes, without waiting on the peer for longer than a second. */
function refuse(conn: Deno.Conn, message: string): void {
  const line = new TextEncoder().encode(`ERR ${message}\n`);
  const timer = setTimeout(() => close(), 1000);
  const close = () => {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed */ }
  };
  conn.write(line).then(close, close);
}

/** One TCP producer: handshake, stream, answer. */
async function handleTcp(conn: Deno.Conn, intake: Intake): Promise<void> {
  const addr = conn.remoteAddr as Deno.NetAddr;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch { /* already closed */ }
  };
  const p = intake.producer("tcp", `${addr.hostname}:${addr.port}`, close);
  const r = new ByteSource(conn);
  const reply = async (line: string) => {
    try {
      const b = new TextEncoder().encode(line.replaceAll("\n", " ") + "\n");
      let off = 0;
      while (off < b.length) off += await conn.write(b.subarray(off));
    } catch { /* the producer is gone */ }
  };
  try {
    let token: string | null;
    try {
      token = await readHello(r);
    } catch (e) {
      if (p.timedOut) return;
      p.record.status = "refused";
      p.record.error = (e as Error).message;
      await reply(`ERR ${p.record.error}`);
      return;
    }
    if (!intake.authorized(p, token)) {
      await reply(`ERR ${p.record.error}`);
      return;
    }
    if (token !== null) await reply("OK");
    const answer = await intake.consume(p, r);
    await reply(answer);
    if (answer.startsWith("ERR")) await drain(conn, r);
  } finally {
    const left = intake.leave(p);
    close();
    await left;
  }
}

/** Reads for up to a second (64 MiB) after a refusal, so that the producer can read the answer before EOF. */
async function drain(conn: Deno.Conn, r: ByteSource): Promise<void> {
  await conn.closeWrite().catch(() => {});
  const deadline = Date.now() + 1000;
  let n = 0;
  while (Date.now() < deadline && n < 64 << 20) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<false>((res) => (timer = setTimeout(() => res(false), deadline - Date.now())));
    const more = r.fill(r.available + 1).catch(() => false);
    const ok = await Promise.race([more, timeout]);
    clearTimeout(timer);
    if (!ok) break;
    n += r.available;
    r.take(r.available);
  }
}
