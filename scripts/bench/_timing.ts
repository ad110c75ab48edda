/**
 * Wall-clock timing of the benchmarks: the best of a few runs, in seconds.
 *
 * @module
 */

/** The shortest of `times` runs of `f`, in seconds (one run: its time). */
export async function best(times: number, f: () => Promise<unknown>): Promise<number> {
  let t = Infinity;
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    await f();
    t = Math.min(t, (performance.now() - t0) / 1000);
  }
  return t;
}
