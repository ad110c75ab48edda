/**
 * The README's main job: makes the example dump (a tfjs MLP trained on real MNIST digits, activations of its
 * hidden layers on 1,000 held-out digits at steps 0, 100, 200, 300; see make_example.ts) if it is not there yet,
 * then runs `analyze` on it by step (neuron entropy, pairwise KSG MI and neuron-label MI: the neuron diversity of
 * Bansal et al.), writing `example/results/`, and renders `example/results/report.html`.
 *
 * Usage: `deno task example` (or `npm start`).
 *
 * @module
 */
import { makeExample } from "./make_example.ts";
import { main } from "../../pipeline/cli/analyze.ts";
import { main as report } from "../../pipeline/cli/report.ts";

const dump = "example/activations.arrows";
const out = "example/results";

try {
  await Deno.stat(dump);
  console.error(`using ${dump} (delete it to retrain)`);
} catch {
  await Deno.mkdir("example", { recursive: true });
  console.error(`training a 784-64-32-10 MLP on MNIST digits with tfjs and writing ${dump} ...`);
  const r = await makeExample(dump, { verbose: true });
  console.error(`wrote ${dump}: ${r.rows} rows`);
}
console.error(`deno task analyze --by-step --estimators entropy,mi,label-mi --out ${out} ${dump}`);
const code = await main(["--by-step", "--estimators", "entropy,mi,label-mi", "--out", out, dump]);
if (code !== 0) Deno.exit(code);
console.error(`deno task report ${out}`);
Deno.exit(await report([out]));
