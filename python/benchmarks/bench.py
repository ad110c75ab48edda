"""Benchmarks of the Python package (issue 13), each against the peer a user would pick, in one run; prints a Markdown
table for BENCHMARKS.md. Not a test: nothing is asserted about speed.

Times are CPU time of this process (torch runs one intra-op thread, so that is the work done) and wall time; on a
shared machine the CPU-time ratio is the one to read.

1. Training-step time of an MLP on scikit-learn's digits with an ActivationTap every 10 steps vs without (target: at
   most 5% slower). The runs alternate (tapped, untapped, ...) and the median of each is compared; the tap's own cost
   per record (beyond the probe's forward pass) is measured beside it. Two MLPs: the tests' small one and a wider one.
2. ``per_sample_gradients`` (vmap over grad) vs a loop of ``torch.autograd.grad`` per sample (target: >= 10x).
3. Writing a 1 GiB activation stream from torch tensors with ``FileSink`` vs writing the same bytes raw (target: a
   throughput ratio >= 0.7).

python python/benchmarks/bench.py [--quick] [--threads N]
"""

import argparse
import os
import platform
import statistics
import tempfile
import time

import numpy as np
import torch
from sklearn.datasets import load_digits

from infotap.torch import ActivationTap, per_sample_gradients
from infotap.wire import FileSink, activations


def digits():
    X, y = load_digits(return_X_y=True)
    return torch.tensor(X / 16, dtype=torch.float32), torch.tensor(y)


#: The MLPs measured: the tests' small one (P = 2,778) and a wider one (P = 50,826).
SIZES = {"small": (64, 32, 16, 10), "wide": (64, 256, 128, 10)}


def mlp(size="wide"):
    a, b, c, d = SIZES[size]
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(a, b), torch.nn.ReLU(), torch.nn.Linear(b, c), torch.nn.ReLU(),
                               torch.nn.Linear(c, d))


def train(steps, tap_every, X, y, sink_dir, size):
    model = mlp(size)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tap = None
    if tap_every:
        sink = FileSink(os.path.join(sink_dir, "acts.arrows"))
        tap = ActivationTap(model, ["0", "2"], (X[1500:1756], y[1500:1756]), every=tap_every, sink=sink)
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 1500, (steps, 64), generator=gen)
    c0, t0 = time.process_time(), time.perf_counter()
    for step in range(steps):
        if tap:
            tap.step(step)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X[idx[step]]), y[idx[step]]).backward()
        opt.step()
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    if tap:
        tap.close()
    return cpu / steps, wall / steps


def bench_tap(rows, quick, size):
    X, y = digits()
    steps, reps = (300, 3) if quick else (1000, 5)
    with tempfile.TemporaryDirectory() as d:
        train(100, 10, X, y, d, size)  # warm-up
        plain, tapped = [], []
        for _ in range(reps):
            plain.append(train(steps, 0, X, y, d, size))
            tapped.append(train(steps, 10, X, y, d, size))
        # the tap's own cost: a record beyond the probe's forward pass (hooks, checks, Arrow batch, file write)
        model = mlp(size)
        probe = (X[1500:1756], y[1500:1756])
        tap = ActivationTap(model, ["0", "2"], probe, sink=FileSink(os.path.join(d, "own.arrows")))
        for _ in range(10):
            tap.record(0)
        c0 = time.process_time()
        for _ in range(200):
            tap.record(0)
        record = (time.process_time() - c0) / 200
        tap.close()
        c0 = time.process_time()
        for _ in range(200):
            with torch.no_grad():
                model(probe[0])
        forward = (time.process_time() - c0) / 200
    p, t = (statistics.median(r[0] for r in runs) for runs in (plain, tapped))
    pw, tw = (statistics.median(r[1] for r in runs) for runs in (plain, tapped))
    dims = "-".join(map(str, SIZES[size]))
    rows.append(("tap", f"MLP {dims} on digits, Adam, batch 64: CPU time per step, ActivationTap every 10 steps",
                 t * 1e6, "us/step", p * 1e6, t / p,
                 f"reference: the same loop without the tap; 2 layers on 256 probe digits to a .arrows file; median of "
                 f"{reps} alternating runs of {steps} steps; wall time {tw * 1e6:.0f} vs {pw * 1e6:.0f} us/step (ratio "
                 f"{tw / pw:.3f}); a record costs {record * 1e6:.0f} us CPU, of which the probe's forward pass "
                 f"{forward * 1e6:.0f} us; target <= 1.05"))


