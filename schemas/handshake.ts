/**
 * The producer handshake of `serve`: an optional first line `INFOTAP1 <token>\n` before the Arrow IPC stream
 * (the token may be empty). See `schemas/README.md` and `pipeline/serve/serve.ts`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ByteSource } from "./bytes.ts";
 * import { readHello, sameToken } from "./handshake.ts";
 * const src = ByteSource.fromChunks([new TextEncoder().encode("INFOTAP1 s3cret\n"), new Uint8Array([0xff])]);
 * assert.equal(await readHello(src), "s3cret");
 * assert.equal(src.position, 16); // the Arrow bytes come next
 * assert.ok(sameToken("s3cret", "s3cret") && !sameToken("s3cret", "s3creT"));
 * ```
 *
 * @module
 */
import type { ByteSource } from "./bytes.ts";

/** The first word of the handshake line. */
export const HELLO = "INFOTAP1";
const MAX_HELLO = 512;

/**
 * Reads the optional handshake line. Returns the token presented (`""` for `INFOTAP1\n`), or null when the
 * stream starts with Arrow bytes instead (nothing is consumed then). Waits for no byte beyond the line. Throws a
 * one-line Error on a malformed line.
 */
export async function readHello(src: ByteSource): Promise<string | null> {
  const first = await src.peek(1);
  if (first.length === 0 || first[0] !== HELLO.charCodeAt(0)) return null;
  while (true) {
    const buf = src.buffered().subarray(0, MAX_HELLO);
    const nl = buf.indexOf(0x0a);
    if (nl >= 0) {
      const line = new TextDecoder().decode(src.take(nl + 1)).replace(/\r?\n$/, "");
      const m = /^INFOTAP1(?: ([\x21-\x7e]*))?$/.exec(line);
      if (!m) {
        // Never the line itself: it may hold the token (e.g. with a trailing space), and this message goes to
        // run.json and the log.
        throw new Error(
          `Cannot accept producer as its handshake line is not 'INFOTAP1 <token>' (a token is printable ASCII without spaces): current value is a line of ${line.length} characters`,
        );
      }
      return m[1] ?? "";
    }
    if (buf.length >= MAX_HELLO || !(await src.pull())) break;
  }
  throw new Error(
    `Cannot accept producer as its handshake line is unterminated or longer than ${MAX_HELLO} bytes: current value is ${
      Math.min(src.available, MAX_HELLO)
    } bytes`,
  );
}

/** Compares two strings in time independent of where they differ. */
export function sameToken(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a), y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}
