"""AttnLRP: zero-gradient factors (``torch.sign`` and its kin) beyond ``sign(h) * h`` (review
rev52x of aud52x). Truth: twins that spell the factor with comparisons (no gradient: a constant
factor for the rules) or ``.detach()``, float64, the same weights."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
import torch
from torch import nn

from tribute.methods.lrp import attnlrp_rules

Gate = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _sg(t: torch.Tensor) -> torch.Tensor:
    """``sign(t)`` spelled with comparisons (no gradient)."""
    return (t > 0).to(t.dtype) - (t < 0).to(t.dtype)


class _Block(nn.Module):
    """Attention (matmul / softmax) and an MLP mixing three projections through ``f``."""

    def __init__(self, f: Gate) -> None:
        super().__init__()
        self.f = f
        self.q, self.k, self.v = (nn.Linear(4, 4, bias=False) for _ in range(3))
        self.up, self.gate, self.w3 = (nn.Linear(4, 8, bias=False) for _ in range(3))
        self.down, self.head = nn.Linear(8, 4, bias=False), nn.Linear(4, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.softmax(self.q(x) @ self.k(x).transpose(-1, -2), -1)
        h = x + a @ self.v(x)
        h = h + self.down(self.f(self.up(h), self.gate(h), self.w3(h)))
        out: torch.Tensor = self.head(h).sum(1)
        return out


def _relevance(f: Gate, variant: str = "attnlrp") -> tuple[torch.Tensor, torch.Tensor, Counter[str]]:
    torch.manual_seed(0)
    m = _Block(f).double()
    torch.manual_seed(1)
    x = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        plain = m(x)
    unruled: Counter[str] = Counter()
    with attnlrp_rules(m, variant=variant, unruled=unruled):
        y = m(x)
        (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(y.detach(), plain, rtol=0, atol=0)  # f(x) unchanged
    return (x * g).detach(), y.detach(), unruled


def _mul_into_sign(u: torch.Tensor, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    s = torch.sign(v)
    s.mul_(u)
    return s * w


def _add_into_sign(u: torch.Tensor, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    s = torch.sign(v)
    s += u
    return s * w


def _set_into_sign(u: torch.Tensor, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    s = torch.sign(v)
    s[:, 1:3] = u[:, 1:3]
    return s * w


def _set_twin(u: torch.Tensor, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    keep = torch.zeros(1, 5, 1, dtype=u.dtype)
    keep[:, 1:3] = 1
    return (keep * u + (1 - keep) * _sg(v)) * w


def _mul_into_a_view_of_sign(u: torch.Tensor, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    s = torch.sign(v)
    s[..., :2].mul_(u[..., :2])
    return s * w


def _view_twin(u: torch.Tensor, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    keep = torch.zeros(8, dtype=u.dtype)
    keep[:2] = 1
    return (_sg(v) * (keep * u + (1 - keep))) * w


def _sign_into_a_buffer(u: torch.Tensor, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    buf = torch.zeros_like(u.detach())
    buf[...] = torch.sign(v)
    return buf * u


CASES: dict[str, tuple[Gate, Gate]] = {
    # a mask that an in-place call turns into an input-dependent tensor stops being a mask
    # (it stayed one after aud52x: 0.50 / 0.58 off, largest 1.4 / 1.8; exact before aud52x)
    "s=sign(v); s.mul_(u); s*w": (_mul_into_sign, lambda u, v, w: (_sg(v) * u) * w),
    "s=sign(v); s+=u; s*w": (_add_into_sign, lambda u, v, w: (_sg(v) + u) * w),
    "s=sign(v); s[..]=u; s*w": (_set_into_sign, _set_twin),
    "s=sign(v); s[..., :2].mul_(u); s*w": (_mul_into_a_view_of_sign, _view_twin),  # 0.36 off
    # a sign written into a constant buffer is a mask too (0.22 off)
    "buf[...]=sign(v); buf*u": (_sign_into_a_buffer, lambda u, v, w: _sg(v) * u),
    # a function of masks alone is a mask (0.14 / 0.23 off, largest 1.2 / 1.0, silently)
    "tanh(sign(u))*u": (lambda u, v, w: torch.tanh(torch.sign(u)) * u, lambda u, v, w: torch.tanh(_sg(u)) * u),
    "sigmoid(sign(v))*u": (lambda u, v, w: torch.sigmoid(torch.sign(v)) * u,
                           lambda u, v, w: torch.sigmoid(_sg(v)) * u),
    # siblings of sign: in place, and the other zero-gradient roundings (0.18 / 0.36 / 0.39 off)
    "u.clone().sign_()*u": (lambda u, v, w: u.clone().sign_() * u, lambda u, v, w: _sg(u) * u),
    "round(v)*u": (lambda u, v, w: torch.round(v) * u, lambda u, v, w: torch.round(v).detach() * u),
    "floor(v)*u": (lambda u, v, w: v.floor() * u, lambda u, v, w: v.floor().detach() * u),
    # these were right after aud52x and stay right (negative cases)
    "sign(v)*u": (lambda u, v, w: torch.sign(v) * u, lambda u, v, w: _sg(v) * u),
    "sign(u+v)*u*w": (lambda u, v, w: torch.sign(u + v) * u * w, lambda u, v, w: _sg(u + v) * u * w),
    "sign(v)*sigmoid(u)": (lambda u, v, w: torch.sign(v) * torch.sigmoid(u),
                           lambda u, v, w: _sg(v) * torch.sigmoid(u)),
}


@pytest.mark.parametrize("variant", ["attnlrp", "cp"])
@pytest.mark.parametrize("case", list(CASES))
def test_zero_gradient_factor_matches_its_twin(case: str, variant: str) -> None:
    f, twin = CASES[case]
    want, _, _ = _relevance(twin, variant)
    got, _, unruled = _relevance(f, variant)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert not unruled


@pytest.mark.parametrize("spelling", [lambda h: torch.exp(torch.sign(h)), lambda h: torch.sign(h).abs()],
                         ids=["exp(sign)", "sign.abs()"])
def test_function_of_a_sign_is_not_reported(spelling: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """``exp`` / ``abs`` of a sign have a zero gradient, no rule to miss: not reported."""
    _, _, unruled = _relevance(lambda u, v, w: spelling(v) * u)
    assert not unruled


def test_nonlinearity_of_an_input_is_still_ruled_next_to_a_sign() -> None:
    """Negative case: with a mask alive, ``exp(u)`` (a real unruled function) is still reported and
    ``sigmoid(u) * w`` still gets the uniform rule (its twin computed without any sign)."""
    _, _, unruled = _relevance(lambda u, v, w: torch.exp(u) * torch.sign(v))
    assert unruled == Counter({"exp": 1})
    got, _, _ = _relevance(lambda u, v, w: torch.sigmoid(u) * w + 0 * torch.sign(v))
    want, _, _ = _relevance(lambda u, v, w: torch.sigmoid(u) * w)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
