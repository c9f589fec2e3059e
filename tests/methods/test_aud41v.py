"""aud41v: noise wrappers, RISE, Sobol, CAM and region methods on image models the other tests
do not use (a ResNet-style net with batch norm and projection shortcuts, a depthwise-separable
MobileNet-style net with ReLU6, a tiny ViT with a patch embedding; grayscale and 3-channel,
non-square images, batches with a target per sample).

Regression (failed before the fix): submodular region search on a batch of images with
different superpixel counts gave a sample with fewer regions fewer search rounds than it gets
explained alone (every round pads each sample to the most candidates), silently; it then warned
(aud41v); since small42 every sample searches on its own budget (tests/methods/test_small42.py).

Reference checks (right before and after): SmoothGrad / SmoothGrad² / VarGrad against Captum's
NoiseTunnel fed the same noise draws; Grad-CAM against Captum's LayerGradCam and Grad-CAM++
against a hand implementation; RISE against its expectation enumerated over every smooth mask
(hand-written bilinear upsampling); Sobol total indices against Gauss-Legendre quadrature; a
batch equals its samples explained one at a time; models in training mode come back unchanged.
"""

from __future__ import annotations

import itertools
import math
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tribute
from tribute_testing import seed_batchnorm

pytestmark = pytest.mark.filterwarnings("ignore::tribute.engine.SlowRunWarning")


def _init(model: nn.Module, seed: int) -> nn.Module:
    """float64 parameters from float64 draws (the same on every CPU) and batch-norm
    statistics that matter; eval mode."""
    g = torch.Generator().manual_seed(seed)
    model.double()
    for p in model.parameters():
        fan = max(1, p[0].numel()) if p.ndim > 1 else 4
        p.data.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) / fan**0.5)
    seed_batchnorm(model, g)
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            m.weight.data.fill_(1.0)
    return model.eval()


class _Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                      if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(o + (x if self.short is None else self.short(x)))


class _ResNet(nn.Module):
    def __init__(self, cin: int = 3, ncls: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(cin, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = _Basic(8, 8, 1)
        self.layer2 = _Basic(8, 12, 2)
        self.fc = nn.Linear(12, ncls)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layer2(self.layer1(self.stem(x))).mean((2, 3)))


class _DS(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self.bn2(self.pw(F.relu6(self.bn1(self.dw(x))))))


def _mobile(cin: int = 1, ncls: int = 3) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, 6, 3, 1, 1, bias=False), nn.BatchNorm2d(6), nn.ReLU6(),
                         _DS(6, 10, 1), _DS(10, 14, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Dropout(0.2), nn.Linear(14, ncls))


class _ViT(nn.Module):
    def __init__(self, cin: int = 3, img: tuple[int, int] = (8, 12), patch: int = 4, dim: int = 16) -> None:
        super().__init__()
        self.patch = nn.Conv2d(cin, dim, patch, patch)
        n = (img[0] // patch) * (img[1] // patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, n + 1, dim))
        self.block = nn.TransformerEncoderLayer(dim, 2, 32, dropout=0.0, batch_first=True,
                                                norm_first=True, activation="gelu")
        self.head = nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1) + self.pos
        return self.head(self.block(t)[:, 0])


def _models() -> list[tuple[str, nn.Module, torch.Tensor]]:
    g = torch.Generator().manual_seed(7)
    return [("resnet", _init(_ResNet(), 1), torch.rand(3, 3, 10, 14, generator=g, dtype=torch.float64)),
            ("mobile_gray", _init(_mobile(), 2), torch.rand(3, 1, 9, 13, generator=g, dtype=torch.float64)),
            ("vit", _init(_ViT(), 3), torch.rand(3, 3, 8, 12, generator=g, dtype=torch.float64))]


def _state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _hooks(m: nn.Module) -> int:
    return sum(len(x._forward_hooks) + len(x._forward_pre_hooks) + len(x._backward_hooks)
               for x in m.modules())


# ------------------------------------------------------------------ submodular (regression)
# (small42) the batch no longer pads and warns: every sample searches on its own budget; the
# regression test is tests/methods/test_small42.py


# ------------------------------------------------------------------ references (right)
def _unit_range(x: torch.Tensor) -> torch.Tensor:
    f = x.flatten(1)
    lo, hi = f.min(1).values, f.max(1).values
    return ((f - lo[:, None]) / (hi - lo)[:, None]).reshape(x.shape)


