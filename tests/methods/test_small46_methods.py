"""small46: Grad-CAM's ``channel_axis`` and a channels-last 1 x 1 map.

- A ConvNeXt-style block (depthwise conv, permute, LayerNorm and Linear on each position,
  permute back, residual) at C == h == w: its output's shape and strides cannot tell the layout,
  and the automatic reading took it channels-last (map error 0.040 for a map up to 0.022 at
  C = 6; 0.0081 of 0.0053 at C = 8). ``channel_axis=1`` / ``-1`` now says which.
- A channels-last ``(batch, 1, 1, C)`` layer output (after a pooling in channels-last layout)
  gave one value for the whole image, where the channels-first ``(batch, C, 1, 1)`` one is
  refused: now refused the same way.

Truth: Grad-CAM / Grad-CAM++ by hand from autograd gradients at the layer's output
(``tribute_testing.output_and_activation``), channels moved to axis 1 where laid out last.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tribute
from tribute.errors import InputError, UnsupportedModelError
from tribute_testing import grad_cam_weights, output_and_activation, randn_init


class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.ln = nn.LayerNorm(c)
        self.pw = nn.Linear(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pw(self.ln(self.dw(x).permute(0, 2, 3, 1))).permute(0, 3, 1, 2)


class _ConvNeXtToy(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 1)
        self.block = _Block(c)
        self.head = nn.Linear(c * c * c, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.block(self.stem(x))).flatten(1))


class _PoolLast(nn.Module):
    """A Linear on a channels-last (batch, 1, 1, C) pooled map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.lin = nn.Linear(6, 6)
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x)).permute(0, 2, 3, 1).mean((1, 2), keepdim=True)
        return self.head(torch.tanh(self.lin(y)).flatten(1))


def _hand(model: nn.Module, x: torch.Tensor, layer: str, target: torch.Tensor, last: bool,
          pp: bool) -> torch.Tensor:
    out, a = output_and_activation(model, layer, x)
    (g,) = torch.autograd.grad(out[torch.arange(x.shape[0]), target].sum(), a)
    a, g = a.detach(), g.detach()
    if last:
        a, g = a.movedim(3, 1), g.movedim(3, 1)
    wts = grad_cam_weights(a, g, pp)
    cam = F.interpolate((wts * a).sum(1, keepdim=True), size=tuple(x.shape[-2:]), mode="bilinear",
                        align_corners=False)
    return cam.expand(-1, x.shape[1], -1, -1)


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_pp"])
@pytest.mark.parametrize("c", [6, 8])
@pytest.mark.parametrize(("layer", "axis"), [("block", 1), ("block.pw", -1), ("block.ln", 3), ("stem", 1),
                                             ("block.dw", 1)])
def test_channel_axis_reads_square_layer_outputs(method: str, c: int, layer: str, axis: int) -> None:
    model = randn_init(_ConvNeXtToy(c), c)
    x = torch.rand(2, 3, c, c, generator=torch.Generator().manual_seed(c), dtype=torch.float64) - 0.3
    target = torch.tensor([0, 2])
    truth = _hand(model, x, layer, target, axis != 1, method == "grad_cam_pp")
    got = tribute.explain(model, x, method, target=target, layer=layer, relu=False, channel_axis=axis,
                          progress=False)
    assert truth.abs().max() > 1e-4
    assert torch.allclose(torch.as_tensor(got.values), truth, rtol=0, atol=1e-12)


