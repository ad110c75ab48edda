"""Wire format v1 (schemas/README.md) from Python: record batches of activations, gradients and Jacobians from numpy
arrays or torch tensors, the seeded Jacobian sketch, and sinks (file, list, live ``serve`` endpoint)."""

from .batch import (
    FISHER_KEY,
    KINDS,
    SCHEMA_KEY,
    SKETCH_SEED_KEY,
    SKETCH_SOURCE_DIM_KEY,
    activations,
    gradients,
    jacobians,
    record_batch,
    tensor_column,
)
from .sinks import CallbackSink, FileSink, ListSink, ServeSink, Sink, as_sink
from .sketch import sketch_jacobian, sketch_metadata

__all__ = [
    "FISHER_KEY",
    "KINDS",
    "SCHEMA_KEY",
    "SKETCH_SEED_KEY",
    "SKETCH_SOURCE_DIM_KEY",
    "activations",
    "gradients",
    "jacobians",
    "record_batch",
    "tensor_column",
    "CallbackSink",
    "FileSink",
    "ListSink",
    "ServeSink",
    "Sink",
    "as_sink",
    "sketch_jacobian",
    "sketch_metadata",
]