@pytest.mark.parametrize("name", ["resnet", "mobile_gray", "vit"])
def test_noise_wrappers_equal_captum_noise_tunnel_with_the_same_draws(name: str) -> None:
    """Captum's stdev is absolute and per input tensor; on images of range 1 it equals
    tribute's fraction of the range. Captum's noise is replaced by tribute's draws (one z per
    copy shared by the batch); VarGrad is rescaled by K / (K - 1) (Captum divides by K)."""
    captum_attr = pytest.importorskip("captum.attr")
    import captum.attr._core.noise_tunnel as nt

    _, net, x = next(m for m in _models() if m[0] == name)
    x = _unit_range(x)
    tg = torch.tensor([0, 2, 1])
    k_count, noise, seed = 6, 0.2, 5
    z = torch.randn(k_count, x[0].numel(), generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)

    def fake_normal(mean: Any, std: Any) -> torch.Tensor:
        return noise * z.reshape(k_count, *x.shape[1:]).repeat(x.shape[0], *[1] * (x.dim() - 1))

    for method, nt_type in [("smoothgrad", "smoothgrad"), ("smoothgrad_sq", "smoothgrad_sq"),
                            ("vargrad", "vargrad")]:
        for base, cls, ckw in [("saliency", captum_attr.Saliency, {"abs": False}),
                               ("input_x_gradient", captum_attr.InputXGradient, {})]:
            a = tribute.explain(net, x, method=method, base=base, n_samples=k_count, noise=noise,
                                seed=seed, target=tg, baseline=0.0, progress=False)
            with mock.patch.object(nt.torch, "normal", fake_normal):
                ref = captum_attr.NoiseTunnel(cls(net)).attribute(
                    x, nt_type=nt_type, nt_samples=k_count, stdevs=noise, target=tg,
                    nt_samples_batch_size=k_count, **ckw)
            if nt_type == "vargrad":
                ref = ref * k_count / (k_count - 1)
            got = torch.as_tensor(np.asarray(a.values)).reshape(x.shape)
            scale = float(ref.abs().max())
            assert float((got - ref).abs().max()) <= 1e-11 * scale, (method, base)


@pytest.mark.parametrize("name,layers", [
    ("resnet", [None, "layer1", "layer2.bn2", "layer2.short", "stem"]),
    ("mobile_gray", [None, "3", "4.dw"]),
    ("vit", [None]),  # the patch embedding (the only Conv2d)
])
def test_grad_cam_equals_captum_and_grad_cam_pp_a_hand_reference(name: str, layers: list[Any]) -> None:
    captum_attr = pytest.importorskip("captum.attr")
    _, net, x = next(m for m in _models() if m[0] == name)
    tg = torch.tensor([0, 2, 1])
    named = dict(net.named_modules())
    for layer in layers:
        path = layer or [n for n, m in named.items() if isinstance(m, nn.Conv2d)][-1]
        a = tribute.explain(net, x, method="grad_cam", target=tg, layer=layer, relu=False,
                            progress=False)
        assert a.params["layer"] == path
        ref = captum_attr.LayerGradCam(net, named[path]).attribute(x, target=tg)
        ref = captum_attr.LayerAttribution.interpolate(ref, x.shape[-2:], "bilinear").expand_as(x)
        ref = ref.detach()
        got = torch.as_tensor(np.asarray(a.values))
        assert float((got - ref).abs().max()) <= 1e-12 * float(ref.abs().max())
        # Grad-CAM++ by hand: alpha = g^2 / (2 g^2 + sum(A) g^3), weights sum alpha relu(g)
        acts: dict[str, torch.Tensor] = {}
        h = named[path].register_forward_hook(lambda m, i, o, acts=acts: acts.__setitem__("a", o))
        try:
            out = net(x)
        finally:
            h.remove()
        act = acts["a"]
        (g,) = torch.autograd.grad(out.gather(1, tg[:, None]).sum(), act)
        den = 2 * g**2 + act.sum((2, 3), keepdim=True) * g**3
        alpha = torch.where(den != 0, g**2 / torch.where(den != 0, den, torch.ones_like(den)), 0.0)
        cam = torch.einsum("bc,bchw->bhw", (alpha * g.clamp_min(0)).sum((2, 3)), act)
        ref_pp = F.interpolate(cam.clamp_min(0)[:, None], size=x.shape[-2:], mode="bilinear",
                               align_corners=False).expand_as(x).detach()
        pp = torch.as_tensor(np.asarray(tribute.explain(
            net, x, method="grad_cam_pp", target=tg, layer=layer, progress=False).values))
        assert float((pp - ref_pp).abs().max()) <= 1e-12 * float(ref_pp.abs().max())


