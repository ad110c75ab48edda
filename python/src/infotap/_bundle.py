"""The bundled engine: where it is, which Deno runs it, and the command line of each entry point.

The wheel carries ``_engine/`` (made by ``scripts/python/bundle.sh``): ``analyze.js``, ``serve.js``, ``report.js``,
``compare.js``, their worker modules, parquet-wasm's ``.wasm`` and ``manifest.json``. Deno comes from the ``deno``
package on PyPI (``INFOTAP_DENO`` names another binary).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

from .errors import EngineError

ENGINE_DIR = Path(__file__).resolve().parent / "_engine"

#: Deno permissions of each entry point (those of the repository's deno tasks).
PERMISSIONS = {
    "analyze": ["--allow-read", "--allow-write", "--allow-env", "--allow-sys"],
    "serve": ["--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-sys"],
    "report": ["--allow-read", "--allow-write", "--allow-env", "--allow-sys"],
    "compare": ["--allow-read"],
}


def manifest() -> dict:
    """The bundle's manifest (versions, entry points, workers)."""
    path = ENGINE_DIR / "manifest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise EngineError(
            "Cannot run the infotap engine as its bundle is missing from the package (reinstall with `pip install "
            f"./python` from a clone after `npm install`, or run scripts/python/bundle.sh): current value is no {path}"
        ) from None


def deno_binary() -> str:
    """The Deno executable: ``INFOTAP_DENO``, else the ``deno`` package's binary, else ``deno`` on PATH."""
    env = os.environ.get("INFOTAP_DENO")
    if env:
        return env
    try:
        import deno  # the PyPI package with Deno's official binary

        found = deno.find_deno_bin()
        if found and Path(found).is_file():
            return str(found)
    except Exception:  # pragma: no cover - a broken deno package: fall back to PATH
        pass
    path = shutil.which("deno")
    if path:
        return path
    raise EngineError(
        "Cannot run the infotap engine as no Deno binary was found (pip install deno, or set INFOTAP_DENO): "
        "current value is no deno package and no deno on PATH"
    )


def command(entry: str, args: Sequence[str]) -> list[str]:
    """The argv that runs entry point ``entry`` (analyze, serve, report, compare) with ``args``."""
    if entry not in PERMISSIONS:
        raise EngineError(
            f"Cannot run the engine as the command is not one of {', '.join(PERMISSIONS)}: current value is {entry!r}"
        )
    script = ENGINE_DIR / manifest()["entries"][entry]
    # --no-config/--no-lock: a deno.json in the user's working directory must not change how the bundle runs.
    return [deno_binary(), "run", "--no-config", "--no-lock", *PERMISSIONS[entry], str(script), *args]


def environment() -> dict:
    """The engine's environment: the caller's, without Deno's update check (no network)."""
    env = dict(os.environ)
    env.setdefault("DENO_NO_UPDATE_CHECK", "1")
    env.setdefault("NO_COLOR", "1")
    return env
