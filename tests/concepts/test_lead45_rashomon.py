"""``fit_mlp`` (the Rashomon set's built-in sampler) inside the caller's ``torch.no_grad()`` /
``torch.inference_mode()`` (rev45z left it open: torch's "element 0 of tensors does not require
grad" under ``no_grad``): the same weights as a call outside them, and the caller's mode kept."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import pytest
import torch

from tribute.methods.rashomon import fit_mlp


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    return X, X @ np.array([1.0, -2.0, 0.5]), (X[:, 0] > 0).astype(np.int64)


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
@pytest.mark.parametrize("classes", [None, 2])
def test_fit_mlp_trains_under_the_callers_grad_mode(mode: Callable[[], contextlib.AbstractContextManager[None]],
                                                    classes: int | None) -> None:
    X, y_reg, y_cls = _data()
    y = y_reg if classes is None else y_cls
    plain = fit_mlp(X, y, seed=3, hidden=8, steps=30, n_classes=classes)
    with mode():
        inside = fit_mlp(X, y, seed=3, hidden=8, steps=30, n_classes=classes)
        assert not torch.is_grad_enabled()
    for a, b in zip(plain.parameters(), inside.parameters()):
        assert torch.equal(a.detach(), b.detach())
    # trained, not the seeded initialisation: the loss went down from the start
    fresh = fit_mlp(X, y, seed=3, hidden=8, steps=0, n_classes=classes)
    xt = torch.as_tensor(X)
    if classes is None:
        yt = torch.as_tensor(y)
        assert float(((inside(xt)[:, 0] - yt) ** 2).mean()) < 0.5 * float(((fresh(xt)[:, 0] - yt) ** 2).mean())
    else:
        yl = torch.as_tensor(y)
        ce = torch.nn.functional.cross_entropy
        assert float(ce(inside(xt), yl)) < float(ce(fresh(xt), yl))
