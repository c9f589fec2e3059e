"""Parity with Captum's ``Occlusion`` and ``FeatureAblation`` (float64 models, 1e-6).

Captum accumulates these attributions in float32, so agreement is ~1e-8 rather than 1e-15;
tribute itself matches the float64 definition to 1e-12 (see test_perturbation_methods.py).
LIME is not compared: Captum's Lime draws its own samples, so only identical samples would be
comparable; LIME is tested by exact recovery and against scikit-learn fits instead.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tribute

captum_attr = pytest.importorskip("captum.attr")

ATOL = 1e-6


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.Tanh(),
        nn.Flatten(), nn.Linear(6 * 3 * 3, 5),
    ).double().eval()


def _mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(9, 12), nn.ReLU(), nn.Linear(12, 3)).double().eval()


@pytest.mark.parametrize("window,stride", [
    ((1, 3, 3), (1, 1, 1)),
    ((2, 3, 3), (1, 2, 2)),
    ((1, 4, 2), (1, 3, 2)),
    ((2, 10, 10), 1),
    ((1, 5, 3), (1, 2, 3)),
])
def test_occlusion_cnn(window: tuple[int, ...], stride: object) -> None:
    model = _cnn()
    x = torch.randn(3, 2, 10, 10, dtype=torch.float64)
    base = torch.randn(1, 2, 10, 10, dtype=torch.float64)
    ours = tribute.explain(model, x, method="occlusion", target=3, baseline=base[0],
                           window=window, stride=stride)
    ref = captum_attr.Occlusion(model).attribute(
        x, sliding_window_shapes=window, strides=stride, baselines=base, target=3,
        perturbations_per_eval=64)
    torch.testing.assert_close(ours.values, ref.double(), atol=ATOL, rtol=0)


def test_occlusion_mlp_per_sample_targets_and_scalar_baseline() -> None:
    model = _mlp()
    x = torch.randn(4, 9, dtype=torch.float64)
    target = torch.tensor([0, 2, 1, 2])
    ours = tribute.explain(model, x, method="occlusion", target=target, baseline=0.5,
                           window=(3,), stride=(2,))
    ref = captum_attr.Occlusion(model).attribute(
        x, sliding_window_shapes=(3,), strides=2, baselines=0.5, target=target)
    torch.testing.assert_close(ours.values, ref.double(), atol=ATOL, rtol=0)


def test_occlusion_two_inputs() -> None:
    torch.manual_seed(2)
    lin = nn.Linear(4 * 5 + 6, 2).double()

    def f(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.tanh(lin(torch.cat([a.flatten(1), b], 1)))

    a = torch.randn(2, 4, 5, dtype=torch.float64)
    b = torch.randn(2, 6, dtype=torch.float64)
    ours = tribute.explain(f, (a, b), method="occlusion", target=1,
                           window=((2, 2), (3,)), stride=((1, 2), (1,)))
    ref = captum_attr.Occlusion(f).attribute(
        (a, b), sliding_window_shapes=((2, 2), (3,)), strides=((1, 2), (1,)), target=1)
    for o, r in zip(ours.values, ref):
        torch.testing.assert_close(o, r.double(), atol=ATOL, rtol=0)


def test_feature_ablation_cnn_with_patches_and_custom_mask() -> None:
    model = _cnn()
    x = torch.randn(3, 2, 10, 10, dtype=torch.float64)
    base = torch.randn(3, 2, 10, 10, dtype=torch.float64)  # one baseline per sample
    ours = tribute.explain(model, x, method="feature_ablation", target=1, baseline=base,
                           groups=tribute.patches(5))
    mask = torch.as_tensor(ours.groups).reshape(1, 2, 10, 10)
    ref = captum_attr.FeatureAblation(model).attribute(
        x, baselines=base, target=1, feature_mask=mask, perturbations_per_eval=8)
    # Captum spreads each group's credit over the group's elements
    spread = ours.values[:, torch.as_tensor(ours.groups)].reshape(x.shape)
    torch.testing.assert_close(spread, ref.double(), atol=ATOL, rtol=0)

    # an irregular mask shared by both channels, ids 0..6
    g = torch.randint(0, 7, (1, 1, 10, 10))
    g[0, 0, :7, 0] = torch.arange(7)
    ours = tribute.explain(model, x, method="feature_ablation", target=4, groups=g[0])
    ref = captum_attr.FeatureAblation(model).attribute(x, target=4, feature_mask=g)
    spread = ours.values[:, g.expand(1, 2, 10, 10).flatten()].reshape(x.shape)
    torch.testing.assert_close(spread, ref.double(), atol=ATOL, rtol=0)


def test_feature_ablation_mlp_dense_and_grouped() -> None:
    model = _mlp()
    x = torch.randn(5, 9, dtype=torch.float64)
    ours = tribute.explain(model, x, method="feature_ablation", target=2, baseline=0.25)
    ref = captum_attr.FeatureAblation(model).attribute(x, target=2, baselines=0.25)
    torch.testing.assert_close(ours.values, ref.double(), atol=ATOL, rtol=0)
    groups = torch.tensor([0, 0, 1, 2, 2, 2, 3, 1, 0])
    ours = tribute.explain(model, x, method="feature_ablation", target=0, groups=groups)
    ref = captum_attr.FeatureAblation(model).attribute(x, target=0, feature_mask=groups[None])
    torch.testing.assert_close(ours.values[:, groups], ref.double(), atol=ATOL, rtol=0)
