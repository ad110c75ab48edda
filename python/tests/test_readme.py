"""The README's "From PyTorch" example runs as printed and prints the per-layer table."""

import re
import subprocess
import sys

import pytest

from conftest import REPO, need_torch


def test_readme_pytorch_example_runs(tmp_path):
    need_torch()
    readme = REPO / "README.md"
    if not readme.is_file():
        pytest.skip("needs the repository's README.md")
    section = readme.read_text().split("## From PyTorch", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 13
    script = tmp_path / "example.py"
    script.write_text("import torch\ntorch.set_num_threads(1)\n" + code)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    assert "entropy_mean" in lines[0] and "mi_mean" in lines[0]
    assert len(lines) == 1 + 10  # two layers at steps 0, 50, 100, 150, 200
