"""aud47g: LRP / AttnLRP on other spellings of the operations their checks know.

Regression (silent before the fix):

- ``lrp`` warns when the model's own ``forward`` applies functional operations that the rules
  cannot see (their relevance goes back as a plain gradient). It knew ``F.linear``, ``matmul``,
  ``softmax``, ``sum``, ``sigmoid`` ... but not ``torch.addmm`` (the same layer), ``F.scaled_dot_
  product_attention``, bilinear ``F.interpolate``, ``cumsum``, ``F.glu``, ``logsumexp``, norms,
  ``lerp``, ``F.conv_transpose2d``: those models were explained with no warning and
  ``extra["functional_ops"] == {}``.
- ``attnlrp`` gives the product of two input-dependent tensors the uniform rule when it is
  spelled ``a * b`` / ``torch.mul`` / ``matmul`` / ``einsum``; ``a.multiply(b)`` and
  ``torch.mm`` went through as plain gradients (both factors got the whole relevance: a gated
  MLP's credits moved by 11% of their size), and ``torch.addcmul`` / ``prod`` were neither
  ruled nor reported.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tribute

_OPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "cumsum": lambda h: torch.cumsum(h, -1),
    "glu": lambda h: F.glu(h, -1).repeat(1, 2),
    "logsumexp": lambda h: torch.logsumexp(h, -1, keepdim=True).expand_as(h),
    "linalg_vector_norm": lambda h: torch.linalg.vector_norm(h, dim=-1, keepdim=True).expand_as(h),
    "std": lambda h: torch.std(h, -1, keepdim=True).expand_as(h),
    "lerp": lambda h: torch.lerp(h, h.flip(-1), 0.3),
    "prod": lambda h: h.prod(-1, keepdim=True).expand_as(h),
    "cosh": torch.cosh,
    "special_expit": torch.special.expit,
}


class _Hidden(nn.Module):
    """Bias-free ``Linear -> ReLU -> op -> Linear``; ``op`` is functional code in forward."""

    def __init__(self, op: str) -> None:
        super().__init__()
        self.a, self.h = nn.Linear(6, 6, bias=False), nn.Linear(6, 2, bias=False)
        self.relu = nn.ReLU()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.h(_OPS[self.op](self.relu(self.a(x))))


@pytest.mark.parametrize("op", sorted(_OPS))
def test_lrp_reports_functional_spellings(op: str) -> None:
    torch.manual_seed(0)
    model = _Hidden(op).double().eval()
    x = torch.rand(3, 6, dtype=torch.float64)
    with pytest.warns(UserWarning, match=rf"functional operations.*{op} x1"):
        a = tribute.explain(model, x, method="lrp", composite="epsilon_plus", target=1, progress=False)
    assert a.extra["functional_ops"].get(op) == 1
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


class _AddmmHead(nn.Module):
    """A bias-free ReLU layer and a head written as ``torch.addmm`` (``F.linear``'s twin)."""

    def __init__(self, functional_linear: bool = False) -> None:
        super().__init__()
        self.a = nn.Linear(5, 6, bias=False)
        self.relu = nn.ReLU()
        self.w = nn.Parameter(torch.randn(6, 3, dtype=torch.float64))
        self.functional_linear = functional_linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.a(x))
        if self.functional_linear:
            return F.linear(h, self.w.T)
        return torch.addmm(torch.zeros(3, dtype=h.dtype), h, self.w)


