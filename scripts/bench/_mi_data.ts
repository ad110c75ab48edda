/**
 * Synthetic activations for the MI benchmarks (scripts/bench/mi.ts, scripts/bench/gpu_ksg.ts).
 *
 * @module
 */

/** xorshift32 uniform and a Box-Muller normal. */
export function makeRng(seed: number): { u: () => number; normal: () => number } {
  let s = seed >>> 0 || 1;
  const u = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  return { u, normal: () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()) };
}

/** Neuron-major columns (`N * n`) of a 16-factor model: x = W z + noise; `relu` clips at zero. */
export function synthetic(N: number, n: number, relu = false): Float32Array {
  const rng = makeRng(20221128);
  const F = 16;
  const W = Float64Array.from({ length: N * F }, () => rng.normal() * 0.4);
  const cols = new Float32Array(N * n);
  const z = new Float64Array(F);
  for (let r = 0; r < n; r++) {
    for (let f = 0; f < F; f++) z[f] = rng.normal();
    for (let a = 0; a < N; a++) {
      let v = rng.normal();
      for (let f = 0; f < F; f++) v += W[a * F + f] * z[f];
      cols[a * n + r] = relu ? Math.max(0, v) : v;
    }
  }
  return cols;
}