def bench_gradients(rows, quick, size):
    X, y = digits()
    model = mlp(size)
    n = 256 if quick else 1024
    x, t = X[:n], y[:n]
    loss = torch.nn.functional.cross_entropy
    per_sample_gradients(model, loss, x[:32], t[:32], fisher="empirical")  # warm-up
    c0, t0 = time.process_time(), time.perf_counter()
    rb = per_sample_gradients(model, loss, x, t, fisher="empirical")
    fast, fast_wall = time.process_time() - c0, time.perf_counter() - t0
    params = list(model.parameters())
    m = n // 4
    c0, t0 = time.process_time(), time.perf_counter()
    ref = []
    for i in range(m):
        g = torch.autograd.grad(loss(model(x[i:i + 1]), t[i:i + 1]), params)
        ref.append(torch.cat([a.reshape(-1) for a in g]))
    slow, slow_wall = (time.process_time() - c0) / m * n, (time.perf_counter() - t0) / m * n
    got = np.concatenate([rb.column(k).flatten().to_numpy().reshape(n, -1)[:m] for k, _ in model.named_parameters()], 1)
    err = float(np.abs(got - torch.stack(ref).numpy()).max())
    width = sum(p.numel() for p in params)
    dims = "-".join(map(str, SIZES[size]))
    rows.append(("gradients", f"per_sample_gradients, MLP {dims}, {n} digits, P = {width:,} (a gradients/v1 batch), CPU",
                 fast * 1e3, "ms", slow * 1e3, slow / fast,
                 f"reference: torch.autograd.grad per sample ({m} timed, scaled to {n}); ratio = speed-up; wall "
                 f"{fast_wall * 1e3:.0f} vs {slow_wall * 1e3:.0f} ms (speed-up {slow_wall / fast_wall:.1f}); max "
                 f"difference {err:.1e}; target >= 10"))


def bench_write(rows, quick, directory):
    total = (256 if quick else 1024) << 20
    n, width = 4096, 1024  # 2 layers x 1024 float32 per row: 32 MiB per batch
    batches = total // (n * width * 4 * 2)
    torch.manual_seed(0)
    layers = [{"fc1": torch.randn(n, width), "fc2": torch.randn(n, width)} for _ in range(4)]
    ids = torch.arange(n)
    raw_path, arrows_path = os.path.join(directory, "raw.bin"), os.path.join(directory, "acts.arrows")

    def raw():
        with open(raw_path, "wb", buffering=0) as f:
            for b in range(batches):
                for t in layers[b % 4].values():
                    f.write(memoryview(t.numpy()).cast("B"))
        return os.path.getsize(raw_path)

    def infotap():
        with FileSink(arrows_path) as sink:
            for b in range(batches):
                sink.write(activations(layers[b % 4], ids, step=np.full(n, b)))
        return os.path.getsize(arrows_path)

    best = {}
    for name, fn in (("raw", raw), ("infotap", infotap)) * 3:
        c0, t0 = time.process_time(), time.perf_counter()
        size = fn()
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        prev = best.get(name)
        best[name] = (min(prev[0], cpu) if prev else cpu, min(prev[1], wall) if prev else wall, size)
        os.remove(raw_path if name == "raw" else arrows_path)
    (rc, rw, rs), (ic, iw, isz) = best["raw"], best["infotap"]
    mib = 2**20
    rows.append(("write", f"{isz / 2**30:.2f} GiB activations/v1 stream from torch tensors (FileSink), CPU time rate",
                 isz / ic / mib, "MiB/s", rs / rc / mib, (isz / ic) / (rs / rc),
                 f"reference: the same tensors' bytes written raw (unbuffered file writes); {batches} batches of "
                 f"{n} rows x 2 x {width} float32; best of 3 each, page cache, no fsync; wall {isz / iw / mib:.0f} vs "
                 f"{rs / rw / mib:.0f} MiB/s (ratio {(isz / iw) / (rs / rw):.3f}); target >= 0.7"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="folder for the write benchmark's files")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    for size in SIZES:
        bench_tap(rows, a.quick, size)
    for size in SIZES:
        bench_gradients(rows, a.quick, size)
    bench_write(rows, a.quick, a.dir)
    print(f"Python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} cores, "
          f"{platform.machine()}, torch threads {a.threads}, load average {os.getloadavg()[0]:.1f} at the end")
    print("| benchmark | measurement | value | unit | reference | ratio | note |")
    print("| --- | --- | ---: | --- | ---: | ---: | --- |")
    for b, m, v, u, r, q, note in rows:
        print(f"| {b} | {m} | {v:.4g} | {u} | {r:.4g} | {q:.3g} | {note} |")


if __name__ == "__main__":
    main()
