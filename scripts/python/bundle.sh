#!/usr/bin/env bash
# Bundles the engine for the Python package into python/src/infotap/_engine (or the folder given): the four CLI
# entry points, their worker modules, parquet-wasm's .wasm and the report's Vega builds (scripts/python/bundle.ts).
# Run by python/setup.py when `pip install ./python` builds the wheel from a clone with node_modules (npm install).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/python/src/infotap/_engine}"
if [ ! -x "$root/node_modules/deno/deno" ]; then
  echo "bundle: Cannot bundle the engine as Deno is not installed: current value is no $root/node_modules/deno/deno (run npm install)" >&2
  exit 1
fi
exec "$root/node_modules/deno/deno" run --allow-read --allow-write --allow-run --allow-env "$root/scripts/python/bundle.ts" "$out"
