"""Record batches of wire format v1 (schemas/README.md) from numpy arrays or torch tensors.

The batches are those of the TypeScript writer ``makeRecordBatch`` (pipeline/producers/produce.ts): the same fields in
the same order, types, nullability and metadata, and the same body bytes (checked on the shared vectors in
``schemas/vectors/``). Tensor values are Float32; float16, bfloat16 and float64 are converted, float32 is not copied.

>>> import numpy as np
>>> rb = activations({"fc1": np.zeros((2, 3))}, sample_id=[0, 1], step=[10, 10], label=[3, 7])
>>> rb.schema.names, rb.schema.metadata[b"infotap.schema"]
(['sample_id', 'step', 'label', 'fc1'], b'activations/v1')
>>> str(rb.schema.field("fc1").type)
'fixed_size_list<item: float not null>[3]'
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np
import pyarrow as pa

from ..errors import InputError

SCHEMA_KEY = "infotap.schema"
FISHER_KEY = "infotap.fisher"
SKETCH_SEED_KEY = "infotap.sketch.seed"
SKETCH_SOURCE_DIM_KEY = "infotap.sketch.source_dim"
KINDS = ("activations/v1", "gradients/v1", "jacobians/v1")
RESERVED = ("sample_id", "step", "label", "draw", "split", "output", "f0", "target")

_ITEM = pa.field("item", pa.float32(), nullable=False)


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "data_ptr")


def float32_rows(x: Any, name: str, rows: Optional[int] = None):
    """``x`` as ``(rows, width)`` float32 values and a pyarrow Buffer over them (zero-copy for contiguous float32).

    Returns ``(buffer, rows, width, keep)``; ``keep`` is the object that owns the memory.
    """
    if _is_torch(x):
        t = x.detach()
        if t.is_complex() or not t.is_floating_point():
            raise InputError(
                f"Cannot write column {name!r} as its values are not real floating point: current value is {t.dtype}"
            )
        if t.dim() == 0:
            raise InputError(f"Cannot write column {name!r} as it is a scalar, not rows: current value is shape []")
        import torch

        t = t.to(device="cpu", dtype=torch.float32).contiguous()
        n = int(t.shape[0])
        width = int(t.numel() // n) if n else int(np.prod(t.shape[1:], dtype=np.int64))
        buf = pa.foreign_buffer(t.data_ptr(), t.numel() * 4, base=t)
        keep = t
    else:
        a = np.asarray(x)
        if a.dtype.kind not in "f":
            raise InputError(
                f"Cannot write column {name!r} as its values are not real floating point: current value is {a.dtype}"
            )
        if a.ndim == 0:
            raise InputError(f"Cannot write column {name!r} as it is a scalar, not rows: current value is shape ()")
        a = np.ascontiguousarray(a, dtype=np.float32)
        n = int(a.shape[0])
        width = int(np.prod(a.shape[1:], dtype=np.int64))
        buf = pa.py_buffer(a)
        keep = a
    if rows is not None and n != rows:
        raise InputError(f"Cannot write column {name!r} as it has {n} rows, not {rows}: current value is {n} rows")
    if width < 1:
        raise InputError(f"Cannot write column {name!r} as its rows are empty: current value is width {width}")
    return buf, n, width, keep


def tensor_column(x: Any, name: str, rows: Optional[int] = None) -> pa.FixedSizeListArray:
    """A ``FixedSizeList<Float32>[width]`` column from ``(rows, ...)`` values (trailing dimensions flattened)."""
    buf, n, width, _ = float32_rows(x, name, rows)
    values = pa.Array.from_buffers(pa.float32(), n * width, [None, buf])
    return pa.Array.from_buffers(pa.list_(_ITEM, width), n, [None], children=[values])


def _ints(x: Any, name: str, n: Optional[int], dtype) -> np.ndarray:
    if _is_torch(x):
        x = x.detach().cpu().tolist()
    a = np.asarray(x)
    if a.ndim != 1:
        if a.ndim == 0 or a.size != a.shape[0]:
            raise InputError(f"Cannot write column {name!r} as it is not one value per row: current value is shape {a.shape}")
        a = a.reshape(-1)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise InputError(f"Cannot write column {name!r} as its values are not integers: current value is {a[:5]}")
    elif a.dtype.kind not in "iub" and a.size:
        raise InputError(f"Cannot write column {name!r} as its values are not integers: current value is {a.dtype}")
    if n is not None and a.shape[0] != n:
        raise InputError(f"Cannot write column {name!r} as it has {a.shape[0]} rows, not {n}: current value is {a.shape[0]}")
    info = np.iinfo(dtype)
    if a.size and (a.min() < info.min or a.max() > info.max):
        raise InputError(
            f"Cannot write column {name!r} as a value does not fit {np.dtype(dtype).name}: current value is "
            f"{a.min() if a.min() < info.min else a.max()}"
        )
    return np.ascontiguousarray(a, dtype=dtype)


def _floats(x: Any, name: str, n: int) -> np.ndarray:
    if _is_torch(x):
        x = x.detach().cpu().double().tolist()
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.shape[0] != n:
        raise InputError(f"Cannot write column {name!r} as it has {a.shape[0]} rows, not {n}: current value is {a.shape[0]}")
    return a.astype(np.float32)


def record_batch(
    kind: str,
    sample_id: Any,
    tensors: Mapping[str, Any],
    *,
    step: Any = None,
    label: Any = None,
    draw: Any = None,
    split: Optional[Sequence[str]] = None,
    output: Any = None,
    f0: Any = None,
    target: Any = None,
    fisher: Optional[str] = None,
    metadata: Optional[Mapping[str, str]] = None,
    column_metadata: Optional[Mapping[str, Mapping[str, str]]] = None,
) -> pa.RecordBatch:
    """One wire-format batch of ``kind``, field for field as the TypeScript ``makeRecordBatch`` builds it.

    ``tensors``: column name to ``(rows, ...)`` values. Jacobians need ``split`` ("train"/"test"), ``output``,
    ``f0`` and ``target`` (NaN or None on test rows: written as null). Gradients carry ``fisher`` ("true" when labels
    were sampled from the model, "empirical" for dataset labels).
    """
    if kind not in KINDS:
        raise InputError(f"Cannot build a batch as the kind is not one of {', '.join(KINDS)}: current value is {kind!r}")
    sid = _ints(sample_id, "sample_id", None, np.int64)
    n = int(sid.shape[0])
    names: list = []
    arrays: list = []
    fields: list = []

    def add(name: str, arr: pa.Array, nullable: bool = False, meta: Optional[Mapping[str, str]] = None):
        names.append(name)
        arrays.append(arr)
        fields.append(pa.field(name, arr.type, nullable=nullable, metadata=dict(meta) if meta else None))

    add("sample_id", pa.array(sid, pa.int64()))
    if step is not None:
        add("step", pa.array(_ints(step, "step", n, np.int64), pa.int64()))
    if label is not None:
        add("label", pa.array(_ints(label, "label", n, np.int32), pa.int32()))
    if draw is not None:
        add("draw", pa.array(_ints(draw, "draw", n, np.int32), pa.int32()))
    if kind == "jacobians/v1":
        if split is None or output is None or f0 is None:
            raise InputError(
                "Cannot build a jacobians/v1 batch as split, output and f0 are required: current value is "
                f"split={'given' if split is not None else None}, output={'given' if output is not None else None}, "
                f"f0={'given' if f0 is not None else None}"
            )
        sp = [str(s) for s in split]
        if len(sp) != n or any(s not in ("train", "test") for s in sp):
            bad = next((s for s in sp if s not in ("train", "test")), f"{len(sp)} rows")
            raise InputError(f"Cannot write column 'split' as it needs {n} values 'train' or 'test': current value is {bad!r}")
        add("split", pa.array(sp, pa.utf8()))
        add("output", pa.array(_ints(output, "output", n, np.int32), pa.int32()))
        add("f0", pa.array(_floats(f0, "f0", n), pa.float32()))
        if target is None:
            t = np.full(n, np.nan, dtype=np.float32)
        else:
            t = _floats([np.nan if v is None else v for v in target] if isinstance(target, (list, tuple)) else target,
                        "target", n)
        add("target", pa.array(t, pa.float32(), mask=np.isnan(t)), nullable=True)
    for name, values in tensors.items():
        if name in RESERVED:
            raise InputError(f"Cannot write tensor column {name!r} as the name is reserved: current value is {name!r}")
        add(name, tensor_column(values, name, n), meta=(column_metadata or {}).get(name))
    meta: Dict[str, str] = {SCHEMA_KEY: kind, **{str(k): str(v) for k, v in (metadata or {}).items()}}
    if kind == "gradients/v1":
        f = fisher if fisher is not None else meta.get(FISHER_KEY, "true")
        if f not in ("true", "empirical"):
            raise InputError(f"Cannot build gradients as fisher must be 'true' or 'empirical': current value is {f!r}")
        meta[FISHER_KEY] = f
    schema = pa.schema(fields, metadata=meta)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def activations(
    layers: Mapping[str, Any],
    sample_id: Any = None,
    *,
    step: Any = None,
    label: Any = None,
    metadata: Optional[Mapping[str, str]] = None,
) -> pa.RecordBatch:
    """An ``activations/v1`` batch: one column per layer, ``(samples, neurons)`` (``sample_id`` default 0..n-1)."""
    if sample_id is None:
        sample_id = np.arange(_rows(layers), dtype=np.int64)
    return record_batch("activations/v1", sample_id, layers, step=step, label=label, metadata=metadata)


def gradients(
    params: Mapping[str, Any],
    sample_id: Any = None,
    *,
    fisher: str = "true",
    step: Any = None,
    draw: Any = None,
    metadata: Optional[Mapping[str, str]] = None,
) -> pa.RecordBatch:
    """A ``gradients/v1`` batch: one column per parameter tensor, its per-sample gradient flattened."""
    if sample_id is None:
        sample_id = np.arange(_rows(params), dtype=np.int64)
    return record_batch("gradients/v1", sample_id, params, step=step, draw=draw, fisher=fisher, metadata=metadata)


def jacobians(
    columns: Mapping[str, Any],
    sample_id: Any,
    *,
    split: Sequence[str],
    output: Any,
    f0: Any,
    target: Any = None,
    metadata: Optional[Mapping[str, str]] = None,
    column_metadata: Optional[Mapping[str, Mapping[str, str]]] = None,
) -> pa.RecordBatch:
    """A ``jacobians/v1`` batch: one row per (sample, output), one column per parameter tensor (or sketched)."""
    return record_batch(
        "jacobians/v1",
        sample_id,
        columns,
        split=split,
        output=output,
        f0=f0,
        target=target,
        metadata=metadata,
        column_metadata=column_metadata,
    )


def _rows(columns: Mapping[str, Any]) -> int:
    for v in columns.values():
        return int(v.shape[0]) if hasattr(v, "shape") else len(v)
    raise InputError("Cannot build a batch as it has no tensor column: current value is {}")