def _bilinear(s: int, n_out: int) -> np.ndarray:
    """``n_out x s`` weights of bilinear upsampling (half-pixel centres, clamped edges)."""
    w = np.zeros((n_out, s))
    for i in range(n_out):
        src = max((i + 0.5) * s / n_out - 0.5, 0.0)
        i0 = math.floor(src)
        i1, lam = min(i0 + 1, s - 1), src - i0
        w[i, i0] += 1 - lam
        w[i, i1] += lam
    return w


@pytest.mark.parametrize("center", [False, True])
def test_rise_mean_over_seeds_is_the_enumerated_expectation_on_a_linear_model(center: bool) -> None:
    """Every smooth mask of a 3 x 3 grid (512 grids x 12 shifts) on a non-square 7 x 11
    3-channel image: E[v M_i] / p (center: Cov(v, M_i) / p), per-sample targets."""
    c_in, h, w, s, p = 3, 7, 11, 3, 0.5
    g = torch.Generator().manual_seed(0)
    lin = nn.Linear(c_in * h * w, 3).double()
    lin.weight.data.copy_(torch.randn(lin.weight.shape, generator=g, dtype=torch.float64))
    lin.bias.data.copy_(torch.randn(3, generator=g, dtype=torch.float64))
    net = nn.Sequential(nn.Flatten(), lin)
    x = torch.rand(2, c_in, h, w, generator=g, dtype=torch.float64)
    tg, base = torch.tensor([0, 2]), 0.2
    ch, cw = math.ceil(h / s), math.ceil(w / s)
    uh, uw = _bilinear(s, (s + 1) * ch), _bilinear(s, (s + 1) * cw)
    masks, prob = [], []
    for bits in itertools.product([0.0, 1.0], repeat=s * s):
        grid = np.array(bits).reshape(s, s)
        up = uh @ grid @ uw.T
        for dy, dx in itertools.product(range(ch), range(cw)):
            masks.append(np.broadcast_to(up[dy:dy + h, dx:dx + w], (c_in, h, w)).ravel())
            prob.append(p ** grid.sum() * (1 - p) ** (s * s - grid.sum()) / (ch * cw))
    m, pr = np.array(masks), np.array(prob)
    wt, bt = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    exp = []
    for b in range(2):
        v = (base + m * (x[b].numpy().ravel() - base)) @ wt[int(tg[b])] + bt[int(tg[b])]
        v = v - (pr * v).sum() if center else v
        exp.append((pr[:, None] * v[:, None] * m).sum(0) / p)
    vals, ses = [], []
    for seed in range(6):
        a = tribute.explain(net, x, method="rise", target=tg, baseline=base, budget=2001, s=s,
                            p=p, center=center, seed=seed, progress=False)
        vals.append(np.asarray(a.values).reshape(2, -1))
        ses.append(np.asarray(a.stderr).reshape(2, -1))
    mean = np.mean(vals, 0)
    se = np.sqrt(np.mean(np.square(ses), 0) / len(vals))
    z = (mean - np.array(exp)) / se
    assert np.abs(z).max() < 4.5  # 462 correlated credits; 2.7 / 2.6 seen
    assert abs(z.mean()) < 2.5


def test_sobol_total_indices_of_non_square_regions_match_quadrature() -> None:
    """Four irregular regions of a 10 x 14 image on the ResNet (batch norm, shortcuts): the
    truth E[Var(v | m_~i)] / Var(v) by 8-node Gauss-Legendre quadrature over [0, 1]^4."""
    _, net, _ = _models()[0]
    h, w = 10, 14
    gid = np.zeros((h, w), dtype=np.int64)
    gid[:, 5:] = 1
    gid[6:, 5:10] = 2
    gid[:3, 11:] = 2
    gid[8:, :2] = 3
    x = 2 * torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    base, tg, n = 0.3, 3, 4
    nodes, wts = np.polynomial.legendre.leggauss(8)
    nodes, wts = (nodes + 1) / 2, wts / 2
    grid = torch.as_tensor(np.stack(np.meshgrid(*[nodes] * n, indexing="ij"), -1).reshape(-1, n))
    with torch.no_grad():
        pts = base + grid[:, torch.as_tensor(gid)][:, None] * (x[0] - base)[None]
        v = net(pts)[:, tg].numpy().reshape([len(nodes)] * n)
    wq = np.einsum("i,j,k,l->ijkl", wts, wts, wts, wts)
    var = (wq * (v - (wq * v).sum()) ** 2).sum()
    truth = []
    for i in range(n):
        wi, vi = np.moveaxis(wq, i, 0), np.moveaxis(v, i, 0)
        cond = (wi * vi).sum(0) / wi.sum(0)
        truth.append((wi * (vi - cond) ** 2).sum() / var)
    vals, ses = [], []
    for seed in range(4):
        a = tribute.explain(net, x, method="sobol", target=tg, baseline=base, groups=gid,
                            budget=96 * (n + 2) + 1, seed=seed, progress=False)
        vals.append(np.asarray(a.values)[0])
        ses.append(np.asarray(a.stderr)[0])
    se = np.sqrt(np.mean(np.square(ses), 0) / len(vals))
    assert np.abs((np.mean(vals, 0) - np.array(truth)) / se).max() < 4.0


