"""Running an engine command from Python: keyword options to flags, and the engine's exit to an exception."""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Iterable, List, Mapping, Optional

from .errors import EngineError, InfotapWarning, InputError, UsageError


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if not math.isfinite(v):
            raise UsageError(f"Cannot pass a non-finite number to the engine: current value is {v!r}")
        return repr(v)
    if isinstance(v, (str, int)):
        return str(v)
    if hasattr(v, "item"):  # numpy / torch scalars
        return _scalar(v.item())
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    raise UsageError(f"Cannot pass the option value to the engine as it is not a number or string: current value is {v!r}")


def flags(options: Mapping[str, Any]) -> List[str]:
    """``{"by_step": True, "range": (-5, 5), "bins": 30}`` to ``["--by-step", "--range=-5,5", "--bins=30"]``.

    None and False are left out (the engine's defaults); lists and tuples become comma-separated values; ``plugin``
    (a path or a list of paths) is repeated.

    >>> flags({"by_step": True, "range": (-5, 5), "mi_estimator": "binned", "quiet": False, "seed": None})
    ['--by-step', '--range=-5,5', '--mi-estimator=binned']
    """
    out: List[str] = []
    for key, v in options.items():
        if v is None or v is False:
            continue
        flag = "--" + key.replace("_", "-")
        if v is True:
            out.append(flag)
        elif key == "plugin":
            for p in [v] if isinstance(v, (str, os.PathLike)) else v:
                out.append(f"{flag}={_scalar(p)}")
        elif isinstance(v, (list, tuple)):
            out.append(f"{flag}={','.join(_scalar(x) for x in v)}")
        else:
            out.append(f"{flag}={_scalar(v)}")
    return out


def estimators_flag(estimators: Any) -> Optional[str]:
    """``"entropy,mi"`` from a name or a list of names (None: the defaults for the input's kind)."""
    if estimators is None:
        return None
    if isinstance(estimators, str):
        return estimators
    return ",".join(str(e) for e in estimators)


def report_warnings(lines: Iterable[str]) -> List[str]:
    """Re-raises the engine's ``infotap: warning:`` lines as :class:`InfotapWarning`; returns them."""
    found = []
    for line in lines:
        if line.startswith("infotap: warning: "):
            text = line[len("infotap: warning: "):]
            found.append(text)
            warnings.warn(text, InfotapWarning, stacklevel=3)
    return found


def raise_for_exit(code: int, stderr: str, partial=None) -> None:
    """Raises the exception that the engine's exit code and last error line describe (no-op for 0)."""
    if code == 0:
        return
    lines = [l for l in stderr.splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith("infotap:") and not l.startswith("infotap: warning:")]
    line = errors[0] if errors else (lines[-1] if lines else f"exit code {code}")
    for prefix in ("infotap: error: ", "infotap: internal error: ", "infotap: "):
        if line.startswith(prefix):
            line = line[len(prefix):]
            break
    if code == 1:
        raise InputError(line, results=partial)
    if code == 2:
        raise UsageError(line)
    if code < 0:
        raise EngineError(f"Cannot finish the engine run as it was killed: current value is signal {-code}")
    raise EngineError(line if errors else f"Cannot finish the engine run as it failed: current value is exit code {code}: {line}")
