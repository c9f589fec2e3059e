"""Guided backpropagation and deconvolution: parity with Captum (test-only import) to 1e-6 in float64."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import tribute

captum_attr = pytest.importorskip("captum.attr")

try:
    from ._grad_models import cnn, img, mlp, relu_pool_cnn, tab
    from ._lrp_models import images, vgg
except ImportError:
    from _grad_models import cnn, img, mlp, relu_pool_cnn, tab  # type: ignore[no-redef]
    from _lrp_models import images, vgg  # type: ignore[no-redef]

TARGETS = [0, 2]


def _cases() -> list[tuple[str, nn.Module, torch.Tensor]]:
    return [
        ("mlp-relu", mlp(act=nn.ReLU), tab(4)),
        ("cnn", cnn(), img(3)),
        ("relu-pool-inplace", relu_pool_cnn(inplace=True), img(3)),
        ("vgg-bn", vgg(), images(3)),
    ]


@pytest.mark.parametrize("name,model,x", _cases(), ids=[c[0] for c in _cases()])
@pytest.mark.parametrize("method,cls", [("guided_backprop", "GuidedBackprop"), ("deconvolution", "Deconvolution")])
def test_parity_with_captum(name: str, model: nn.Module, x: torch.Tensor, method: str, cls: str) -> None:
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inplace = [getattr(m, "inplace", None) for m in model.modules()]
    ours = tribute.explain(model, x, method=method, target=TARGETS, progress=False)
    got = ours.flat().reshape(x.shape[0], len(TARGETS), *x.shape[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = getattr(captum_attr, cls)(model)
        theirs = np.stack([ref.attribute(x.clone(), target=t).detach().numpy() for t in TARGETS], axis=1)
    assert np.abs(theirs).max() > 0
    np.testing.assert_allclose(got, theirs, atol=1e-6, rtol=0)
    # the modified backward really differs from the plain gradient on these ReLU models
    sal = tribute.explain(model, x, method="saliency", target=TARGETS, progress=False).flat()
    assert np.abs(sal.reshape(got.shape) - got).max() > 1e-6
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert inplace == [getattr(m, "inplace", None) for m in model.modules()]
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())


class _Twice(nn.Module):
    """One ReLU module called twice in a forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(5, 7), nn.Linear(7, 6), nn.Linear(6, 2)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.relu(self.b(self.relu(self.a(x)))))


def test_reused_relu_matches_two_modules() -> None:
    torch.manual_seed(0)
    twice = _Twice().double().eval()
    unrolled = nn.Sequential(twice.a, nn.ReLU(), twice.b, nn.ReLU(), twice.c)
    x = torch.randn(4, 5, dtype=torch.float64)
    for method in ("guided_backprop", "deconvolution"):
        a = tribute.explain(twice, x, method=method, target=1, progress=False).flat()
        b = tribute.explain(unrolled, x, method=method, target=1, progress=False).flat()
        np.testing.assert_allclose(a, b, atol=1e-12)
