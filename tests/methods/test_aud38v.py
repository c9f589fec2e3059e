"""aud38v: region methods, RISE, Sobol and CAM against references computed outside tribute.

Regressions (failed before the fix):
* extremal perturbation with ``perturbation="baseline"`` and a background set of as many rows
  as the batch used row ``i`` as sample ``i``'s baseline, and ignored a background's weights
  (the documented perturbation is the set's mean);
* Grad-CAM on a layer the forward pass never calls raised the engine's internal
  ``RuntimeError("gradient run without leaves")``;
* non-numeric ``scales=`` (XRAI) / ``areas=`` (extremal) raised a bare ``ValueError``.

Reference checks (right before and after): RISE against its closed form over the same masks;
Grad-CAM against Captum and Grad-CAM++ against a hand implementation on a CNN with batch norm,
a residual depthwise block and adaptive pooling; the submodular greedy on superpixels against a
direct greedy; Sobol total indices against the closed form of an additive + product model.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError, UnsupportedModelError
from tribute.methods.regions._common import normalise
from tribute.methods.regions.segmentation import felzenszwalb
from tribute.methods.rise import smooth_masks
from tribute_testing import seed_batchnorm


def _hooks(m: nn.Module) -> int:
    return sum(len(x._forward_hooks) + len(x._forward_pre_hooks) + len(x._backward_hooks)
               for x in m.modules())


class _Block(nn.Module):
    """Depthwise conv, batch norm, pointwise conv, residual."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.bn = nn.BatchNorm2d(c)
        self.pw = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.pw(torch.relu(self.bn(self.dw(x)))))


