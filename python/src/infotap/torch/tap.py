"""``ActivationTap``: the activations of named modules on a fixed probe set, every N training steps, as
``activations/v1`` batches.

Forward hooks are registered only while the probe runs (eval mode, ``no_grad``; each module's training mode is
restored after), so training steps between records run the model untouched. Which tensor is tapped is recorded in the
stream (``infotap.tapped``).

>>> import torch
>>> from infotap.wire import ListSink
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
>>> sink = ListSink()
>>> tap = ActivationTap(model, ["0", "2"], probe=torch.randn(16, 4), every=10, sink=sink)
>>> [tap.step(s) for s in range(12)].count(True)  # steps 0 and 10
2
>>> rb = sink.batches[1]
>>> rb.schema.names, rb.num_rows, rb.column("step")[0].as_py()
(['sample_id', 'step', '0', '2'], 16, 10)
"""

from __future__ import annotations

import difflib
import math
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import torch

from ..errors import InfotapWarning, InputError
from ..wire.batch import activations
from ..wire.sinks import Sink, as_sink
from ._compat import model_device, restore_mode

Selector = Union[Callable[[Any], torch.Tensor], Sequence[Callable[[Any], torch.Tensor]]]

#: Modules whose multi-dimensional outputs are channels x positions (pooled or flattened by ``spatial``).
_CHANNEL_MODULES = (
    torch.nn.modules.conv._ConvNd,
    torch.nn.modules.batchnorm._BatchNorm,
    torch.nn.modules.pooling._AvgPoolNd,
    torch.nn.modules.pooling._MaxPoolNd,
    torch.nn.modules.pooling._AdaptiveAvgPoolNd,
    torch.nn.modules.pooling._AdaptiveMaxPoolNd,
)


