"""The seeded Rademacher sketch of Jacobian rows, bit for bit the TypeScript ``sketchJacobian`` (schemas/sketch.ts).

A column ``name`` of width ``P`` is projected to ``m`` values: ``out[r][j] = float32(s * sum_p v[r][p] R[p][j])`` with
``s = 1 / sqrt(m)``, the sum over ``p`` ascending in one float64 accumulator, and ``R[p][j] = -1`` when bit ``j & 31``
of ``mix(mix(base ^ p) ^ (j >> 5))`` is set (``base = mix(mix(seed ^ 0x9e3779b9) ^ fnv1a(name))``, murmur3's 32-bit
finaliser ``mix``, all unsigned 32-bit), else ``+1``. The engine's ``--si-sketch-dim m --seed seed`` applies the same
projection, so a producer may send sketched columns (with :func:`sketch_metadata` as field metadata).

>>> import numpy as np
>>> s = sketch_jacobian(np.array([[1, 0, 0, 0], [0, 1, 0, 0]], np.float32), 3, 7, "fc1.weight")
>>> s.shape, bool(abs(abs(s[0, 0]) - 1 / np.sqrt(3)) < 1e-7)
((2, 3), True)
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ..errors import InputError
from .batch import SKETCH_SEED_KEY, SKETCH_SOURCE_DIM_KEY, float32_rows

#: Parameters whose signs are generated at once (the matrix is never stored whole).
CHUNK = 256
_M32 = 0xFFFFFFFF


def mix(h: np.ndarray) -> np.ndarray:
    """The murmur3 32-bit finaliser on ``uint32`` arrays."""
    h = np.asarray(h, dtype=np.uint32)
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint32(16))
        h = h * np.uint32(0x85EBCA6B)
        h = h ^ (h >> np.uint32(13))
        h = h * np.uint32(0xC2B2AE35)
        h = h ^ (h >> np.uint32(16))
    return h


def fnv1a(s: str) -> int:
    """32-bit FNV-1a of the UTF-8 bytes of ``s``."""
    h = 0x811C9DC5
    for b in s.encode("utf-8"):
        h = ((h ^ b) * 0x01000193) & _M32
    return h


def signs(width: int, m: int, seed: int, name: str, p0: int = 0, p1: int | None = None) -> np.ndarray:
    """Rows ``p0 .. p1-1`` of the ``width x m`` sign matrix ``R`` of column ``name`` (float64, +1 or -1)."""
    p1 = width if p1 is None else p1
    base = mix(np.uint32(int(mix(np.uint32((seed & _M32) ^ 0x9E3779B9))) ^ fnv1a(name)))
    hp = mix(base ^ np.arange(p0, p1, dtype=np.uint32))
    words = (m + 31) // 32
    bits = mix(hp[:, None] ^ np.arange(words, dtype=np.uint32)[None, :])  # (p, words)
    j = np.arange(m)
    set_ = (bits[:, j >> 5] >> (j & 31).astype(np.uint32)) & np.uint32(1)
    return np.where(set_ == 1, -1.0, 1.0)


def sketch_jacobian(values: Any, m: int, seed: int, name: str) -> np.ndarray:
    """Projects ``(rows, width)`` values (numpy or torch) to ``(rows, m)`` float32 with the sketch of column ``name``."""
    if not isinstance(m, (int, np.integer)) or isinstance(m, bool) or m < 1:
        raise InputError(f"Cannot sketch as the sketch dimension must be a positive integer: current value is {m!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise InputError(f"Cannot sketch as the seed must be an integer: current value is {seed!r}")
    buf, rows, width, _ = float32_rows(values, name)
    v = np.frombuffer(buf, dtype=np.float32).reshape(rows, width).astype(np.float64)
    acc = np.zeros((rows, m), dtype=np.float64)
    for c0 in range(0, width, CHUNK):
        c1 = min(width, c0 + CHUNK)
        r = signs(width, int(m), int(seed), name, c0, c1)
        for p in range(c0, c1):  # p ascending, one float64 accumulator per output: the TypeScript order
            acc += v[:, p, None] * r[p - c0][None, :]
    return (acc * (1.0 / np.sqrt(float(m)))).astype(np.float32)


def sketch_metadata(seed: int, source_dim: int) -> Dict[str, str]:
    """Field metadata of a column sketched with ``seed`` from ``source_dim`` parameters."""
    return {SKETCH_SEED_KEY: str(seed), SKETCH_SOURCE_DIM_KEY: str(source_dim)}
