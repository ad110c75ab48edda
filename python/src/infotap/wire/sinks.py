"""Where wire-format batches go: a file (:class:`FileSink`), a list in memory (:class:`ListSink`) or a live
``infotap serve`` endpoint over TCP (:class:`ServeSink`).

A sink writes one Arrow IPC stream: every batch must have the schema of the first. :class:`ServeSink` never stops a
training run on a broken connection (unless told to): it reports the break once, counts the batches it drops, and
reconnects with exponential backoff.

>>> import numpy as np
>>> from infotap.wire import activations
>>> sink = ListSink()
>>> sink.write(activations({"fc1": np.ones((2, 3), np.float32)}))
>>> sink.batches[0].num_rows, sink.rows
(2, 2)
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import warnings
from typing import Any, Callable, List, Optional

import pyarrow as pa

from ..errors import InfotapError, InfotapWarning, InputError

log = logging.getLogger("infotap")

HELLO = "INFOTAP1"
DEFAULT_PORT = 7341


def _batches(data: Any):
    if isinstance(data, pa.RecordBatch):
        return [data]
    if isinstance(data, pa.Table):
        return data.to_batches()
    raise InputError(
        f"Cannot write to the sink as the value is not a pyarrow RecordBatch or Table: current value is {type(data).__name__}"
    )


def same_schema(first: pa.Schema, batch: pa.RecordBatch, where: str) -> None:
    """Raises unless ``batch`` has the schema of the stream's first batch, metadata included (a stream has one)."""
    if batch.schema.equals(first, check_metadata=True):
        return
    if not batch.schema.equals(first, check_metadata=False):
        raise InputError(
            f"Cannot write the batch to {where} as its columns differ from the stream's first batch (one stream has one "
            f"schema): current value is {batch.schema.names} (first: {first.names})"
        )
    mine, theirs = dict(batch.schema.metadata or {}), dict(first.metadata or {})
    key = next((k for k in {**mine, **theirs} if mine.get(k) != theirs.get(k)), b"?")
    raise InputError(
        f"Cannot write the batch to {where} as its schema metadata differs from the stream's first batch (one "
        f"stream has one schema; write separate files): current value is {key.decode()}="
        f"{(mine.get(key) or b'').decode()!r} (first: {(theirs.get(key) or b'').decode()!r})"
    )


class Sink:
    """Base class: ``write(batch)``, ``close()``, usable as a context manager; counts ``batches`` and ``rows``."""

    def __init__(self) -> None:
        self.written_batches = 0
        self.rows = 0

    def write(self, data: Any) -> None:
        for b in _batches(data):
            self._write(b)
            self.written_batches += 1
            self.rows += b.num_rows

    def _write(self, batch: pa.RecordBatch) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> Any:
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ListSink(Sink):
    """Keeps the batches in ``batches`` (a list given or a new one); ``table()`` joins them."""

    def __init__(self, batches: Optional[List[pa.RecordBatch]] = None) -> None:
        super().__init__()
        self.batches = [] if batches is None else batches

    def _write(self, batch: pa.RecordBatch) -> None:
        if self.batches:
            same_schema(self.batches[0].schema, batch, "the list")
        self.batches.append(batch)

    def table(self) -> pa.Table:
        """All batches as one table."""
        if not self.batches:
            raise InputError("Cannot make a table as the sink received no batch: current value is 0 batches")
        return pa.Table.from_batches(self.batches)


class FileSink(Sink):
    """Writes an Arrow IPC stream (``.arrows``) or, for a path ending in ``.arrow``, an IPC file."""

    def __init__(self, path: "str | os.PathLike[str]") -> None:
        super().__init__()
        self.path = os.fspath(path)
        self._file = None
        self._writer = None
        self._schema: Optional[pa.Schema] = None

    def _write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._file = pa.OSFile(self.path, "wb")
            new = pa.ipc.new_file if self.path.endswith(".arrow") else pa.ipc.new_stream
            self._writer = new(self._file, batch.schema)
            self._schema = batch.schema
        else:
            same_schema(self._schema, batch, repr(self.path))
        self._writer.write_batch(batch)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._file.close()
            self._writer = None


