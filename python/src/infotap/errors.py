"""Errors and warnings of infotap: one line, ``Cannot <do X> as <reason>: current value is <v>``."""

from __future__ import annotations


class InfotapError(Exception):
    """Base class of infotap's errors."""


class InputError(InfotapError, ValueError):
    """Bad input (a stream, a tensor, a layer name). From the engine: exit code 1.

    ``results`` holds what the engine wrote for the batches read before the error (``complete`` is False), or None.
    """

    def __init__(self, message: str, results=None):
        super().__init__(message)
        self.results = results


class UsageError(InfotapError, ValueError):
    """A bad option or argument (engine exit code 2)."""


class EngineError(InfotapError, RuntimeError):
    """The engine could not run or failed internally (missing bundle or Deno, exit code 70)."""


class InfotapWarning(UserWarning):
    """Non-fatal conditions: non-finite values counted, a live connection lost, batches dropped."""
