"""rev39b: SSIM against a constant re-explanation is defined (Wang et al.'s constants follow the
first map's range) and must not be forced to 0 by the constant-explanation rule of small39."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.metrics import evaluate

pytestmark = pytest.mark.filterwarnings("ignore::tribute.StderrWarning")


def _hand_ssim(a: np.ndarray, b: np.ndarray, k: int = 7) -> float:
    """Wang et al. (2004), uniform k x k windows, sample (co)variances, valid positions only,
    C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L the range of ``a`` -- in plain numpy."""
    rng = a.max() - a.min()
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    vals = []
    for i in range(a.shape[0] - k + 1):
        for j in range(a.shape[1] - k + 1):
            wa, wb = a[i:i + k, j:j + k].ravel(), b[i:i + k, j:j + k].ravel()
            ma, mb = wa.mean(), wb.mean()
            cab = ((wa - ma) * (wb - mb)).sum() / (k * k - 1)
            vals.append((2 * ma * mb + c1) * (2 * cab + c2)
                        / ((ma**2 + mb**2 + c1) * (wa.var(ddof=1) + wb.var(ddof=1) + c2)))
    return float(np.mean(vals))


def test_ssim_against_an_all_zero_re_explanation_is_the_defined_ssim_not_zero() -> None:
    # a sparse 16x16 saliency map against the all-zero map of a dead randomised network: the
    # windows away from its few credits agree, SSIM ~0.5; small39 forced it to 0 ("changed
    # completely", the best sanity score) for every layer
    lin = torch.nn.Linear(256, 2).double()
    w = torch.zeros(2, 256, dtype=torch.float64)
    w[0, [37, 38, 53]] = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.zero_()
    net = torch.nn.Sequential(torch.nn.Flatten(), lin)
    x = torch.ones(2, 1, 16, 16, dtype=torch.float64)
    attr = tribute.explain(net, x, method="saliency", target=0)

    def model_explain(m: Any, xx: Any, **kw: Any) -> tribute.Attribution:
        new = tribute.explain(m, xx, method="saliency", **kw)
        return dataclasses.replace(new, values=np.zeros_like(np.asarray(new.values)))

    r = evaluate(net, x, attr, metric="model_randomisation", explain=model_explain, similarity="ssim")
    orig = np.abs(w[0].numpy()).reshape(16, 16)
    want = _hand_ssim(orig, np.zeros((16, 16)))
    assert 0.3 < want < 0.99
    np.testing.assert_allclose(np.asarray(r.extra["per_layer"]), want, rtol=1e-10)
    np.testing.assert_allclose(r.scores, want, rtol=1e-10)
    assert r.extra["n_constant"] == 0  # no pair was scored by the constant rule
    # a constant ORIGINAL map still takes the rule (its range is 0: SSIM is 0/0 there)
    flat = dataclasses.replace(attr, values=np.zeros_like(np.asarray(attr.values)))
    r0 = evaluate(net, x, flat, metric="model_randomisation", explain=model_explain, similarity="ssim")
    np.testing.assert_allclose(r0.scores, 1.0)
    assert r0.extra["n_constant"] == 2