class CallbackSink(Sink):
    """Hands each batch to a function."""

    def __init__(self, fn: Callable[[pa.RecordBatch], Any]) -> None:
        super().__init__()
        self.fn = fn

    def _write(self, batch: pa.RecordBatch) -> None:
        self.fn(batch)


def as_sink(target: Any) -> Sink:
    """A sink from a :class:`Sink`, a path (``.arrows``/``.arrow``), a list, or a function of one batch."""
    if isinstance(target, Sink):
        return target
    if isinstance(target, (str, os.PathLike)):
        return FileSink(target)
    if isinstance(target, list):
        return ListSink(target)
    if callable(target):
        return CallbackSink(target)
    raise InputError(
        "Cannot use the sink as it is not a Sink, a path, a list or a function: current value is "
        f"{type(target).__name__}"
    )


class _SocketFile:
    """The write side of a socket as a file for ``pyarrow.ipc.new_stream`` (``sendall``: blocks while the server
    is busy, which is the backpressure ``serve`` relies on)."""

    closed = False

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, data) -> int:
        mv = memoryview(data)
        self.sock.sendall(mv)
        return mv.nbytes

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _default_name() -> str:
    """``rank R/W`` under torch.distributed, else ``pid P``, with the host name."""
    host = socket.gethostname()
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return f"rank {dist.get_rank()}/{dist.get_world_size()} on {host}"
    except Exception:
        pass
    rank = os.environ.get("RANK")
    if rank is not None:
        return f"rank {rank}/{os.environ.get('WORLD_SIZE', '?')} on {host}"
    return f"pid {os.getpid()} on {host}"


