"""Model adapters: one calling convention for torch modules and numpy callables.

An adapter takes a tuple of row tensors (one per attributed input, batch first) plus extra,
non-attributed forward arguments, and returns the model's raw output as a tensor. It also
provides :meth:`ModelAdapter.session`, the context inside which every evaluation runs: the
model is put in eval mode with parameter gradients off, and on exit its ``training`` flags,
``requires_grad`` flags and hook dictionaries are restored exactly — also after an exception.
"""

from __future__ import annotations

from .adapters import (
    MODEL_OUTPUTS,
    BinaryKind,
    ModelAdapter,
    NumpyModel,
    TorchModel,
    as_model,
    as_output_tensor,
    is_binary,
    load_weights,
)

__all__ = ["MODEL_OUTPUTS", "BinaryKind", "ModelAdapter", "NumpyModel", "TorchModel", "as_model",
           "as_output_tensor", "is_binary", "load_weights"]
