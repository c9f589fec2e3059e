"""aud49g: gradient methods on models whose rows interact, and other truths computed outside tribute.

Regression (silent before the fix): ``integrated_hessians`` sends each node once per player and
differentiates, per pass, one entry of the gradient of the *sum* of the pass's values. The
engine's check that a model evaluates its rows independently looked at that derivative. On a
model that subtracts a batch mean before ReLUs it is blind (the sum over rows has zero second
derivatives), so the check passed on one input: the credits came from the mixed rows (0.00023 off
for a largest credit of 0.0475), and the model was marked checked for the process: saliency,
kernel_shap, integrated_gradients and deeplift on batches of the same model then ran with no
error (kernel_shap 0.235 off for a largest credit of 0.211). The check now reads the rows'
values.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import tribute
from tribute.errors import ModelOutputError
from tribute.methods.integrated_hessians import log_quadrature
from tribute_testing import lrp_with_report


class _InputMean(nn.Module):
    """``x - 0.5 mean_batch(x)`` then Linear -> ReLU -> Linear: the rows of a pass interact."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.r, self.b = nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - 0.5 * x.mean(0, keepdim=True)
        return self.b(self.r(self.a(x)))


def _mixing() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return _InputMean().double().eval(), torch.randn(4, 5, dtype=torch.float64)


def test_integrated_hessians_refuses_rows_mixed_before_relus() -> None:
    model, x = _mixing()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ModelOutputError, match="changes with the other rows of its batch"):
        tribute.explain(model, x[:1], "integrated_hessians", target=0, steps=4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training


@pytest.mark.parametrize("method", ["saliency", "kernel_shap", "integrated_gradients", "deeplift"])
def test_a_refused_hessian_pass_leaves_the_model_unchecked(method: str) -> None:
    # the blind check marked the model checked: these calls on a batch then ran silently
    model, x = _mixing()
    with pytest.raises(ModelOutputError):
        tribute.explain(model, x[:1], "integrated_hessians", target=0, steps=4)
    with pytest.raises(ModelOutputError, match="changes with the other rows of its batch"):
        tribute.explain(model, x, method, target=0)


def test_integrated_hessians_one_row_per_pass_is_the_rows_alone() -> None:
    # batch_size=1 (what the refusal suggests) evaluates each row alone: there the model is
    # f(0.5 x), so the credits are the log-quadrature IG of that function, by hand
    model, x = _mixing()
    steps = 6
    attr = tribute.explain(model, x[:1], "integrated_hessians", target=0, steps=steps, batch_size=1)
    nodes, weights = log_quadrature(steps)
    want = torch.zeros(5, dtype=torch.float64)
    for g, w in zip(nodes.tolist(), weights.tolist()):
        p = (g * x[:1]).clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(p)[0, 0], p)  # one row: alone
        want += w * grad[0] * x[0]
    assert torch.allclose(attr.values[0], want, atol=1e-12, rtol=0)


