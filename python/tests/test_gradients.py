"""Per-sample gradients (vmap over grad) equal a loop of torch.autograd.grad per sample to 1e-6; the engine's Fisher
trace equals numpy on them; true vs empirical Fisher is carried into every output."""

import numpy as np
import pytest

import infotap
from infotap.wire import FileSink, ListSink

from conftest import need_torch


def digits_model(digits, steps=30):
    torch = need_torch()
    X, y = digits
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 24), torch.nn.Tanh(), torch.nn.Linear(24, 10)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for s in range(steps):
        i = slice(64 * s, 64 * s + 64)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt[i]), yt[i]).backward()
        opt.step()
    return model, xt[1500:1560], yt[1500:1560]


def loop_gradients(model, loss_fn, x, y):
    """Reference: one torch.autograd.grad per sample."""
    torch = need_torch()
    params = [p for p in model.parameters()]
    rows = []
    for i in range(x.shape[0]):
        g = torch.autograd.grad(loss_fn(model(x[i:i + 1]), y[i:i + 1]), params)
        rows.append(torch.cat([t.reshape(-1) for t in g]))
    return torch.stack(rows).double().numpy()


def gradient_matrix(rb, names):
    return np.concatenate(
        [rb.column(n).flatten().to_numpy().reshape(rb.num_rows, -1).astype(np.float64) for n in names], axis=1
    )


def test_empirical_gradients_equal_autograd_loop_and_fisher_trace(digits):
    torch = need_torch()
    from infotap.torch import per_sample_gradients

    model, x, y = digits_model(digits)
    loss = torch.nn.functional.cross_entropy
    rb = per_sample_gradients(model, loss, x, y, fisher="empirical", step=30, chunk_size=25)
    names = [n for n, _ in model.named_parameters()]
    assert rb.schema.names == ["sample_id", "step", *names]
    assert rb.schema.metadata[b"infotap.fisher"] == b"empirical"
    g = gradient_matrix(rb, names)
    assert np.abs(g - loop_gradients(model, loss, x, y)).max() < 1e-6

    r = infotap.analyze(rb, "fisher", by_step=True, fisher_diag=True, fisher_rank=0)
    fisher = r.to_pandas("fisher")
    assert set(fisher["kind"]) == {"empirical Fisher"}
    widths = [p.numel() for p in model.parameters()]
    offsets = np.cumsum([0] + widths)
    diag = (g ** 2).mean(axis=0)  # F_jj = mean over rows of g_j^2
    per_param = fisher[fisher["level"] == "parameter"].set_index("parameter")
    for i, n in enumerate(names):
        truth = diag[offsets[i]:offsets[i + 1]].sum()
        assert abs(per_param.loc[n, "trace"] - truth) <= 1e-12 * truth
        assert per_param.loc[n, "samples"] == 60 and per_param.loc[n, "step"] == 30
    total = fisher[fisher["level"] == "total"]["trace"].item()
    assert abs(total - diag.sum()) <= 1e-12 * diag.sum()
    d = r.to_pandas("fisher_diag")
    assert np.allclose(d.sort_values(["parameter", "index"]).groupby("parameter")["value"].sum().loc[names],
                       [diag[offsets[i]:offsets[i + 1]].sum() for i in range(len(names))], rtol=1e-12, atol=0)


def test_true_fisher_draws_labels_from_the_model(digits, tmp_path):
    torch = need_torch()
    from infotap.torch import per_sample_gradients, sample_labels

    model, x, _ = digits_model(digits)
    loss = torch.nn.functional.cross_entropy
    rb = per_sample_gradients(model, loss, x, fisher="true", draws=3, seed=7)
    assert rb.num_rows == 180 and rb.schema.metadata[b"infotap.fisher"] == b"true"
    assert rb.column("draw").to_pylist() == [d for d in range(3) for _ in range(60)]
    assert rb.column("sample_id").to_pylist() == list(range(60)) * 3
    with torch.no_grad():
        labels = sample_labels(model(x), 3, torch.Generator().manual_seed(7))
    names = [n for n, _ in model.named_parameters()]
    g = gradient_matrix(rb, names)
    for d in range(3):
        ref = loop_gradients(model, loss, x, labels[:, d])
        assert np.abs(g[60 * d:60 * (d + 1)] - ref).max() < 1e-6
    # labels drawn from the model differ from the data's and among draws
    assert not torch.equal(labels[:, 0], labels[:, 1])

    r = infotap.analyze(rb, "fisher", fisher_rank=0)
    f = r.to_pandas("fisher")
    assert set(f["kind"]) == {"true Fisher"}
    total = f[f["level"] == "total"]["trace"].item()
    assert abs(total - (g ** 2).mean(axis=0).sum()) <= 1e-12 * total

    # A run mixing true and empirical gradients is refused, naming the metadata.
    emp = per_sample_gradients(model, loss, x, torch.zeros(60, dtype=torch.long), fisher="empirical")
    with pytest.raises(infotap.InputError, match="columns differ"):
        infotap.analyze([rb, emp], "fisher")  # one stdin stream has one schema
    with pytest.raises(infotap.InputError, match=r"infotap.fisher='true' \(first: 'empirical'\)"):
        infotap.analyze([emp, rb.select(["sample_id", *names])], "fisher")  # same columns, other kind
    paths = []
    for i, b in enumerate((rb, emp)):
        paths.append(tmp_path / f"g{i}.arrows")
        with FileSink(paths[-1]) as f:
            f.write(b)
    with pytest.raises(infotap.InputError, match="Cannot mix Fisher kinds") as e:  # the engine's check, across files
        infotap.analyze(paths, "fisher")
    assert "g1.arrows" in str(e.value)


def test_gradient_tap_streams_the_fisher_over_training(digits):
    torch = need_torch()
    from infotap.torch import GradientTap

    model, x, y = digits_model(digits, steps=0)
    sink = ListSink()
    tap = GradientTap(model, torch.nn.functional.cross_entropy, x[:20], every=5, sink=sink)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    X, Y = (torch.from_numpy(a) for a in digits)
    for step in range(11):
        tap.step(step)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X[:256]), Y[:256]).backward()
        opt.step()
    tap.close()
    assert [b.column("step")[0].as_py() for b in sink.batches] == [0, 5, 10]
    r = infotap.analyze(sink.batches, "fisher", by_step=True, fisher_rank=0)
    f = r.to_pandas("fisher")
    assert sorted(f[f["level"] == "total"]["step"]) == [0, 5, 10]


def test_bad_gradient_requests_are_clear(digits):
    torch = need_torch()
    from infotap.torch import per_sample_gradients

    model, x, y = digits_model(digits, steps=0)
    loss = torch.nn.functional.cross_entropy
    with pytest.raises(infotap.InputError, match="empirical"):
        per_sample_gradients(model, loss, x, fisher="empirical")
    with pytest.raises(infotap.InputError, match="true Fisher samples labels"):
        per_sample_gradients(model, loss, x, y, fisher="true")
    with pytest.raises(infotap.InputError, match="no such parameter.*'nope'"):
        per_sample_gradients(model, loss, x, y, fisher="empirical", params=["nope"])
