"""Audit aud40g: propagation methods (LRP, AttnLRP, DeepLIFT) on architectures the other tests
never used: Linear/Conv subclasses with their own ``forward`` (LoRA, weight standardisation,
"same" padding), residual sums through ``Add``, GELU/SiLU/Softplus, gated MLPs with LayerNorm,
max pooling after smooth activations.

Truths are computed outside tribute from the model's own weights (float64): the epsilon rule
written out by hand, the LRP result of the merged plain model, conservation of the epsilon
rule without biases, the AttnLRP modified gradient written out by hand, and DeepLIFT's max
pooling rule with the rescale rule chained by hand. No tolerance depends on this CPU's draws.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tribute
from tribute.errors import UnsupportedModelError
from tribute.methods.lrp import Add

try:
    from ._grad_models import _seeded as _double
except ImportError:
    from _grad_models import _seeded as _double  # type: ignore[no-redef]


def _x(seed: int, *shape: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def _lrp(model: nn.Module, x: torch.Tensor, **kw: Any) -> Any:
    return tribute.explain(model, x, method="lrp", target=0, progress=False, **kw)


def _stab(z: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.where(z >= 0, z + eps, z - eps)


def _eps_rule(lin: nn.Module, x: torch.Tensor, r: torch.Tensor, eps: float) -> torch.Tensor:
    """LRP-epsilon of one Linear: ``x * W^T (R / stab(z))``."""
    w: Any = lin.weight
    return x * ((r / _stab(lin(x), eps)) @ w)


def _state(model: nn.Module) -> tuple[dict[str, torch.Tensor], int]:
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())
    return {k: v.clone() for k, v in model.state_dict().items()}, hooks


def _unchanged(model: nn.Module, before: tuple[dict[str, torch.Tensor], int]) -> bool:
    sd, hooks = _state(model)
    return hooks == before[1] and sd.keys() == before[0].keys() and all(torch.equal(sd[k], before[0][k]) for k in sd)


# ------------------------------------------------------ LRP: Linear/Conv subclasses, own forward
class _LoRALinear(nn.Linear):
    """``x W^T + b + B(A(x))``: the weight rules read ``.weight`` alone."""

    def __init__(self, i: int, o: int) -> None:
        super().__init__(i, o)
        self.A, self.B = nn.Linear(i, 2, bias=False), nn.Linear(2, o, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.B(self.A(x))


class _PlainSubclass(nn.Linear):
    """Overrides forward but computes nn.Linear's map: accepted."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)


class _StdConv(nn.Conv2d):
    """Weight-standardised convolution (BiT / timm ``StdConv2d``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        w = (w - w.mean((1, 2, 3), keepdim=True)) / w.std((1, 2, 3), keepdim=True)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class _Conv2dSame(nn.Conv2d):
    """"Same" padding computed in forward (timm ``Conv2dSame``): ``.padding`` says 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1)), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _mlp(mid: Callable[[], nn.Module]) -> nn.Sequential:
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), mid(), nn.ReLU(), nn.Linear(8, 3))


def test_lrp_refuses_a_linear_subclass_whose_forward_adds_a_lora_update() -> None:
    """The epsilon rule redistributed through ``.weight`` alone while the output included the
    LoRA term: relevance off by up to 61% of the merged model's (the truth: LRP of the same
    model with ``W + B A`` merged into a plain nn.Linear), silently."""
    model = _double(0, lambda: _mlp(lambda: _LoRALinear(8, 8)))
    x = _x(1, 4, 5)
    before = _state(model)
    with pytest.raises(UnsupportedModelError, match=r"'2' \(_LoRALinear\) subclasses nn.Linear.*merge"):
        _lrp(model, x, composite="epsilon_plus")
    assert _unchanged(model, before)
    assert not model.training


@pytest.mark.parametrize("conv", [_StdConv, _Conv2dSame])
def test_lrp_refuses_a_conv_subclass_that_is_not_its_weights_affine_map(conv: type[nn.Conv2d]) -> None:
    """Weight standardisation: explained with the raw weights (silently); "same" padding: a raw
    shape-mismatch RuntimeError from the rule's backward."""
    model = _double(2, lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), conv(3, 3, 3, padding=0),
                                             nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)))
    x = _x(3, 2, 2, 6, 6)
    before = _state(model)
    for composite in ("epsilon_plus", "epsilon_alpha2_beta1"):
        with pytest.raises(UnsupportedModelError, match=rf"'2' \({conv.__name__}\) subclasses nn.Conv2d"):
            _lrp(model, x, composite=composite)
    assert _unchanged(model, before)


