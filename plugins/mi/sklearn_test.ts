/**
 * infotap's KSG against scikit-learn itself, called through Python (scripts/bench/_mi_peers.py): the paper's
 * official per-pair estimator (technion-cs-nlp/Information-Reflects-Memorization `_get_knn_mi`: NearestNeighbors +
 * KDTree, negative values kept) on continuous and tied data, and `--ksg-jitter` against the public
 * `mutual_info_regression` on tied ReLU data, within that function's own spread across its random seeds.
 *
 * Needs a Python with numpy, scipy and scikit-learn (`apt-get install -y python3-sklearn`; `.ci/run` installs it).
 * Skipped locally without one; with `CI` set a missing scikit-learn fails the test instead.
 */
import assert from "node:assert/strict";
import { ksgPairs } from "./ksg_pairs.ts";
import { miPlugin } from "./mi.ts";
import { activationBatch, Rng, runPlugin } from "../../tests/_util.ts";
import { findPython, runPeer } from "../../scripts/bench/_python.ts";

const python = await findPython("numpy,scipy,sklearn");
const inCI = Boolean(Deno.env.get("CI"));
if (!python && !inCI) {
  console.error("sklearn_test: no Python with scikit-learn (apt-get install -y python3-sklearn): skipped");
}

function need(): string {
  if (!python) throw new Error("scikit-learn is required when CI is set (apt-get install -y python3-sklearn)");
  return python;
}

/** `N` neuron-major columns of `n` rows: continuous, ReLU (about half zeros) and quantised (rounded to 0.25). */
function mixed(n: number, seed: number): Float32Array {
  const rng = new Rng(seed), N = 6, out = new Float32Array(N * n);
  for (let r = 0; r < n; r++) {
    const z = rng.normal();
    const v = [z + rng.normal(), 0.6 * z + rng.normal(), z + 0.5 * rng.normal(), rng.normal(), z, rng.normal()];
    for (let a = 0; a < N; a++) {
      out[a * n + r] = a < 2 ? v[a] : a < 4 ? Math.max(0, v[a]) : Math.round(4 * v[a]) / 4;
    }
  }
  return out;
}

Deno.test({
  name:
    "KSG equals the paper's official scikit-learn estimator (NearestNeighbors + KDTree) to 1e-10, continuous and tied data, k = 3 and 5",
  ignore: !python && !inCI,
  fn: async () => {
    const py = need(), n = 1500, cols = mixed(n, 1);
    const pairs = new Int32Array([0, 1, 0, 2, 2, 3, 2, 4, 4, 5, 1, 5, 3, 3]);
    for (const k of [3, 5]) {
      const ours = ksgPairs(cols, n, pairs, k, 1);
      const peer = await runPeer<{ mi: number[] }>(py, cols, n, { what: "paper_ksg", k, pairs: [...pairs] });
      peer.mi.forEach((v, p) => assert.ok(Math.abs(v - ours.mi[p]) < 1e-10, `k=${k} pair ${p}: ${ours.mi[p]} vs ${v}`));
    }
  },
});

Deno.test({
  name: "--ksg-jitter agrees with mutual_info_regression on ReLU data (half zeros) within its spread across seeds",
  ignore: !python && !inCI,
  fn: async () => {
    const py = need(), n = 2000, rng = new Rng(2);
    // two ReLU neurons of correlated Gaussians (rho 0.8): about half of each is 0, a quarter of the pairs (0, 0)
    const values = new Float32Array(2 * n);
    for (let r = 0; r < n; r++) {
      const z = rng.normal();
      values[2 * r] = Math.max(0, z);
      values[2 * r + 1] = Math.max(0, 0.8 * z + 0.6 * rng.normal());
    }
    const cols = new Float32Array(2 * n);
    for (let r = 0; r < n; r++) (cols[r] = values[2 * r], cols[n + r] = values[2 * r + 1]);
    const seeds = Array.from({ length: 10 }, (_, i) => i);
    const peer = await runPeer<{ mi: number[][] }>(py, cols, n, { what: "mir", k: 3, pairs: [0, 1], seeds });
    const sk = peer.mi[0];
    const mean = sk.reduce((s, v) => s + v, 0) / sk.length;
    const sd = Math.sqrt(sk.reduce((s, v) => s + (v - mean) ** 2, 0) / (sk.length - 1));
    assert.ok(sd > 0 && sd < 0.05, `scikit-learn's spread across seeds: ${sd}`);
    const batch = activationBatch(n, { h: { width: 2, values } });
    const ours: number[] = [];
    for (const seed of [0, 1, 2, 3, 4]) {
      const t = (await runPlugin(miPlugin, { "ksg-jitter": true, "ksg-clip": true }, [batch], { seed })).results;
      ours.push(t.neuron_mi.getChild("mi")!.get(0) as number);
    }
    const ourMean = ours.reduce((s, v) => s + v, 0) / ours.length;
    for (const v of ours) assert.ok(Math.abs(v - mean) < 4 * sd, `${v} vs scikit-learn ${mean} +- ${sd} (${sk})`);
    assert.ok(Math.abs(ourMean - mean) < 2 * sd, `means ${ourMean} vs ${mean} +- ${sd}`);
    // without the jitter the paper's estimator is far outside that spread (this test can fail)
    const plain = (await runPlugin(miPlugin, {}, [batch])).results.neuron_mi.getChild("mi")!.get(0) as number;
    assert.ok(Math.abs(plain - mean) > 10 * sd, `unjittered ${plain} vs ${mean} +- ${sd}`);
  },
});
