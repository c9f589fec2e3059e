"""AttnLRP: clamps spelled as functions get the identity rule of their nn.Hardtanh twin (aud50g)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tribute.methods.lrp import attnlrp_rules

Act = Callable[[torch.Tensor], torch.Tensor]


def _c(v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


SPELLINGS: dict[str, Act] = {
    "torch.clamp": lambda h: torch.clamp(h, -0.3, 0.3),
    "Tensor.clamp": lambda h: h.clamp(min=-0.3, max=0.3),
    "torch.clip": lambda h: torch.clip(h, -0.3, 0.3),
    "clamp_min/max": lambda h: h.clamp_min(-0.3).clamp_max(0.3),
    "F.hardtanh": lambda h: F.hardtanh(h, -0.3, 0.3),
    "maximum/minimum": lambda h: torch.minimum(_c(0.3), torch.maximum(h, _c(-0.3))),
    "torch.where": lambda h: torch.where(h < 0.3, torch.where(h > -0.3, h, -0.3), 0.3),
    "Tensor.where": lambda h: h.where(h > -0.3, _c(-0.3)).where(h < 0.3, _c(0.3)),
    "masked_fill": lambda h: h.masked_fill(~(h > -0.3), -0.3).masked_fill(h > 0.3, 0.3),
}
RELU_SPELLINGS: dict[str, Act] = {
    "clamp(min=0)": lambda h: h.clamp(min=0),
    "maximum(h, 0)": lambda h: torch.maximum(h, torch.zeros_like(h)),
    "mask clamp": lambda h: torch.relu(h).clamp(min=torch.finfo(h.dtype).min),
}


class _Block(nn.Module):
    """Attention (matmul / softmax) and an MLP whose activation is ``act`` (None: nn.Hardtanh)."""

    def __init__(self, act: Act | None, module: nn.Module) -> None:
        super().__init__()
        self.act, self.mod = act, module
        self.q, self.k, self.v = (nn.Linear(4, 4, bias=False) for _ in range(3))
        self.up, self.down = nn.Linear(4, 8, bias=False), nn.Linear(8, 4, bias=False)
        self.head = nn.Linear(4, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.softmax(self.q(x) @ self.k(x).transpose(-1, -2), -1)
        h = x + a @ self.v(x)
        u = self.up(h)
        h = h + self.down(self.mod(u) if self.act is None else self.act(u))
        out: torch.Tensor = self.head(h).sum(1)
        return out


def _relevance(act: Act | None, module: nn.Module) -> tuple[torch.Tensor, Counter[str]]:
    torch.manual_seed(0)
    m = _Block(act, module).double()
    torch.manual_seed(1)
    x = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    unruled: Counter[str] = Counter()
    with attnlrp_rules(m, unruled=unruled):
        (g,) = torch.autograd.grad(m(x).sum(), x)
    return (x * g).detach(), unruled


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_functional_clamp_matches_hardtanh_module(spelling: str) -> None:
    """Before aud50g these went through as plain gradients, 0.21 off (largest relevance 2.5)."""
    want, _ = _relevance(None, nn.Hardtanh(-0.3, 0.3))
    got, unruled = _relevance(SPELLINGS[spelling], nn.Identity())
    torch.testing.assert_close(got, want, rtol=0, atol=1e-8)
    assert not unruled


@pytest.mark.parametrize("spelling", list(RELU_SPELLINGS))
def test_relu_spelled_as_clamp_is_silent_and_relu(spelling: str) -> None:
    """A zero bound (or a mask-sized one) keeps the plain gradient: the ReLU's identity rule."""
    want, _ = _relevance(None, nn.ReLU())
    got, unruled = _relevance(RELU_SPELLINGS[spelling], nn.Identity())
    torch.testing.assert_close(got, want, rtol=0, atol=1e-8)
    assert not unruled


def _inplace(h: torch.Tensor) -> torch.Tensor:
    h.clamp_(-0.3, 0.3)
    return h


def test_inplace_clamp_reported() -> None:
    """``h.clamp_(a, b)`` kept the plain gradient (0.21 off the nn.Hardtanh twin) and was
    reported; since aud52x it gets the twin's rule, written back into ``h``."""
    want, _ = _relevance(None, nn.Hardtanh(-0.3, 0.3))
    got, unruled = _relevance(_inplace, nn.Identity())
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert not unruled
    _, unruled = _relevance(lambda h: h.clamp_(min=0), nn.Identity())  # a ReLU: silent
    assert not unruled


FIXED = torch.tensor([True, False, True, True, False, True, False, True])


def test_fixed_mask_fill_routes_as_indexing() -> None:
    """A selection on a mask that does not depend on the input fills a constant that carries no
    relevance: the plain gradient, as ``h * m + c * (1 - m)`` spells it."""
    m = FIXED.double()
    want, _ = _relevance(lambda h: torch.tanh(h) * m + 0.5 * (1 - m), nn.Identity())
    for fill in (lambda h: torch.where(FIXED, torch.tanh(h), 0.5),
                 lambda h: torch.tanh(h).masked_fill(~FIXED, 0.5)):
        got, unruled = _relevance(fill, nn.Identity())
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
        assert not unruled


class _Mlp(nn.Module):
    def __init__(self, act: Act) -> None:
        super().__init__()
        self.act, self.a, self.b = act, nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.b(self.act(self.a(x)))
        return out


def _lrp(act: Act) -> tuple[torch.Tensor, list[str], dict[str, int]]:
    import warnings

    import tribute
    torch.manual_seed(0)
    m = _Mlp(act).double()
    x = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        a = tribute.explain(m, x, method="lrp", composite="epsilon_plus", target=[0, 1], progress=False)
    return torch.as_tensor(a.values), [str(i.message) for i in w], a.extra["functional_ops"]


@pytest.mark.parametrize("relu", [lambda h: h.clamp(min=0), lambda h: torch.clamp(h, 0), lambda h: h.clamp_min(0),
                                  lambda h: torch.clip(h, min=0), lambda h: h.clamp(0, 1e9)],
                         ids=["clamp_kw", "clamp_pos", "clamp_min", "clip", "clamp_mask_max"])
def test_lrp_relu_spelled_as_clamp_not_reported(relu: Act) -> None:
    """Before aud50g: reported as an unseen functional op, with credits bitwise equal to nn.ReLU's."""
    want, _, _ = _lrp(nn.ReLU())
    got, warned, ops = _lrp(relu)
    assert torch.equal(got, want)
    assert not warned and not ops


@pytest.mark.parametrize("clamp", [lambda h: h.clamp(-0.3, 0.3), lambda h: h.clamp(min=-1), lambda h: h.clamp(0, 6),
                                   lambda h: h.clamp_max(0.5)], ids=["hardtanh", "neg_min", "relu6", "max_only"])
def test_lrp_clamp_at_a_constant_still_reported(clamp: Act) -> None:
    """Negative case of the above: a non-zero bound changes relevance (0.16 off nn.Hardtanh's)."""
    _, warned, ops = _lrp(clamp)
    assert any("functional operations" in w for w in warned) and ops
