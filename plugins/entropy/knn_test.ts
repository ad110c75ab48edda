/**
 * `entropy --entropy-estimator knn` against the Gaussian closed form `1/2 ln(2 pi e sigma^2)`, a brute-force
 * Kozachenko-Leonenko (all distances sorted per sample, digamma by its series) and the paper's official
 * `_get_knn_entropy` (scikit-learn KDTree, through Python; skipped only outside CI without scikit-learn).
 */
import assert from "node:assert/strict";
import { knnEntropy } from "./knn.ts";
import { entropyPlugin } from "./entropy.ts";
import { digamma } from "../mi/_ksg_reference.ts";
import { activationBatch, Rng, runPlugin } from "../../tests/_util.ts";
import { findPython, runPeer } from "../../scripts/bench/_python.ts";

/** Kozachenko-Leonenko by brute force: every distance of each sample sorted. */
function bruteKl(x: number[], k: number): number {
  const n = x.length;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const d = x.filter((_, j) => j !== i).map((v) => Math.abs(x[i] - v)).sort((a, b) => a - b);
    sum += Math.log(2 * d[k - 1]);
  }
  return digamma(n) - digamma(k) + sum / n;
}

Deno.test("knn entropy: equals a brute-force Kozachenko-Leonenko to 1e-10 (k = 1, 3, 5; the series digamma errs by 9e-12 at 1); ties give -Infinity", () => {
  const rng = new Rng(1);
  const x = Array.from({ length: 300 }, () => Math.fround(rng.normal() * 3));
  for (const k of [1, 3, 5]) assert.ok(Math.abs(knnEntropy(x, k).h - bruteKl(x, k)) < 1e-10, `k=${k}`);
  const tied = [...x.slice(0, 100), 0, 0, 0, 0];
  assert.deepEqual(knnEntropy(tied, 3), { h: -Infinity, n: 104, zero: 4 });
  assert.equal(knnEntropy([...tied, NaN], 3).n, 104);
  assert.ok(Number.isNaN(knnEntropy([1, 2, 3], 3).h));
});

Deno.test("knn entropy of Gaussians (n = 4000, mean of 6 draws) is within 0.02 nats of 1/2 ln(2 pi e sigma^2)", () => {
  const rng = new Rng(2);
  for (const sigma of [0.5, 3]) {
    let m = 0;
    for (let d = 0; d < 6; d++) m += knnEntropy(Array.from({ length: 4000 }, () => sigma * rng.normal()), 3).h / 6;
    const truth = 0.5 * Math.log(2 * Math.PI * Math.E * sigma * sigma);
    assert.ok(Math.abs(m - truth) < 0.02, `sigma ${sigma}: ${m} vs ${truth}`);
  }
});

Deno.test("entropy --entropy-estimator knn through the plugin: every row's estimate, no first pass, ties warned", async () => {
  const rng = new Rng(3), rows = 500;
  const values = new Float32Array(rows * 2);
  for (let r = 0; r < rows; r++) (values[2 * r] = rng.normal(), values[2 * r + 1] = Math.max(0, rng.normal()));
  const batches = [0, 1].map((b) =>
    activationBatch(250, { h: { width: 2, values: values.subarray(b * 500, b * 500 + 500) } }, {}, b * 250)
  );
  const options = { "entropy-estimator": "knn" };
  assert.equal(entropyPlugin.scan!({ ...options, bins: 100, binning: "global" } as never, {} as never), null);
  const { results, estimator } = await runPlugin(entropyPlugin, options, batches);
  const t = results.neuron_entropy;
  const col0 = Array.from({ length: rows }, (_, r) => values[2 * r]);
  assert.equal(t.getChild("entropy")!.get(0), knnEntropy(col0, 3).h);
  assert.equal(t.getChild("entropy")!.get(1), -Infinity); // ReLU zeros
  assert.equal(Number(t.getChild("samples")!.get(0)), rows);
  const summary = (estimator as unknown as { summary(): Record<string, any> }).summary();
  assert.equal(summary.knn_ties.neurons, 1);
  assert.match(summary.warnings[0], /1 neuron\(s\) have a value held by more than 3 samples/);
});

const python = await findPython("numpy,scipy,sklearn");
const inCI = Boolean(Deno.env.get("CI"));

Deno.test({
  name: "knn entropy equals the paper's official _get_knn_entropy (scikit-learn KDTree) to 1e-10, k = 3 and 10",
  ignore: !python && !inCI,
  fn: async () => {
    if (!python) throw new Error("scikit-learn is required when CI is set (apt-get install -y python3-sklearn)");
    const rng = new Rng(4), n = 2000, N = 3;
    const cols = new Float32Array(N * n);
    for (let r = 0; r < n; r++) {
      cols[r] = rng.normal();
      cols[n + r] = Math.exp(rng.normal());
      cols[2 * n + r] = Math.max(0, rng.normal()); // ties: -Infinity on both sides
    }
    for (const k of [3, 10]) {
      const peer = await runPeer<{ h: number[] }>(python, cols, n, { what: "knn_entropy", k });
      for (let a = 0; a < N; a++) {
        const ours = knnEntropy(cols.subarray(a * n, a * n + n), k).h;
        const theirs = peer.h[a] ?? -Infinity; // JSON has no -Infinity: Python writes it as null here
        assert.ok(ours === theirs || Math.abs(ours - theirs) < 1e-10, `k=${k} neuron ${a}: ${ours} vs ${theirs}`);
      }
    }
  },
});
