/**
 * The README's main job: makes the example dump (a tfjs MLP trained on real MNIST digits, activations of its
 * hidden layers on 1,000 held-out digits at steps 0, 100, 200, 300; see make_example.ts) if it is not there yet,
 * then runs `analyze` on it by step, writing `example/results/`.
 *
 * Usage: `deno task example` (or `npm start`).
 *
 * @module
 */
import { makeExample } from "./make_example.ts";
import { main } from "../pipeline/cli.ts";

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
console.error(`deno task analyze --by-step --out ${out} ${dump}`);
Deno.exit(await main(["--by-step", "--out", out, dump]));
