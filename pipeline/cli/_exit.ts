/**
 * The exit codes of every infotap command, and the one line each error prints on stderr:
 *
 * | code | meaning | errors |
 * |---|---|---|
 * | 0 | done | |
 * | 1 | bad input: the data, a checkpoint, an address; `analyze` also when a run ended early (its results are written) | `InputError` |
 * | 2 | bad usage: flags, option values, plugins, a `--backend` that cannot be had | `UsageError`, `PluginError`, `BackendError` |
 * | 70 | internal error (a bug: `INFOTAP_DEBUG=1` shows the stack) | anything else |
| 130 | `analyze` interrupted by SIGINT/SIGTERM: the results of the batches read are written (`complete: false`) | |
 *
 * @module
 */
import { InputError } from "../../schemas/errors.ts";
import { BackendError } from "../core/backend.ts";
import { UsageError } from "./_args.ts";

/** The exit codes (see the module's table). */
export const EXIT = { ok: 0, input: 1, usage: 2, internal: 70, interrupted: 130 } as const;

/** The exit codes as `--help` lists them. */
export const EXIT_CODES_HELP = [
  "Exit codes: 0 done; 1 bad input (a data file, a checkpoint, an address; analyze writes the results of the",
  "batches read before it, run.json complete false); 2 bad usage (flags, option values, plugins, --backend);",
  "70 internal error (INFOTAP_DEBUG=1 shows the stack); 130 interrupted by SIGINT/SIGTERM (analyze writes the",
  "results of the batches read, run.json complete false).",
].join("\n");

/** The exit code of an error. */
export function exitCode(e: unknown): number {
  if (e instanceof UsageError || e instanceof BackendError || (e as Error)?.name === "PluginError") return EXIT.usage;
  if (e instanceof InputError) return EXIT.input;
  return EXIT.internal;
}

/**
 * Prints an error as one line on stderr (`<command>: <message>` for usage errors, `<command>: error: <message>`
 * for the others, the stack only with `INFOTAP_DEBUG=1`) and returns its exit code.
 */
export function fail(e: unknown, command = "infotap"): number {
  if (Deno.env.get("INFOTAP_DEBUG")) console.error(e);
  const code = exitCode(e);
  const message = (e as Error)?.message ?? String(e);
  if (code === EXIT.internal) {
    console.error(`${command}: internal error: ${message} (INFOTAP_DEBUG=1 shows the stack)`);
  } else if (e instanceof UsageError) console.error(`${command}: ${message}`);
  else console.error(`${command}: error: ${message}`);
  return code;
}
