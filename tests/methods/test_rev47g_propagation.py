"""rev47g: review of aud47g (other spellings of the operations LRP / AttnLRP know).

- ``attnlrp`` gave attention written with ``torch.linalg.matmul`` or ``torch.linalg.vecdot``
  the plain gradient (both factors got the whole relevance of ``Q K^T`` and ``A V``), with no
  warning: the same bilinear maps as ``torch.matmul``, which get the uniform rule.
- aud47g's product check counted every input-dependent argument of ``addmm`` / ``addcmul`` as a
  factor, so ``addmm(residual, h, W)`` (a residual fused with a linear map) was reported as a
  nonlinear product: a warning on a map whose plain gradient is the rule.
- ``lrp`` did not report ``torch.linalg.matmul`` / ``linalg.vecdot`` / ``__rmatmul__`` (its
  ``F.linear`` / ``matmul`` twins warn); ``attnlrp`` did not report ``exp2`` / ``log2`` /
  ``arcsin`` / ``torch.special.logit`` ... (other names of functions it reports).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tribute

_D = 6


def _qk(q: torch.Tensor, k: torch.Tensor, how: str) -> torch.Tensor:
    if how == "linalg_matmul":
        return torch.linalg.matmul(q, k.transpose(1, 2))
    if how == "vecdot":
        return torch.linalg.vecdot(q[:, :, None, :], k[:, None, :, :])
    return torch.matmul(q, k.transpose(1, 2))


class _Attention(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.q, self.k, self.v, self.o = (nn.Linear(_D, _D) for _ in range(4))
        self.head = nn.Linear(_D, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.6)
        self.double()
        self.how = how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.softmax(_qk(self.q(x), self.k(x), self.how) / _D ** 0.5, -1)
        v = self.v(x)
        o = _qk(a, v.transpose(1, 2), self.how)
        return self.head((x + self.o(o)).mean(1))


def _attention_by_hand(m: _Attention, x: torch.Tensor, target: int) -> torch.Tensor:
    """AttnLRP with detach tricks: half the relevance to each factor of Q K^T and of A V, the
    softmax's plain gradient, plain gradients through the linear maps; R = x * gradient."""
    xi = x.clone().requires_grad_(True)
    q, k, v = m.q(xi), m.k(xi), m.v(xi)
    s = 0.5 * (q @ k.detach().transpose(1, 2)) + 0.5 * (q.detach() @ k.transpose(1, 2))
    a = torch.softmax(s / _D ** 0.5, -1)
    o = 0.5 * (a @ v.detach()) + 0.5 * (a.detach() @ v)
    out = m.head((xi + m.o(o)).mean(1))
    (g,) = torch.autograd.grad(out[:, target].sum(), xi)
    return (x * g).detach()


@pytest.mark.parametrize("how", ["matmul", "linalg_matmul", "vecdot"])
def test_attnlrp_attention_spelled_with_torch_linalg_gets_the_uniform_rule(how: str) -> None:
    x = torch.randn(2, 4, _D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    model = _Attention(how).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = tribute.explain(model, x, method="attnlrp", target=1, epsilon=0.0, progress=False)
    truth = _attention_by_hand(model, x, 1)
    assert float(truth.abs().max()) > 0.05
    assert torch.allclose(torch.as_tensor(a.values), truth, rtol=1e-9, atol=1e-12)


_FUSED: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    # a residual h plus a linear map of h, fused: one factor is a parameter
    "addmm": lambda h, w: torch.addmm(h, h, w.T),
    "addmm_kw": lambda h, w: torch.addmm(input=h, mat1=h, mat2=w.T),
    "Tensor.addmm": lambda h, w: h.addmm(h, w.T, beta=0.5, alpha=2.0),
    "addcmul": lambda h, w: torch.addcmul(h, h, w[0]),
    "addcmul_w_first": lambda h, w: torch.addcmul(h, w[0], h, value=0.3),
    "addcdiv": lambda h, w: torch.addcdiv(h, h, w[0].abs() + 1.0),
    "addmv": lambda h, w: torch.stack([torch.addmv(h[i, :_D], w, h[i]) for i in range(h.shape[0])]),
    "addr": lambda h, w: torch.stack([torch.addr(w, h[i], w[0]).sum(0) for i in range(h.shape[0])]),
}