def test_lrp_addmm_head_is_reported_like_f_linear() -> None:
    torch.manual_seed(1)
    model = _AddmmHead().double().eval()
    x = torch.rand(4, 5, dtype=torch.float64)
    t = 2
    with pytest.warns(UserWarning, match=r"addmm x1"):
        got = tribute.explain(model, x, method="lrp", composite="epsilon_plus", epsilon=1e-12, target=t,
                              progress=False)
    twin = _AddmmHead(functional_linear=True).double().eval()
    twin.load_state_dict(model.state_dict())
    with pytest.warns(UserWarning, match=r"linear x1"):
        ref = tribute.explain(twin, x, method="lrp", composite="epsilon_plus", epsilon=1e-12, target=t,
                              progress=False)
    assert torch.equal(torch.as_tensor(got.values), torch.as_tensor(ref.values))
    # What the warning describes, by hand: the head passes the plain gradient w[:, t] (to
    # inactive units too), the ReLU's Pass rule passes it on unchanged, the first layer's
    # epsilon rule gives x * W1^T (r / z1); times f(x).
    with torch.no_grad():
        z1 = x @ model.a.weight.T
        f = torch.relu(z1) @ model.w[:, t]
        r = model.w[:, t].expand_as(z1)
        hand = f[:, None] * x * ((r / z1) @ model.a.weight)
        # the epsilon rule on the head (the module spelling) would give h w_t instead
        rule = x * (((torch.relu(z1) * model.w[:, t]) / z1) @ model.a.weight)
    assert torch.allclose(torch.as_tensor(got.values), hand, rtol=1e-9, atol=1e-12)
    assert float((hand - rule).abs().max()) > 0.1 * float(rule.abs().max())  # not the rule


