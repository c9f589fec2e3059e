"""rev48d: review of aud48d (data-game input checks).

aud48d refused negative ``TrainingData(seed=...)`` values, which BASE passed on to ``fit``. A
torch fit reads ``seed=-1`` as ``2**64 - 1`` (its generators take the seed modulo 2**64), so a
model trained with ``torch.manual_seed(-1)`` retrains bit for bit with ``seed=2**64 - 1``; the
refusal's hint said ``seed=0`` (another model). It now names the seed that reproduces it.
Truth: torch's own generator seeded with the negative value.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError


class _TorchSeededFit:
    """A fit whose model is drawn from ``torch.Generator().manual_seed(seed)`` (as a torch
    training loop seeded with ``torch.manual_seed(seed)`` would be)."""

    loss = "mse"
    l2 = 0.0
    reduction = "mean"

    def __call__(self, X: torch.Tensor, y: torch.Tensor, *, seed: int, weights: object = None) -> nn.Module:
        g = torch.Generator().manual_seed(seed)
        m = nn.Linear(int(X.shape[1]), 1).double()
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
        return m


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 2, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("neg", [-1, -5, -(2**63), np.int64(-3)])
def test_a_negative_seeds_refusal_names_the_seed_that_reproduces_it(neg: int) -> None:
    X, y = _data()
    fit = _TorchSeededFit()
    with pytest.raises(InputError, match="seed=") as err:
        tribute.TrainingData(X, y, fit=fit, seed=neg)
    hint = re.search(r"e\.g\. seed=(\d+)", str(err.value))
    assert hint is not None, str(err.value)
    seed = int(hint.group(1))
    trained = fit(X, y, seed=int(neg))  # what the user trained with torch's generator
    again = tribute.TrainingData(X, y, fit=fit, seed=seed)  # the hint is accepted ...
    redo = fit(X, y, seed=again.seed)  # ... and retrains the very same model
    for a, b in zip(trained.parameters(), redo.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("bad", [-(2**63) - 1, 2**64, 1.5, True, "3", None])
def test_other_bad_seeds_still_suggest_seed_0(bad: object) -> None:
    X, y = _data()
    with pytest.raises(InputError, match=r"must be an int in 0\.\.2\*\*64-1.*e\.g\. seed=0\."):
        tribute.TrainingData(X, y, fit=_TorchSeededFit(), seed=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("good", [0, 7, 2**63, 2**64 - 1, np.int64(3), np.uint64(2**63), np.int32(5),
                                  torch.tensor(3), np.array(4)])
def test_non_negative_integer_seeds_are_accepted(good: object) -> None:
    X, y = _data()
    assert tribute.TrainingData(X, y, fit=_TorchSeededFit(), seed=good).seed == int(good)  # type: ignore[arg-type,call-overload]
