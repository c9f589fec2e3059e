"""AttnLRP leftovers of stop 51 (aud52x): F.softsign / F.logsigmoid get their module twin's
identity rule, ``torch.sign(h) * h`` is ``abs(h)`` (sign is a mask), and functional in-place
activations / clamps are ruled by writing the rule back into their input."""

from __future__ import annotations

import warnings
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from test_aud50g_attnlrp_clamp import Act, _Block, _relevance
from torch import nn

import tribute
from tribute.methods.lrp import attnlrp_rules

TWINS: dict[str, tuple[Act, nn.Module]] = {
    "F.softsign": (F.softsign, nn.Softsign()),
    "F.logsigmoid": (F.logsigmoid, nn.LogSigmoid()),
}


@pytest.mark.parametrize("spelling", list(TWINS))
def test_softsign_and_logsigmoid_match_module_twin(spelling: str) -> None:
    """Before aud52x: reported and left as plain gradients, F.softsign 0.162 off the
    nn.Softsign twin (largest relevance 2.6), F.logsigmoid 12.7 off nn.LogSigmoid's (13.9)."""
    act, twin = TWINS[spelling]
    want, _ = _relevance(None, twin)
    got, unruled = _relevance(act, nn.Identity())
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert not unruled


@pytest.mark.parametrize("spelling", [lambda h: torch.sign(h) * h, lambda h: h * h.sign(),
                                      lambda h: torch.sgn(h) * h, lambda h: (0.5 * torch.sign(h)) * h * 2,
                                      lambda h: torch.einsum("btf,btf->btf", torch.sign(h), h)],
                         ids=["sign(h)*h", "h*h.sign()", "sgn(h)*h", "0.5*sign(h)*h*2", "einsum"])
def test_abs_spelled_as_sign_product_is_abs(spelling: Act) -> None:
    """``sign(h) * h`` is ``|h|`` = ``relu(h) + relu(-h)`` (the twin: two ReLUs, whose identity
    rule is their plain gradient). Before aud52x the product of two input-dependent factors got
    the uniform rule (half of the relevance through it), 0.22 off (largest relevance 2.4),
    silently."""
    want, _ = _relevance(lambda h: F.relu(h) + F.relu(-h), nn.Identity())
    got, unruled = _relevance(spelling, nn.Identity())
    torch.testing.assert_close(got, want, rtol=0, atol=1e-8)  # the twin's stabiliser (max 1.8e-9)
    assert not unruled


INPLACE: dict[str, tuple[Act, nn.Module]] = {
    "F.elu_; read h": (lambda h: (F.elu_(h), h)[1], nn.ELU()),
    "h.tanh_()": (lambda h: h.tanh_(), nn.Tanh()),
    "F.hardsigmoid(inplace=True)": (lambda h: F.hardsigmoid(h, inplace=True), nn.Hardsigmoid()),
    "F.selu(inplace=True)": (lambda h: F.selu(h, inplace=True), nn.SELU()),
    "h.clamp_(-0.3, 0.3); read h": (lambda h: (h.clamp_(-0.3, 0.3), h)[1], nn.Hardtanh(-0.3, 0.3)),
    "F.hardtanh_(h, -0.3, 0.3)": (lambda h: F.hardtanh_(h, -0.3, 0.3), nn.Hardtanh(-0.3, 0.3)),
    "F.hardtanh(h, -0.3, 0.3, True)": (lambda h: F.hardtanh(h, -0.3, 0.3, True), nn.Hardtanh(-0.3, 0.3)),
    "h.clip_(-0.3, 0.3)": (lambda h: h.clip_(-0.3, 0.3), nn.Hardtanh(-0.3, 0.3)),
}


class _View(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.s = nn.Sigmoid()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.s(h[..., :4]), h[..., 4:]], -1)


@pytest.mark.parametrize("variant", ["attnlrp", "cp"])
@pytest.mark.parametrize("spelling", list(INPLACE))
def test_functional_inplace_activation_matches_module_twin(spelling: str, variant: str) -> None:
    """Before aud52x these kept their plain gradient and were reported (aud51a): F.elu_ 0.095
    off the nn.ELU twin (largest relevance 2.9), F.hardsigmoid(inplace=True) 9.2, h.tanh_()
    0.21, h.clamp_(-0.3, 0.3) / F.hardtanh_ 0.24. The model's output is unchanged."""
    act, twin = INPLACE[spelling]

    def run(a: Act | None, mod: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        torch.manual_seed(0)
        m = _Block(a, mod).double()
        torch.manual_seed(1)
        x = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
        plain = m(x).detach()
        with attnlrp_rules(m, variant=variant, unruled=unruled):
            y = m(x)
            (g,) = torch.autograd.grad(y.sum(), x)
        return (x * g).detach(), y.detach(), plain

    unruled: Counter[str] = Counter()
    want, _, _ = run(None, twin)
    got, y, plain = run(act, nn.Identity())
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    torch.testing.assert_close(y, plain, rtol=0, atol=0)
    assert not unruled


def test_inplace_on_a_view_read_through_the_base() -> None:
    """``h[..., :4].sigmoid_()`` then reading ``h``: 7.7 off the twin (largest 8.2) before aud52x."""
    want, _ = _relevance(None, _View())
    got, unruled = _relevance(lambda h: (h[..., :4].sigmoid_(), h)[1], nn.Identity())
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert not unruled


def test_relu_like_inplace_clamp_keeps_its_path() -> None:
    """Negative cases: an in-place clamp at zero (a ReLU) keeps the plain gradient, silently;
    explain() on an in-place block warns about nothing."""
    want, _ = _relevance(None, nn.ReLU())
    got, unruled = _relevance(lambda h: h.clamp_(min=0), nn.Identity())
    torch.testing.assert_close(got, want, rtol=0, atol=1e-8)  # the twin's stabiliser
    assert not unruled
    torch.manual_seed(0)
    m = _Block(lambda h: h.sigmoid_(), nn.Identity()).double()
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = tribute.explain(m, x, method="attnlrp", target=0, progress=False)
    assert a.extra["functional_ops"] == {}


def test_output_through_sign_alone_keeps_a_zero_gradient() -> None:
    """Negative case: an output that reads the input only through ``torch.sign`` has zero
    relevance everywhere (gap = -f(x)), as before aud52x; a first version of the sign rule
    detached it and explain() raised "element 0 of tensors does not require grad"."""
    class _SignOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin, self.head = nn.Linear(4, 4), nn.Linear(4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.head(torch.sign(self.lin(x))).sum(1)
            return out

    torch.manual_seed(0)
    m = _SignOnly().double()
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    a = tribute.explain(m, x, method="attnlrp", target=0, progress=False)
    assert float(torch.as_tensor(a.values).abs().max()) == 0.0
    with torch.no_grad():
        torch.testing.assert_close(-torch.as_tensor(a.gap), m(x)[:, 0], rtol=0, atol=1e-12)  # sum R - f(x)
