"""eng45: ``explain`` under the caller's ``torch.no_grad()`` / ``torch.inference_mode()``.

On main every gradient method raised torch's "element 0 of tensors does not require grad"
under ``no_grad`` (the engine turned gradients on for the pass, not for composing the rows
from their leaves), and every method raised "Inference tensors do not track version counter"
under ``inference_mode`` (the target's column memo read the index's version counter). Truths
here are closed forms on a linear model: ``w * (x - b)`` for leave-one-out, integrated
gradients and input x gradient, and ``w`` for saliency's gradient."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError


def _linear() -> tuple[nn.Module, torch.Tensor, np.ndarray]:
    torch.manual_seed(3)
    m = nn.Linear(6, 3).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    return m, x, m.weight.detach().numpy().copy()


_MODES: dict[str, Callable[[], contextlib.AbstractContextManager[Any]]] = {
    "no_grad": torch.no_grad, "inference_mode": torch.inference_mode,
    "set_grad_enabled(False)": lambda: torch.set_grad_enabled(False),
}


@pytest.mark.parametrize("mode", list(_MODES))
@pytest.mark.parametrize("method", ["feature_ablation", "occlusion", "exact_shapley", "kernel_shap"])
def test_perturbation_methods_run_under_the_callers_grad_mode(mode: str, method: str) -> None:
    m, x, w = _linear()
    with _MODES[mode]():
        attr = tribute.explain(m, x, method=method, target=2, baseline=0.5)
    truth = w[2] * (x.numpy() - 0.5)
    np.testing.assert_allclose(np.asarray(attr.values), truth, rtol=1e-9, atol=1e-9)
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()


@pytest.mark.parametrize("mode", ["no_grad", "set_grad_enabled(False)"])
def test_gradient_methods_run_under_no_grad(mode: str) -> None:
    m, x, w = _linear()
    with _MODES[mode]():
        ig = tribute.explain(m, x, method="integrated_gradients", target=1, baseline=0.25)
        sal = tribute.explain(m, x, method="saliency", target=1, absolute=False)
        ixg = tribute.explain(m, x, method="input_x_gradient", target=0)
        assert not torch.is_grad_enabled()  # the caller's mode is back after each call
    np.testing.assert_allclose(ig.values.numpy(), w[1] * (x.numpy() - 0.25), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(sal.values.numpy(), np.broadcast_to(w[1], x.shape), rtol=1e-12)
    np.testing.assert_allclose(ixg.values.numpy(), w[0] * x.numpy(), rtol=1e-12)


def test_gradient_methods_under_inference_mode_are_refused_and_the_model_is_kept() -> None:
    m, x, _ = _linear()
    m.train()
    m.weight.requires_grad_(True)
    hooks_before = dict(m._forward_hooks)
    with torch.inference_mode():
        for method in ("integrated_gradients", "saliency"):
            with pytest.raises(InputError, match="inference_mode"):
                tribute.explain(m, x, method=method, target=0)
    assert m.training and m.weight.requires_grad and dict(m._forward_hooks) == hooks_before
    # outside it, the same call runs
    assert tribute.explain(m, x, method="saliency", target=0).values.shape == x.shape