class _Fused(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.a, self.b, self.head = nn.Linear(_D, _D), nn.Linear(_D, _D), nn.Linear(_D, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.6)
        self.double()
        self.how = how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(_FUSED[self.how](torch.tanh(self.a(x)), self.b.weight))


@pytest.mark.parametrize("how", sorted(_FUSED))
def test_attnlrp_fused_residual_and_linear_map_is_no_product(how: str) -> None:
    """One input-dependent factor: a linear map, whose plain gradient is the rule; by hand:
    the identity rule on tanh (t * (tanh(t) / t) held constant), then the same fused map."""
    x = torch.randn(3, _D, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    model = _Fused(how).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = tribute.explain(model, x, method="attnlrp", target=2, epsilon=0.0, progress=False)
    assert a.extra["functional_ops"] == {}
    xi = x.clone().requires_grad_(True)
    t = model.a(xi)
    h = t * (torch.tanh(t) / t).detach()
    out = model.head(_FUSED[how](h, model.b.weight.detach()))
    (g,) = torch.autograd.grad(out[:, 2].sum(), xi)
    truth = (x * g).detach()
    assert float(truth.abs().max()) > 0.05
    assert torch.allclose(torch.as_tensor(a.values), truth, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("how", ["addmm", "addcmul", "addcdiv"])
def test_attnlrp_fused_products_of_two_inputs_are_still_reported(how: str) -> None:
    class TwoFactors(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.head = nn.Linear(_D, _D), nn.Linear(_D, _D), nn.Linear(_D, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, u = self.a(x), self.b(x)
            if how == "addmm":  # per row: (2, 3) @ (3, 2), both factors from the input
                y = torch.stack([torch.addmm(h[i, :4].reshape(2, 2), h[i].reshape(2, 3), u[i].reshape(3, 2))
                                 for i in range(h.shape[0])]).reshape(-1, 4)
                y = torch.cat([y, h[:, 4:]], 1)
            elif how == "addcmul":
                y = torch.addcmul(h, h, u)
            else:  # dividing by an input-dependent tensor
                y = torch.addcdiv(h, torch.ones_like(h), u.abs() + 1.0)
            return self.head(y)

    model = TwoFactors().double().eval()
    x = torch.randn(3, _D, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with pytest.warns(UserWarning, match=rf"attnlrp: .*{how} x"):
        a = tribute.explain(model, x, method="attnlrp", target=0, progress=False)
    assert a.extra["functional_ops"].get(how, 0) >= 1


_LRP_SPELLINGS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "linalg_matmul": lambda h, w: torch.linalg.matmul(h, w),
    "linalg_vecdot": lambda h, w: torch.stack([torch.linalg.vecdot(h, w[:, j]) for j in range(w.shape[1])], -1),
    "rmatmul": lambda h, w: torch.Tensor.__rmatmul__(w, h),
}


@pytest.mark.parametrize("how", sorted(_LRP_SPELLINGS))
def test_lrp_reports_linalg_spellings_of_matmul(how: str) -> None:
    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.relu = nn.Linear(_D, _D, bias=False), nn.ReLU()
            self.w = nn.Parameter(torch.randn(_D, 2, generator=torch.Generator().manual_seed(0)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return _LRP_SPELLINGS[how](self.relu(self.a(x)), self.w)

    model = Head().double().eval()
    x = torch.rand(3, _D, dtype=torch.float64)
    with pytest.warns(UserWarning, match=rf"{how} x"):
        a = tribute.explain(model, x, method="lrp", composite="epsilon_plus", target=0, progress=False)
    assert a.extra["functional_ops"].get(how, 0) >= 1


_ALIASES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "exp2": torch.exp2, "log2": lambda t: torch.log2(t.abs() + 1), "log10": lambda t: torch.log10(t.abs() + 1),
    "arcsin": lambda t: torch.arcsin(torch.tanh(t) * 0.5), "arctan": torch.arctan,
    "special_logit": lambda t: torch.special.logit(0.5 + 0.2 * torch.tanh(t)),
    "special_expm1": torch.special.expm1, "xlogy": lambda t: torch.xlogy(t, t.abs() + 1),
}


@pytest.mark.parametrize("name", sorted(_ALIASES))
def test_attnlrp_reports_other_names_of_unruled_functions(name: str) -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.head = nn.Linear(_D, _D), nn.Linear(_D, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(_ALIASES[name](self.a(x)))

    model = M().double().eval()
    x = torch.randn(3, _D, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with pytest.warns(UserWarning, match=rf"attnlrp: .*{name} x"):
        a = tribute.explain(model, x, method="attnlrp", target=0, progress=False)
    assert a.extra["functional_ops"].get(name, 0) >= 1


def test_gelu_neighbour_still_gets_the_identity_rule() -> None:
    """A ruled activation next to the new names stays silent (no over-reporting)."""

    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.head = nn.Linear(_D, _D), nn.Linear(_D, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(F.gelu(self.a(x)))

    x = torch.randn(3, _D, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = tribute.explain(M().double().eval(), x, method="attnlrp", target=0, progress=False)
    assert a.extra["functional_ops"] == {}


# ----------------------------------------------------------------- guided backprop / deconvolution
_MORE_RELUS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "maximum_zeros": lambda t: torch.maximum(t, torch.zeros_like(t)),
    "zeros_maximum": lambda t: torch.maximum(torch.zeros_like(t), t),
    "max_pair": lambda t: torch.max(t, torch.zeros(t.shape[-1], dtype=t.dtype)),
    "fmax": lambda t: torch.fmax(t, torch.zeros_like(t)),
    "clamp_inf": lambda t: t.clamp(min=0, max=float("inf")),
    "clamp_zeros_tensor": lambda t: t.clamp(min=torch.zeros_like(t)),
    "clamp_numpy_zero": lambda t: t.clamp(min=np.int64(0)),  # type: ignore[call-overload]
    "hardtanh_inf": lambda t: F.hardtanh(t, 0.0, float("inf")),
}
_NOT_RELUS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "max_dim": lambda t: torch.max(t, 1, keepdim=True).values.expand_as(t),
    "max_dim_kw": lambda t: t.max(dim=-1, keepdim=True)[0] + t,
    "max_indices": lambda t: t + torch.max(t, -1)[1][:, None].to(t.dtype),
    "maximum_ones": lambda t: torch.maximum(t, torch.ones_like(t)),
    "maximum_other_input": lambda t: torch.maximum(t, t.flip(-1)),
    "maximum_neg": lambda t: torch.maximum(t, torch.full_like(t, -0.5)),
    "clamp_0_1_tensors": lambda t: t.clamp(min=torch.zeros_like(t), max=torch.ones_like(t)),
    "clamp_0_big": lambda t: t.clamp(min=0, max=1e9),
    "clamp_eps": lambda t: t.clamp(min=1e-6),
    "hardtanh_0_6": lambda t: F.hardtanh(t, 0.0, 6.0),
    "hardtanh_default": F.hardtanh,
    "fmax_half": lambda t: torch.fmax(t, torch.full_like(t, 0.5)),
}


class _Spelled(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(6)
        self.a, self.b, self.c = nn.Linear(5, 6), nn.Linear(6, 6), nn.Linear(6, 2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.relu = nn.ReLU()
        self.fn = fn
        self.double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.relu(self.b(self.fn(self.a(x)))))


def _guided_by_hand(m: _Spelled, x: torch.Tensor, target: int) -> torch.Tensor:
    """Guided backprop at nn.ReLU (relu(g) * 1[z > 0]), the plain gradient at the spelling."""
    xi = x.clone().requires_grad_(True)
    z = m.b(m.fn(m.a(xi)))
    y = z.clamp(min=0).detach() + (z - z.detach())  # value relu(z); gradient replaced below
    (gy,) = torch.autograd.grad(m.c(y)[:, target].sum(), y, retain_graph=True)
    gz = gy.clamp(min=0) * (z > 0).to(gy.dtype)
    (g,) = torch.autograd.grad(z, xi, gz)
    return g


@pytest.mark.parametrize("how", sorted(_MORE_RELUS))
def test_guided_backprop_reports_other_relu_spellings(how: str) -> None:
    model = _Spelled(_MORE_RELUS[how]).eval()
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with pytest.warns(UserWarning, match=r"functional ReLU .* 1 time\(s\)"):
        a = tribute.explain(model, x, method="guided_backprop", target=1, progress=False)
    assert a.extra["n_functional_relu_calls"] == 1
    # what the warning says: the plain gradient at the spelling, the rule at nn.ReLU
    assert torch.allclose(torch.as_tensor(a.values), _guided_by_hand(model, x, 1), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("how", sorted(_NOT_RELUS))
def test_guided_backprop_does_not_count_maxima_and_clamps_that_are_not_relu(how: str) -> None:
    model = _Spelled(_NOT_RELUS[how]).eval()
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = tribute.explain(model, x, method="deconvolution", target=1, progress=False)
    assert a.extra["n_functional_relu_calls"] == 0