class _Quadratic(nn.Module):
    """``0.5 x^T H x + c^T x`` per row, plus a second output; row-wise."""

    def __init__(self, d: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        a = torch.randn(d, d, generator=g, dtype=torch.float64)
        self.h: torch.Tensor
        self.c: torch.Tensor
        self.register_buffer("h", a + a.T)
        self.register_buffer("c", torch.randn(d, generator=g, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = 0.5 * ((x @ self.h) * x).sum(1) + x @ self.c
        return torch.stack([q, -q + x[:, 0]], 1)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_integrated_hessians_on_rowwise_models_still_runs_exactly(n: int) -> None:
    # neighbours of the refusal: row-wise models at batch 1 / 2 / 5 run, and a quadratic gets
    # Gamma_ij = x_i x_j H_ij / 4 + delta_ij x_i ((H x)_i / 4 + c_i) (baseline 0; int -ln g = 1,
    # int -g ln g = 1/4), exact at any steps
    d = 4
    model = _Quadratic(d).eval()
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attr = tribute.explain(model, x, "integrated_hessians", target=0, steps=3)
    gamma = torch.as_tensor(attr.extra["shap_interaction_values"])[:, 0]
    h = model.h
    want = x[:, :, None] * x[:, None, :] * h / 4
    idx = torch.arange(d)
    want[:, idx, idx] += x * ((x @ h) / 4 + model.c)
    assert torch.allclose(gamma, want, atol=1e-12, rtol=0)


class _Tanh(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_integrated_hessians_batch_equals_rows_alone_on_a_rowwise_model() -> None:
    torch.manual_seed(1)
    model = _Tanh().double().eval()
    x = torch.randn(4, 5, dtype=torch.float64)
    whole = tribute.explain(model, x, "integrated_hessians", target=[0, 2], steps=5)
    for i in range(4):
        alone = tribute.explain(model, x[i:i + 1], "integrated_hessians", target=[0, 2], steps=5)
        assert torch.allclose(whole.values[i], alone.values[0], atol=1e-14, rtol=0)


# --- lrp: clamps spelled as extrema / selections with a constant -----------------------------
# Regression (silent before the fix): ``lrp`` reports functional code whose relevance goes back
# as a plain gradient, and ``h.clamp(min=c)`` was counted; its twins ``torch.maximum(h, c)``,
# ``torch.fmax``, ``torch.max(h, c_tensor)``, ``torch.where(h > c, h, c)``, ``h.masked_fill(m,
# c)`` were not: credits 0.028 off the Pass rule (largest credit 0.023) with no warning.

_C = 0.2
_TWINS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "clamp": lambda h: h.clamp(min=_C),
    "maximum": lambda h: torch.maximum(h, torch.tensor(_C, dtype=h.dtype)),
    "maximum_reversed": lambda h: torch.maximum(torch.full_like(h, _C), h),
    "fmax": lambda h: torch.fmax(h, torch.tensor(_C, dtype=h.dtype)),
    "max": lambda h: torch.max(h, torch.full_like(h, _C)),
    "tensor_max": lambda h: h.max(torch.full_like(h, _C)),
    "minimum": lambda h: torch.minimum(h, torch.tensor(0.5, dtype=h.dtype)),
    "fmin": lambda h: torch.fmin(h, torch.full_like(h, 0.5)),
    "where": lambda h: torch.where(h > _C, h, torch.full_like(h, _C)),
    "where_scalar": lambda h: torch.where(h > _C, h, _C),
    "tensor_where": lambda h: h.where(h > _C, torch.full_like(h, _C)),
    "masked_fill": lambda h: h.masked_fill(h <= _C, _C),
}
#: Routing, reductions and zero fills: the plain gradient is the rule there (no warning).
_ROUTES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "maximum_of_two_inputs": lambda h: torch.maximum(h, h.flip(-1)),
    "minimum_of_two_inputs": lambda h: torch.minimum(h, h.roll(1, -1)),
    "max_dim": lambda h: h.max(-1, keepdim=True).values.expand_as(h).clone(),
    "torch_max_dim": lambda h: torch.max(h, 1, keepdim=True)[0].expand_as(h).clone(),
    "amax": lambda h: h.amax(-1, keepdim=True).expand_as(h).clone(),
    "where_zero": lambda h: torch.where(h > _C, h, 0.0),
    "where_zeros_tensor": lambda h: torch.where(h > _C, h, torch.zeros_like(h)),
    "where_two_inputs": lambda h: torch.where(h > _C, h, h.flip(-1)),
    "masked_fill_zero": lambda h: h.masked_fill(h <= _C, 0.0),
    "where_indices": lambda h: h * 1.0 if torch.where(h > 5.0)[0].numel() else h,
    "maximum_of_constants": lambda h: h + torch.maximum(torch.zeros(6), torch.ones(6)).to(h.dtype) * 0,
    "sort": lambda h: h.sort(-1).values,
}


class _Clamped(nn.Module):
    """Linear -> Tanh -> ``op`` (or ``nn.Hardtanh(c, 1e9)``, whose Pass rule is the truth) -> Linear."""

    def __init__(self, op: str, ops: dict[str, Callable[[torch.Tensor], torch.Tensor]]) -> None:
        super().__init__()
        self.a, self.t, self.b = nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 2)
        self.module = nn.Hardtanh(_C, 1e9)
        self.op, self.ops = op, ops

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.t(self.a(x))
        return self.b(self.module(h) if self.op == "module" else self.ops[self.op](h))


def _lrp(op: str, ops: dict[str, Callable[[torch.Tensor], torch.Tensor]]
         ) -> tuple[torch.Tensor, dict[str, int], list[str]]:
    return lrp_with_report(lambda: _Clamped(op, ops))


@pytest.mark.parametrize("op", sorted(_TWINS))
def test_lrp_reports_clamps_spelled_otherwise(op: str) -> None:
    values, ops, said = _lrp(op, _TWINS)
    assert ops and len(said) == 1, (ops, said)
    if op not in ("minimum", "fmin"):  # clamps at c from below: the same function as clamp(min=c)
        clamp, _, _ = _lrp("clamp", _TWINS)
        assert torch.equal(values, clamp)
        rule, _, _ = _lrp("module", _TWINS)  # what the warning warns about is real
        assert float((values - rule).abs().max()) > 0.5 * float(rule.abs().max())


@pytest.mark.parametrize("op", sorted(_ROUTES))
def test_lrp_routing_extrema_and_zero_fills_stay_silent(op: str) -> None:
    _, ops, said = _lrp(op, _ROUTES)
    assert ops == {} and said == []


_MASKS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    # masks, not clamps: they never win what follows (or are ReLUs), and stay silent
    "where_neg_inf": lambda h: torch.where(h > h.amax(-1, keepdim=True) - 0.5, h, float("-inf")).amax(-1, keepdim=True).expand_as(h).clone(),
    "masked_fill_neg_inf": lambda h: h.masked_fill(h < h.amax(-1, keepdim=True) - 0.5, float("-inf")).amax(-1, keepdim=True).expand_as(h).clone(),
    "where_finfo_min": lambda h: torch.where(h > _C, h, torch.finfo(h.dtype).min).amax(-1, keepdim=True).expand_as(h).clone(),
    "max_finfo_min": lambda h: torch.max(h, torch.tensor(torch.finfo(h.dtype).min, dtype=h.dtype)),
    "masked_fill_minus_1e4": lambda h: h.masked_fill(h <= _C, -1e4).amax(-1, keepdim=True).expand_as(h).clone(),
    "maximum_zero": lambda h: torch.maximum(h, torch.zeros_like(h)),
    "fmax_zero": lambda h: torch.fmax(h, torch.tensor(0.0, dtype=h.dtype)),
}