def token(index: int = 0, batch_first: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    """Selects one sequence position of a ``(batch, seq, dim)`` output (``(seq, batch, dim)`` with
    ``batch_first=False``): ``token(0)`` is the CLS vector of a BERT-style layer.

    >>> token(0)(torch.arange(24.).reshape(2, 3, 4)).tolist()
    [[0.0, 1.0, 2.0, 3.0], [12.0, 13.0, 14.0, 15.0]]
    """

    def pick(out: torch.Tensor) -> torch.Tensor:
        if not isinstance(out, torch.Tensor) or out.dim() < 3:
            shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputError(
                f"Cannot select token {index} as the output is not (batch, seq, dim): current value is {shape}"
            )
        return out[:, index] if batch_first else out[index]

    pick.__name__ = f"token({index})"
    return pick


def neurons(which: Union[int, slice, Sequence[int]]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Selects neurons of a ``(batch, ...)`` output (flattened after the batch axis): ``neurons(64)`` keeps the first
    64 (as Bansal et al. did), ``neurons([0, 5, 9])`` or a slice picks others.

    >>> neurons(2)(torch.arange(8.).reshape(2, 4)).tolist()
    [[0.0, 1.0], [4.0, 5.0]]
    """
    index = slice(0, which) if isinstance(which, int) else which

    def pick(out: torch.Tensor) -> torch.Tensor:
        flat = out.reshape(out.shape[0], -1)
        if isinstance(index, slice):
            return flat[:, index]
        return flat[:, torch.as_tensor(list(index), dtype=torch.long, device=flat.device)]

    pick.__name__ = f"neurons({which})"
    return pick


def _find_modules(model: torch.nn.Module, layers: Sequence[str]) -> Dict[str, torch.nn.Module]:
    named = dict(model.named_modules())
    found = {}
    for name in layers:
        if name not in named:
            close = difflib.get_close_matches(name, [n for n in named if n], n=3)
            known = [n for n in named if n][:12]
            hint = f"did you mean {', '.join(map(repr, close))}?" if close else f"has: {', '.join(known)}"
            raise InputError(
                f"Cannot tap layer {name!r} as the model has no module of that name ({hint}; names as "
                f"model.named_modules() gives them): current value is {name!r}"
            )
        found[name] = named[name]
    return found


class ActivationTap:
    """Records the activations of ``layers`` (names from ``model.named_modules()``) on ``probe`` every ``every`` steps.

    - ``probe``: the inputs (a tensor, or ``(inputs, labels)``: labels become the ``label`` column), run in chunks of
      ``batch_size`` (default: all at once) through ``forward(model, x)`` (default ``model(x)``).
    - ``where``: ``"output"`` (default; for a Linear layer its pre-activation) or ``"input"`` of each module.
    - ``select``: a function of the module's output returning ``(batch, neurons)`` (or a list applied in order, or a
      dict by layer), e.g. :func:`token` ``(0)`` for the CLS position, :func:`neurons` ``(64)`` for the first 64.
    - ``spatial``: outputs of convolution, pooling and batch-norm modules, and any 4-D/5-D output, are channels x
      positions: ``"mean"`` averages over positions (the default, as for ResNet stages), ``"flatten"`` keeps them all.
    - ``sink``: a :class:`~infotap.wire.Sink`, a path, a list or a function; ``close()`` closes it.

    Bad input raises :class:`~infotap.errors.InputError` naming the layer; non-finite values are counted per layer in
    ``nonfinite`` (the engine excludes and counts them too) and warned about once.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        layers: Union[str, Sequence[str]],
        probe: Any,
        every: int = 1,
        *,
        sink: Any,
        where: str = "output",
        select: Union[None, Selector, Mapping[str, Selector]] = None,
        spatial: str = "auto",
        labels: Any = None,
        sample_ids: Any = None,
        batch_size: Optional[int] = None,
        forward: Optional[Callable[[torch.nn.Module, Any], Any]] = None,
        metadata: Optional[Mapping[str, str]] = None,
    ):
        if isinstance(layers, str):
            layers = [layers]
        if not layers:
            raise InputError("Cannot tap a model as no layer was named: current value is []")
        if where not in ("output", "input"):
            raise InputError(f"Cannot tap as where must be 'output' or 'input': current value is {where!r}")
        if spatial not in ("auto", "mean", "flatten"):
            raise InputError(f"Cannot tap as spatial must be 'auto', 'mean' or 'flatten': current value is {spatial!r}")
        if not isinstance(every, int) or every < 1:
            raise InputError(f"Cannot tap as every must be a positive integer: current value is {every!r}")
        self.model = model
        self.layers = list(layers)
        self.modules = _find_modules(model, self.layers)
        if isinstance(probe, (tuple, list)) and len(probe) == 2 and labels is None:
            probe, labels = probe
        if not isinstance(probe, torch.Tensor):
            raise InputError(
                f"Cannot tap as the probe is not a tensor or (inputs, labels): current value is {type(probe).__name__}"
            )
        self.probe = probe
        self.n = int(probe.shape[0])
        if labels is not None and int(len(labels)) != self.n:
            raise InputError(
                f"Cannot tap as the probe has {self.n} samples and {len(labels)} labels: current value is {len(labels)}"
            )
        self.labels = labels
        self.sample_ids = torch.arange(self.n) if sample_ids is None else sample_ids
        self.every = every
        self.where = where
        self.select = select
        self.spatial = spatial
        self.batch_size = batch_size or self.n
        self.forward = forward or (lambda m, x: m(x))
        self.sink: Sink = as_sink(sink)
        self.widths: Dict[str, int] = {}
        self.nonfinite: Dict[str, int] = {name: 0 for name in self.layers}
        self.records = 0
        self._warned = False
        self._template = None
        self.metadata = {
            "infotap.tapped": f"{where} of {', '.join(f'{n} ({type(m).__name__})' for n, m in self.modules.items())}",
            **dict(metadata or {}),
        }

    # -- the training-loop helper ---------------------------------------------------------------------------------

    def step(self, global_step: int) -> bool:
        """Records when ``global_step`` is a multiple of ``every``; returns whether it did."""
        if global_step % self.every != 0:
            return False
        self.record(global_step)
        return True

    def close(self):
        """Closes the sink (returns what it returns: the server's count for a ServeSink)."""
        return self.sink.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- recording ------------------------------------------------------------------------------------------------

    def capture(self) -> Dict[str, torch.Tensor]:
        """The tapped activations on the probe now: layer name to ``(samples, neurons)`` float32 CPU tensors."""
        device = model_device(self.model)
        chunks: Dict[str, List[torch.Tensor]] = {name: [] for name in self.layers}
        with restore_mode(self.model, train=False), torch.no_grad():
            for start in range(0, self.n, self.batch_size):
                x = self.probe[start:start + self.batch_size].to(device)
                size = int(x.shape[0])
                seen: Dict[str, List[Any]] = {name: [] for name in self.layers}
                handles = []
                try:
                    for name, module in self.modules.items():
                        if self.where == "output":
                            handles.append(module.register_forward_hook(
                                lambda _m, _i, out, name=name: seen[name].append(out)))
                        else:
                            handles.append(module.register_forward_pre_hook(
                                lambda _m, inp, name=name: seen[name].append(inp[0] if len(inp) == 1 else inp)))
                    self.forward(self.model, x)
                finally:
                    for h in handles:
                        h.remove()
                for name in self.layers:
                    if not seen[name]:
                        raise InputError(
                            f"Cannot tap layer {name!r} as it did not run in the forward pass on the probe: current "
                            "value is 0 calls"
                        )
                    if len(seen[name]) > 1:
                        raise InputError(
                            f"Cannot tap layer {name!r} as it ran {len(seen[name])} times in one forward pass (a module "
                            "used in several places; tap one that runs once): current value is "
                            f"{len(seen[name])} calls"
                        )
                    chunks[name].append(self._rows(name, seen[name][0], size))
        out = {name: torch.cat(parts) if len(parts) > 1 else parts[0] for name, parts in chunks.items()}
        for name, t in out.items():
            width = int(t.shape[1])
            if self.widths.setdefault(name, width) != width:
                raise InputError(
                    f"Cannot tap layer {name!r} as its width changed between records (a stream's columns have a fixed "
                    f"width): current value is {width} (first: {self.widths[name]})"
                )
        return out

    def _selector(self, name: str):
        sel = self.select.get(name) if isinstance(self.select, Mapping) else self.select
        if sel is None:
            return []
        return list(sel) if isinstance(sel, (list, tuple)) else [sel]

    def _rows(self, name: str, out: Any, size: int) -> torch.Tensor:
        """One chunk's output of layer ``name`` as ``(size, neurons)`` float32 on the CPU."""
        for fn in self._selector(name):
            out = fn(out)
        if not isinstance(out, torch.Tensor):
            what = f"a {type(out).__name__} of {len(out)}" if isinstance(out, (tuple, list)) else type(out).__name__
            raise InputError(
                f"Cannot tap layer {name!r} as its {self.where} is {what}, not a tensor (pass select= a function that "
                f"picks the tensor): current value is {what}"
            )
        if not out.is_floating_point():
            raise InputError(
                f"Cannot tap layer {name!r} as its {self.where} is not floating point: current value is {out.dtype}"
            )
        if out.dim() == 0 or int(out.shape[0]) != size:
            raise InputError(
                f"Cannot tap layer {name!r} as the first dimension of its {self.where} is not the probe batch size "
                f"{size} (a sequence-first layer? pass select=, e.g. token(0, batch_first=False)): current value is "
                f"shape {list(out.shape)}"
            )
        if out.dim() == 1:
            out = out[:, None]
        elif out.dim() > 2:
            channels = isinstance(self.modules[name], _CHANNEL_MODULES) or out.dim() >= 4
            if self.spatial == "mean" or (self.spatial == "auto" and channels):
                out = out.flatten(2).mean(dim=2)
            elif self.spatial == "flatten":
                out = out.flatten(1)
            else:
                raise InputError(
                    f"Cannot tap layer {name!r} as its {self.where} has shape {list(out.shape)}, not (samples, neurons), "
                    "and it is not a convolution: pass select= (e.g. token(0) for a sequence) or spatial='mean' or "
                    f"'flatten' to treat it as channels x positions: current value is shape {list(out.shape)}"
                )
        return out.detach().to(device="cpu", dtype=torch.float32).contiguous()

    def record(self, step: Optional[int] = None) -> None:
        """Runs the probe now and writes one batch (with ``step`` when given)."""
        acts = self.capture()
        for name, t in acts.items():
            if math.isfinite(float(t.sum())):  # one reduction; the exact count only when something is off
                continue
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                self.nonfinite[name] += bad
                if not self._warned:
                    warnings.warn(
                        f"infotap: layer {name!r} has {bad} non-finite value(s) (NaN/Inf) at step {step}; they are "
                        "sent, and the engine excludes and counts them (tap.nonfinite counts them here)",
                        InfotapWarning,
                        stacklevel=3,
                    )
                    self._warned = True
        self.sink.write(self._batch(acts, step))
        self.records += 1

    def _batch(self, acts: Dict[str, torch.Tensor], step: Optional[int]) -> pa.RecordBatch:
        """The record batch; after the first, the constant columns and the schema are reused (less work per record)."""
        key = step is None
        if self._template is None or self._template[0] != key:
            rb = activations(acts, self.sample_ids, step=None if key else [step] * self.n, label=self.labels,
                             metadata=self.metadata)
            self._template = (key, rb.schema, {c: rb.column(c) for c in ("sample_id", "label") if c in rb.schema.names})
            return rb
        _, schema, fixed = self._template
        arrays = []
        for name in schema.names:
            if name in fixed:
                arrays.append(fixed[name])
            elif name == "step":
                arrays.append(pa.array(np.full(self.n, step, dtype=np.int64)))
            else:  # float32, contiguous, on the CPU (capture made it so): the list column over its memory
                t = acts[name]
                values = pa.Array.from_buffers(
                    pa.float32(), t.numel(), [None, pa.foreign_buffer(t.data_ptr(), t.numel() * 4, base=t)])
                arrays.append(pa.Array.from_buffers(schema.field(name).type, self.n, [None], children=[values]))
        return pa.RecordBatch.from_arrays(arrays, schema=schema)
