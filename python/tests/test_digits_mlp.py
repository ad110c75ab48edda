"""A small MLP trained on scikit-learn's digits, tapped at two layers every 25 steps: the engine's entropy, binned MI
and label MI equal numpy/scikit-learn computations on the same activations to 1e-9."""

import numpy as np
import pytest

import infotap
from infotap.wire import ListSink

from conftest import bin_codes, entropy_of, need_torch

BINS, MI_BINS = 30, 8


def train_tapped(digits, steps=100, every=25):
    torch = need_torch()
    from infotap.torch import ActivationTap

    X, y = digits
    torch.manual_seed(0)

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(64, 32)
            self.fc2 = torch.nn.Linear(32, 16)
            self.out = torch.nn.Linear(16, 10)
            self.drop = torch.nn.Dropout(0.1)

        def forward(self, x):
            return self.out(torch.relu(self.fc2(self.drop(torch.relu(self.fc1(x))))))

    model = MLP()
    xt, yt = torch.from_numpy(X[:1400]), torch.from_numpy(y[:1400])
    probe = (torch.from_numpy(X[1400:1700]), torch.from_numpy(y[1400:1700]))
    sink = ListSink()
    tap = ActivationTap(model, ["fc1", "fc2"], probe, every=every, sink=sink, batch_size=128)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    model.train()
    for step in range(steps + 1):
        tap.step(step)
        assert model.training and model.drop.training  # the tap restores the training mode
        if step == steps:
            break
        idx = torch.randint(0, 1400, (64,), generator=gen)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
        opt.step()
    tap.close()
    return model, probe, sink


def test_digits_mlp_entropy_and_mi_equal_numpy(digits):
    torch = need_torch()
    model, (px, py), sink = train_tapped(digits)
    assert [b.column("step")[0].as_py() for b in sink.batches] == [0, 25, 50, 75, 100]
    with torch.no_grad():  # the recorded pre-activations are the layers' outputs at that step
        model.eval()
        fc1 = model.fc1(px)
        fc2 = model.fc2(torch.relu(fc1))
    last = sink.batches[-1]
    got1 = last.column("fc1").flatten().to_numpy().reshape(-1, 32)
    got2 = last.column("fc2").flatten().to_numpy().reshape(-1, 16)
    # (chunks of 128 vs one batch of 300: BLAS may round differently in the last bit)
    assert np.allclose(got1, fc1.numpy(), rtol=0, atol=1e-5) and np.allclose(got2, fc2.numpy(), rtol=0, atol=1e-5)
    accuracy = float((model(px).argmax(1) == py).float().mean())
    assert accuracy > 0.8  # it trained

    r = infotap.analyze(
        sink.batches, ["entropy", "mi", "label-mi"], by_step=True, bins=BINS, mi_estimator="binned", mi_bins=MI_BINS
    )
    assert r.complete

    acts = {}  # (step, layer) -> (samples, neurons) float64
    for b in sink.batches:
        s = b.column("step")[0].as_py()
        for name, w in (("fc1", 32), ("fc2", 16)):
            acts[(s, name)] = b.column(name).flatten().to_numpy().reshape(-1, w).astype(np.float64)
    lo = min(a.min() for a in acts.values())
    hi = max(a.max() for a in acts.values())
    labels = py.numpy()

    def by(table, keys, value):
        df = r.to_pandas(table)
        return dict(zip(df[keys].itertuples(index=False, name=None), df[value]))

    ent = by("neuron_entropy", ["step", "layer", "neuron"], "entropy")
    mi = by("neuron_mi", ["step", "layer_a", "neuron_a", "layer_b", "neuron_b"], "mi")
    lmi = by("label_mi", ["step", "layer", "neuron"], "mi")
    from sklearn.metrics import mutual_info_score

    checked = 0
    for (s, name), a in acts.items():
        codes = np.stack([bin_codes(a[:, j], lo, hi, BINS) for j in range(a.shape[1])], axis=1)
        mcodes = np.stack([bin_codes(a[:, j], lo, hi, MI_BINS) for j in range(a.shape[1])], axis=1)
        for j in range(a.shape[1]):
            counts, _ = np.histogram(a[:, j], bins=BINS, range=(lo, hi))
            assert np.array_equal(np.bincount(codes[:, j], minlength=BINS), counts)
            assert abs(ent[(s, name, j)] - entropy_of(counts)) < 1e-9
            assert abs(lmi[(s, name, j)] - mutual_info_score(codes[:, j], labels)) < 1e-9
            for k in range(j + 1, a.shape[1]):
                # I = H(A) + H(B) - H(A, B) of the joint histogram (scikit-learn's mutual_info_score on a few pairs)
                joint = np.bincount(mcodes[:, j] * MI_BINS + mcodes[:, k], minlength=MI_BINS * MI_BINS)
                truth = entropy_of(joint.reshape(MI_BINS, -1).sum(1)) + entropy_of(joint.reshape(MI_BINS, -1).sum(0))
                truth -= entropy_of(joint)
                if k == j + 1:
                    assert abs(truth - mutual_info_score(mcodes[:, j], mcodes[:, k])) < 1e-12
                assert abs(mi[(s, name, j, name, k)] - truth) < 1e-9
                checked += 1
    assert checked == len(mi) == 5 * (32 * 31 // 2 + 16 * 15 // 2)
    assert len(ent) == len(lmi) == 5 * 48
    # the layer summary is the neurons' mean entropy per step and layer
    summary = r.to_pandas("layer_summary").set_index(["step", "layer"])
    for (s, name), a in acts.items():
        mean = np.mean([ent[(s, name, j)] for j in range(a.shape[1])])
        assert abs(summary.loc[(s, name), "entropy_mean"] - mean) < 1e-9


def test_activation_file_sink_round_trip(digits, tmp_path):
    """The same tap written to a .arrows file and analysed from the path gives the same tables."""
    need_torch()
    _, _, sink = train_tapped(digits, steps=20, every=10)
    path = tmp_path / "acts.arrows"
    from infotap.wire import FileSink

    with FileSink(path) as f:
        for b in sink.batches:
            f.write(b)
    a = infotap.analyze(path, "entropy", by_step=True, out=tmp_path / "res")
    b = infotap.analyze(iter(sink.batches), "entropy", by_step=True)
    assert a.dir == str(tmp_path / "res") and b.dir is None
    assert a.tables["neuron_entropy"].equals(b.tables["neuron_entropy"])
    again = infotap.read_results(tmp_path / "res")
    assert again.tables["neuron_entropy"].equals(a.tables["neuron_entropy"]) and again.run["complete"] is True
    with pytest.raises(KeyError, match="no such table"):
        again["neuron_mi"]