_CASES: list[tuple[str, dict[str, Any]]] = [
    ("smoothgrad", {"n_samples": 4}),
    ("smoothgrad", {"n_samples": 3, "base": "integrated_gradients", "base_params": {"steps": 4}}),
    ("vargrad", {"n_samples": 3, "base": "grad_cam"}),
    ("smoothgrad_sq", {"n_samples": 3, "groups": "irregular"}),
    ("rise", {"budget": 30, "center": True}),
    ("sobol", {"budget": 8 * 6 + 1, "groups": "irregular"}),
    ("grad_cam", {}),
    ("grad_cam_pp", {"layer": "layer1"}),
    ("xrai", {"budget": 6}),
    ("extremal_perturbation", {"budget": 9, "areas": (0.3,), "groups": "irregular"}),
    ("submodular_regions", {"budget": 60, "groups": "irregular", "search": "lazy"}),
]


@pytest.mark.parametrize("method,kw", _CASES, ids=[f"{m}-{i}" for i, (m, _) in enumerate(_CASES)])
def test_batch_equals_samples_alone_and_a_training_model_comes_back_unchanged(
        method: str, kw: dict[str, Any]) -> None:
    _, net, x = _models()[0]
    x = x.clone()
    x[1] *= 3
    x[2] -= 0.5
    kw = dict(kw)
    if kw.get("groups") == "irregular":
        gid = np.zeros((10, 14), dtype=np.int64)
        gid[:, 5:] = 1
        gid[6:, 5:10] = 2
        gid[:3, 11:] = 2
        gid[8:, :2] = 3
        kw["groups"] = gid
    net.train()
    dict(net.named_modules())["layer1.bn1"].eval()  # a submodule the user froze stays frozen
    flags = [m.training for m in net.modules()]
    before, hooks = _state(net), _hooks(net)
    tg = torch.tensor([0, 3, 1])
    a = tribute.explain(net, x, method=method, target=tg, baseline=0.1, progress=False, **kw)
    after = _state(net)
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats included
    assert [m.training for m in net.modules()] == flags and _hooks(net) == hooks
    for b in range(3):
        one = tribute.explain(net, x[b:b + 1], method=method, target=tg[b:b + 1], baseline=0.1,
                              progress=False, **kw)
        np.testing.assert_allclose(np.asarray(one.values)[0], np.asarray(a.values)[b],
                                   rtol=1e-12, atol=1e-15)


def test_grad_cam_on_vit_tokens_says_where_a_map_comes_from() -> None:
    """A token layer of a ViT outputs (batch, tokens, features): the refusal named the
    ModuleList 'blocks' (never called) among the layers to pick, and no way to credit tokens."""
    net = _init(_ViTDeep(), 3)
    x = torch.rand(2, 3, 8, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with pytest.raises(tribute.errors.UnsupportedModelError) as err:
        tribute.explain(net, x, method="grad_cam", target=0, layer="blocks.1", progress=False)
    msg = str(err.value)
    assert "(2, 7, 16)" in msg and "layer_grad_cam" in msg and "components(model, 'blocks.1')" in msg
    assert "'patch'" in msg and "'blocks'," not in msg
    # the hint's route works: per-unit Grad-CAM credits of the token layer
    a = tribute.explain(net, x, method="layer_grad_cam", target=0, progress=False,
                        players=tribute.components(net, "blocks.1"))
    assert np.asarray(a.values).shape == (2, 16)


class _ViTDeep(_ViT):
    """Two encoder blocks in a ModuleList (a container the forward never calls itself)."""

    def __init__(self) -> None:
        super().__init__()
        del self.block
        self.blocks = nn.ModuleList([
            nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True, norm_first=True)
            for _ in range(2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1) + self.pos
        for blk in self.blocks:
            t = blk(t)
        return self.head(t[:, 0])
