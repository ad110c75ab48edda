"""A PyTorch Lightning-style callback that steps infotap taps, without importing Lightning.

Lightning calls ``on_train_batch_end`` after every optimiser step and ``on_train_end`` at the end; the callback steps
each tap with ``trainer.global_step`` and closes them at the end. Lightning versions that insist on their own base
class take ``class TapCallback(InfotapCallback, lightning.pytorch.Callback): pass``.

>>> class Tap:
...     def __init__(self): self.steps, self.closed = [], False
...     def step(self, s): self.steps.append(s)
...     def close(self): self.closed = True
>>> class Trainer: global_step = 0
>>> tap, trainer = Tap(), Trainer()
>>> cb = InfotapCallback(tap)
>>> for s in range(1, 4):
...     trainer.global_step = s
...     cb.on_train_batch_end(trainer, None, None, None, s - 1)
>>> cb.on_train_end(trainer, None)
>>> tap.steps, tap.closed
([1, 2, 3], True)
"""

from __future__ import annotations

from typing import Any


class InfotapCallback:
    """Steps ``taps`` (objects with ``step(global_step)`` and ``close()``) from Lightning's training hooks."""

    def __init__(self, *taps: Any):
        self.taps = list(taps)
        self._closed = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *args) -> None:
        for tap in self.taps:
            tap.step(int(trainer.global_step))

    def on_train_end(self, trainer, pl_module) -> None:
        if not self._closed:
            self._closed = True
            for tap in self.taps:
                tap.close()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.on_train_end(trainer, pl_module)

    # Lightning looks up every hook by name on each callback; the others are no-ops here.
    def __getattr__(self, name: str):
        if name.startswith("on_") or name in ("setup", "teardown"):
            return lambda *a, **k: None
        raise AttributeError(name)
