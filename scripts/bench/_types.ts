/**
 * The row every benchmark module returns; `scripts/bench/bench.ts` prints them and renders BENCHMARKS.md tables.
 *
 * @module
 */

/** One measured figure, with its reference and the ratio when the benchmark has one. */
export interface BenchRow {
  /** What was measured. */
  name: string;
  /** The figure (e.g. MB/s, s). */
  value: number;
  /** Unit of `value` and `reference`. */
  unit: string;
  /** The reference measured in the same run (raw read rate, per-pair reference, ...). */
  reference?: number;
  /** value / reference, or the speed-up, as the benchmark defines it (see `note`). */
  ratio?: number;
  /** How to read the row. */
  note?: string;
}

/** Arguments every benchmark module accepts. */
export interface BenchArgs {
  /** Small sizes (seconds), for a smoke run. */
  quick: boolean;
  /** `--backend` of `deno task bench` (`cpu` default; `webgpu` adds the GPU benchmarks, scripts/bench/gpu.ts). */
  backend?: "cpu" | "webgpu";
}
