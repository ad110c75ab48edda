#!/usr/bin/env bash
# The Python suite (npm test runs it after Deno's): python/tests and the doctests of the installed package, in a venv
# made from Debian's python3 with --system-site-packages (so that Debian's python3-torch is seen; torch is never
# installed from PyPI here), with this tree installed as `pip install ./python[test]` (which bundles the engine).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# The venv lives outside the repository: `deno test --doc` reads every .js/.ts file below it, .gitignore or not.
venv="${INFOTAP_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/infotap/venv-$(printf %s "$here" | md5sum | cut -c1-12)}"
py="${INFOTAP_PYTHON:-/usr/bin/python3}"
[ -x "$py" ] || py="$(command -v python3)"
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$(dirname "$venv")"
  "$py" -m venv --system-site-packages "$venv" || { echo "python: Cannot make the venv as '$py -m venv' failed: current value is $venv (apt-get install python3-venv)" >&2; exit 1; }
fi
# PyTorch before 2.3 (Debian's 1.13) is built against NumPy 1.x: keep numpy < 2, and pyarrow < 26 (which needs 2).
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
if "$venv/bin/python" -c 'import sys, torch; sys.exit(0 if tuple(map(int, torch.__version__.split(".")[:2])) < (2, 3) else 1)' 2>/dev/null; then
  printf 'numpy<2\npyarrow<26\n' > "$constraints"
fi
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
# The build runs in this venv (no isolated build env to download each time): setuptools >= 62.3 for the recursive
# package data, wheel for setuptools < 70.1.
"${pip[@]}" 'setuptools>=62.3' wheel || exit 1
"${pip[@]}" --no-build-isolation -c "$constraints" "$here[test]" || exit 1
cd "$here" && exec "$venv/bin/python" -m pytest tests --doctest-modules --doctest-ignore-import-errors --pyargs infotap -q "$@"