class ServeSink(Sink):
    """Streams batches to ``infotap serve`` over TCP (token handshake ``INFOTAP1 <token>``), as one producer.

    ``address`` is ``HOST:PORT`` (default ``127.0.0.1:7341``); ``token`` defaults to ``INFOTAP_TOKEN``; ``name`` (put in
    the schema metadata ``infotap.producer``) defaults to the torch.distributed rank, so each rank of a data-parallel
    run is its own producer. On a broken or refused connection the sink warns once, drops and counts the batches it
    cannot send (``dropped_batches``, ``dropped_rows``), and tries again after a backoff that doubles from
    ``backoff[0]`` to ``backoff[1]`` seconds; batches sent on a connection that then broke are ``unconfirmed`` (the
    server may have analysed them or not). ``on_error="raise"`` raises instead. ``close()`` ends the stream and returns
    the server's count ``{"batches": b, "rows": r}`` (of the last connection).
    """

    def __init__(
        self,
        address: str = f"127.0.0.1:{DEFAULT_PORT}",
        *,
        token: Optional[str] = None,
        name: Optional[str] = None,
        on_error: str = "reconnect",
        backoff: tuple = (0.1, 10.0),
        timeout: float = 60.0,
    ) -> None:
        super().__init__()
        if on_error not in ("reconnect", "raise"):
            raise InputError(f"Cannot use on_error as it must be 'reconnect' or 'raise': current value is {on_error!r}")
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise InputError(f"Cannot use the address as it must be HOST:PORT: current value is {address!r}")
        self.host, self.port = host.strip("[]"), int(port)
        self.token = token if token is not None else os.environ.get("INFOTAP_TOKEN", "")
        self.name = name or _default_name()
        self.on_error = on_error
        self.backoff = backoff
        self.timeout = timeout
        self.dropped_batches = 0
        self.dropped_rows = 0
        self.unconfirmed_batches = 0
        self.connections = 0
        self.failures: List[str] = []
        self.reply: Optional[dict] = None
        self._sock: Optional[socket.socket] = None
        self._writer = None
        self._schema: Optional[pa.Schema] = None
        self._sent_on_connection = 0
        self._delay = backoff[0]
        self._next_try = 0.0
        self._warned = False

    # -- connection ---------------------------------------------------------------------------------------------

    def _connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(f"{HELLO} {self.token}\n".encode())
            answer = self._read_line(sock)
            if answer != "OK":
                raise InfotapError(
                    f"infotap serve refused the producer: {answer[4:]}" if answer and answer.startswith("ERR ")
                    else f"Cannot connect to infotap serve as it did not answer the handshake: current value is {answer!r}"
                )
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._sent_on_connection = 0
        self.connections += 1

    @staticmethod
    def _read_line(sock: socket.socket) -> Optional[str]:
        data = b""
        while not data.endswith(b"\n") and len(data) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.decode("utf-8", "replace").rstrip("\r\n") if data else None

    def _server_reason(self) -> Optional[str]:
        """The server's ``ERR <message>`` line when it refused the stream before closing (read for up to 0.5 s)."""
        try:
            self._sock.settimeout(0.5)
            line = self._read_line(self._sock)
        except OSError:
            return None
        return f"infotap serve refused the stream: {line[4:]}" if line and line.startswith("ERR ") else None

    def _fail(self, e: BaseException, batch: Optional[pa.RecordBatch]) -> None:
        message = str(e) or type(e).__name__
        if self._sock is not None:
            message = self._server_reason() or message
            self.unconfirmed_batches += self._sent_on_connection
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self._writer = None
        self._sent_on_connection = 0
        if self.on_error == "raise":
            raise InfotapError(
                f"Cannot send to infotap serve at {self.host}:{self.port} as the connection failed: current value is {message}"
            ) from e
        self.failures.append(message)
        text = (
            f"infotap: lost the connection to serve at {self.host}:{self.port} ({message}); batches are dropped and "
            "counted while it reconnects with backoff"
        )
        if not self._warned:
            warnings.warn(text, InfotapWarning, stacklevel=4)
            self._warned = True
        else:
            log.warning(text)
        self._next_try = time.monotonic() + self._delay * (0.5 + random.random())
        self._delay = min(self.backoff[1], self._delay * 2)

    def _drop(self, batch: pa.RecordBatch) -> None:
        self.dropped_batches += 1
        self.dropped_rows += batch.num_rows

    def connect(self) -> bool:
        """Connects now (instead of at the first batch), e.g. before a barrier at the start of training, so that the
        server holds its windows open for this producer from the start. Returns whether it is connected (a failure is
        counted and reported like a failed send, or raised with ``on_error="raise"``)."""
        if self._sock is not None:
            return True
        try:
            self._connect()
            return True
        except (OSError, InfotapError) as e:
            self._fail(e, None)
            return False

    # -- writing ------------------------------------------------------------------------------------------------

    def write(self, data: Any) -> None:
        for b in _batches(data):
            if self._schema is not None:
                same_schema(self._schema, b, f"serve at {self.host}:{self.port}")
            self._schema = b.schema
            if self._send(b):
                self.written_batches += 1
                self.rows += b.num_rows

    def _send(self, batch: pa.RecordBatch) -> bool:
        if self._sock is None:
            if time.monotonic() < self._next_try:
                self._drop(batch)
                return False
            try:
                self._connect()
                if self.connections > 1:
                    log.warning(
                        "infotap: reconnected to serve at %s:%d after %d dropped batch(es)",
                        self.host, self.port, self.dropped_batches,
                    )
                self._delay = self.backoff[0]
            except (OSError, InfotapError) as e:
                self._drop(batch)
                self._fail(e, batch)
                return False
        try:
            if self._writer is None:
                meta = dict(batch.schema.metadata or {})
                meta[b"infotap.producer"] = self.name.encode()
                self._writer = pa.ipc.new_stream(_SocketFile(self._sock), batch.schema.with_metadata(meta))
            self._writer.write_batch(batch)
            self._sent_on_connection += 1
            return True
        except (OSError, pa.ArrowException) as e:
            self._drop(batch)
            self._fail(e, batch)
            return False

    def close(self) -> Optional[dict]:
        """Ends the stream, waits for the server's answer and returns ``{"batches", "rows"}`` (None if not connected)."""
        if self._sock is None:
            return self.reply
        sock = self._sock
        try:
            if self._writer is not None:
                self._writer.close()  # the end-of-stream marker
            sock.shutdown(socket.SHUT_WR)
            answer = self._read_line(sock)
            if answer is None or not answer.startswith("OK "):
                raise InfotapError(
                    f"infotap serve refused the stream: {answer[4:]}" if answer and answer.startswith("ERR ")
                    else f"Cannot confirm the stream as the server closed without an answer: current value is {answer!r}"
                )
            b, r = answer[3:].split()
            self.reply = {"batches": int(b), "rows": int(r)}
            sock.close()
            self._sock = None
            self._writer = None
        except (OSError, InfotapError, ValueError) as e:
            self._fail(e, None)
        return self.reply
