/**
 * Every WebGPU test in one module, for bundling (`deno bundle -o .dev/gpu_tests.js scripts/gpu_tests.ts`) and
 * running on a GPU machine without the npm packages: `deno test -A .dev/gpu_tests.js`. See docs/bench/webgpu.md.
 *
 * @module
 */
import "../pipeline/gpu_test.ts";
import "../plugins/gpu/_thresholds_test.ts";
import "../plugins/gpu/histogram_test.ts";
import "../plugins/gpu/pair_counts_test.ts";
import "../plugins/gpu/backend_test.ts";
import "../plugins/gpu/ksg_test.ts";
import "../plugins/gpu/unique_info_test.ts";
