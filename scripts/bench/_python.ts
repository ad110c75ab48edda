/**
 * Runs the Python peers (scripts/bench/_mi_peers.py: the paper's per-pair scikit-learn KSG, `mutual_info_regression`,
 * the official kNN entropy, numpy and PyTorch one-hot binned MI) for the benchmark and the scikit-learn tests.
 *
 * The interpreter: `INFOTAP_PYTHON` when set, else the first of `/usr/bin/python3` (Debian's python3-sklearn,
 * python3-torch) and `python3` on PATH that imports the modules asked for. Install: `apt-get install -y
 * python3-sklearn` (what `.ci/run` does) or `pip install scikit-learn` into the interpreter you point to.
 *
 * @module
 */

const PEERS = new URL("./_mi_peers.py", import.meta.url).pathname;
const found = new Map<string, string | null>();

/** A Python interpreter that imports every module in `modules` (comma-separated list), or null. */
export async function findPython(modules = "numpy,scipy,sklearn"): Promise<string | null> {
  if (found.has(modules)) return found.get(modules)!;
  const env = Deno.env.get("INFOTAP_PYTHON");
  let hit: string | null = null;
  for (const py of env ? [env] : ["/usr/bin/python3", "python3"]) {
    try {
      const out = await new Deno.Command(py, {
        args: ["-c", `import ${modules}`],
        stdout: "null",
        stderr: "null",
      }).output();
      if (out.success) {
        hit = py;
        break;
      }
    } catch { /* not installed */ }
  }
  found.set(modules, hit);
  return hit;
}

/**
 * Runs one peer job: `cols` (neuron-major float32, `neurons x n`) is written to a temporary file and
 * `_mi_peers.py` is called with `job` (plus the file); returns its JSON answer. Throws with Python's stderr on
 * failure.
 */
export async function runPeer<T = Record<string, unknown>>(
  python: string,
  cols: Float32Array,
  n: number,
  job: Record<string, unknown>,
): Promise<T & { cpu_s: number; wall_s: number; versions: Record<string, string> }> {
  const dir = await Deno.makeTempDir({ prefix: "infotap-peer-" });
  try {
    const data = `${dir}/cols.f32`, spec = `${dir}/job.json`;
    await Deno.writeFile(data, new Uint8Array(cols.buffer, cols.byteOffset, cols.byteLength));
    await Deno.writeTextFile(spec, JSON.stringify({ ...job, data, n, neurons: cols.length / n }));
    const out = await new Deno.Command(python, {
      args: [PEERS, spec],
      stdout: "piped",
      stderr: "piped",
      // one BLAS thread pool per process, the machine's cores (numpy and torch pick their own defaults otherwise)
      env: { PYTHONDONTWRITEBYTECODE: "1" },
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
      throw new Error(`Cannot run the Python peer '${job.what}' as it failed: current value is ${err}`);
    }
    return JSON.parse(text.split("\n").pop()!);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
