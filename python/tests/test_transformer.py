"""A small TransformerEncoder on digits (8 rows of 8 pixels as tokens, a learned CLS token first) tapped at the first
token of each layer (the CLS setting of Bansal et al.): the rows are the layers' CLS vectors; sequence-first layers
and sequence outputs without a selection get clear errors."""

import numpy as np
import pytest

import infotap
from infotap.wire import ListSink

from conftest import need_torch


def make_model(batch_first=True):
    torch = need_torch()
    torch.manual_seed(0)

    class DigitsEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Linear(8, 16)
            self.cls = torch.nn.Parameter(torch.randn(1, 1, 16) * 0.1)
            layer = torch.nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=batch_first)
            self.encoder = torch.nn.TransformerEncoder(layer, num_layers=2)
            self.head = torch.nn.Linear(16, 10)

        def tokens(self, x):
            t = self.embed(x.reshape(-1, 8, 8))
            t = torch.cat([self.cls.expand(t.shape[0], 1, 16), t], dim=1)
            return t if batch_first else t.transpose(0, 1)

        def forward(self, x):
            h = self.encoder(self.tokens(x))
            return self.head(h[:, 0] if batch_first else h[0])

    return DigitsEncoder()


def test_transformer_layers_tapped_at_the_cls_token(digits):
    torch = need_torch()
    from infotap.torch import ActivationTap, neurons, token

    X, y = digits
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    probe = (xt[1600:1700], yt[1600:1700])
    sink = ListSink()
    layers = ["encoder.layers.0", "encoder.layers.1"]
    tap = ActivationTap(model, layers, probe, every=10, sink=sink, select=token(0))
    first8 = ListSink()
    tap8 = ActivationTap(model, "encoder.layers.1", probe, every=10, sink=first8, select=[token(0), neurons(8)])
    for step in range(21):
        tap.step(step)
        tap8.step(step)
        i = slice(64 * step, 64 * step + 64)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt[i]), yt[i]).backward()
        opt.step()
    assert len(sink.batches) == 3 and sink.batches[0].schema.names == ["sample_id", "step", "label", *layers]
    tapped = b"encoder.layers.0 (TransformerEncoderLayer)"
    assert tapped in sink.batches[0].schema.metadata[b"infotap.tapped"]

    # The CLS vectors of each layer, computed by hand from the final weights, equal the last record.
    with torch.no_grad():
        model.eval()
        h = model.tokens(probe[0])
        cls = []
        for layer in model.encoder.layers:
            h = layer(h)
            cls.append(h[:, 0].numpy())
        model.train()
    tap.record(99)
    last = sink.batches[-1]
    for name, ref in zip(layers, cls):
        got = last.column(name).flatten().to_numpy().reshape(100, 16)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
    assert first8.batches[-1].column("encoder.layers.1").type.list_size == 8
    np.testing.assert_array_equal(
        first8.batches[-1].column("encoder.layers.1").flatten().to_numpy().reshape(100, 8),
        sink.batches[-2].column("encoder.layers.1").flatten().to_numpy().reshape(100, 16)[:, :8],
    )

    r = infotap.analyze(sink.batches, ["entropy", "label-mi"], by_step=True, bins=20)
    summary = r.to_pandas("layer_summary")
    assert sorted(set(summary["step"])) == [0, 10, 20, 99]
    assert set(summary["layer"]) == set(layers) and (summary["neurons"] == 16).all()


def test_sequence_outputs_need_a_selection():
    torch = need_torch()
    from infotap.torch import ActivationTap, token

    probe = torch.rand(12, 64)
    with pytest.raises(infotap.InputError, match=r"'encoder.layers.0'.*not \(samples, neurons\).*select="):
        ActivationTap(make_model(), "encoder.layers.0", probe, sink=[]).record(0)
    # sequence-first layers: the first dimension is not the probe's batch size
    with pytest.raises(infotap.InputError, match=r"not the probe batch size 12.*batch_first=False"):
        ActivationTap(make_model(batch_first=False), "encoder.layers.0", probe, sink=[], select=token(0)).record(0)
    out = []
    ActivationTap(make_model(batch_first=False), "encoder.layers.0", probe, sink=out,
                  select=token(0, batch_first=False)).record(0)
    assert out[0].column("encoder.layers.0").type.list_size == 16
