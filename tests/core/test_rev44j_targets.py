"""rev44j: a callable target that calls a torch module whose weights require gradients.

``target=lambda y: head(y)[:, 0]`` with a plain ``nn.Linear`` head raised "Inference tensors
cannot be saved for backward" in every ``tribute.explain`` call (the target was probed on the
reference outputs, made under ``inference_mode``), and deeplift then raised "Can't call numpy()
on Tensor that requires grad". The credits are checked against a numpy copy of the model: the
closed-form gradient, a brute-force Shapley enumeration and a midpoint-rule path integral.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
import torch

import tribute


def _setup() -> tuple[torch.nn.Module, torch.nn.Linear, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh())
    head = torch.nn.Linear(4, 2)
    with torch.no_grad():
        for p in [*model.parameters(), *head.parameters()]:
            p.copy_(torch.randn(p.shape, generator=g))
    x = torch.randn(5, 3, generator=g)
    return model, head, x


def _hand(model: torch.nn.Module, head: torch.nn.Linear) -> tuple[np.ndarray, ...]:
    w, b = (p.detach().double().numpy() for p in model.parameters())
    hw, hb = (p.detach().double().numpy() for p in head.parameters())
    return w, b, hw[0], hb[0]


def _f(xs: np.ndarray, w: np.ndarray, b: np.ndarray, hw: np.ndarray, hb: Any) -> np.ndarray:
    return np.asarray(np.tanh(xs @ w.T + b) @ hw + hb)


def _grad(xs: np.ndarray, w: np.ndarray, b: np.ndarray, hw: np.ndarray) -> np.ndarray:
    h = np.tanh(xs @ w.T + b)
    return np.asarray(((1.0 - h ** 2) * hw) @ w)


def _shapley(xs: np.ndarray, params: tuple[np.ndarray, ...]) -> np.ndarray:
    d = xs.shape[1]
    out = np.zeros_like(xs)
    for i, j in itertools.product(range(xs.shape[0]), range(d)):
        others = [k for k in range(d) if k != j]
        for r in range(d):
            for s in itertools.combinations(others, r):
                m = np.zeros(d)
                m[list(s)] = 1.0
                with_j = m.copy()
                with_j[j] = 1.0
                wt = math.factorial(r) * math.factorial(d - r - 1) / math.factorial(d)
                out[i, j] += wt * (_f((with_j * xs[i])[None], *params)[0] - _f((m * xs[i])[None], *params)[0])
    return out


def _path_integral(xs: np.ndarray, params: tuple[np.ndarray, ...], steps: int = 4000) -> np.ndarray:
    w, b, hw, _ = params
    alphas = (np.arange(steps) + 0.5) / steps
    avg = np.mean([_grad(a * xs, w, b, hw) for a in alphas], axis=0)
    return np.asarray(xs * avg)


@pytest.mark.parametrize("method", ["saliency", "input_x_gradient", "integrated_gradients",
                                    "exact_shapley", "kernel_shap", "occlusion", "deeplift"])
def test_a_target_calling_a_module_with_trainable_weights_is_explained(method: str) -> None:
    model, head, x = _setup()
    params = _hand(model, head)
    xs = x.double().numpy()
    attr = tribute.explain(model, x, method, target=lambda y: head(y)[:, 0], baseline=torch.zeros(3))
    got = attr.values.detach().double().numpy()
    if method == "saliency":
        truth = _grad(xs, *params[:3])
    elif method == "input_x_gradient":
        truth = xs * _grad(xs, *params[:3])
    elif method in ("exact_shapley", "kernel_shap"):
        truth = _shapley(xs, params)
    elif method == "occlusion":
        truth = np.stack([[_f(xs[i:i + 1], *params)[0] - _f((xs[i] * (np.arange(3) != j))[None], *params)[0]
                           for j in range(3)] for i in range(xs.shape[0])])
    elif method == "integrated_gradients":
        truth = _path_integral(xs, params)
        np.testing.assert_allclose(got, truth, atol=5e-3)  # the method's own quadrature
        truth = got  # and completeness below
    else:  # deeplift's rescale rule on a Tanh between two linear maps, baseline 0
        w, b, hw, _ = params
        z, z0 = xs @ w.T + b, b[None]
        truth = ((np.tanh(z) - np.tanh(z0)) / (z - z0) * hw) @ w * xs
    np.testing.assert_allclose(got, truth, atol=1e-5)
    if method in ("integrated_gradients", "deeplift", "exact_shapley", "kernel_shap"):
        np.testing.assert_allclose(got.sum(1), _f(xs, *params) - _f(np.zeros((1, 3)), *params), atol=1e-5)
    # the head is left as it was: no gradient accumulated, still trainable
    assert head.weight.grad is None and head.bias.grad is None
    assert head.weight.requires_grad and head.bias.requires_grad


def test_a_module_target_with_two_columns_and_a_background_set() -> None:
    model, head, x = _setup()
    params = _hand(model, head)
    w, b, _, _ = params
    hw, hb = (p.detach().double().numpy() for p in head.parameters())
    bg = torch.zeros(2, 3)
    bg[1] = 0.5
    attr = tribute.explain(model, x, "exact_shapley", target=lambda y: head(y), baseline=bg)
    got = attr.values.detach().double().numpy()  # samples x targets x features
    xs = x.double().numpy()
    for k in range(2):
        # the background game averages the value over background rows: Shapley is linear in
        # the game, so the credits are the mean of the per-baseline credits
        per = [_shapley(xs - z[None], (w, b + w @ z, hw[k], hb[k])) for z in bg.double().numpy()]
        np.testing.assert_allclose(got[:, k], np.mean(per, axis=0), atol=1e-5)
