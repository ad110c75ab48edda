"""Wire writers: dtypes converted to float32 (float16, bfloat16, float64), float32 not copied, and the rows checked."""

import numpy as np
import pytest

import infotap
from infotap.wire import activations, gradients, jacobians, record_batch

from conftest import need_torch


def values(rb, name):
    col = rb.column(name)
    return col.flatten().to_numpy().reshape(rb.num_rows, col.type.list_size)


def test_numpy_dtypes_are_converted_and_float32_is_not_copied():
    x64 = np.random.default_rng(0).normal(size=(5, 3))
    x32 = x64.astype(np.float32)
    rb = activations({"a": x64, "b": x64.astype(np.float16), "c": x32, "d": x64.reshape(5, 3, 1)})
    assert np.array_equal(values(rb, "a"), x32)
    assert np.array_equal(values(rb, "b"), x64.astype(np.float16).astype(np.float32))
    assert np.array_equal(values(rb, "d"), x32)
    assert rb.column("c").values.buffers()[1].address == x32.ctypes.data  # zero-copy
    assert rb.column("sample_id").to_pylist() == [0, 1, 2, 3, 4]


def test_torch_dtypes_are_converted_and_float32_is_not_copied():
    torch = need_torch()
    t = torch.randn(4, 6)
    rb = gradients({"w": t, "h": t.half(), "bf": t.bfloat16(), "d": t.double()}, fisher="empirical")
    assert np.array_equal(values(rb, "w"), t.numpy())
    assert np.array_equal(values(rb, "h"), t.half().float().numpy())
    assert np.array_equal(values(rb, "bf"), t.bfloat16().float().numpy())
    assert np.array_equal(values(rb, "d"), t.numpy())
    assert rb.column("w").values.buffers()[1].address == t.data_ptr()
    with pytest.raises(infotap.InputError, match="'i' as its values are not real floating point.*torch.int64"):
        activations({"i": torch.ones(2, 2, dtype=torch.long)})


def test_bad_rows_are_named():
    with pytest.raises(infotap.InputError, match="'b' as it has 2 rows, not 3"):
        activations({"a": np.zeros((3, 2)), "b": np.zeros((2, 2))})
    with pytest.raises(infotap.InputError, match="'step' as it has 2 rows, not 3"):
        activations({"a": np.zeros((3, 2))}, step=[1, 2])
    with pytest.raises(infotap.InputError, match="'label' as a value does not fit int32"):
        activations({"a": np.zeros((1, 2))}, label=[2**40])
    with pytest.raises(infotap.InputError, match="'split'.*'valid'"):
        jacobians({"w": np.zeros((2, 2))}, [0, 1], split=["train", "valid"], output=[0, 0], f0=[0, 0])
    with pytest.raises(infotap.InputError, match="fisher must be 'true' or 'empirical'"):
        gradients({"w": np.zeros((1, 2))}, fisher="yes")
    with pytest.raises(infotap.InputError, match="kind is not one of"):
        record_batch("weights/v1", [0], {"w": np.zeros((1, 1))})
