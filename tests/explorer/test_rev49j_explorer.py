"""rev49j: the explorer's ``--model ... --data X.npy`` subject fed a torch module without
floating parameters (weights as float64 buffers, or no weights at all) float32 rows, the rule
aud49j fixed in dataset jobs and ``tribute explain`` ("the parameters' dtype, else float32").
:func:`tribute.explain` computes such a module in its buffers' dtype, else the inputs' own, so
the page's credits were 6.2e-5 off one call on float64 rows of scale 1e3 (float32 rounding of
the inputs and of the column-mean baseline).

Truth: ``f(x) = sum_j (j + 1) x_j`` has exact Shapley values ``(j + 1) (x_j - b_j)`` at baseline
``b``; the subject's baseline is the file's column means (numpy, float64).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("starlette")
from tribute.explorer.compute import _explain
from tribute.explorer.subjects import file_spec

FACTORY = '''
import torch


class BufferLinear(torch.nn.Module):
    def __init__(self, dtype):
        super().__init__()
        self.register_buffer("w", torch.arange(1.0, 5.0, dtype=dtype))

    def forward(self, x):
        return (x * self.w).sum(-1, keepdim=True)


class NoWeights(torch.nn.Module):
    def forward(self, x):
        return (x * torch.arange(1, 5, dtype=x.dtype)).sum(-1, keepdim=True)


class IntBuffer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("k", torch.arange(1, 5))

    def forward(self, x):
        return (x * self.k).sum(-1, keepdim=True)


def buffers64():
    return BufferLinear(torch.float64)


def buffers32():
    return BufferLinear(torch.float32)


def no_weights():
    return NoWeights()


def int_buffer():
    return IntBuffer()


def mlp32():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
'''


def _files(tmp_path: Path) -> tuple[Path, np.ndarray]:
    (tmp_path / "rev49j_factory.py").write_text(FACTORY)
    X = np.random.default_rng(3).normal(size=(5, 4)) * np.array([1.0, 10.0, 100.0, 1000.0])
    np.save(tmp_path / "X.npy", X)
    return tmp_path / "X.npy", X


@pytest.mark.parametrize("factory", ["buffers64", "no_weights", "int_buffer"])
def test_a_model_without_floating_parameters_sees_float64_rows(tmp_path: Path, factory: str) -> None:
    data, X = _files(tmp_path)
    subject = file_spec(f"{tmp_path}/rev49j_factory.py:{factory}", data=str(data)).build()
    truth = np.arange(1.0, 5.0) * (X - X.mean(0))
    for i in (0, 4):
        got = np.asarray(_explain(subject, i, "exact_shapley", {}, None, 0).values, dtype=np.float64)
        np.testing.assert_allclose(got.ravel(), truth[i], rtol=1e-12, atol=1e-9)
    assert isinstance(subject.inputs, torch.Tensor) and subject.inputs.dtype == torch.float64


@pytest.mark.parametrize(("factory", "dtype"), [("buffers32", torch.float32), ("mlp32", torch.float32)])
def test_floating_weights_still_set_the_dtype(tmp_path: Path, factory: str, dtype: torch.dtype) -> None:
    data, _ = _files(tmp_path)
    subject = file_spec(f"{tmp_path}/rev49j_factory.py:{factory}", data=str(data)).build()
    assert isinstance(subject.inputs, torch.Tensor) and subject.inputs.dtype == dtype
