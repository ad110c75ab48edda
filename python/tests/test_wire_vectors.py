"""The shared wire-format vectors (schemas/vectors/, spec in vectors.json), checked here and by schemas/vectors_test.ts:
Python's writer gives ``<kind>.py.arrows`` (same schema and body bytes as the committed file and as the TypeScript
writer's ``<kind>.ts.arrows``); the TypeScript vectors read back to the spec's values; the sketch gives the bits of
sketch.json. ``INFOTAP_WRITE_VECTORS=1`` rewrites the Python files."""

import json
import os

import numpy as np
import pyarrow as pa
import pytest

from infotap.wire import FileSink, record_batch, sketch_jacobian

from conftest import REPO

DIR = REPO / "schemas" / "vectors"
WRITE = os.environ.get("INFOTAP_WRITE_VECTORS") == "1"
KINDS = ["activations", "gradients", "jacobians"]
SPEC = json.loads((DIR / "vectors.json").read_text()) if DIR.is_dir() else {}

pytestmark = pytest.mark.skipif(not DIR.is_dir(), reason="needs the repository's schemas/vectors")


def floats(bits):
    """Float32 values from big-endian hex bit patterns (None: NaN)."""
    return np.array([0x7FC00000 if b is None else int(b, 16) for b in bits], dtype=np.uint32).view(np.float32)


def hexes(values):
    return [f"{u:08x}" for u in np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)]


def batch_of(v):
    return record_batch(
        v["kind"],
        [int(s) for s in v["sample_id"]],
        {t["name"]: floats(t["bits"]).reshape(-1, t["width"]) for t in v["tensors"]},
        step=[int(s) for s in v["step"]] if "step" in v else None,
        label=v.get("label"),
        draw=v.get("draw"),
        fisher=v.get("fisher"),
        split=v.get("split"),
        output=v.get("output"),
        f0=floats(v["f0"]) if "f0" in v else None,
        target=[None if b is None else float(floats([b])[0]) for b in v["target"]] if "target" in v else None,
        metadata=v["metadata"],
        column_metadata={t["name"]: t["metadata"] for t in v["tensors"] if "metadata" in t},
    )


def messages(data: bytes):
    """(schema, record-batch bodies) of an IPC stream."""
    reader = pa.ipc.MessageReader.open_stream(pa.BufferReader(data))
    bodies = [m.body.to_pybytes() for m in reader if m.type == "record batch"]
    return pa.ipc.open_stream(data).schema, bodies


def schema_facts(schema: pa.Schema):
    return (
        [(f.name, str(f.type), f.nullable, dict(f.metadata or {})) for f in schema],
        list((schema.metadata or {}).items()),
    )


@pytest.mark.parametrize("name", KINDS)
def test_python_writer_matches_vectors(name, tmp_path):
    path = tmp_path / f"{name}.arrows"
    with FileSink(path) as sink:
        sink.write(batch_of(SPEC[name]))
    data = path.read_bytes()
    if WRITE:
        (DIR / f"{name}.py.arrows").write_bytes(data)
    schema, bodies = messages(data)
    assert len(bodies) == 1
    mine = values_of(pa.ipc.open_stream(data).read_all())
    for committed in (DIR / f"{name}.py.arrows", DIR / f"{name}.ts.arrows"):
        other_schema, other_bodies = messages(committed.read_bytes())
        assert schema_facts(schema) == schema_facts(other_schema), committed.name
        assert mine == values_of(pa.ipc.open_stream(committed.read_bytes()).read_all()), committed.name
        # Byte-identical bodies unless a column has nulls or strings: apache-arrow's builders pad validity bitmaps to
        # 64 bytes and string offsets to 8, pyarrow both to 8 (the values compared above are the same bits).
        if committed.name.endswith(".py.arrows") or name != "jacobians":
            assert bodies == other_bodies, committed.name


def values_of(table: pa.Table):
    """Every column's values: float bits as uint32 (nulls as None), integers and strings as Python values."""
    out = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if pa.types.is_fixed_size_list(col.type):
            out[name] = hexes(col.flatten().to_numpy(zero_copy_only=False))
        elif pa.types.is_floating(col.type):
            bits = hexes(col.fill_null(0).to_numpy(zero_copy_only=False))
            out[name] = [None if v is None else b for v, b in zip(col.to_pylist(), bits)]
        else:
            out[name] = col.to_pylist()
    return out


@pytest.mark.parametrize("name", KINDS)
def test_typescript_vectors_read_to_the_spec(name):
    v = SPEC[name]
    table = pa.ipc.open_stream((DIR / f"{name}.ts.arrows").read_bytes()).read_all()
    meta = {k.decode(): val.decode() for k, val in table.schema.metadata.items()}
    assert meta["infotap.schema"] == v["kind"]
    assert {k: val for k, val in meta.items() if k not in ("infotap.schema", "infotap.fisher")} == v["metadata"]
    if "fisher" in v:
        assert meta["infotap.fisher"] == v["fisher"]
    assert [str(s) for s in table.column("sample_id").to_pylist()] == v["sample_id"]
    for key in ("label", "draw", "output", "split"):
        if key in v:
            assert table.column(key).to_pylist() == v[key]
    if "step" in v:
        assert [str(s) for s in table.column("step").to_pylist()] == v["step"]
    if "f0" in v:
        assert hexes(table.column("f0").to_numpy()) == v["f0"]
    if "target" in v:
        t = table.column("target")
        assert [None if x is None else hexes([x])[0] for x in t.to_pylist()] == v["target"]
    for t in v["tensors"]:
        col = table.column(t["name"]).combine_chunks()
        assert col.type.list_size == t["width"]
        assert hexes(col.flatten().to_numpy()) == t["bits"]
        field_meta = table.schema.field(t["name"]).metadata or {}
        assert {k.decode(): val.decode() for k, val in field_meta.items()} == t.get("metadata", {})


def test_sketch_matches_typescript_bits():
    cases = json.loads((DIR / "sketch.json").read_text())["cases"]
    assert len(cases) >= 4
    for c in cases:
        n = c["rows"] * c["width"]
        values = np.array([((i * 7919) % 1000 - 500) / 256 for i in range(n)], dtype=np.float32)
        out = sketch_jacobian(values.reshape(c["rows"], c["width"]), c["m"], c["seed"], c["name"])
        assert hexes(out.ravel()) == c["bits"], (c["seed"], c["name"])
