/**
 * Every WebGPU test in one module, for bundling (`deno bundle -o .dev/gpu_tests.js scripts/gpu/tests.ts`) and
 * running on a GPU machine without the npm packages: `deno test -A .dev/gpu_tests.js`. See docs/bench/webgpu.md.
 *
 * @module
 */
import "../../pipeline/core/backend_test.ts";
import "../../plugins/_shared/gpu_thresholds_test.ts";
import "../../plugins/entropy/gpu_histogram_test.ts";
import "../../plugins/mi/gpu_pair_counts_test.ts";
import "../../tests/gpu_backend_test.ts";
import "../../plugins/mi/gpu_ksg_test.ts";
import "../../plugins/unique_info/gpu_test.ts";
