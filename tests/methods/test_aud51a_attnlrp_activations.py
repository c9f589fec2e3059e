"""AttnLRP: functional activations get their module twin's identity rule, in-place ones are
reported, clamps with a tensor bound and product-built conditions are ruled (aud51a)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from test_aud50g_attnlrp_clamp import Act, _Block, _lrp, _relevance
from torch import nn

import tribute

_W = torch.full((1,), 0.25, dtype=torch.float64)

#: spelling -> (the functional call, its module twin)
TWINS: dict[str, tuple[Act, nn.Module]] = {
    "F.threshold": (lambda h: F.threshold(h, 0.1, 0.5), nn.Threshold(0.1, 0.5)),
    "torch.threshold": (lambda h: torch.threshold(h, 0.1, 0.5), nn.Threshold(0.1, 0.5)),
    "module built in forward": (lambda h: nn.Threshold(0.1, 0.5)(h), nn.Threshold(0.1, 0.5)),
    "F.softshrink": (lambda h: F.softshrink(h, 0.3), nn.Softshrink(0.3)),
    "F.tanhshrink": (F.tanhshrink, nn.Tanhshrink()),
    "F.hardshrink": (lambda h: F.hardshrink(h, 0.3), nn.Hardshrink(0.3)),
    "Tensor.hardshrink": (lambda h: h.hardshrink(0.3), nn.Hardshrink(0.3)),
    "F.rrelu": (lambda h: F.rrelu(h, 0.1, 0.3), nn.RReLU(0.1, 0.3).eval()),
    "F.prelu": (lambda h: F.prelu(h, _W), nn.PReLU(1, 0.25).double()),
}


@pytest.mark.parametrize("spelling", list(TWINS))
def test_functional_activation_matches_module_twin(spelling: str) -> None:
    """Before aud51a these kept the plain gradient with no warning: F.threshold 9.2 off the
    nn.Threshold twin (largest relevance 9.6), F.softshrink 0.24, F.tanhshrink 0.21, the
    piecewise-linear ones ~1e-9 (the twin's stabiliser)."""
    act, twin = TWINS[spelling]
    want, _ = _relevance(None, twin)
    got, unruled = _relevance(act, nn.Identity())
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert not unruled


def test_input_dependent_prelu_slope_reported() -> None:
    _, unruled = _relevance(lambda h: F.prelu(h, torch.sigmoid(h.mean()).reshape(1)), nn.Identity())
    assert unruled["prelu"] == 1


def test_logsigmoid_reported() -> None:
    """F.logsigmoid dispatches as ``log_sigmoid``: unreported before aud51a (12.7 off the
    nn.LogSigmoid twin under AttnLRP; 5.7 off under method='lrp'). AttnLRP rules it since
    aud52x (test_aud52x_attnlrp_leftovers); method='lrp' reports it."""
    _, warned, ops = _lrp(F.logsigmoid)
    assert ops == {"log_sigmoid": 1} and any("functional operations" in w for w in warned)


INPLACE: dict[str, tuple[Act, nn.Module]] = {
    "F.elu(inplace=True)": (lambda h: F.elu(h, inplace=True), nn.ELU()),
    "F.elu(h, 1.0, True)": (lambda h: F.elu(h, 1.0, True), nn.ELU()),
    "F.elu_": (F.elu_, nn.ELU()),
    "F.silu(inplace=True)": (lambda h: F.silu(h, inplace=True), nn.SiLU()),
    "Tensor.sigmoid_": (lambda h: h.sigmoid_(), nn.Sigmoid()),
    "F.threshold(inplace=True)": (lambda h: F.threshold(h, 0.1, 0.5, inplace=True), nn.Threshold(0.1, 0.5)),
    "torch.threshold_": (lambda h: torch.threshold_(h, 0.1, 0.5), nn.Threshold(0.1, 0.5)),
}


@pytest.mark.parametrize("spelling", list(INPLACE))
def test_inplace_activation_reported(spelling: str) -> None:
    """An activation computed in place kept its plain gradient, silently before aud51a
    (F.elu(h, inplace=True) 0.095 off its out-of-place twin, F.threshold(h, 0.1, 0.5,
    inplace=True) 9.2 off); aud51a reported it, aud52x rules it (the value computed on a copy,
    the rule written back into the input): equal to the module twin, nothing reported."""
    act, twin = INPLACE[spelling]
    want, _ = _relevance(None, twin)
    got, unruled = _relevance(act, nn.Identity())
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert not unruled


MODULES_INPLACE: dict[str, tuple[nn.Module, nn.Module]] = {
    "nn.ELU": (nn.ELU(inplace=True), nn.ELU()),
    "nn.Threshold": (nn.Threshold(0.1, 0.5, inplace=True), nn.Threshold(0.1, 0.5)),
    "nn.Hardtanh": (nn.Hardtanh(-0.3, 0.3, inplace=True), nn.Hardtanh(-0.3, 0.3)),
    "nn.SiLU": (nn.SiLU(inplace=True), nn.SiLU()),
    "nn.ReLU6": (nn.ReLU6(inplace=True), nn.ReLU6()),
}


@pytest.mark.parametrize("spelling", list(MODULES_INPLACE))
def test_inplace_activation_module_runs_out_of_place(spelling: str) -> None:
    """An activation module with inplace=True runs out of place inside the rules (as
    method='lrp''s NoInplace canonizer does) and gets its identity rule: before aud51a
    nn.ELU(inplace=True) was 0.095 off its out-of-place twin, nn.Threshold(0.1, 0.5,
    inplace=True) 9.2 off, silently. The flag is restored."""
    mod, twin = MODULES_INPLACE[spelling]
    want, _ = _relevance(None, twin)
    got, unruled = _relevance(None, mod)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert not unruled and vars(mod)["inplace"] is True


def test_inplace_flag_restored_after_exception() -> None:
    class _Fails(nn.Module):
        def __init__(self, act: nn.Module) -> None:
            super().__init__()
            self.lin, self.act = nn.Linear(4, 4), act

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.act(self.lin(x))
            raise RuntimeError("fails mid-forward")

    from tribute.methods.lrp import attnlrp_rules

    elu = nn.ELU(inplace=True)
    m = _Fails(elu).double()
    with pytest.raises(RuntimeError, match="fails mid-forward"), attnlrp_rules(m):
        m(torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True))
    assert elu.inplace is True