class _Silent(nn.Module):
    """Routing / copying code between modules: relevance is moved or copied, never rescaled."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.c = nn.Conv2d(2, 3, 3, padding=1)
        self.relu = nn.ReLU()
        self.l = nn.Linear(48, 2)
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.c(x))  # (B, 3, 4, 4)
        k = self.kind
        if k == "nearest_default":
            h = F.interpolate(h, scale_factor=2)[..., ::2, ::2]
        elif k == "nearest_kw":
            h = F.interpolate(h, size=(8, 8), mode="nearest")[..., 1::2, 1::2]
        elif k == "nearest_exact_pos":
            h = F.interpolate(h, None, 2.0, "nearest-exact")[..., ::2, ::2]
        elif k == "max_pool":
            h = F.max_pool2d(F.pad(h, (1, 1, 1, 1)), 3, 1)
        elif k == "cat_slice":
            h = torch.cat([h[:, :1], h[:, 1:]], 1)
        elif k == "permute":
            h = h.permute(0, 1, 3, 2).contiguous().transpose(-1, -2)
        elif k == "flip_roll":
            h = torch.roll(torch.flip(h, [-1]), 1, -2)
        elif k == "chunk_stack":
            h = torch.stack(h.chunk(3, 1), 1).squeeze(2)
        elif k == "relu_twice":
            h = F.relu(torch.relu(h))
        elif k == "dropout":
            h = F.dropout(h, 0.5, training=False)
        elif k == "where":
            h = torch.where(h > 0.5, h, torch.zeros_like(h))
        elif k == "unsqueeze_view":
            h = h.unsqueeze(0).view(h.shape)
        return self.l(h.flatten(1))


_SILENT = ["nearest_default", "nearest_kw", "nearest_exact_pos", "max_pool", "cat_slice", "permute",
           "flip_roll", "chunk_stack", "relu_twice", "dropout", "where", "unsqueeze_view"]


@pytest.mark.parametrize("kind", _SILENT)
def test_lrp_routing_code_stays_silent(kind: str) -> None:
    torch.manual_seed(2)
    model = _Silent(kind).double().eval()
    x = torch.rand(2, 2, 4, 4, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = tribute.explain(model, x, method="lrp", composite="epsilon_plus", target=0, progress=False)
    assert a.extra["functional_ops"] == {}


def test_lrp_bilinear_resampling_and_attention_are_reported() -> None:
    torch.manual_seed(3)
    up = _Silent("nearest_default").double().eval()

    class Bilinear(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = up

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.inner.relu(self.inner.c(x))
            h = F.interpolate(h, size=(8, 8), mode="bilinear")[..., ::2, ::2]
            return self.inner.l(h.flatten(1))

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q, self.k, self.v = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4)
            self.head = nn.Linear(20, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            o = F.scaled_dot_product_attention(self.q(x), self.k(x), self.v(x))
            return self.head(o.flatten(1))

    for model, x, op in ((Bilinear().double().eval(), torch.rand(2, 2, 4, 4, dtype=torch.float64), "interpolate"),
                         (Attention().double().eval(), torch.rand(2, 5, 4, dtype=torch.float64),
                          "scaled_dot_product_attention")):
        with pytest.warns(UserWarning, match=rf"{op} x1"):
            a = tribute.explain(model, x, method="lrp", composite="epsilon_plus", target=0, progress=False)
        assert a.extra["functional_ops"] == {op: 1}


class _Gated(nn.Module):
    """A gated MLP on ``(batch, tokens, 6)`` tokens with its product spelled ``how``."""

    def __init__(self, how: str) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(4)
        self.up, self.gate, self.down = nn.Linear(6, 8), nn.Linear(6, 8), nn.Linear(8, 6)
        self.act = nn.SiLU()
        self.head = nn.Linear(6, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
        self.double()
        self.how = how

    def product(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.how == "star":
            return a * b
        if self.how == "multiply":
            return a.multiply(b)
        if self.how == "mm":  # per token: (1, 8) @ diag(b): the same products, as a matrix product
            rows = [torch.mm(a[i, j:j + 1], torch.diag(b[i, j])) for i in range(a.shape[0])
                    for j in range(a.shape[1])]
            return torch.cat(rows).reshape(a.shape)
        if self.how == "addcmul":
            return torch.addcmul(torch.zeros_like(a), a, b)
        return torch.stack([a, b]).prod(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.product(self.act(self.gate(x)), self.up(x))
        return self.head((x + self.down(h)).mean(1))


def _gated_by_hand(model: _Gated, x: torch.Tensor, target: int) -> torch.Tensor:
    """AttnLRP written with detach tricks: the identity rule on SiLU (t * (silu(t) / t) held
    constant), the uniform rule on the product (half the relevance to each factor), plain
    gradients through the linear maps; relevance = x * gradient."""
    xi = x.clone().requires_grad_(True)
    t = model.gate(xi)
    a = t * (F.silu(t) / t).detach()
    b = model.up(xi)
    h = 0.5 * (a * b.detach()) + 0.5 * (a.detach() * b)
    out = model.head((xi + model.down(h)).mean(1))
    (g,) = torch.autograd.grad(out[:, target].sum(), xi)
    return (x * g).detach()


@pytest.mark.parametrize("how", ["star", "multiply", "mm"])
def test_attnlrp_products_get_the_uniform_rule_whatever_the_spelling(how: str) -> None:
    x = torch.randn(2, 3, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    model = _Gated(how).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = tribute.explain(model, x, method="attnlrp", target=1, epsilon=0.0, progress=False)
    truth = _gated_by_hand(model, x, 1)  # epsilon=0: the identity rule's ratio is exact
    assert float(truth.abs().max()) > 1e-2
    assert torch.allclose(torch.as_tensor(a.values), truth, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("how", ["addcmul", "prod"])
def test_attnlrp_reports_products_it_has_no_rule_for(how: str) -> None:
    x = torch.randn(2, 3, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    model = _Gated(how).eval()
    with pytest.warns(UserWarning, match=rf"attnlrp: .*{how} x"):
        a = tribute.explain(model, x, method="attnlrp", target=1, progress=False)
    assert a.extra["functional_ops"].get(how, 0) >= 1


def test_attnlrp_addmm_with_one_input_dependent_factor_is_a_linear_map() -> None:
    """GPT-2's Conv1D is ``addmm(bias, x, weight)``: a linear layer, gradient = LRP-0 there."""

    class Conv1DLike(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(6, 3).double()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.addmm(self.lin.bias, x.reshape(-1, 6), self.lin.weight.T)
            return y.reshape(x.shape[0], -1, 3).mean(1)

    model = Conv1DLike().eval()
    x = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = tribute.explain(model, x, method="attnlrp", target=0, progress=False)
    truth = x * (model.lin.weight[0] / 4).detach()
    assert torch.allclose(torch.as_tensor(a.values), truth, rtol=1e-12, atol=1e-14)


_RELU_SPELLINGS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "clamp_kw": lambda t: t.clamp(min=0),
    "clamp_pos": lambda t: torch.clamp(t, 0),
    "clamp_min": lambda t: torch.clamp_min(t, 0.0),
    "clip": lambda t: t.clip(min=0),
    "clamp_tensor": lambda t: t.clamp(min=torch.tensor(0.0, dtype=t.dtype)),
    "threshold": lambda t: F.threshold(t, 0.0, 0.0),
}
_NOT_RELU: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "clamp_0_6": lambda t: t.clamp(min=0, max=6),
    "clamp_neg": lambda t: t.clamp(min=-1),
    "clamp_max_only": lambda t: t.clamp(max=0),
    "threshold_value": lambda t: F.threshold(t, 0.0, -1.0),
    "threshold_at_1": lambda t: F.threshold(t, 1.0, 0.0),
    "constant_clamp": lambda t: t + torch.ones(t.shape[-1], dtype=t.dtype).clamp(min=0),
    "hardtanh": lambda t: F.hardtanh(t, 0.0, 6.0),
    "relu6": F.relu6,
    "tanh": torch.tanh,
    "leaky": lambda t: F.leaky_relu(t, 0.1),
}