def test_lrp_accepts_a_subclass_that_computes_the_affine_map() -> None:
    """A subclass whose forward is nn.Linear's map (logging wrappers and the like) is explained
    as the plain model; compared with the epsilon rule written out by hand."""
    model = _double(4, lambda: _mlp(lambda: _PlainSubclass(8, 8)))
    x = _x(5, 6, 5)
    got = np.asarray(_lrp(model, x, composite="epsilon_plus", epsilon=1e-9).values)
    with torch.no_grad():
        h1 = torch.relu(model[0](x))
        h2 = torch.relu(model[2](h1))
        out = model[4](h2)
        r = torch.zeros_like(out)
        r[:, 0] = out[:, 0]
        for lin, inp in ((model[4], h2), (model[2], h1), (model[0], x)):
            r = _eps_rule(lin, inp, r, 1e-9)
    np.testing.assert_allclose(got, r.numpy(), rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ LRP: truths that held
class _Residual(nn.Module):
    """``o(h + relu(f(h)))`` with the sum as an :class:`Add` module (Norm rule)."""

    def __init__(self) -> None:
        super().__init__()
        self.l0, self.f, self.o = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 2)
        self.relu, self.add = nn.ReLU(), Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.l0(x))
        return self.o(self.add(h, self.relu(self.f(h))))


def test_lrp_residual_add_matches_the_rules_by_hand() -> None:
    model = _double(6, _Residual)
    x = _x(7, 5, 4)
    got = np.asarray(_lrp(model, x, composite="epsilon_plus", epsilon=1e-12).values)
    with torch.no_grad():
        h = torch.relu(model.l0(x))
        g = torch.relu(model.f(h))
        s = h + g
        out = model.o(s)
        r = torch.zeros_like(out)
        r[:, 0] = out[:, 0]
        r_s = _eps_rule(model.o, s, r, 1e-12)
        share = r_s / _stab(s, 1e-6)  # the Norm rule of Add, stabilizer 1e-6
        r_h = h * share + _eps_rule(model.f, h, g * share, 1e-12)
        ref = _eps_rule(model.l0, x, r_h, 1e-12)
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-9, atol=1e-12)


def test_lrp_epsilon_conserves_through_gelu_softplus_silu_without_biases() -> None:
    """Pass on elementwise activations, epsilon -> 0 on bias-free Linear layers: sum R = f(x)."""
    model = _double(8, lambda: nn.Sequential(
        nn.Linear(5, 7, bias=False), nn.GELU(), nn.Linear(7, 7, bias=False), nn.Softplus(),
        nn.Linear(7, 6, bias=False), nn.SiLU(), nn.Dropout(0.3), nn.Linear(6, 2, bias=False)))
    x = _x(9, 6, 5)
    attr = _lrp(model, x, composite="epsilon_plus", epsilon=1e-12)
    f = model(x)[:, 0].detach().numpy()
    np.testing.assert_allclose(np.asarray(attr.values).sum(1), f, rtol=1e-8, atol=1e-10)


