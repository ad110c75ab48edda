"""Live runs: two producer processes (like two ranks) stream to ``serve``; the final tables equal ``analyze --by-step``
on the same rows, and the part files are readable while it runs. A killed connection is counted and reported once,
the training loop goes on, and the producer reconnects."""

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa

import infotap

from conftest import need_torch

PRODUCER = str(Path(__file__).with_name("live_producer.py"))
OPTIONS = dict(range=(-10, 10), bins=30)


def start_producer(address, rank, world, steps, file, *extra):
    return subprocess.Popen(
        [sys.executable, PRODUCER, address, str(rank), str(world), str(steps), str(file), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for(paths, procs, timeout=120):
    """Waits until every path exists (the producers connected), failing if a producer exits first."""
    end = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read()[-2000:])
        assert time.monotonic() < end, "the producers did not connect"
        time.sleep(0.05)


def finish(proc, timeout=240):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out), err


def sorted_table(t: pa.Table, keys):
    return t.sort_by([(k, "ascending") for k in keys])


def test_two_ranks_stream_to_serve_and_equal_analyze_by_step(tmp_path):
    need_torch()
    out = tmp_path / "live"
    with infotap.serve(out, ["entropy", "label-mi"], snapshot_every=4, **OPTIONS) as server:
        barrier = tmp_path / "go"
        procs = [start_producer(server.address, r, 2, 20, tmp_path / f"rank{r}.arrows", "--barrier", str(barrier))
                 for r in range(2)]
        wait_for([tmp_path / "go.0", tmp_path / "go.1"], procs)
        barrier.touch()
        stats = [finish(p)[0] for p in procs]
        live = server.results()  # part files of the windows closed so far (the run is still going)
        assert live.run is None and "layer_summary" in live.tables
        assert all(f.startswith("layer_summary/part-") for f in live.files["layer_summary"])
        final = server.stop()
    assert [s["steps"] for s in stats] == [20, 20] and [s["records"] for s in stats] == [10, 10]
    assert [s["name"].split(" on ")[0] for s in stats] == ["rank 0/2", "rank 1/2"]
    assert all(s["dropped_batches"] == 0 and s["reply"] == {"batches": 10, "rows": 1000} for s in stats)
    assert final.complete and final.run["rows"] == 2000  # every row analysed: none refused (serve has no late rows)
    assert all(p.get("status") != "refused" for p in final.run["producers"])
    assert len(final.run["producers"]) == 2

    ref = infotap.analyze([tmp_path / "rank0.arrows", tmp_path / "rank1.arrows"], ["entropy", "label-mi"],
                          by_step=True, **OPTIONS)
    keys = {"neuron_entropy": ["step", "layer", "neuron"], "layer_summary": ["step", "layer"],
            "label_mi": ["step", "layer", "neuron"]}
    for name, k in keys.items():
        a, b = sorted_table(final.tables[name], k), sorted_table(ref.tables[name], k)
        assert a.num_rows == b.num_rows > 0
        assert a.select(b.column_names).equals(b), name
    # the live parts are the same rows as the final table, window by window
    parts = sorted_table(live.tables["layer_summary"], keys["layer_summary"])
    fin = sorted_table(final.tables["layer_summary"], keys["layer_summary"])
    steps = set(parts.column("step").to_pylist())
    mask = pa.compute.is_in(fin.column("step"), pa.array(sorted(steps), fin.column("step").type))
    assert parts.select(fin.column_names).equals(fin.filter(mask))


class CuttingProxy:
    """Forwards TCP connections to ``upstream``; the first one is cut (reset) after ``cut_after`` bytes."""

    def __init__(self, upstream, cut_after):
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.cut_after = cut_after
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            server = socket.create_connection(self.upstream)
            limit = self.cut_after if self.connections == 1 else None
            threading.Thread(target=self._pump, args=(client, server, limit), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()

    @staticmethod
    def _pump(src, dst, limit):
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                if limit is not None and sent + len(data) >= limit:
                    dst.sendall(data[: limit - sent])
                    for s in (src, dst):  # kill both sides now (shutdown also wakes the other pump's recv)
                        s.shutdown(socket.SHUT_RDWR)
                        s.close()
                    return
                dst.sendall(data)
                sent += len(data)
        except OSError:
            return

    def close(self):
        self.listener.close()


def test_a_killed_connection_is_counted_and_not_fatal(tmp_path):
    need_torch()
    with infotap.serve(tmp_path / "live", "entropy", by_step=True, **OPTIONS) as server:
        proxy = CuttingProxy(server.address, cut_after=150_000)  # mid-stream: batches are ~19 KB
        proc = start_producer(proxy.address, 0, 1, 40, tmp_path / "rank0.arrows", "--every", "1", "--sleep", "0.03")
        stats, err = finish(proc)
        proxy.close()
        final = server.stop()
    assert stats["steps"] == 40 and stats["records"] == 40  # the training loop ran to its end
    assert stats["connections"] == 2 and proxy.connections == 2  # it reconnected
    lost = stats["dropped_batches"] + stats["unconfirmed_batches"]
    assert lost >= 1 and stats["failures"]
    assert err.count("lost the connection to serve") == 1  # reported once (then logged as reconnected)
    assert "reconnected to serve" in err
    assert stats["written_batches"] + stats["dropped_batches"] == 40
    # The server analysed everything of the second connection and the complete batches of the first.
    producers = final.run["producers"]
    assert len(producers) == 2 and producers[1]["rows"] == stats["reply"]["rows"]
    assert producers[0]["status"] == "disconnected mid-batch" and producers[0]["partial_bytes"] > 0
    assert producers[1]["status"] == "ended"
    confirmed = (stats["written_batches"] - stats["unconfirmed_batches"]) * 100
    assert confirmed <= final.run["rows"] <= stats["written_batches"] * 100
    assert final.complete
    assert {37, 38, 39} <= set(final.tables["layer_summary"].column("step").to_pylist())  # sent after the reconnect


def test_a_refused_stream_reports_the_servers_reason(tmp_path):
    import numpy as np
    import pytest

    from infotap.wire import ServeSink, activations

    with infotap.serve(tmp_path / "live", "entropy", token="s3cret", **OPTIONS) as server:
        wrong = ServeSink(server.address, token="nope")
        with pytest.warns(infotap.InfotapWarning, match="token is wrong"):
            wrong.write(activations({"fc1": np.zeros((3, 2))}))
        assert wrong.dropped_batches == 1 and wrong.connections == 0
        strict = ServeSink(server.address, token="nope", on_error="raise")
        with pytest.raises(infotap.InfotapError, match="token is wrong"):
            strict.connect()
        ok = ServeSink(server.address, token="s3cret")
        ok.write(activations({"fc1": np.zeros((3, 2))}))
        assert ok.close() == {"batches": 1, "rows": 3}
        final = server.stop()
    assert final.run["rows"] == 3
    with pytest.raises(infotap.InputError, match="needs a first pass"):
        infotap.serve(tmp_path / "live2", "entropy")  # no --range: the engine's one-line refusal, raised
