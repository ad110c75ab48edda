/**
 * More of serve's signal trials than the test runs (issue 18): `deno run -A scripts/experiments/serve_signals.ts
 * [N]` runs N trials (default 100), four at a time, cycling through SIGINT+SIGINT and SIGINT+SIGTERM, mid-run and
 * mid-final-write, with and without windows; each must end complete with the tables of `analyze` on the rows
 * received. Prints a line per trial and the count that failed.
 *
 * @module
 */
import { signalTrial, signalTrials } from "../../tests/_signal_trials.ts";

const n = Number(Deno.args[0] ?? 100);
const trials = signalTrials(n);
let failed = 0;
for (let i = 0; i < trials.length; i += 4) {
  await Promise.all(
    trials.slice(i, i + 4).map(async (t, j) => {
      const label = `trial ${i + j + 1}: SIGINT then ${t.second}, ${t.when === "run" ? "mid-run" : "mid-final-write"}${
        t.windows ? ", windows" : ""
      }`;
      try {
        await signalTrial(t, i + j);
        console.log(`${label}: ok`);
      } catch (e) {
        failed++;
        console.log(`${label}: FAILED ${(e as Error).message.split("\n")[0]}`);
      }
    }),
  );
}
console.log(`${trials.length - failed} of ${trials.length} trials ended complete and equal to analyze`);
Deno.exit(failed ? 1 : 0);
