"""The package itself: the Deno pin equals package.json's, the engine bundle is complete, and the console script runs
the four commands with the deno tasks' flags (analyze, report on a live folder, compare)."""

import json
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import infotap
from infotap import _bundle
from infotap.wire import FileSink, activations

from conftest import REPO


def infotap_cli(*args, **kw):
    """Runs the installed console script (or the module when the script is not on PATH)."""
    exe = shutil.which("infotap", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "infotap._cli"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=120, **kw)


def test_deno_pin_matches_package_json_and_the_bundle():
    manifest = _bundle.manifest()
    assert metadata.version("deno") == manifest["deno"]
    requires = metadata.requires("infotap") or []
    pins = [re.sub(r"[\s()]", "", r) for r in requires if re.match(r"deno\b", r)]  # "deno (==X)" or "deno==X"
    assert pins == [f"deno=={manifest['deno']}"]
    pkg = REPO / "package.json"
    if pkg.is_file():
        assert json.loads(pkg.read_text())["devDependencies"]["deno"] == manifest["deno"]
        pyproject = (REPO / "python" / "pyproject.toml").read_text()
        assert f'"deno=={manifest["deno"]}"' in pyproject
    out = subprocess.run([_bundle.deno_binary(), "--version"], capture_output=True, text=True).stdout
    assert out.startswith(f"deno {manifest['deno']} ")


def test_bundle_has_every_entry_point_and_worker():
    m = _bundle.manifest()
    assert set(m["entries"]) == {"analyze", "serve", "report", "compare"}
    for f in [*m["entries"].values(), *m["workers"].values(), "parquet_wasm_bg.wasm"]:
        assert (_bundle.ENGINE_DIR / f).is_file(), f
    assert len(m["workers"]) >= 3  # analysis threads, KSG pairs, linear algebra
    assert (_bundle.ENGINE_DIR / "node_modules" / "vega" / "build" / "vega.min.js").is_file()


def test_console_script_runs_the_commands(tmp_path):
    assert infotap_cli("--version").stdout.strip() == infotap.__version__
    h = infotap_cli("analyze", "--help")
    assert h.returncode == 0 and "--estimators" in h.stdout and "Estimator 'unique-info'" in h.stdout
    bad = infotap_cli("nope")
    assert bad.returncode == 2 and "Cannot run the command" in bad.stderr
    rng = np.random.default_rng(0)
    for run in ("a", "b"):
        with FileSink(tmp_path / f"{run}.arrows") as f:
            for step in (0, 10):
                f.write(activations({"fc1": rng.normal(size=(200, 6)), "fc2": rng.normal(size=(200, 3))},
                                    step=[step] * 200, label=rng.integers(0, 3, 200)))
        # --threads 2: the worker modules load from the bundle
        r = infotap_cli("analyze", "--by-step", "--threads", "2", "--estimators", "entropy,mi", "--mi-estimator",
                        "ksg", "--out", tmp_path / f"res_{run}", tmp_path / f"{run}.arrows")
        assert r.returncode == 0, r.stderr
        assert "layer" in r.stdout and "wrote" in r.stdout
        res = infotap.read_results(tmp_path / f"res_{run}")
        assert res.complete and res.run["threads"] == 2
    rep = infotap_cli("report", tmp_path / "res_a")
    assert rep.returncode == 0, rep.stderr
    html = (tmp_path / "res_a" / "report.html").read_text()
    assert "vega" in html and "fc1" in html
    cmp = infotap_cli("compare", tmp_path / "res_a", tmp_path / "res_b")
    assert cmp.returncode == 0, cmp.stderr
    assert "res_a" in cmp.stdout and "res_b" in cmp.stdout
    err = infotap_cli("analyze", "--out", tmp_path / "x", tmp_path / "missing.arrows")
    assert err.returncode == 1 and err.stderr.startswith("infotap: error: ") and "Traceback" not in err.stderr


def test_read_results_errors_are_clear(tmp_path):
    with pytest.raises(infotap.InputError, match="does not exist"):
        infotap.read_results(tmp_path / "nope")
    with pytest.raises(infotap.InputError, match="no result table"):
        infotap.read_results(tmp_path)