# ------------------------------------------------------------ AttnLRP: gated MLP with LayerNorm
class _Identity(torch.autograd.Function):
    """Value ``y``, gradient ``g * y / x``: AttnLRP's identity rule of an elementwise map."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, y)
        return y.clone()

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> Any:
        x, y = ctx.saved_tensors
        return g * y / _stab(x, 1e-10), None


class _Gated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp, self.ln = nn.Linear(5, 8), nn.LayerNorm(8)
        self.up, self.gate, self.down = nn.Linear(8, 12), nn.Linear(8, 12), nn.Linear(12, 8)
        self.act, self.ln2, self.a2, self.o = nn.SiLU(), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 3)
        with torch.no_grad():
            self.ln.weight.uniform_(0.5, 1.5)
            self.ln2.bias.uniform_(-0.5, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        u = self.ln(h)
        h = h + self.down(self.act(self.gate(u)) * self.up(u))
        return self.o(self.a2(self.ln2(h)))


def test_attnlrp_gated_mlp_with_layernorm_matches_the_rules_by_hand() -> None:
    """Identity rule on SiLU/GELU, LayerNorm with its std held constant, the uniform rule
    (half the gradient to each factor) on the gate product, plain gradient elsewhere."""
    model = _double(10, _Gated)
    x = _x(11, 6, 5)
    got = np.asarray(tribute.explain(model, x, method="attnlrp", target=1, progress=False).values)

    def ln(mod: nn.LayerNorm, t: torch.Tensor) -> torch.Tensor:
        sd = (t.var(-1, unbiased=False, keepdim=True) + mod.eps).sqrt().detach()
        return (t - t.mean(-1, keepdim=True)) / sd * mod.weight + mod.bias

    def half(t: torch.Tensor) -> torch.Tensor:
        return 0.5 * t + (0.5 * t).detach()

    xr = x.clone().requires_grad_(True)
    with torch.enable_grad():
        h = model.inp(xr)
        u = ln(model.ln, h)
        gz = model.gate(u)
        h = h + model.down(half(_Identity.apply(gz, F.silu(gz))) * half(model.up(u)))
        l2 = ln(model.ln2, h)
        out = model.o(_Identity.apply(l2, F.gelu(l2)))
        (gx,) = torch.autograd.grad(out[:, 1].sum(), xr)
    np.testing.assert_allclose(got, (x * gx).numpy(), rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------- DeepLIFT: max pool after Softplus
def test_deeplift_maxpool_after_softplus_matches_the_rule_by_hand() -> None:
    """Captum's DeepLift is off here (summation-to-delta off by ~0.4 for outputs ~0.1);
    tribute's rule, written out by hand: the pool routes ``max(y, y0) - y0`` to the input's
    arg-max and ``y - max(y, y0)`` to the baseline's; the rescale rule chains it through the
    Softplus (``U / (z - z0)``) and the convolution."""
    model = _double(12, lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Softplus(), nn.MaxPool2d(2),
                                              nn.Flatten(), nn.Linear(48, 2)))
    x, b0 = _x(13, 3, 2, 8, 8), _x(14, 1, 2, 8, 8)
    attr = tribute.explain(model, x, method="deeplift", baseline=b0, target=1, progress=False)
    with torch.no_grad():
        z, z0 = model[0](x), model[0](b0).expand(3, -1, -1, -1)
        a, a0 = F.softplus(z), F.softplus(z0)
        p, i1 = F.max_pool2d(a, 2, return_indices=True)
        p0, i0 = F.max_pool2d(a0, 2, return_indices=True)
        lin: Any = model[4]
        w = lin.weight[1].reshape(1, 3, 4, 4).expand_as(p)
        top = torch.maximum(p, p0)
        size = list(a.shape[-2:])
        u = (F.max_unpool2d(w * (top - p0), i1, (2, 2), output_size=size)
             + F.max_unpool2d(w * (p - top), i0, (2, 2), output_size=size))
        conv: Any = model[0]
        mult = torch.nn.grad.conv2d_input(list(x.shape), conv.weight, u / (z - z0), padding=1)
        ref = ((x - b0) * mult).reshape(3, -1)
        delta = model(x)[:, 1] - model(b0)[:, 1]
    np.testing.assert_allclose(np.asarray(attr.values).reshape(3, -1), ref.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ref.sum(1).numpy(), delta.numpy(), rtol=1e-9, atol=1e-12)


def test_lrp_batchnorm_on_another_axis_than_the_linear_features_is_named() -> None:
    """BatchNorm1d after a Linear on (batch, length, features) inputs normalises the length axis;
    folding it into the Linear's features changes the function (refused; the message blamed only
    ResNet-like blocks and in-place activations)."""
    model = _double(15, lambda: nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Flatten(),
                                              nn.Linear(36, 2)))
    bn: Any = model[1]
    with torch.no_grad():
        bn.running_mean.copy_(torch.linspace(-1, 1, 6, dtype=torch.float64))
        bn.running_var.copy_(torch.linspace(0.5, 2, 6, dtype=torch.float64))
    before = _state(model)
    with pytest.raises(UnsupportedModelError, match=r"BatchNorm1d after an nn.Linear on \(batch, length"):
        _lrp(model, _x(16, 3, 6, 4), composite="epsilon_plus")
    assert _unchanged(model, before)
