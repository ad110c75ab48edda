"""``infotap.analyze``: run the engine on files or on batches made in Python (piped to its standard input)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from typing import Any, Iterable, List, Optional, Union

import pyarrow as pa

from . import _bundle
from ._run import estimators_flag, flags, raise_for_exit, report_warnings
from .errors import InputError
from .results import Results, read_results
from .wire.sinks import same_schema

PathLike = Union[str, "os.PathLike[str]"]


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


def _split_inputs(inputs: Any):
    """``(paths, batches)``: a list of paths, or an iterator of record batches (exactly one is not None)."""
    if _is_path(inputs):
        return [os.fspath(inputs)], None
    if isinstance(inputs, (pa.RecordBatch, pa.Table)):
        return None, iter([inputs])
    if isinstance(inputs, (list, tuple)) and inputs and all(_is_path(p) for p in inputs):
        return [os.fspath(p) for p in inputs], None
    if isinstance(inputs, (list, tuple)) and not inputs:
        raise InputError("Cannot analyze as no input was given: current value is []")
    try:
        return None, iter(inputs)
    except TypeError:
        raise InputError(
            "Cannot analyze as the input is not a path, a list of paths, a record batch or an iterable of record "
            f"batches: current value is {type(inputs).__name__}"
        ) from None


def analyze(
    inputs: Any,
    estimators: Union[str, Iterable[str], None] = None,
    *,
    out: Optional[PathLike] = None,
    by_step: bool = False,
    format: Optional[str] = None,
    **options: Any,
) -> Results:
    """Runs the engine (``infotap analyze``) and returns its :class:`~infotap.Results`.

    ``inputs``: a path (``.arrows``/``.arrow``), a list of paths, a ``pyarrow.RecordBatch`` or ``Table``, or any
    iterable of them (a generator works: batches are written to the engine's standard input as they come, no temporary
    file in Python). ``estimators``: names (default: the defaults for the input's kind). ``out``: the results directory
    (default: a temporary one, removed once the tables are read). Other keywords are the engine's flags with ``_`` for
    ``-``: ``bins=30``, ``range=(-5, 5)``, ``mi_estimator="binned"``, ``si_lambda=0.1``, ``seed=0``, ``layers=[...]``.

    Bad input raises :class:`~infotap.errors.InputError` naming the batch and column; its ``results`` holds the tables
    of the batches read before it (``complete`` False). Non-finite values are counted by the engine and reported as
    :class:`~infotap.errors.InfotapWarning`.

    >>> import numpy as np, infotap
    >>> from infotap.wire import activations
    >>> x = np.random.default_rng(0).normal(size=(500, 4))
    >>> r = infotap.analyze(activations({"fc1": x}), estimators="entropy", bins=10)
    >>> r.tables["neuron_entropy"].num_rows, r.complete
    (4, True)
    """
    paths, batches = _split_inputs(inputs)
    temp = out is None
    out_dir = tempfile.mkdtemp(prefix="infotap-") if temp else os.fspath(out)
    args: List[str] = [*(paths or ["-"]), f"--out={out_dir}", "--quiet"]
    est = estimators_flag(estimators)
    if est is not None:
        args.append(f"--estimators={est}")
    args += flags({"by_step": by_step, "format": format or ("arrow" if temp else None), **options})
    try:
        code, stderr = _run(_bundle.command("analyze", args), batches)
        warnings = report_warnings(stderr.splitlines())
        partial = None
        if code != 0:
            try:
                partial = read_results(out_dir)
            except InputError:
                partial = None
            if partial is not None:
                _detach(partial, temp)
        raise_for_exit(code, stderr, partial)
        results = read_results(out_dir)
        results.warnings = warnings
        _detach(results, temp)
        return results
    finally:
        if temp:
            shutil.rmtree(out_dir, ignore_errors=True)


def _detach(results: Results, temp: bool) -> None:
    if temp:
        results.dir = None


def _run(cmd: List[str], batches) -> "tuple[int, str]":
    """Runs ``cmd``, writing ``batches`` (if any) as one IPC stream to its stdin; returns (exit code, stderr)."""
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if batches is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_bundle.environment(),
    )
    err: List[bytes] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    reader.start()
    try:
        if batches is not None:
            _write_stream(proc.stdin, batches)
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        reader.join()
        proc.stderr.close()
    return code, b"".join(err).decode("utf-8", "replace")


def _write_stream(stdin, batches) -> None:
    """One IPC stream of every batch; stops quietly when the engine closed its input (it then says why)."""
    writer = None
    try:
        for item in batches:
            parts = item.to_batches() if isinstance(item, pa.Table) else [item]
            for b in parts:
                if not isinstance(b, pa.RecordBatch):
                    raise InputError(
                        "Cannot analyze as an item of the input is not a pyarrow RecordBatch or Table: current value is "
                        f"{type(b).__name__}"
                    )
                if writer is None:
                    writer = pa.ipc.new_stream(stdin, b.schema)
                    first = b.schema
                else:
                    same_schema(first, b, "the engine's input stream")
                writer.write_batch(b)
        if writer is None:
            raise InputError("Cannot analyze as the input holds no batch: current value is 0 batches")
        writer.close()
        stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        try:
            stdin.close()
        except (BrokenPipeError, OSError):
            pass
