"""PyTorch taps: activations of named modules (:class:`ActivationTap`), per-sample gradients for the Fisher
(:func:`per_sample_gradients`, :class:`GradientTap`), Jacobians for unique information (:func:`jacobians`), and a
Lightning-style callback (:class:`InfotapCallback`). Needs ``torch >= 1.13`` (``functorch`` on 1.13, ``torch.func``
from 2.0)."""

try:
    import torch as _torch  # noqa: F401
except ImportError as e:  # pragma: no cover
    raise ImportError(
        "Cannot import infotap.torch as PyTorch is not installed (pip install 'infotap[torch]', or Debian's "
        "python3-torch): current value is no torch"
    ) from e

from .callback import InfotapCallback
from .gradients import GradientTap, per_sample_gradients, sample_labels
from .jacobians import jacobians
from .tap import ActivationTap, neurons, token

__all__ = [
    "ActivationTap",
    "GradientTap",
    "InfotapCallback",
    "jacobians",
    "neurons",
    "per_sample_gradients",
    "sample_labels",
    "token",
]
