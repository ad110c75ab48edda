"""torch.func on PyTorch >= 2.0, functorch and ``torch.nn.utils.stateless`` on 1.13."""

from __future__ import annotations

import torch

try:  # PyTorch >= 2.0
    from torch.func import functional_call, grad, jacrev, vmap
except ImportError:  # PyTorch 1.13: functorch ships with it
    from functorch import grad, jacrev, vmap
    from torch.nn.utils.stateless import functional_call

__all__ = ["functional_call", "grad", "jacrev", "vmap", "call", "model_device", "restore_mode"]


def call(model: torch.nn.Module, params: dict, buffers: dict, *args):
    """``model(*args)`` with the given parameters and buffers (one dict: both torch.func and 1.13 take it)."""
    return functional_call(model, {**params, **buffers}, args)


def model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


class restore_mode:
    """``with restore_mode(model, train=False):`` sets the mode and restores every submodule's own mode after."""

    def __init__(self, model: torch.nn.Module, train: bool = False):
        self.model = model
        self.train = train

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.changed = any(t != self.train for _, t in self.modes)
        if self.changed:
            self.model.train(self.train)
        return self.model

    def __exit__(self, *exc):
        if not self.changed:
            return
        self.model.train(self.modes[0][1])  # the model's own train() (it may be overridden), then any exceptions
        for m, t in self.modes:
            if m.training != t:
                m.training = t
