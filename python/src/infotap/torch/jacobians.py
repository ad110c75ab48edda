"""Per-sample, per-output Jacobians at the current (initial) weights, with ``f0`` and targets, as a ``jacobians/v1``
batch for the engine's ``unique-info`` estimator (smooth unique information, Harutyunyan et al. 2021).

Row ``(i, c)`` holds ``d f_c(x_i) / d w`` for every parameter tensor (one column each, named as
``model.named_parameters()``), or its projection with the seeded sketch of ``infotap.wire.sketch_jacobian``
(``sketch_dim``; the engine's ``--si-sketch-dim m --seed seed`` gives the same bits).

>>> import torch
>>> model = torch.nn.Linear(3, 2)
>>> rb = jacobians(model, torch.randn(4, 3), torch.randn(2, 3), targets=torch.zeros(4, 2))
>>> rb.num_rows, rb.schema.names
(12, ['sample_id', 'split', 'output', 'f0', 'target', 'weight', 'bias'])
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import pyarrow as pa
import torch

from ..errors import InputError
from ..wire.batch import jacobians as jacobians_batch
from ..wire.sketch import sketch_jacobian, sketch_metadata
from ._compat import call, jacrev, model_device, restore_mode, vmap
from .gradients import _params


def _rows(model, params, frozen, buffers, x: torch.Tensor, chunk: int, device):
    """(Jacobian rows by parameter as (n k, numel) float32 CPU tensors, f0 as (n k,), k)."""

    def f(p: Dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
        return call(model, {**p, **frozen}, buffers, xi.unsqueeze(0)).reshape(-1)

    jac = vmap(jacrev(f), in_dims=(None, 0))
    cols: Dict[str, List[torch.Tensor]] = {k: [] for k in params}
    f0: List[torch.Tensor] = []
    k = None
    for s in range(0, int(x.shape[0]), chunk):
        xs = x[s:s + chunk].to(device)
        with torch.no_grad():
            out = call(model, {**params, **frozen}, buffers, xs)
        out = out.reshape(int(xs.shape[0]), -1)
        if not out.is_floating_point():
            raise InputError(f"Cannot take Jacobians as the model's outputs are not floating point: current value is {out.dtype}")
        k = int(out.shape[1])
        f0.append(out.detach().float().cpu().reshape(-1))
        j = jac(params, xs)
        for name in params:
            cols[name].append(j[name].detach().reshape(int(xs.shape[0]) * k, -1).float().cpu())
    return {n: v[0] if len(v) == 1 else torch.cat(v) for n, v in cols.items()}, torch.cat(f0), k


def jacobians(
    model: torch.nn.Module,
    train: torch.Tensor,
    test: Optional[torch.Tensor] = None,
    *,
    targets: Any,
    sketch_dim: Optional[int] = None,
    seed: int = 0,
    train_ids: Any = None,
    test_ids: Any = None,
    params: Optional[list] = None,
    chunk_size: Optional[int] = None,
    metadata: Optional[Mapping[str, str]] = None,
) -> pa.RecordBatch:
    """The Jacobian rows of the train samples (with ``targets``, ``(n, k)`` or ``(n,)`` for one output) and of the
    test samples (target null), in eval mode. Sample ids: ``train_ids`` (default 0..n-1) and ``test_ids`` (default
    n..n+m-1). Sketched columns carry ``infotap.sketch.seed`` and ``infotap.sketch.source_dim``.
    """
    device = model_device(model)
    params_ = _params(model, params)
    frozen = {k: v.detach() for k, v in model.named_parameters() if k not in params_}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    n = int(train.shape[0])
    chunk = chunk_size or max(1, n)
    with restore_mode(model, train=False):
        cols, f0, k = _rows(model, params_, frozen, buffers, train, chunk, device)
        t = torch.as_tensor(targets, dtype=torch.float64).reshape(n, -1) if targets is not None else None
        if t is None or int(t.shape[1]) != k:
            raise InputError(
                f"Cannot take Jacobians as the targets are not (samples, outputs) = ({n}, {k}): current value is "
                f"{'None' if targets is None else list(torch.as_tensor(targets).shape)}"
            )
        tgt = t.reshape(-1).tolist()
        split = ["train"] * (n * k)
        ids = torch.as_tensor(np.arange(n) if train_ids is None else train_ids).reshape(-1)
        sid = ids.repeat_interleave(k)
        output = torch.arange(k).repeat(n)
        if test is not None and int(test.shape[0]) > 0:
            m = int(test.shape[0])
            tcols, tf0, tk = _rows(model, params_, frozen, buffers, test, chunk_size or m, device)
            cols = {name: torch.cat([cols[name], tcols[name]]) for name in cols}
            f0 = torch.cat([f0, tf0])
            tids = torch.as_tensor(np.arange(n, n + m) if test_ids is None else test_ids).reshape(-1)
            sid = torch.cat([sid, tids.repeat_interleave(tk)])
            output = torch.cat([output, torch.arange(tk).repeat(m)])
            split += ["test"] * (m * tk)
            tgt += [None] * (m * tk)
    column_metadata = None
    if sketch_dim is not None:
        column_metadata = {name: sketch_metadata(seed, int(v.shape[1])) for name, v in cols.items()}
        cols = {name: sketch_jacobian(v, sketch_dim, seed, name) for name, v in cols.items()}
    return jacobians_batch(
        cols,
        sid,
        split=split,
        output=output,
        f0=f0,
        target=tgt,
        metadata={"infotap.tapped": "per-sample, per-output Jacobians at the initial weights", **dict(metadata or {})},
        column_metadata=column_metadata,
    )
