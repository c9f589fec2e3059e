"""rev50c: a checking pass that raised because the pass was too big for the model.

aud50c marks a model batch-checked only once a plain pass runs after a raising checking pass,
but kept the engine-local "checked" flag: when the plain pass raised too (a model taking at most
5 rows per pass, first pass of 8 rows) and the engine retried smaller passes, none of them was
checked and the first one that ran marked the model. A batch-mean model's self-tuned
feature_ablation then gave silent credits (sample 0, feature 1: -0.1280) where the same model
on at most 5 inputs is refused.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute
from tribute.engine.core import _is_checked
from tribute.errors import ModelOutputError


class _Capped(torch.nn.Module):
    """Takes at most ``cap`` rows per pass (a fixed buffer); ``mix``: subtracts the batch mean of
    its hidden layer; ``numpy``: computes its tanh in numpy (cannot run with autograd)."""

    def __init__(self, mix: bool, numpy: bool = False, cap: int = 5) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.cap, self.mix, self.numpy = cap, mix, numpy
        self.fc1 = torch.nn.Linear(4, 5)
        self.fc2 = torch.nn.Linear(5, 2)
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += int(x.shape[0])
        if x.shape[0] > self.cap:
            raise ValueError(f"at most {self.cap} rows per pass")
        h = self.fc1(x)
        if self.mix:
            h = h - h.mean(0, keepdim=True)
        h = torch.from_numpy(np.tanh(h.numpy())) if self.numpy else torch.tanh(h)
        out: torch.Tensor = self.fc2(h)
        return out


def _x() -> torch.Tensor:
    return torch.randn(8, 4, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("method", ["feature_ablation", "integrated_gradients"])
def test_pass_too_big_for_the_model_still_checks_it(method: str) -> None:
    net = _Capped(mix=True)
    with pytest.raises(ModelOutputError, match="changes with the other rows"):
        tribute.explain(net, _x(), method=method, target=0, progress=False)
    assert not _is_checked(net)


def test_pass_too_big_for_a_rowwise_model_runs_and_marks_it() -> None:
    """Negative case: the same model without the batch mean runs, gives leave-one-out credits,
    counts every row it saw and is marked (not checked again)."""
    net = _Capped(mix=False)
    x = _x()
    with pytest.warns(RuntimeWarning, match="rows per pass"):
        attr = tribute.explain(net, x, method="feature_ablation", target=0, progress=False)
    assert _is_checked(net)
    assert attr.n_rows == net.rows
    with torch.no_grad():
        full = torch.cat([net(x[:4]), net(x[4:])])[:, 0]
        truth = torch.stack([full - torch.cat([net(torch.where(torch.arange(4) == j, 0.0, x)[:4]),
                                               net(torch.where(torch.arange(4) == j, 0.0, x)[4:])])[:, 0]
                             for j in range(4)], 1)
    np.testing.assert_allclose(np.asarray(attr.values), truth.numpy(), atol=1e-6)


def test_pass_too_big_for_an_uncheckable_model_counts_its_rows() -> None:
    """Negative case: a model that cannot run with autograd and takes at most 5 rows: runs,
    marked after its first plain pass, and n_rows is every row it saw (failed passes too)."""
    net = _Capped(mix=False, numpy=True)
    with pytest.warns(RuntimeWarning, match="rows per pass"), torch.inference_mode():
        attr = tribute.explain(net, _x(), method="feature_ablation", target=0, progress=False)
    assert _is_checked(net)
    assert attr.n_rows == net.rows
    seen = net.rows
    with torch.inference_mode():
        again = tribute.explain(net, _x(), method="feature_ablation", target=0, progress=False)
    assert again.n_rows == net.rows - seen  # no checking pass: it is marked
    assert torch.equal(attr.values, again.values)
