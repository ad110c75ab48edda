"""Shared fixtures: the repository root, scikit-learn's digits (real data shipped in the package), torch or a skip
(a failure under CI=1, as the TypeScript suite does for Chromium), and numpy references of the estimators."""

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Small models on shared cores: one intra-op thread is faster and steadier."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def need_torch():
    """torch, or a skip (CI=1: a failure, so that a CI machine without torch is noticed)."""
    try:
        import torch
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("PyTorch is missing on a CI machine (apt-get install python3-torch)")
        pytest.skip("needs PyTorch (Debian python3-torch or pip install torch)")
    return torch


@pytest.fixture(scope="session")
def digits():
    """(X float32 in [0, 1], y int64): the 1,797 8x8 digits of scikit-learn."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def entropy_of(counts: np.ndarray) -> float:
    """Plug-in entropy in nats of a histogram."""
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def bin_codes(x: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """numpy.histogram's bins of ``x`` over ``[lo, hi]`` (the last bin closed), as codes."""
    edges = np.histogram_bin_edges(np.array([lo, hi]), bins=bins, range=(lo, hi))
    return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
