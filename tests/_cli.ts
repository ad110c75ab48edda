/**
 * Test helper: runs `deno task analyze`'s entry point (pipeline/cli/analyze.ts) as a subprocess, with `--quiet`.
 *
 * @module
 */

const CLI = new URL("../pipeline/cli/analyze.ts", import.meta.url).pathname;

/** Runs the analyze CLI with `args` (and `stdin` piped in when given); returns its exit code and output. */
export async function cli(
  args: string[],
  stdin?: Uint8Array,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "--quiet", ...args],
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  if (stdin) {
    const w = p.stdin.getWriter();
    await w.write(stdin);
    await w.close();
  }
  const out = await p.output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout), stderr: new TextDecoder().decode(out.stderr) };
}
