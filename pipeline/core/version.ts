/**
 * Versions recorded in `run.json`.
 *
 * @module
 */
import config from "../../deno.json" with { type: "json" };

/** infotap's own version. */
export const VERSION: string = config.version;

/** infotap, Deno, V8, TypeScript and the pinned npm dependencies. */
export function versions(): Record<string, string> {
  const out: Record<string, string> = {
    infotap: VERSION,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
  };
  for (const spec of Object.values(config.imports as Record<string, string>)) {
    const m = /^npm:(@?[^@]+)@(.+)$/.exec(spec);
    if (m) out[m[1]] = m[2];
  }
  return out;
}
