"""A training process for the live tests: trains an MLP on its shard of the digits (like one rank of a data-parallel
run), taps two layers on its own probe every ``--every`` steps, and sends each batch to ``serve`` (and to a file: the
rows the reference ``analyze --by-step`` reads). Prints the sink's counters as JSON at the end.

python live_producer.py ADDRESS RANK WORLD STEPS FILE [--every N] [--sleep S] [--barrier PATH]

With ``--barrier PATH`` it connects, writes ``PATH.RANK`` and waits for ``PATH`` (as ``dist.barrier()`` would), so that
``serve`` knows every rank before any sends a step.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from sklearn.datasets import load_digits

from infotap.torch import ActivationTap
from infotap.wire import FileSink, ServeSink


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("address")
    ap.add_argument("rank", type=int)
    ap.add_argument("world", type=int)
    ap.add_argument("steps", type=int)
    ap.add_argument("file")
    ap.add_argument("--every", type=int, default=2)
    ap.add_argument("--sleep", type=float, default=0.0)
    ap.add_argument("--barrier")
    a = ap.parse_args()
    os.environ["RANK"], os.environ["WORLD_SIZE"] = str(a.rank), str(a.world)
    torch.set_num_threads(1)
    torch.manual_seed(0)  # every rank starts from the same weights
    d = load_digits()
    X, y = torch.from_numpy((d.data / 16).astype(np.float32)), torch.from_numpy(d.target)
    shard = torch.arange(a.rank, 1500, a.world)
    probe_ids = torch.arange(1500 + 100 * a.rank, 1600 + 100 * a.rank)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 10))
    serve = ServeSink(a.address, backoff=(0.05, 0.2), timeout=10)
    if a.barrier:
        assert serve.connect()
        open(f"{a.barrier}.{a.rank}", "w").close()
        while not os.path.exists(a.barrier):
            time.sleep(0.01)
    with FileSink(a.file) as file:

        def both(batch):
            serve.write(batch)
            file.write(batch)

        tap = ActivationTap(model, ["0", "2"], (X[probe_ids], y[probe_ids]), every=a.every, sink=both,
                            sample_ids=probe_ids)
        opt = torch.optim.SGD(model.parameters(), lr=0.2)
        done = 0
        for step in range(a.steps):
            tap.step(step)
            i = shard[(64 * step) % len(shard):][:64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(X[i]), y[i]).backward()
            opt.step()
            done += 1
            time.sleep(a.sleep)
    reply = serve.close()
    json.dump({
        "steps": done, "name": serve.name, "written_batches": serve.written_batches, "rows": serve.rows,
        "dropped_batches": serve.dropped_batches, "dropped_rows": serve.dropped_rows,
        "unconfirmed_batches": serve.unconfirmed_batches, "connections": serve.connections,
        "failures": serve.failures, "reply": reply, "records": tap.records,
    }, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
