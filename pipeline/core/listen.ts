/**
 * Serve's listening addresses: parsing `--listen`/`--ws` values and telling loopback hosts (where no token is
 * required) from the rest; used by `serve` and `report --watch`. See docs/live.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isLoopback, parseListen } from "./listen.ts";
 * assert.deepEqual(parseListen("[::1]:7341"), { hostname: "::1", port: 7341 });
 * assert.ok(isLoopback("127.0.0.1") && !isLoopback("0.0.0.0"));
 * ```
 *
 * @module
 */
import { InputError, show } from "../../schemas/errors.ts";

/** Parses `HOST:PORT` (`[v6]:PORT` for IPv6). */
export function parseListen(s: string, flag = "--listen"): { hostname: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new InputError(`Cannot use ${flag} as it must be HOST:PORT (port 0-65535): current value is ${show(s)}`);
  }
  return { hostname: m[1] ?? m[2], port };
}

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}
