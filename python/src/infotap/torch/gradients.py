"""Per-sample gradients of ``-log p(y|x)`` as ``gradients/v1`` batches, for the engine's ``fisher`` estimator.

With ``fisher="true"`` the labels are drawn from the model, ``y ~ p_w(y|x)`` (the Fisher information; needs no labels);
with ``fisher="empirical"`` they are the given targets (the empirical Fisher: another quantity, labelled as such in
every output). Gradients come from ``vmap(grad(...))`` (torch.func, or functorch on PyTorch 1.13), in eval mode.

>>> import torch
>>> torch.manual_seed(0) and None
>>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
>>> rb = per_sample_gradients(model, torch.nn.functional.cross_entropy, torch.randn(5, 3), draws=2)
>>> rb.num_rows, rb.schema.names, rb.schema.metadata[b"infotap.fisher"]
(10, ['sample_id', 'draw', '0.weight', '0.bias', '2.weight', '2.bias'], b'true')
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import pyarrow as pa
import torch

from ..errors import InputError
from ..wire.batch import gradients as gradients_batch
from ..wire.sinks import as_sink
from ._compat import call, grad, model_device, restore_mode, vmap


def _params(model: torch.nn.Module, names: Optional[Sequence[str]]) -> Dict[str, torch.Tensor]:
    all_params = dict(model.named_parameters())
    if names is None:
        chosen = {k: v for k, v in all_params.items() if v.requires_grad}
    else:
        missing = [n for n in names if n not in all_params]
        if missing:
            raise InputError(
                f"Cannot take gradients of parameter {missing[0]!r} as the model has no such parameter (has: "
                f"{', '.join(list(all_params)[:12])}): current value is {missing[0]!r}"
            )
        chosen = {n: all_params[n] for n in names}
    if not chosen:
        raise InputError("Cannot take gradients as the model has no trainable parameter: current value is 0 parameters")
    return {k: v.detach() for k, v in chosen.items()}


def sample_labels(outputs: torch.Tensor, draws: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    """``draws`` labels per sample from ``softmax(outputs)`` (a classifier's logits): ``(n, draws)``."""
    if outputs.dim() != 2:
        raise InputError(
            "Cannot sample labels from the model as its outputs are not (samples, classes) logits (pass sample= for "
            f"another likelihood): current value is shape {list(outputs.shape)}"
        )
    probs = torch.softmax(outputs.detach().double(), dim=1)
    return torch.multinomial(probs.cpu(), draws, replacement=True, generator=generator)


def per_sample_gradients(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: Optional[torch.Tensor] = None,
    *,
    fisher: str = "true",
    draws: int = 1,
    seed: int = 0,
    sample: Optional[Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]] = None,
    params: Optional[Sequence[str]] = None,
    sample_ids: Any = None,
    step: Optional[int] = None,
    chunk_size: Optional[int] = None,
    metadata: Optional[Mapping[str, str]] = None,
) -> pa.RecordBatch:
    """Per-sample gradients of ``loss_fn(model(x), y)`` (``-log p(y|x)``, e.g. ``cross_entropy``) as one
    ``gradients/v1`` batch: one row per sample (and draw), one column per parameter tensor named as
    ``model.named_parameters()`` gives it (trainable ones, or ``params``).

    ``fisher="true"``: ``draws`` labels per sample drawn from ``softmax(model(x))`` with ``seed`` (``sample(outputs,
    draws, generator)`` for another likelihood), rows of draw d carry ``draw`` = d. ``fisher="empirical"``: ``targets``
    are the labels. ``chunk_size`` bounds the samples per ``vmap`` call.
    """
    if fisher not in ("true", "empirical"):
        raise InputError(f"Cannot take gradients as fisher must be 'true' or 'empirical': current value is {fisher!r}")
    if not isinstance(draws, int) or draws < 1:
        raise InputError(f"Cannot take gradients as draws must be a positive integer: current value is {draws!r}")
    if fisher == "empirical" and targets is None:
        raise InputError(
            "Cannot take empirical-Fisher gradients as they need the dataset's labels: current value is targets=None"
        )
    if fisher == "empirical" and draws != 1:
        raise InputError(f"Cannot draw labels for the empirical Fisher as it uses the given labels: current value is draws={draws}")
    if fisher == "true" and targets is not None:
        raise InputError(
            "Cannot use targets with fisher='true' as the true Fisher samples labels from the model (use "
            "fisher='empirical' for the dataset's labels): current value is targets given"
        )
    n = int(inputs.shape[0])
    device = model_device(model)
    chunk = chunk_size or n
    names_params = _params(model, params)
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    frozen = {k: v.detach() for k, v in model.named_parameters() if k not in names_params}

    def loss_one(p: Dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = call(model, {**p, **frozen}, buffers, x.unsqueeze(0))
        return loss_fn(out, y.unsqueeze(0))

    per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))
    with restore_mode(model, train=False):
        if fisher == "true":
            generator = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                outs = torch.cat([model(inputs[s:s + chunk].to(device)) for s in range(0, n, chunk)])
            labels = sample(outs, draws, generator) if sample is not None else sample_labels(outs, draws, generator)
            if labels.shape[0] != n or (labels.dim() > 1 and labels.shape[1] != draws):
                raise InputError(
                    f"Cannot use the sampled labels as they are not (samples, draws) = ({n}, {draws}): current value is "
                    f"shape {list(labels.shape)}"
                )
            ys = [labels[:, d] if labels.dim() > 1 else labels for d in range(draws)]
        else:
            if int(targets.shape[0]) != n:
                raise InputError(
                    f"Cannot take gradients as there are {n} inputs and {int(targets.shape[0])} targets: current value "
                    f"is {int(targets.shape[0])}"
                )
            ys = [targets]
        cols: Dict[str, List[torch.Tensor]] = {k: [] for k in names_params}
        for y in ys:
            for s in range(0, n, chunk):
                g = per_sample(names_params, inputs[s:s + chunk].to(device), y[s:s + chunk].to(device))
                for k in names_params:
                    cols[k].append(g[k].detach().reshape(g[k].shape[0], -1).float().cpu())
    columns = {k: v[0] if len(v) == 1 else torch.cat(v) for k, v in cols.items()}  # one chunk: no copy
    ids = torch.arange(n) if sample_ids is None else torch.as_tensor(sample_ids)
    rows = n * len(ys)
    return gradients_batch(
        columns,
        ids.repeat(len(ys)),
        fisher=fisher,
        step=None if step is None else [step] * rows,
        draw=torch.arange(len(ys)).repeat_interleave(n) if draws > 1 else None,
        metadata={"infotap.tapped": f"per-sample gradients of {getattr(loss_fn, '__name__', 'loss_fn')}", **dict(metadata or {})},
    )


