"""Parity with Zennit (test-only import) in float64 on VGG- and ResNet-style networks with BatchNorm.

Zennit imports torchvision's ResNet block classes for its ResNet canonizer; where torchvision is
not importable the test puts a stand-in module up while zennit is imported, whose
``BasicBlock`` is the torchvision-layout block of ``_lrp_models`` (so zennit's canonizer
recognises it exactly as it would recognise torchvision's).

Deliberate difference: zennit's folded BatchNorm computes ``x / sqrt(1 + eps)`` (running
variance set to 1), ours the identity; the networks here use ``eps=1e-12`` so that the two
agree to rounding (with the default ``eps=1e-5`` they differ by up to ~1e-5 relative).
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute_testing import gap_of

try:
    from . import _lrp_models as lm
except ImportError:
    import _lrp_models as lm  # type: ignore[no-redef]


def _import_zennit() -> types.ModuleType:
    try:
        import torchvision.models.resnet  # noqa: F401
    except Exception:  # not installed, or built for another torch
        stubs = {name: types.ModuleType(name) for name in ("torchvision", "torchvision.models", "torchvision.models.resnet")}
        stubs["torchvision.models.resnet"].BasicBlock = lm.BasicBlock  # type: ignore[attr-defined]
        stubs["torchvision.models.resnet"].Bottleneck = lm.Bottleneck  # type: ignore[attr-defined]
        saved = {k: sys.modules.get(k) for k in stubs}
        sys.modules.update(stubs)
        try:
            return pytest.importorskip("zennit")
        finally:
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v
    return pytest.importorskip("zennit")


zennit = _import_zennit()
from zennit import composites as zc  # noqa: E402
from zennit import torchvision as ztv  # noqa: E402

TOL = 1e-6
TARGETS = [0, 3]


def _small_eps(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 1e-12
    return model


def _zennit(model: nn.Module, x: torch.Tensor, composite: object) -> np.ndarray:
    out = []
    for t in TARGETS:
        with composite.context(model) as modified:  # type: ignore[attr-defined]
            xi = x.clone().requires_grad_(True)
            y = modified(xi)
            seed = torch.zeros_like(y)
            seed[:, t] = y[:, t]  # start from f_t(x): relevance, not 1
            (rel,) = torch.autograd.grad(y, xi, seed)
        out.append(rel.detach().numpy())
    return np.stack(out, axis=1)


def _ours(model: nn.Module, x: torch.Tensor, composite: str, **kw: Any) -> tribute.Attribution:
    return tribute.explain(model, x, method="lrp", composite=composite, target=TARGETS, progress=False, **kw)


NETS = {"vgg": (lm.vgg, ztv.VGGCanonizer), "resnet": (lm.resnet, ztv.ResNetCanonizer)}


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1"])
def test_parity_with_zennit(net: str, composite: str) -> None:
    build, canonizer = NETS[net]
    model = _small_eps(build())
    x = lm.images(3)
    kw: dict[str, object] = {}
    if composite == "epsilon_plus_flat":
        theirs_c = zc.EpsilonPlusFlat(canonizers=[canonizer()])
    elif composite == "epsilon_gamma_box":
        theirs_c = zc.EpsilonGammaBox(low=0.0, high=1.0, canonizers=[canonizer()])
        kw = {"low": 0.0, "high": 1.0}
    else:
        theirs_c = zc.EpsilonAlpha2Beta1(canonizers=[canonizer()])
    ours = _ours(model, x, composite, **kw)
    theirs = _zennit(model, x, theirs_c)
    got = ours.values.numpy()
    assert got.shape == theirs.shape
    scale = max(1.0, float(np.abs(theirs).max()))
    np.testing.assert_allclose(got, theirs, atol=TOL * scale, rtol=0)
    # the conservation gap is reported per sample and target: sum(R) - f(x)
    f = model(x)[:, TARGETS].detach().numpy()
    np.testing.assert_allclose(gap_of(ours), got.reshape(3, 2, -1).sum(-1) - f, atol=1e-9)


def test_default_bn_eps_is_close_to_zennit() -> None:
    """With BatchNorm's default eps the only difference is zennit's x / sqrt(1 + eps) BatchNorm."""
    model = lm.vgg()
    x = lm.images(2)
    ours = _ours(model, x, "epsilon_plus_flat").values.numpy()
    theirs = _zennit(model, x, zc.EpsilonPlusFlat(canonizers=[ztv.VGGCanonizer()]))
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4 * np.abs(theirs).max())
