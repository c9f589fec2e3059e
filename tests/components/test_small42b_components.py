"""small42b: the component ``baseline=`` warning names what each method does with the units."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute import components


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2)).double()


def test_layer_grad_cam_baseline_warning_says_nothing_is_removed() -> None:
    net = _net()
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        got = tribute.explain(net, x, method="layer_grad_cam", players=components(net, "0"), target=0,
                              baseline=5.0).values.numpy()
    text = " ".join(str(w.message) for w in seen if "baseline=" in str(w.message))
    assert "method 'layer_grad_cam' does not read baseline= on component players" in text
    assert "removes units" not in text and "removed units become" not in text
    assert "nothing is removed" in text and "gradients" in text
    # the credit is the unablated activation times its gradient (no positions to average over)
    a = net[0](x).detach().requires_grad_(True)
    net[2](net[1](a))[:, 0].sum().backward()
    assert a.grad is not None
    np.testing.assert_allclose(got.reshape(3, 5), (a * a.grad).detach().numpy(), atol=1e-12)


@pytest.mark.parametrize("method", ["atp", "feature_ablation"])
def test_ablating_methods_keep_the_removal_wording(method: str) -> None:
    net = _net()
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with pytest.warns(UserWarning, match=rf"method '{method}' does not read baseline= on component players: "
                      r"it removes units by ablation='zero'"):
        tribute.explain(net, x, method=method, players=components(net, "0"), target=0, baseline=5.0)
