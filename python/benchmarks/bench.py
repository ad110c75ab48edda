"""Benchmarks of the Python package (issue 13), each against the peer a user would pick, in one run; prints a Markdown
table for BENCHMARKS.md. Not a test: nothing is asserted about speed.

Times are CPU time of this process (torch runs one intra-op thread, so that is the work done) and wall time; on a
shared machine the CPU-time ratio is the one to read.

1. Training-step time of an MLP on scikit-learn's digits with an ActivationTap every 10 steps vs without (target: at
   most 5% slower). The loops run in alternating blocks of 20 steps and their total times are compared; two more loops
   take a record apart (the tap's capture alone, the probe's bare forward pass alone). Two MLPs: the tests' small one
   and a wider one.
2. ``per_sample_gradients`` (vmap over grad) vs a loop of ``torch.autograd.grad`` per sample (target: >= 10x).
3. Writing a 1 GiB activation stream from torch tensors with ``FileSink`` vs writing the same bytes raw (target: a
   throughput ratio >= 0.7).

python python/benchmarks/bench.py [--quick] [--threads N]
"""

import argparse
import os
import platform
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


class Loop:
    """One training loop (MLP on digits, Adam, batch 64), run block by block. Every 10 steps, ``mode``: ``"plain"``
    nothing, ``"tap"`` an ActivationTap record, ``"capture"`` the tap's capture alone (the probe's forward pass with the
    hooks and mode switches; no check, batch or write), ``"forward"`` the probe's bare forward pass (eval, no_grad)."""

    def __init__(self, X, y, size, mode, sink_dir):
        self.X, self.y = X, y
        self.model = mlp(size)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.mode = mode
        sink = FileSink(os.path.join(sink_dir, f"acts-{size}-{mode}.arrows"))
        self.tap = ActivationTap(self.model, ["0", "2"], (X[1500:1756], y[1500:1756]), every=10, sink=sink)
        self.idx = torch.randint(0, 1500, (100_000, 64), generator=torch.Generator().manual_seed(0))
        self.step = 0
        self.cpu = self.wall = 0.0

    def _every10(self):
        if self.mode == "tap":
            self.tap.step(self.step)
        elif self.step % 10 == 0 and self.mode == "capture":
            self.tap.capture()
        elif self.step % 10 == 0 and self.mode == "forward":
            self.model.eval()
            with torch.no_grad():
                self.model(self.tap.probe)
            self.model.train()

    def run(self, steps):
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(steps):
            if self.mode != "plain":
                self._every10()
            i = self.idx[self.step]
            self.opt.zero_grad()
            torch.nn.functional.cross_entropy(self.model(self.X[i]), self.y[i]).backward()
            self.opt.step()
            self.step += 1
        self.cpu += time.process_time() - c0
        self.wall += time.perf_counter() - t0


def bench_tap(rows, quick, size):
    """Paired: the loops run in alternating blocks of 20 steps (their order reverses every block), so that all see the
    same machine load; the ratios are of their total times. Beside the tapped loop, two loops take a record's cost
    apart: the probe's bare forward pass, and the tap's capture (forward + hooks + mode switches)."""
    X, y = digits()
    blocks = 50 if quick else 300
    with tempfile.TemporaryDirectory() as d:
        loops = [Loop(X, y, size, mode, d) for mode in ("plain", "tap", "capture", "forward")]
        for loop in loops:  # warm-up
            loop.run(20)
            loop.cpu = loop.wall = 0.0
        for b in range(blocks):
            for loop in (loops if b % 2 == 0 else loops[::-1]):
                loop.run(20)
        for loop in loops:
            loop.tap.close()
    steps = blocks * 20
    plain, tapped, capture, forward = loops
    p, t = plain.cpu / steps, tapped.cpu / steps
    pw, tw = plain.wall / steps, tapped.wall / steps
    dims = "-".join(map(str, SIZES[size]))
    rows.append(("tap", f"MLP {dims} on digits, Adam, batch 64: wall time per step, ActivationTap every 10 steps",
                 tw * 1e6, "us/step", pw * 1e6, tw / pw,
                 f"reference: the same loop without the tap, {steps} steps each in alternating blocks of 20; 2 layers on "
                 f"256 probe digits to a .arrows file; CPU time {t * 1e6:.0f} vs {p * 1e6:.0f} us/step (ratio "
                 f"{t / p:.3f}); paired the same way, only the tap's capture every 10 steps: wall ratio "
                 f"{capture.wall / plain.wall:.3f}; only the probe's bare forward pass: {forward.wall / plain.wall:.3f}; "
                 "target <= 1.05"))


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
