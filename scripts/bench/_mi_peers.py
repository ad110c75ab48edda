"""Peers of infotap's `mi` and `entropy --entropy-estimator knn`, for the benchmark and the tests.

Called by scripts/bench/mi.ts and the scikit-learn tests (plugins/mi/sklearn_test.ts) through scripts/bench/_python.ts:
`python3 _mi_peers.py JOB.json`, where the job names a raw float32 file of neuron-major columns (`neurons x n`) and
what to compute; one JSON object is printed. Times are `time.process_time()` (CPU of all threads of this process)
and `time.perf_counter()` (wall).

- `paper_ksg`: per pair, the KSG estimate as the paper's official code computes it (technion-cs-nlp/
  Information-Reflects-Memorization, utils/information.py `_get_knn_mi`): scikit-learn `NearestNeighbors`
  (Chebyshev) for the k-th neighbour radius, `nextafter(radius, 0)`, then a `KDTree` `query_radius` count per
  marginal; negative estimates kept (`clip_negative=False`). Nothing is reused between pairs, as there.
- `mir`: scikit-learn's public `mutual_info_regression(x[:, None], y, random_state=seed)` per pair and seed.
- `knn_entropy`: the official `_get_knn_entropy` (Kozachenko-Leonenko, Chebyshev, `KDTree.query(k + 1)`).
- `binned_numpy` / `binned_torch`: binned MI of every pair the way a user would write it: global equal-width bin
  codes, a one-hot matrix `O` (`n x neurons*bins`, float32) and `O.T @ O` for every joint histogram at once, then
  the plug-in MI of the upper-triangle pairs (float64).
"""
import json
import sys
import time

import numpy as np


def load(job):
    cols = np.fromfile(job["data"], dtype=np.float32).reshape(job["neurons"], job["n"])
    return cols


def paper_ksg(x, y, n_neighbors):
    from scipy.special import digamma
    from sklearn.neighbors import KDTree, NearestNeighbors

    n_samples = x.size
    x = x.reshape((-1, 1))
    y = y.reshape((-1, 1))
    xy = np.hstack((x, y))
    nn = NearestNeighbors(metric="chebyshev", n_neighbors=n_neighbors)
    nn.fit(xy)
    radius = nn.kneighbors()[0]
    radius = np.nextafter(radius[:, -1], 0)
    kd = KDTree(x, metric="chebyshev")
    nx = np.array(kd.query_radius(x, radius, count_only=True, return_distance=False)) - 1.0
    kd = KDTree(y, metric="chebyshev")
    ny = np.array(kd.query_radius(y, radius, count_only=True, return_distance=False)) - 1.0
    return digamma(n_samples) + digamma(n_neighbors) - np.mean(digamma(nx + 1)) - np.mean(digamma(ny + 1))


def knn_entropy(x, k):
    from scipy.special import digamma
    from sklearn.neighbors import KDTree

    x = x.reshape(-1, 1)
    n, d = x.shape
    distances, _ = KDTree(x, metric="chebyshev").query(x, k + 1)
    distances = distances[:, -1]
    with np.errstate(divide="ignore"):
        return float(-digamma(k) + digamma(n) + (d / float(n)) * np.sum(np.log(2 * distances)))


def binned_counts_mi(cols, bins, matmul):
    """Plug-in MI of every pair a < b from one-hot joint counts; returns (mi of the upper-triangle pairs)."""
    N, n = cols.shape
    lo, hi = float(cols.min()), float(cols.max())
    codes = np.clip(((cols.astype(np.float64) - lo) / (hi - lo) * bins).astype(np.int64), 0, bins - 1)
    onehot = np.zeros((n, N * bins), dtype=np.float32)
    onehot[np.arange(n)[:, None], (np.arange(N) * bins)[None, :] + codes.T] = 1.0
    joint = matmul(onehot)  # (N*bins, N*bins) float32, exact integer counts (< 2^24)
    a, b = np.triu_indices(N, 1)
    j4 = joint.reshape(N, bins, N, bins)
    out = np.empty(a.size)
    step = 4096
    for s in range(0, a.size, step):
        p = j4[a[s:s + step], :, b[s:s + step], :].astype(np.float64) / n  # (P, bins, bins)
        pa = p.sum(axis=2, keepdims=True)
        pb = p.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(p > 0, p * np.log(p / (pa * pb)), 0.0)
        out[s:s + step] = t.sum(axis=(1, 2))
    return out


def main():
    job = json.loads(open(sys.argv[1]).read())
    cols = load(job)
    what = job["what"]
    c0, w0 = time.process_time(), time.perf_counter()
    if what == "paper_ksg":
        # the paper's imports before the clock starts (as infotap's modules are loaded before its own)
        from scipy.special import digamma  # noqa: F401
        from sklearn.neighbors import KDTree, NearestNeighbors  # noqa: F401

        k = job["k"]
        pairs = job["pairs"]
        c64 = cols.astype(np.float64)
        c0, w0 = time.process_time(), time.perf_counter()
        mi = [float(paper_ksg(c64[a], c64[b], k)) for a, b in zip(pairs[0::2], pairs[1::2])]
        out = {"mi": mi}
    elif what == "mir":
        from sklearn.feature_selection import mutual_info_regression

        k = job["k"]
        pairs = job["pairs"]
        c64 = cols.astype(np.float64)
        out = {
            "mi": [
                [float(mutual_info_regression(c64[a][:, None], c64[b], n_neighbors=k, random_state=s)[0])
                 for s in job["seeds"]]
                for a, b in zip(pairs[0::2], pairs[1::2])
            ]
        }
    elif what == "knn_entropy":
        h = [knn_entropy(cols[i].astype(np.float64), job["k"]) for i in range(cols.shape[0])]
        out = {"h": [v if np.isfinite(v) else None for v in h]}  # JSON has no -Infinity (ties): null
    elif what == "binned_numpy":
        mi = binned_counts_mi(cols, job["bins"], lambda o: o.T @ o)
        out = {"checksum": float(mi.sum()), "pairs": int(mi.size), "first": mi[:job.get("keep", 0)].tolist()}
    elif what == "binned_torch":
        import torch

        def mm(o):
            t = torch.from_numpy(o)
            return (t.T @ t).numpy()

        mi = binned_counts_mi(cols, job["bins"], mm)
        out = {"checksum": float(mi.sum()), "pairs": int(mi.size), "first": mi[:job.get("keep", 0)].tolist(),
               "torch": torch.__version__, "threads": torch.get_num_threads()}
    else:
        raise SystemExit(f"unknown job {what}")
    out["cpu_s"] = time.process_time() - c0
    out["wall_s"] = time.perf_counter() - w0
    import sklearn

    out["versions"] = {"numpy": np.__version__, "sklearn": sklearn.__version__, "python": sys.version.split()[0]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
