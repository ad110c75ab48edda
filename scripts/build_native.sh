#!/usr/bin/env bash
# Builds infotap's native kernels (plugins/kernels/native/*.c) into build/native/, run by `npm install`
# (package.json's postinstall). Optional: without a C compiler, or where the build fails, infotap keeps its
# WebAssembly kernels (same results) and this script says so and exits 0. INFOTAP_NATIVE=0 skips the build.
set -uo pipefail
cd "$(dirname "$0")/.."
src=(plugins/kernels/native/infotap_native.c plugins/kernels/native/ksg.c)
out=build/native/libinfotap_native.so
if [ "${INFOTAP_NATIVE:-1}" = "0" ]; then
  echo "infotap: native kernels not built (INFOTAP_NATIVE=0): the WebAssembly kernels run"
  exit 0
fi
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "infotap: no C compiler ($cc): native kernels not built, the WebAssembly kernels run"
  exit 0
fi
mkdir -p build/native
# -ffp-contract=off: no fused multiply-add, so that float64 sums keep the bits of the JavaScript path
if "$cc" -O3 -std=gnu11 -fPIC -shared -ffp-contract=off -fno-fast-math -Wall -Wextra -o "$out.tmp" "${src[@]}" -lm -pthread 2>build/native/build.log; then
  mv "$out.tmp" "$out"
  echo "infotap: native kernels built ($out)"
else
  rm -f "$out.tmp"
  echo "infotap: native kernels failed to build (see build/native/build.log): the WebAssembly kernels run"
fi
exit 0
