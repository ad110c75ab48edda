"""Builds the engine bundle into the package before setuptools copies it (pyproject.toml holds the metadata).

From a clone of the repository with ``node_modules`` (``npm install``), ``scripts/python/bundle.sh`` bundles the engine
into ``src/infotap/_engine``; from an sdist the bundle is already there. Either way the wheel carries the engine and
needs no npm.
"""
import hashlib
import subprocess
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
ENGINE = HERE / "src" / "infotap" / "_engine"
SCRIPT = HERE.parent / "scripts" / "python" / "bundle.sh"
DENO = HERE.parent / "node_modules" / "deno" / "deno"


def bundle_engine():
    if SCRIPT.is_file() and DENO.is_file():
        subprocess.run(["bash", str(SCRIPT), str(ENGINE)], check=True)
    elif not (ENGINE / "manifest.json").is_file():
        raise SystemExit(
            "Cannot build infotap as the engine bundle is missing and cannot be made here (run `npm install` in the "
            f"repository root, then install again): current value is no {ENGINE / 'manifest.json'} and no {DENO}"
        )


class BuildPy(build_py):
    def run(self):
        bundle_engine()
        super().run()


class Sdist(sdist):
    def run(self):
        bundle_engine()
        super().run()


# setuptools' build folder outside the repository: `deno test --doc` would read the bundle copies in python/build.
BUILD = Path(tempfile.gettempdir()) / f"infotap-build-{hashlib.sha1(str(HERE).encode()).hexdigest()[:12]}"

setup(cmdclass={"build_py": BuildPy, "sdist": Sdist}, options={"build": {"build_base": str(BUILD)}})
