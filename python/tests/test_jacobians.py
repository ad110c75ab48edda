"""Jacobians of torch models: unique information (SI, F-SI) of a linear model on digits equals explicit leave-one-out
retraining (ridge toward w0, solved in parameter space from the data, not from the Jacobians); producer-side
sketching equals the engine's --si-sketch-dim bit for bit."""

import numpy as np
import pytest

import infotap

from conftest import need_torch

LAMBDA = 0.3


def digits_subset(digits, n, m, d=12):
    X, y = digits
    keep = np.flatnonzero(y < 3)  # classes 0, 1, 2: k = 3 one-hot targets
    cols = np.argsort(-X[keep].var(axis=0))[:d]  # the d most varying pixels
    Xs = X[keep][:, cols]
    return Xs[:n], y[keep][:n], Xs[n:n + m]


def loo_reference(x, f0, targets, test, lam):
    """SI and F-SI by retraining without each sample: w - w0 = (A^T A + lam I)^-1 A^T (Y - f0) for the linear model
    f_c(x) = W[c] . x + b[c], parameters ordered (W row-major, b) as named_parameters gives them."""
    n, d = x.shape
    k = f0.shape[1]

    def rows(xs):
        a = np.zeros((xs.shape[0] * k, k * d + k))
        for i in range(xs.shape[0]):
            for c in range(k):
                a[i * k + c, c * d:(c + 1) * d] = xs[i]
                a[i * k + c, k * d + c] = 1.0
        return a

    a, at = rows(x.astype(np.float64)), rows(test.astype(np.float64))
    r = (targets.astype(np.float64) - f0.astype(np.float64)).reshape(-1)

    def fit(drop):
        keep = np.array([i // k != drop for i in range(n * k)])
        aa = a[keep]
        return np.linalg.solve(aa.T @ aa + lam * np.eye(a.shape[1]), aa.T @ r[keep])

    full = fit(-1)
    si, fsi = [], []
    for i in range(n):
        delta = full - fit(i)
        si.append(float(delta @ delta))
        fsi.append(float(((at @ delta) ** 2).sum() / test.shape[0]))
    return np.array(si), np.array(fsi)


def test_unique_information_of_a_linear_model_equals_leave_one_out_retraining(digits):
    torch = need_torch()
    from infotap.torch import jacobians

    x, y, test = digits_subset(digits, 40, 15)
    torch.manual_seed(3)
    model = torch.nn.Linear(x.shape[1], 3)
    targets = np.eye(3, dtype=np.float32)[y]
    targets[5] = np.array([0, 0, 4], np.float32)  # one flipped, far-off target: the most informative sample
    rb = jacobians(model, torch.from_numpy(x), torch.from_numpy(test), targets=torch.from_numpy(targets))
    assert rb.schema.names == ["sample_id", "split", "output", "f0", "target", "weight", "bias"]
    assert rb.num_rows == (40 + 15) * 3
    with torch.no_grad():
        f0 = model(torch.from_numpy(x)).numpy()
    assert np.array_equal(rb.column("f0").to_numpy()[:120], f0.reshape(-1))
    assert rb.column("target").null_count == 45

    r = infotap.analyze(rb, "unique-info", si_lambda=LAMBDA)
    t = r.to_pandas("unique_information").set_index("sample_id").sort_index()
    assert list(t.index) == list(range(40))
    si, fsi = loo_reference(x, f0, targets, test, LAMBDA)
    np.testing.assert_allclose(t["si_weights"], si, rtol=1e-8, atol=0)
    np.testing.assert_allclose(t["si_function"], fsi, rtol=1e-8, atol=0)
    assert t["rank_weights"].idxmin() == 5 and t["rank_function"].idxmin() == 5


def test_producer_sketch_equals_the_engine_sketch(digits):
    torch = need_torch()
    from infotap.torch import jacobians

    x, y, test = digits_subset(digits, 30, 10, d=64)
    torch.manual_seed(4)
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    targets = torch.from_numpy(np.eye(2, dtype=np.float32)[y % 2])
    args = (model, torch.from_numpy(x), torch.from_numpy(test))
    raw = jacobians(*args, targets=targets)
    sketched = jacobians(*args, targets=targets, sketch_dim=48, seed=11)
    assert [sketched.schema.field(n).type.list_size for n in ("0.weight", "0.bias", "2.weight", "2.bias")] == [48] * 4
    meta = sketched.schema.field("0.weight").metadata
    assert meta[b"infotap.sketch.seed"] == b"11" and meta[b"infotap.sketch.source_dim"] == b"1024"
    a = infotap.analyze(sketched, "unique-info", si_lambda=0.5, si_sketch_dim=48, seed=11)
    b = infotap.analyze(raw, "unique-info", si_lambda=0.5, si_sketch_dim=48, seed=11)
    for col in ("si_weights", "si_function", "rank_weights"):
        assert a.tables["unique_information"].column(col).equals(b.tables["unique_information"].column(col))
    with pytest.raises(infotap.InputError, match="another seed"):
        infotap.analyze(sketched, "unique-info", si_lambda=0.5, si_sketch_dim=48, seed=12)