@pytest.mark.parametrize("layer", ["block.pw", "block.ln", "stem", "block.dw"])
def test_automatic_reading_unchanged_where_the_model_tells(layer: str) -> None:
    """(the layers BASE read right keep their reading without channel_axis)"""
    model = randn_init(_ConvNeXtToy(6), 1)
    x = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.tensor([1, 1])
    truth = _hand(model, x, layer, target, layer in ("block.pw", "block.ln"), False)
    got = tribute.explain(model, x, "grad_cam", target=target, layer=layer, relu=False, progress=False)
    assert torch.allclose(torch.as_tensor(got.values), truth, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_pp"])
@pytest.mark.parametrize("axis", [None, -1, 3])
def test_channels_last_one_by_one_map_is_refused(method: str, axis: int | None) -> None:
    model = randn_init(_PoolLast(), 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(UnsupportedModelError, match=r"1 x 1 map \(2, 1, 1, 6\)"):
        tribute.explain(model, x, method, target=0, layer="lin", channel_axis=axis, progress=False)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert isinstance(model, _PoolLast)
    assert not model.training and not model.lin._forward_hooks and not model._forward_hooks


def test_channel_axis_is_checked() -> None:
    model = randn_init(_ConvNeXtToy(6), 0)
    x = torch.rand(1, 3, 6, 6, dtype=torch.float64)
    for bad in (2, 0, "last", True, 1.0):
        with pytest.raises(InputError, match="channel_axis"):
            tribute.explain(model, x, "grad_cam", target=0, layer="block", channel_axis=bad, progress=False)


# --- EG stdevs / noise-wrapper noise as 0-d tensors ------------------------------------------

_NOISY = [("expected_gradients", "stdevs"), ("smoothgrad", "noise"), ("vargrad", "noise")]


@pytest.mark.parametrize(("method", "key"), _NOISY)
@pytest.mark.parametrize("make", [lambda v: torch.tensor(v, dtype=torch.float64), lambda v: torch.tensor(v),
                                  lambda v: __import__("numpy").array(v), lambda v: torch.tensor(v).requires_grad_()])
def test_a_zero_d_scale_is_the_number_it_holds(method: str, key: str, make: Any) -> None:
    import numpy as np

    net = nn.Linear(4, 3).double()
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    kw: dict[str, Any] = {"target": 0, "progress": False, "seed": 1, "n_samples": 8}
    if method == "expected_gradients":
        kw["baseline"] = tribute.Background(torch.randn(5, 4, generator=torch.Generator().manual_seed(1),
                                                        dtype=torch.float64))
    given: dict[str, Any] = {key: make(0.25)}
    plain: dict[str, Any] = {key: 0.25}
    got = tribute.explain(net, x, method, **kw, **given)
    truth = tribute.explain(net, x, method, **kw, **plain)
    np.testing.assert_allclose(np.asarray(got.values), np.asarray(truth.values), rtol=1e-9, atol=1e-12)
    assert got.params[key] == 0.25 and type(got.params[key]) is float


@pytest.mark.parametrize(("method", "key"), _NOISY)
@pytest.mark.parametrize("bad", [torch.tensor(True), torch.tensor([0.1]), torch.tensor(float("nan")),
                                 torch.tensor(-0.5), torch.tensor(1 + 1j)])
def test_bad_zero_d_scales_are_still_refused(method: str, key: str, bad: torch.Tensor) -> None:
    net = nn.Linear(4, 3).double()
    x = torch.randn(2, 4, dtype=torch.float64)
    given: dict[str, Any] = {key: bad}
    with pytest.raises(InputError, match=key):
        tribute.explain(net, x, method, target=0, progress=False, **given)


# --- tree_shap, output="prob" on an XGBoost binary:hinge model ------------------------------


def test_tree_shap_refuses_prob_of_a_hinge_model_as_not_additive() -> None:
    """An XGBClassifier(binary:hinge) with output='prob' got the margin's credits (full_values
    0.15 / 0.17 / 0.36) where the explained probability is the 0/1 class (exact Shapley: -1.0
    for a credit of -0.505); its Booster was refused blaming early stopping."""
    import numpy as np

    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    clf = xgb.XGBClassifier(objective="binary:hinge", n_estimators=5, max_depth=2).fit(
        x, (x[:, 0] + x[:, 1] > 0).astype(int))
    base = x.mean(0)
    truth = tribute.explain(clf, x[:3], "exact_shapley", output="prob", baseline=base, target=1, progress=False)
    np.testing.assert_allclose(np.asarray(truth.full_values).ravel(), clf.predict_proba(x[:3])[:, 1])
    for model in (clf, clf.get_booster()):
        for out in ("prob", "log_prob"):
            with pytest.raises(UnsupportedModelError, match=r"binary:hinge.*not additive"):
                tribute.explain(model, x[:3], "tree_shap", output=out, baseline=base, progress=False)
        # the margin is still explained, as before
        kws: list[dict[str, Any]] = [{"output": "raw"}, {}]
        for kw in kws:
            attr = tribute.explain(model, x[:3], "tree_shap", baseline=base, target=1, progress=False, **kw)
            np.testing.assert_allclose(np.asarray(attr.full_values).ravel(),
                                       clf.predict(x[:3], output_margin=True), atol=1e-5)