@pytest.mark.parametrize("op", sorted(_MASKS))
def test_lrp_masks_and_relus_spelled_as_extrema_stay_silent(op: str) -> None:
    _, ops, said = _lrp(op, _MASKS)
    assert ops == {} and said == []


# --- deeplift: rows mixed with the baselines it runs next to ----------------------------------
# Regression (before the fix): DeepLIFT runs each input next to its baseline in one pass. On one
# input that pass ([x, x0], or x next to a background) was too small or too tall for the engine's
# check: a model with a batch mean got credits from the mixed rows (0.046 off for a largest
# credit of 0.103, warned only as "nonlinearities outside torch.nn modules"), and with a
# background the pass marked the model checked, so saliency / kernel_shap on batches then ran
# silently (kernel_shap 0.235 off for a largest credit of 0.211).


class _HiddenMean(nn.Module):
    """Linear -> ReLU, minus half the batch mean, -> Linear (mixing after the nonlinearity)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.r, self.b = nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.r(self.a(x))
        return self.b(h - 0.5 * h.mean(0, keepdim=True))


@pytest.mark.parametrize("kind", ["input", "hidden"])
@pytest.mark.parametrize("baseline", ["scalar", "background"])
def test_deeplift_refuses_rows_mixed_with_its_baselines(kind: str, baseline: str) -> None:
    torch.manual_seed(0)
    model: nn.Module = (_InputMean() if kind == "input" else _HiddenMean()).double().eval()
    x = torch.randn(1, 5, dtype=torch.float64)
    base: Any = 0.3 if baseline == "scalar" else tribute.Background(torch.randn(4, 5, dtype=torch.float64))
    with pytest.raises(ModelOutputError, match="baseline row of sample 0"):
        tribute.explain(model, x, "deeplift", target=0, baseline=base)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("method", ["saliency", "kernel_shap"])
def test_deeplift_on_one_input_leaves_a_mixing_model_unchecked(method: str) -> None:
    model, x = _mixing()
    with pytest.raises(ModelOutputError):
        tribute.explain(model, x[:1], "deeplift", target=0,
                        baseline=tribute.Background(torch.randn(4, 5, dtype=torch.float64)))
    with pytest.raises(ModelOutputError, match="changes with the other rows of its batch"):
        tribute.explain(model, x, method, target=0)


class _Rescale(nn.Module):
    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.a, self.r, self.b = nn.Linear(5, 6), nn.ReLU(inplace=inplace), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.r(self.a(x)))


def _rescale_by_hand(model: _Rescale, x: torch.Tensor, b: torch.Tensor, t: int) -> torch.Tensor:
    z, z0 = model.a(x), model.a(b)
    m = (torch.relu(z) - torch.relu(z0)) / (z - z0)
    return (x - b) * ((model.b.weight[t] * m) @ model.a.weight)


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("background", [False, True])
def test_deeplift_rowwise_models_still_match_the_rescale_rule(inplace: bool, n: int, background: bool) -> None:
    # neighbours of the refusal: one input or several, a scalar baseline or a background,
    # in-place ReLU; DeepLIFT by hand (rescale multipliers of one ReLU layer)
    torch.manual_seed(2)
    model = _Rescale(inplace).double().eval()
    x = torch.randn(n, 5, dtype=torch.float64)
    bg = torch.randn(4, 5, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attr = tribute.explain(model, x, "deeplift", target=1,
                               baseline=tribute.Background(bg) if background else 0.3)
    with torch.no_grad():
        want = (torch.stack([_rescale_by_hand(model, x, bg[j].expand_as(x), 1) for j in range(4)]).mean(0)
                if background else _rescale_by_hand(model, x, torch.full_like(x, 0.3), 1))
    assert torch.allclose(attr.values, want, atol=1e-12, rtol=0)