class _Act(nn.Module):
    """``Linear -> act -> ReLU module -> Linear``; ``act`` is functional code in forward."""

    def __init__(self, act: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(8)
        self.a, self.b, self.c = nn.Linear(5, 7), nn.Linear(7, 7), nn.Linear(7, 3)
        self.relu = nn.ReLU()
        self.double()
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.relu(self.b(self.act(self.a(x)))))


def _guided_by_hand(model: _Act, x: torch.Tensor, target: int, functional: bool) -> torch.Tensor:
    """Guided backprop written out: relu(g) * 1[z > 0] at the ReLU module; at the first
    activation the same rule (``functional=False``) or its plain gradient (what the warning says)."""
    xi = x.clone().requires_grad_(True)
    z1 = model.a(xi)
    h1 = torch.relu(z1)
    z2 = model.b(h1)
    h2 = torch.relu(z2)
    out = model.c(h2)
    (g2,) = torch.autograd.grad(out[:, target].sum(), h2, retain_graph=True)
    g2 = g2.clamp(min=0) * (z2 > 0)
    (g1,) = torch.autograd.grad(z2, h1, g2, retain_graph=True)
    g1 = g1 * (z1 > 0) if functional else g1.clamp(min=0) * (z1 > 0)
    (g0,) = torch.autograd.grad(z1, xi, g1)
    return g0.detach()


@pytest.mark.parametrize("how", sorted(_RELU_SPELLINGS))
def test_guided_backprop_reports_relu_spelled_as_a_clamp(how: str) -> None:
    model = _Act(_RELU_SPELLINGS[how]).eval()
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    with pytest.warns(UserWarning, match=r"guided_backprop: its forward pass called a functional ReLU.*1 time"):
        a = tribute.explain(model, x, method="guided_backprop", target=1, progress=False)
    assert a.extra["n_functional_relu_calls"] == 1
    got = torch.as_tensor(a.values)
    assert torch.allclose(got, _guided_by_hand(model, x, 1, functional=True), rtol=1e-10, atol=1e-12)
    # the rule on both ReLUs (the module spelling) differs: the warning is not idle
    assert float((got - _guided_by_hand(model, x, 1, functional=False)).abs().max()) > 1e-3


@pytest.mark.parametrize("how", sorted(_NOT_RELU))
def test_guided_backprop_does_not_count_clamps_that_are_not_relu(how: str) -> None:
    model = _Act(_NOT_RELU[how]).eval()
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = tribute.explain(model, x, method="deconvolution", target=2, progress=False)
    assert a.extra["n_functional_relu_calls"] == 0
