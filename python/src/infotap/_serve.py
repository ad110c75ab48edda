"""``infotap.serve``: start the live engine (``infotap serve``) from Python, e.g. beside a training run or in tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from typing import Any, Iterable, List, Optional, Union

from . import _bundle
from ._run import estimators_flag, flags, raise_for_exit
from .errors import EngineError
from .results import Results, read_results

_LISTENING = re.compile(r"^infotap serve: listening on (\S+):(\d+)")


class Server:
    """A running ``infotap serve``: ``address`` (``HOST:PORT`` for :class:`~infotap.wire.ServeSink`), ``port``,
    ``out``, ``lines`` (what it printed), ``results()`` (the part files so far), ``stop()`` (final results)."""

    def __init__(self, proc: subprocess.Popen, out: str, timeout: float):
        self.proc = proc
        self.out = out
        self.lines: List[str] = []
        self.host: Optional[str] = None
        self.port: Optional[int] = None
        self._ready = threading.Event()
        self._err: List[bytes] = []
        self._stdout_reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._stdout_reader.start()
        self._stderr_reader = threading.Thread(target=lambda: self._err.append(proc.stderr.read()), daemon=True)
        self._stderr_reader.start()
        if not self._ready.wait(timeout) or self.port is None:
            try:  # its output ended: it is exiting (with the reason on stderr)
                code = proc.wait(5 if self._ready.is_set() else 0.01)
            except subprocess.TimeoutExpired:
                code = None
                proc.kill()
                proc.wait()
            self._stderr_reader.join()
            self._close_pipes()
            raise_for_exit(code if code not in (None, 0) else 70, self.stderr)
            raise EngineError(
                f"Cannot start infotap serve as it did not report its address within {timeout} s: current value is "
                f"{self.lines[-1:] or 'no output'}"
            )

    def _read_stdout(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            m = _LISTENING.match(line)
            if m and self.port is None:
                self.host, self.port = m.group(1), int(m.group(2))
                self._ready.set()
        self._ready.set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def stderr(self) -> str:
        return b"".join(self._err).decode("utf-8", "replace")

    def results(self) -> Results:
        """The results written so far (part files of closed windows; the final tables after :meth:`stop`)."""
        return read_results(self.out)

    def stop(self, timeout: float = 120.0) -> Results:
        """SIGTERM: the server finishes the batches in progress, writes the final tables and ``run.json``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM if os.name == "posix" else signal.CTRL_BREAK_EVENT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr_reader.join()
        self._close_pipes()
        raise_for_exit(self.proc.returncode, self.stderr)
        return read_results(self.out)

    def _close_pipes(self) -> None:
        self._stdout_reader.join(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            pipe.close()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.stop()


def serve(
    out: Union[str, "os.PathLike[str]"],
    estimators: Union[str, Iterable[str], None] = None,
    *,
    listen: str = "127.0.0.1:0",
    snapshot_every: Optional[int] = None,
    timeout: float = 60.0,
    **options: Any,
) -> Server:
    """Starts ``infotap serve`` writing to ``out`` and returns a :class:`Server` once it listens.

    ``listen`` defaults to a free port on 127.0.0.1 (``server.address`` tells which); other keywords are the engine's
    flags (``range=(-10, 10)``, ``token="..."``, ``by_step=True``, ...). Producers connect with
    :class:`~infotap.wire.ServeSink` (``ServeSink(server.address)``).

    >>> import numpy as np, tempfile, infotap
    >>> from infotap.wire import ServeSink, activations
    >>> server = infotap.serve(tempfile.mkdtemp(), "entropy", range=(-5, 5))
    >>> sink = ServeSink(server.address)
    >>> sink.write(activations({"fc1": np.zeros((4, 2))}))
    >>> sink.close()
    {'batches': 1, 'rows': 4}
    >>> server.stop().run["rows"]
    4
    """
    args = [f"--out={os.fspath(out)}", f"--listen={listen}"]
    est = estimators_flag(estimators)
    if est is not None:
        args.append(f"--estimators={est}")
    args += flags({"snapshot_every": snapshot_every, **options})
    proc = subprocess.Popen(
        _bundle.command("serve", args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_bundle.environment(),
        start_new_session=True,  # Ctrl-C in the caller's terminal does not stop it behind the caller's back
    )
    start = time.monotonic()
    server = Server(proc, os.fspath(out), timeout)
    server.startup_s = time.monotonic() - start
    return server