class _ResNetLike(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.stem = nn.Conv2d(cin, 6, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(6)
        self.b1 = _Block(6)
        self.down = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.b2 = _Block(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)
        self.double()
        seed_batchnorm(self, g)  # batch-norm statistics that matter (float64 draws)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn0(self.stem(x)))
        x = self.b1(x)
        x = torch.relu(self.down(x))
        x = self.b2(x)
        return self.fc(self.pool(x).flatten(1))


# --------------------------------------------------------------------------- regressions
def test_extremal_baseline_perturbation_is_the_weighted_mean_of_a_background_set() -> None:
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Tanh(), nn.Flatten(),
                        nn.Linear(3 * 8 * 8, 2)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64, generator=g)
    kw: dict = dict(method="extremal_perturbation", target=1, perturbation="baseline",
                    areas=(0.25,), steps=6, progress=False)
    # a set of as many rows as the batch is a background set, not one baseline per sample
    bg = torch.rand(2, 1, 8, 8, dtype=torch.float64, generator=g)
    a = tribute.explain(net, x, baseline=tribute.Background(bg), **kw)
    b = tribute.explain(net, x, baseline=bg.mean(0), **kw)
    np.testing.assert_allclose(a.extra["final_values"], b.extra["final_values"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(a.values), np.asarray(b.values), rtol=0, atol=1e-12)
    # weighted rows: the weighted mean
    bg3 = torch.rand(3, 1, 8, 8, dtype=torch.float64, generator=g)
    w = np.array([0.7, 0.2, 0.1])
    a = tribute.explain(net, x, baseline=tribute.Background(bg3, weights=w), **kw)
    mean = (torch.from_numpy(w)[:, None, None, None] * bg3).sum(0)
    b = tribute.explain(net, x, baseline=mean, **kw)
    np.testing.assert_allclose(a.extra["final_values"], b.extra["final_values"], rtol=0, atol=1e-12)


class _Unused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(2, 2, 3, padding=1)
        self.spare = nn.Conv2d(2, 2, 3)  # the last Conv2d (Grad-CAM's default), never called
        self.fc = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.c(x)).mean((2, 3)))


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_pp"])
@pytest.mark.parametrize("layer", ["spare", None])
def test_cam_on_a_layer_the_forward_pass_never_calls_says_so(method: str, layer: str | None) -> None:
    net = _Unused().double()
    x = torch.rand(2, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(UnsupportedModelError, match=r"'spare' \(Conv2d\).*never calls it.*e\.g\. 'c'"):
        tribute.explain(net, x, method=method, target=0, layer=layer, progress=False)
    assert _hooks(net) == 0
    # a layer that is used still works, and its error names the other layers
    tribute.explain(net, x, method=method, target=0, layer="c", progress=False)
    with pytest.raises(UnsupportedModelError, match=r"'fc' \(Linear\) outputs.*e\.g\. 'c', 'spare'\."):
        tribute.explain(net, x, method=method, target=0, layer="fc", progress=False)


def test_non_numeric_scales_and_areas_are_refused_naming_the_argument() -> None:
    net = _Unused().double()
    x = torch.rand(2, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(InputError, match=r"scales=\('a',\) must be .*positive numbers"):
        tribute.explain(net, x, method="xrai", target=0, scales=("a",), budget=5, progress=False)
    with pytest.raises(InputError, match=r"areas=\('a',\) must be .*fractions in \(0, 1\)"):
        tribute.explain(net, x, method="extremal_perturbation", target=0, areas=("a",),
                        budget=5, progress=False)


# --------------------------------------------------------------------------- references
def test_rise_is_its_closed_form_over_the_same_masks() -> None:
    # 3 channels, non-square, per-sample targets, a baseline: S = sum_k v(M_k) M_k / (N p)
    g = torch.Generator().manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(),
                        nn.Linear(4 * 10 * 7, 3)).double()
    x = torch.rand(2, 3, 10, 7, dtype=torch.float64, generator=g)
    base = torch.full((3, 10, 7), 0.2, dtype=torch.float64)
    tg = torch.tensor([2, 0])
    n, s, p = 40, 4, 0.4
    a = tribute.explain(net, x, method="rise", target=tg, baseline=base, budget=n + 1, s=s, p=p,
                        progress=False)
    c = tribute.explain(net, x, method="rise", target=tg, baseline=base, budget=n + 1, s=s, p=p,
                        center=True, progress=False)
    assert a.n_evals == n + 1 and a.n_rows == 2 * (n + 1)
    # the method's draws, re-made: grid cells, then the shifts (seed 0)
    gen = torch.Generator().manual_seed(0)
    grid = (torch.rand(n, s, s, generator=gen, dtype=torch.float64) < p).double()
    shifts = torch.stack([torch.randint(0, math.ceil(10 / s), (n,), generator=gen),
                          torch.randint(0, math.ceil(7 / s), (n,), generator=gen)], 1)
    m = smooth_masks(grid, shifts, 10, 7)
    with torch.no_grad():
        pts = base + m[None, :, None] * (x[:, None] - base)
        v = net(pts.reshape(-1, 3, 10, 7)).reshape(2, n, 3)[torch.arange(2), :, tg]
    ref = torch.einsum("bk,khw->bhw", v, m) / (n * p)
    ref_c = torch.einsum("bk,khw->bhw", v - v.mean(1, keepdim=True), m) / ((n - 1) * p)
    vals = np.asarray(a.values).reshape(2, 3, 10, 7)
    np.testing.assert_allclose(vals, ref[:, None].expand(-1, 3, -1, -1).numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.asarray(c.values).reshape(2, 3, 10, 7),
                               ref_c[:, None].expand(-1, 3, -1, -1).numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(("cin", "h", "w"), [(1, 9, 13), (3, 12, 7)])
def test_grad_cam_and_pp_on_a_batch_norm_residual_depthwise_cnn(cin: int, h: int, w: int) -> None:
    captum = pytest.importorskip("captum.attr")
    net = _ResNetLike(cin)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(4, cin, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    tg = torch.tensor([0, 3, 1, 4])
    for layer in ("b1", "down", "b2.pw", "b1.dw"):
        mod = dict(net.named_modules())[layer]
        for relu in (True, False):
            a = tribute.explain(net, x, method="grad_cam", target=tg, layer=layer, relu=relu,
                                progress=False)
            cam = captum.LayerGradCam(net, mod).attribute(x, target=tg, relu_attributions=relu)
            ref = captum.LayerAttribution.interpolate(cam, (h, w), interpolate_mode="bilinear")
            np.testing.assert_allclose(np.asarray(a.values),
                                       ref.expand(-1, cin, -1, -1).detach().numpy(), atol=1e-12)
        # Grad-CAM++ by hand: alpha = g^2 / (2 g^2 + sum A g^3), weights sum alpha relu(g)
        acts: dict[str, torch.Tensor] = {}
        hook = mod.register_forward_hook(lambda m, i, o, acts=acts: acts.__setitem__("a", o))
        try:
            out = net(x)
        finally:
            hook.remove()
        act = acts["a"]
        (grad,) = torch.autograd.grad(out.gather(1, tg[:, None]).sum(), act)
        act = act.detach()
        den = 2 * grad**2 + act.sum((2, 3), keepdim=True) * grad**3
        alpha = torch.where(den != 0, grad**2 / torch.where(den != 0, den, 1.0), 0.0)
        weights = (alpha * grad.clamp_min(0)).sum((2, 3))
        camp = torch.relu((weights[:, :, None, None] * act).sum(1, keepdim=True))
        refp = torch.nn.functional.interpolate(camp, (h, w), mode="bilinear", align_corners=False)
        a = tribute.explain(net, x, method="grad_cam_pp", target=tg, layer=layer, progress=False)
        np.testing.assert_allclose(np.asarray(a.values), refp.expand(-1, cin, -1, -1).numpy(),
                                   atol=1e-12)
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert _hooks(net) == 0 and not any(m.training for m in net.modules())


def test_layer_grad_cam_on_channels_of_residual_blocks_matches_captum() -> None:
    captum = pytest.importorskip("captum.attr")
    net = _ResNetLike(3)
    x = torch.randn(3, 3, 12, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    tg = torch.tensor([1, 4, 0])
    for layer in ("b1", "down", "b2.bn", "b2"):
        a = tribute.explain(net, x, method="layer_grad_cam", target=tg, progress=False,
                            players=tribute.components(net, layer, unit="channel"))
        ref = captum.LayerGradCam(net, dict(net.named_modules())[layer]).attribute(
            x, target=tg, relu_attributions=False, attr_dim_summation=False).sum((2, 3))
        np.testing.assert_allclose(np.asarray(a.values), ref.detach().numpy(), atol=1e-12)


def test_submodular_on_superpixels_is_the_direct_greedy_with_per_sample_regions() -> None:
    # two images with different superpixel counts (5 and 3), per-sample targets, a baseline
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(),
                        nn.Linear(4 * 10 * 12, 3)).double()
    x = torch.zeros(2, 3, 10, 12, dtype=torch.float64)
    x[0, :, :5] = 0.8
    x[0, 0, :, 6:] += 0.5
    x[0, 1, 7:, :4] = 0.3
    x[1, :, 3:8, 2:9] = 0.6
    x[1, 2, :, :2] = 0.9
    x += 0.01 * torch.rand(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    base = torch.full((3, 10, 12), 0.1, dtype=torch.float64)
    tg = torch.tensor([2, 0])
    a = tribute.explain(net, x, method="submodular_regions", target=tg, baseline=base,
                        search="greedy", budget=600, min_size=0.05, progress=False)
    counts = []
    for b in range(2):
        lab = torch.from_numpy(felzenszwalb(normalise(x[b].numpy()), scale=150 / 255,
                                            sigma=0.8 * 12 / 224, min_size=6))
        n = int(lab.max()) + 1
        counts.append(n)

        def f(keep_ids: list[int], b: int = b, lab: torch.Tensor = lab) -> float:
            keep = torch.isin(lab, torch.tensor(keep_ids, dtype=torch.long)).double()
            with torch.no_grad():
                kept = net((base + keep * (x[b] - base))[None])[0, tg[b]]
                removed = net((base + (1 - keep) * (x[b] - base))[None])[0, tg[b]]
            return float(kept - removed)

        chosen: list[int] = []
        for _ in range(n):
            chosen.append(max((i for i in range(n) if i not in chosen), key=lambda i: f([*chosen, i])))
        rank = a.extra["region_rank"][b, 0]
        assert np.argsort([int(rank[lab.numpy() == r][0]) for r in range(n)]).tolist() == chosen
        np.testing.assert_allclose(a.extra["objective"][b, 0, :n],
                                   [f(chosen[: i + 1]) for i in range(n)], rtol=1e-10)
    assert counts == [5, 3]
    assert a.n_evals == 2 + 2 * sum(range(1, 6))  # v(N), v(empty), 2 per candidate


def test_sobol_total_indices_match_the_closed_form_of_an_additive_plus_product_model() -> None:
    # v(m) = m0 + 2 m1 + 3 m2 m3 (m4 unused), m ~ U[0, 1]^5: Var = 5/12 + 7 * 9/144 and
    # S_T = (1/12, 4/12, 9/36, 9/36, 0) / Var
    def f(z: torch.Tensor) -> torch.Tensor:
        return (z[:, 0] + 2 * z[:, 1] + 3 * z[:, 2] * z[:, 3])[:, None]

    var = 5 / 12 + 7 * 9 / 144
    truth = np.array([1 / 12, 4 / 12, 9 / 36, 9 / 36, 0.0]) / var
    x = torch.ones(1, 5, dtype=torch.float64)
    vals, ses = [], []
    for seed in range(4):
        r = tribute.explain(f, x, method="sobol", baseline=torch.zeros(5, dtype=torch.float64),
                            budget=256 * 7 + 1, seed=seed, progress=False)
        vals.append(np.asarray(r.values)[0])
        ses.append(np.asarray(r.stderr)[0])
    mean, se = np.mean(vals, 0), np.sqrt(np.mean(np.square(ses), 0) / 4)
    assert np.all(np.abs(mean[:4] - truth[:4]) < 4 * se[:4])
    assert np.all(np.abs(np.asarray(vals)[:, 4]) < 1e-12)


def test_layer_grad_cam_warns_on_neuron_units_of_a_convolution() -> None:
    # components(..., unit="neuron") (the default) on a Conv2d makes the image columns the
    # players; layer_grad_cam then averaged the gradient over channels and rows, silently
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(3, 2)).double()
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match=r"'0' \(Conv2d\) are neuron units.*unit='channel'"):
        tribute.explain(net, x, method="layer_grad_cam", target=1, progress=False,
                        players=tribute.components(net, "0"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tribute.explain(net, x, method="layer_grad_cam", target=1, progress=False,
                        players=tribute.components(net, "0", unit="channel"))
