"""ActivationTap details and bad input: conv outputs pooled over space (or kept), module inputs, the Lightning-style
callback, and one clear error naming the module or column for each mistake; NaN counted here and by the engine."""

import numpy as np
import pytest

import infotap
from infotap.wire import ListSink, activations

from conftest import need_torch


def conv_net():
    torch = need_torch()
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3, stride=2), torch.nn.ReLU()),
        torch.nn.Flatten(), torch.nn.Linear(6 * 3 * 3, 10),
    )


def test_conv_outputs_are_pooled_over_space_or_kept(digits):
    torch = need_torch()
    from infotap.torch import ActivationTap

    X, _ = digits
    probe = torch.from_numpy(X[:50]).reshape(50, 1, 8, 8)
    model = conv_net()
    pooled, kept = ListSink(), ListSink()
    ActivationTap(model, ["0", "2", "4"], probe, sink=pooled).record(0)
    ActivationTap(model, ["0", "2"], probe, sink=kept, spatial="flatten").record(0)
    with torch.no_grad():
        c0 = model[0](probe)
        stage = model[2](model[1](c0))  # a ResNet-style stage: a Sequential whose output is 4-D
    b = pooled.batches[0]
    assert [b.column(n).type.list_size for n in ("0", "2", "4")] == [4, 6, 10]
    np.testing.assert_allclose(b.column("0").flatten().to_numpy().reshape(50, 4), c0.mean((2, 3)).numpy(), atol=1e-6)
    np.testing.assert_allclose(b.column("2").flatten().to_numpy().reshape(50, 6), stage.mean((2, 3)).numpy(), atol=1e-6)
    k = kept.batches[0]
    assert k.column("0").type.list_size == 4 * 64 and k.column("2").type.list_size == 6 * 9
    np.testing.assert_array_equal(k.column("2").flatten().to_numpy().reshape(50, 54), stage.flatten(1).numpy())


def test_module_inputs_and_training_mode_restored():
    torch = need_torch()
    from infotap.torch import ActivationTap

    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Dropout(0.5), torch.nn.ReLU())
    model.train()
    model[1].eval()  # a submodule's own mode is restored too
    probe = torch.randn(7, 3)
    out = []
    ActivationTap(model, "2", probe, where="input", sink=out).record(3)
    assert model.training and not model[1].training
    with torch.no_grad():
        pre = model[0](probe)  # the ReLU's input = the Linear's pre-activation (dropout is off in eval mode)
    np.testing.assert_array_equal(out[0].column("2").flatten().to_numpy().reshape(7, 5), pre.numpy())
    assert b"input of 2 (ReLU)" in out[0].schema.metadata[b"infotap.tapped"]


def test_lightning_style_callback_steps_and_closes(tmp_path):
    torch = need_torch()
    from infotap.torch import ActivationTap, InfotapCallback

    model = torch.nn.Sequential(torch.nn.Linear(3, 4))
    path = tmp_path / "acts.arrows"
    cb = InfotapCallback(ActivationTap(model, "0", torch.randn(5, 3), every=2, sink=str(path)))

    class Trainer:
        global_step = 0

    trainer = Trainer()
    cb.on_fit_start(trainer, model)  # hooks the callback does not use are no-ops
    for s in range(1, 6):
        trainer.global_step = s
        cb.on_train_batch_end(trainer, model, None, None, s - 1)
    cb.on_train_end(trainer, model)
    r = infotap.analyze(path, "entropy", by_step=True)
    assert sorted(set(r.to_pandas("layer_summary")["step"])) == [2, 4]


def test_bad_taps_name_the_module():
    torch = need_torch()
    from infotap.torch import ActivationTap

    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)
            self.act = torch.nn.Tanh()
            self.lstm = torch.nn.LSTM(4, 3, batch_first=True)
            self.width = 4

        def forward(self, x):
            h = self.act(self.fc(x))
            self.lstm(h[:, None, :])
            return self.act(h)[:, : self.width]

    model = Odd()
    probe = torch.randn(6, 4)
    with pytest.raises(infotap.InputError, match=r"'fc1'.*did you mean 'fc'"):
        ActivationTap(model, ["fc1"], probe, sink=[])
    with pytest.raises(infotap.InputError, match=r"'act' as it ran 2 times"):
        ActivationTap(model, "act", probe, sink=[]).record()
    with pytest.raises(infotap.InputError, match=r"'lstm' as its output is a tuple of 2"):
        ActivationTap(model, "lstm", probe, sink=[]).record()
    with pytest.raises(infotap.InputError, match=r"'fc' as its output is not floating point: current value is torch.int64"):
        ActivationTap(model, "fc", probe, sink=[], select=lambda out: out.argmax(1)).record()
    with pytest.raises(infotap.InputError, match=r"6 samples and 5 labels"):
        ActivationTap(model, "fc", (probe, torch.arange(5)), sink=[])

    class Grows(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 8)
            self.n = 4

        def forward(self, x):
            self.n += 1
            return self.fc(x)

    grows = Grows()
    tap = ActivationTap(grows, "fc", probe, sink=[], select=lambda out: out[:, : grows.n])
    tap.record(0)
    with pytest.raises(infotap.InputError, match=r"'fc' as its width changed between records.*6 \(first: 5\)"):
        tap.record(1)


def test_nan_is_counted_by_the_tap_and_the_engine():
    torch = need_torch()
    from infotap.torch import ActivationTap

    model = torch.nn.Sequential(torch.nn.Linear(2, 3))
    probe = torch.tensor([[1.0, 0.0], [float("nan"), 1.0], [0.5, 0.5], [0.0, 1.0]])
    out = []
    tap = ActivationTap(model, "0", probe, sink=out)
    with pytest.warns(infotap.InfotapWarning, match=r"'0' has 3 non-finite"):
        tap.record(0)
    assert tap.nonfinite == {"0": 3}
    with pytest.warns(infotap.InfotapWarning, match="non-finite"):
        r = infotap.analyze(out, "entropy", bins=4)
    assert r.to_pandas("neuron_entropy")["nonfinite"].tolist() == [1, 1, 1]
    assert any("non-finite" in w for w in r.warnings)


def test_engine_errors_are_one_line_with_partial_results(tmp_path):
    good = activations({"fc1": np.random.default_rng(0).normal(size=(50, 3))}, step=np.zeros(50, int))
    path = tmp_path / "two.arrows"
    from infotap.wire import FileSink

    with FileSink(path) as f:
        f.write(good)
        f.write(good)
    # a file that ends mid-batch: the engine reports file and batch, and keeps the batches before it
    data = path.read_bytes()
    cut = tmp_path / "cut.arrows"
    cut.write_bytes(data[: len(data) - 200])
    with pytest.raises(infotap.InputError) as e:
        infotap.analyze(cut, "entropy", out=tmp_path / "res")
    assert "cut.arrows" in str(e.value) and "\n" not in str(e.value)
    assert e.value.results is not None and e.value.results.complete is False
    assert e.value.results.tables["neuron_entropy"].num_rows == 3  # the first batch's results
    with pytest.raises(infotap.UsageError, match="--bins"):
        infotap.analyze(good, "entropy", bins=-3)
    with pytest.raises(infotap.InputError, match="missing.arrows.*does not exist"):
        infotap.analyze(tmp_path / "missing.arrows")
    with pytest.raises(infotap.InputError, match="not real floating point.*int64"):
        activations({"fc1": np.ones((2, 2), dtype=np.int64)})
    with pytest.raises(infotap.InputError, match="reserved"):
        activations({"label": np.ones((2, 2))})