EXACT_INPLACE: dict[str, tuple[Act | None, nn.Module, nn.Module]] = {
    "F.relu(inplace=True)": (lambda h: F.relu(h, inplace=True), nn.Identity(), nn.ReLU()),
    "torch.relu_": (torch.relu_, nn.Identity(), nn.ReLU()),
    "F.leaky_relu_": (lambda h: F.leaky_relu_(h, 0.2), nn.Identity(), nn.LeakyReLU(0.2)),
    "torch.threshold_(value=0)": (lambda h: torch.threshold_(h, 0.1, 0.0), nn.Identity(), nn.Threshold(0.1, 0.0)),
    "nn.ReLU(inplace=True)": (None, nn.ReLU(inplace=True), nn.ReLU()),
    "nn.LeakyReLU(inplace=True)": (None, nn.LeakyReLU(0.2, inplace=True), nn.LeakyReLU(0.2)),
    "nn.Threshold(value=0, inplace=True)": (None, nn.Threshold(0.1, 0.0, inplace=True), nn.Threshold(0.1, 0.0)),
    "nn.Hardtanh(0, 1e9, inplace=True)": (None, nn.Hardtanh(0.0, 1e9, inplace=True), nn.ReLU()),
    "F.hardtanh(h, 0, 1e9)": (lambda h: F.hardtanh(h, 0.0, 1e9), nn.Identity(), nn.ReLU()),
    "F.hardtanh_(h, 0, 1e9)": (lambda h: F.hardtanh_(h, 0.0, 1e9), nn.Identity(), nn.ReLU()),
}


@pytest.mark.parametrize("spelling", list(EXACT_INPLACE))
def test_relu_like_inplace_or_unbounded_hardtanh_silent_and_right(spelling: str) -> None:
    """Negative cases: where the plain gradient is the identity rule (piecewise linear through
    the origin) nothing is reported. ``F.hardtanh(h, 0.0, 1e9)`` (a ReLU) was reported as
    unruled before aud51a."""
    act, mod, twin = EXACT_INPLACE[spelling]
    want, _ = _relevance(None, twin)
    got, unruled = _relevance(act, mod)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-8)
    assert not unruled


def _c(v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


@pytest.mark.parametrize(("spelling", "twin"), [
    (lambda h: torch.clamp(_c(0.2).expand_as(h), min=h), lambda h: torch.maximum(h, _c(0.2))),
    (lambda h: torch.clamp(_c(0.2).expand_as(h), max=h), lambda h: torch.minimum(h, _c(0.2))),
    (lambda h: _c(-0.3).expand_as(h).clamp(min=h, max=_c(0.3)), lambda h: h.clamp(-0.3, 0.3)),
], ids=["clamp(c, min=h)", "clamp(c, max=h)", "clamp(c, min=h, max=d)"])
def test_clamp_with_tensor_bound_is_the_extremum(spelling: Act, twin: Act) -> None:
    """``torch.clamp(c, min=h)`` is ``torch.maximum(h, c)``: before aud51a it kept the plain
    gradient, silently (3.7 off the twin, largest relevance 2.6)."""
    want, _ = _relevance(twin, nn.Identity())
    got, unruled = _relevance(spelling, nn.Identity())
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert not unruled


def test_where_on_product_condition_is_a_clamp() -> None:
    """``(h > a) * (h < b)`` is the same condition as ``(h > a) & (h < b)``; before aud51a the
    product was not recorded as input-derived and ``torch.where`` of it kept the plain gradient."""
    want, _ = _relevance(lambda h: torch.where((h > -0.3) & (h < 0.3), h, 0.3), nn.Identity())
    got, unruled = _relevance(lambda h: torch.where((h > -0.3) * (h < 0.3), h, 0.3), nn.Identity())
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert not unruled
    # negative case: a fixed mask times a fixed mask stays a fixed mask (routing, plain gradient)
    fixed = (torch.arange(8) % 2 == 0) * (torch.arange(8) < 6)
    plain, _ = _relevance(lambda h: torch.tanh(h) * fixed + 0.3 * ~fixed, nn.Identity())
    got, unruled = _relevance(lambda h: torch.where(fixed, torch.tanh(h), 0.3), nn.Identity())
    torch.testing.assert_close(got, plain, rtol=0, atol=1e-12)
    assert not unruled


def test_inplace_warning_says_compute_out_of_place() -> None:
    """aud52x: a functional in-place activation is ruled now (no warning, nothing reported);
    the out-of-place and in-place-module spellings stay silent."""
    torch.manual_seed(0)
    m = _Block(lambda h: F.elu(h, inplace=True), nn.Identity()).double()
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = tribute.explain(m, x, method="attnlrp", target=0, progress=False)
    assert a.extra["functional_ops"] == {}
    with warnings.catch_warnings():  # negative cases: out of place, or an in-place module: no warning
        warnings.simplefilter("error")
        tribute.explain(_Block(F.elu, nn.Identity()).double(), x, method="attnlrp", target=0, progress=False)
        tribute.explain(_Block(None, nn.ELU(inplace=True)).double(), x, method="attnlrp", target=0, progress=False)
