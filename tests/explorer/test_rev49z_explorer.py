"""Review rev49z: the explorer's file subjects cast float64 rows of a torch module without
floating parameters (buffers only, or none) to float32, the dtype aud49j fixed for jobs and the
CLI: tribute.explain computes such a module in its buffers' dtype, else the inputs' own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tribute.explorer.subjects import file_spec

_FACTORY = '''
import torch

T = 0.7 + 1e-12  # a float64 threshold: x_0 = 0.7 + 2e-12 is above it, float32(x_0) is not


class Threshold(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("t", torch.full((3,), T, dtype=torch.float64))

    def forward(self, x):
        return (x[:, :1] > self.t[0]).to(self.t.dtype)


class NoWeights(torch.nn.Module):
    def forward(self, x):
        return (x * torch.arange(1, x.shape[1] + 1, dtype=x.dtype)).sum(1, keepdim=True)


class F32(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3, 1))

    def forward(self, x):
        return x @ self.w


def threshold():
    return Threshold()


def no_weights():
    return NoWeights()


def f32():
    return F32()
'''

ROWS = np.array([[0.7 + 2e-12, 1.0, 2.0], [0.05, 1.0 / 3.0, 2.0 / 7.0], [0.9, -1e-9, 5.0]])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "rev49z_explorer_factory.py").write_text(_FACTORY, encoding="utf-8")
    np.save(tmp_path / "rows.npy", ROWS)
    return tmp_path


@pytest.mark.parametrize("factory", ["threshold", "no_weights"])
def test_a_model_without_floating_parameters_keeps_float64_rows(folder: Path, factory: str) -> None:
    spec = file_spec(f"{folder}/rev49z_explorer_factory.py:{factory}", data=str(folder / "rows.npy"))
    s = spec.get()
    x = torch.as_tensor(s.inputs)
    assert x.dtype == torch.float64
    assert np.array_equal(x.numpy(), ROWS)  # the file's numbers, not float32 roundings
    with torch.no_grad():
        out = s.model(x)[:, 0].numpy()
    truth = (ROWS[:, 0] > 0.7 + 1e-12).astype(float) if factory == "threshold" else ROWS @ [1.0, 2.0, 3.0]
    assert np.array_equal(out, truth)  # main: [0, 0, 1] for the threshold (0.69999999 < t)


def test_a_float32_parameter_model_still_gets_float32_rows(folder: Path) -> None:
    s = file_spec(f"{folder}/rev49z_explorer_factory.py:f32", data=str(folder / "rows.npy")).get()
    x = torch.as_tensor(s.inputs)
    assert x.dtype == torch.float32
    assert np.array_equal(x.numpy(), ROWS.astype(np.float32))