class GradientTap:
    """Per-sample gradients on a fixed probe every ``every`` steps (the Fisher over training: the critical-period
    curve), written to ``sink``; ``step(global_step)`` and ``close()`` as :class:`~infotap.torch.ActivationTap`."""

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Callable,
        probe: Any,
        every: int = 1,
        *,
        sink: Any,
        fisher: str = "true",
        **options: Any,
    ):
        if isinstance(probe, (tuple, list)) and len(probe) == 2:
            probe, targets = probe
        else:
            targets = None
        if fisher == "true":
            targets = None
        if not isinstance(every, int) or every < 1:
            raise InputError(f"Cannot tap as every must be a positive integer: current value is {every!r}")
        self.model, self.loss_fn, self.probe, self.targets = model, loss_fn, probe, targets
        self.every, self.fisher, self.options = every, fisher, options
        self.sink = as_sink(sink)
        self.records = 0

    def step(self, global_step: int) -> bool:
        if global_step % self.every != 0:
            return False
        self.record(global_step)
        return True

    def record(self, step: Optional[int] = None) -> None:
        rb = per_sample_gradients(
            self.model, self.loss_fn, self.probe, self.targets, fisher=self.fisher, step=step,
            **{"seed": self.records, **self.options},
        )
        self.sink.write(rb)
        self.records += 1

    def close(self):
        return self.sink.close()
