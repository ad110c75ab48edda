#!/usr/bin/env bash
# Prepares .dev/ for running infotap's WebGPU checks and benchmarks on a GPU machine that has no Deno, no npm
# packages and no network (docs/bench/webgpu.md): Deno (gzipped), each entry point bundled into one file, the
# worker modules bundled under their own names next to them (they are loaded by URL), and parquet-wasm's .wasm
# (the bundles define __dirname as their own folder so that parquet-wasm finds it).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .dev
deno=node_modules/deno/deno
[ -f .dev/deno.gz ] || gzip -9 -c "$deno" > .dev/deno.gz
cp node_modules/parquet-wasm/node/parquet_wasm_bg.wasm .dev/
bundle() { # source, output name
  "$deno" bundle -q -o /tmp/infotap-bundle.js "$1"
  { echo 'const __dirname = import.meta.dirname;'; cat /tmp/infotap-bundle.js; } > ".dev/$2"
}
bundle scripts/gpu/tests.ts gpu_test.js
bundle scripts/gpu/e2e.ts gpu_e2e.js
for b in scripts/bench/gpu*.ts; do bundle "$b" "bench_$(basename "${b%.ts}").js"; done
bundle plugins/mi/_ksg_worker.ts _ksg_worker.ts
bundle plugins/kernels/linalg/_linalg_worker.ts _linalg_worker.ts
bundle pipeline/analyze/_worker.ts _worker.ts
ls -la .dev
