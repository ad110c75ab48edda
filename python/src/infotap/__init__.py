"""infotap for Python: measure where the information is in a neural network.

- :func:`analyze` runs the engine (bundled in this package, run by Deno) on wire-format streams or on batches made in
  Python, and returns :class:`Results` (``run``, ``tables`` as pyarrow Tables, ``to_pandas``).
- :func:`read_results` reads any results directory (also a live one's part files).
- :func:`serve` starts the live engine; :mod:`infotap.wire` writes wire format v1 (activations, gradients, Jacobians)
  to files, lists or a live server; :mod:`infotap.torch` taps PyTorch models.

Documentation: python/README.md; the wire format: schemas/README.md of the repository.
"""

__version__ = "0.1.0"

from ._analyze import analyze
from ._serve import Server, serve
from .errors import EngineError, InfotapError, InfotapWarning, InputError, UsageError
from .results import Results, read_results

__all__ = [
    "__version__",
    "analyze",
    "serve",
    "Server",
    "read_results",
    "Results",
    "InfotapError",
    "InputError",
    "UsageError",
    "EngineError",
    "InfotapWarning",
]
