"""aud43g: gradient, LRP, DeepLIFT and CAM methods against truths computed outside tribute.

Regression (failed before the fix): ``output="logit"`` of a model declared to return
probabilities (``model_output="probability"``) is ``log(p / (1 - p))`` computed *outside* the
model, which propagation rules cannot see. LRP and AttnLRP accepted it and returned credits 4x
(LRP, through a final ``nn.Sigmoid``) or of another sign (AttnLRP) than the logit's, with no
warning; DeepLIFT ran with a warning that blamed functional nonlinearities in the model. They
now refuse it with :class:`InputError`, and explaining the logit itself (``output="raw"`` of
the model without its final sigmoid) is unchanged.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError


def _nets() -> tuple[nn.Module, nn.Module, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    core = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 1)).double()
    with torch.no_grad():
        for p in core.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    x = torch.randn(4, 5, generator=g, dtype=torch.float64)
    return core, nn.Sequential(core, nn.Sigmoid()), x


@pytest.mark.parametrize(("method", "kw"), [("lrp", {"composite": "epsilon_plus"}),
                                            ("attnlrp", {}), ("deeplift", {})])
def test_propagation_refuses_a_logit_computed_outside_the_model(method: str, kw: dict[str, Any]) -> None:
    _, model, x = _nets()
    with pytest.raises(InputError, match=r"output='logit'.*model_output='probability'"):
        tribute.explain(model, x, method=method, target=0, output="logit",
                        model_output="probability", progress=False, **kw)


@pytest.mark.parametrize(("method", "kw"), [("lrp", {"composite": "epsilon_plus"}),
                                            ("attnlrp", {}), ("deeplift", {})])
def test_propagation_of_the_logit_itself_still_runs(method: str, kw: dict[str, Any]) -> None:
    """``output="logit"`` of a model returning logits is the output itself: accepted, and the
    same credits as ``output="raw"``; for DeepLIFT (baseline 0) they sum to
    ``f(x) - f(0)`` computed directly from the model."""
    core, _, x = _nets()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = tribute.explain(core, x, method=method, target=0, output="logit", progress=False, **kw)
        b = tribute.explain(core, x, method=method, target=0, output="raw", progress=False, **kw)
    torch.testing.assert_close(a.values, b.values, rtol=0, atol=0)
    if method == "deeplift":
        with torch.no_grad():
            delta = (core(x) - core(torch.zeros(1, 5, dtype=torch.float64)))[:, 0]
        torch.testing.assert_close(a.values.sum(1), delta, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------- guided backprop / deconv
class _PreActSkip(nn.Module):
    """``l1(relu_(h)) + l2(h)``: the in-place ReLU makes ``l2`` read ``relu(h)`` too."""

    def __init__(self) -> None:
        super().__init__()
        self.l0, self.relu = nn.Linear(4, 6), nn.ReLU(inplace=True)
        self.l1, self.l2 = nn.Linear(6, 2), nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.l0(x)
        a = self.relu(h)
        out: torch.Tensor = self.l1(a) + self.l2(h)
        return out


class _InputRelu(nn.Module):
    """An in-place ReLU on the model's input, which a second layer reads again."""

    def __init__(self) -> None:
        super().__init__()
        self.relu, self.l1, self.l2 = nn.ReLU(inplace=True), nn.Linear(4, 2), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.l1(self.relu(x)) + self.l2(x)
        return out


class _AddAfter(nn.Module):
    """The ReLU's output modified in place by the model (``h.add_(1)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.l0, self.relu, self.l1 = nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.l0(x))
        h.add_(1.0)
        out: torch.Tensor = self.l1(h)
        return out


def _seeded(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return model.double()


def _hand(model: nn.Module, x: torch.Tensor, t: int, guided: bool) -> torch.Tensor:
    """Guided backprop / deconvolution of the three models, written out from their weights:
    the gradient ``g`` reaching the ReLU's output passes as ``relu(g) * 1[pre > 0]`` (guided)
    or ``relu(g)`` (deconvolution); every layer is linear."""
    with torch.no_grad():
        if isinstance(model, _PreActSkip):
            pre, w_in = model.l0(x), model.l0.weight
            g = (model.l1.weight[t] + model.l2.weight[t]).expand_as(pre)
        elif isinstance(model, _InputRelu):
            pre, w_in = x, torch.eye(4, dtype=torch.float64)
            g = (model.l1.weight[t] + model.l2.weight[t]).expand_as(pre)
        else:
            assert isinstance(model, _AddAfter)
            pre, w_in = model.l0(x), model.l0.weight
            g = model.l1.weight[t].expand_as(pre)
        r = g.clamp_min(0.0) * ((pre > 0).double() if guided else 1.0)
        return r @ w_in


@pytest.mark.parametrize("kind", [_PreActSkip, _InputRelu, _AddAfter])
@pytest.mark.parametrize("method", ["guided_backprop", "deconvolution"])
def test_guided_and_deconvolution_on_inplace_relus(kind: type[nn.Module], method: str) -> None:
    """aud43g: the in-place ReLUs were switched off (NoInplace) for the pass, so a model reading
    the ReLU's input again was explained as another function: ``l2(h)`` of the raw ``h``
    (guided 0.369 off for credits up to 0.107 on _PreActSkip); an output modified in place
    (_AddAfter) raised PyTorch's bare "Output 0 of _ModifiedRelu is a view and is being
    modified inplace". The model, its flags and the input are left as they were."""
    model = _seeded(kind(), 3)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x_in = x.clone()
    flags = [getattr(m, "inplace", None) for m in model.modules()]
    a = tribute.explain(model, x_in, method=method, target=1, progress=False)
    torch.testing.assert_close(a.values, _hand(model, x, 1, method == "guided_backprop"),
                               rtol=1e-12, atol=1e-12)
    assert torch.equal(x_in, x)
    assert [getattr(m, "inplace", None) for m in model.modules()] == flags
    assert all(not m._forward_hooks for m in model.modules())


# ----------------------------------------------------------------------------------- LRP
class _MaskUnit(nn.Module):
    """A hidden unit switched off in place after the layer (``h[:, 0] = 0``)."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.relu, self.l2 = nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.l1(x)
        h[:, 0] = 0.0
        out: torch.Tensor = self.l2(self.relu(h))
        return out


def test_lrp_on_a_layer_output_modified_in_place() -> None:
    """aud43g: a Linear's output modified in place by the model raised PyTorch's bare "Output 0
    of _RuleFn is a view and is being modified inplace". Truth: the epsilon rule written out by
    hand (R_in = x * W^T (R / stab(z)), stab(z) = z + eps sign(z)), with no relevance for the
    switched-off unit, from R_out = f(x) of the explained logit."""
    from tribute.methods.lrp import Composite
    from tribute.methods.lrp.composites import ACTIVATIONS
    from tribute.methods.lrp.rules import Epsilon, Pass

    eps = 1e-3
    model = _MaskUnit()
    _seeded(model, 5)  # in place (float64)
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    comp = Composite([(ACTIVATIONS, Pass()), (nn.Linear, Epsilon(eps))], canonizers=(), name="eps")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the in-place write is an operation outside modules
        a = tribute.explain(model, x, method="lrp", composite=comp, target=2, progress=False)

    def stab(z: torch.Tensor) -> torch.Tensor:
        return torch.where(z >= 0, z + eps, z - eps)

    with torch.no_grad():
        z1 = model.l1(x)
        h = z1.clone()
        h[:, 0] = 0.0
        act = h.clamp_min(0.0)
        out = model.l2(act)[:, 2]
        r_act = act * (out / stab(out))[:, None] * model.l2.weight[2]
        r_h = r_act.clone()
        r_h[:, 0] = 0.0  # the overwritten entry passes no gradient
        want = x * ((r_h / stab(z1)) @ model.l1.weight)
    torch.testing.assert_close(a.values, want, rtol=1e-10, atol=1e-12)


def test_lrp_pass_rule_on_a_reshaping_module_says_so() -> None:
    """aud43g: Pass() given to nn.Flatten (a composite mapping every gradient module to Pass)
    raised torch's bare "Function _RuleFnBackward returned an invalid gradient"."""
    from tribute.errors import UnsupportedModelError
    from tribute.methods.lrp import Composite
    from tribute.methods.lrp.composites import ACTIVATIONS, GRADIENT_MODULES
    from tribute.methods.lrp.rules import Epsilon, Pass

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3)).double()
    x = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    comp = Composite([(ACTIVATIONS, Pass()), (GRADIENT_MODULES, Pass()),
                      ((nn.Linear, nn.Conv2d), Epsilon())], canonizers=())
    with pytest.raises(UnsupportedModelError, match=r"Pass\(\) on Flatten .* shape \(2, 32\) .* \(2, 2, 4, 4\)"):
        tribute.explain(model, x, method="lrp", composite=comp, target=1, progress=False)
    assert all(not m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("opts", [{"low": -3.0, "high": 3.0}, {"low": torch.zeros(2)}, {"gamma": 0.5}])
def test_lrp_box_options_no_layer_reads_are_refused(opts: dict[str, Any]) -> None:
    """aud43g: composite='epsilon_gamma_box' gives z^B to the first convolution and gamma to
    the later ones; on an MLP low/high/gamma were ignored (every Linear got the epsilon rule):
    low=3, high=-3, low=[0, 0] for 4 features and no bounds gave the same credits, silently.
    The truth of what ran: the plain epsilon rule (composite='epsilon_plus' on the MLP)."""
    model = _seeded(nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)), 7)
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    with pytest.raises(InputError, match=r"apply to no layer of this model"):
        tribute.explain(model, x, method="lrp", composite="epsilon_gamma_box", target=1,
                        progress=False, **opts)
    # without options the composite still runs (as the epsilon rule on every Linear)
    a = tribute.explain(model, x, method="lrp", composite="epsilon_gamma_box", target=1, progress=False)
    b = tribute.explain(model, x, method="lrp", composite="epsilon_plus", target=1, progress=False)
    torch.testing.assert_close(a.values, b.values, rtol=0, atol=0)


def test_lrp_box_options_on_a_cnn_still_apply() -> None:
    """With a convolution the bounds are read: z^B by hand on a one-conv net's first layer
    (R_in = x W^T s - low W+^T s - high W-^T s, s = R / stab(z - low W+ - high W-)) with the
    relevance that reaches it through the epsilon rule of the dense head."""
    import torch.nn.functional as F

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 16, 2))
    _seeded(model, 9)  # in place (float64)
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    low, high, eps = -0.5, 1.5, 1e-6
    a = tribute.explain(model, x, method="lrp", composite="epsilon_gamma_box", low=low, high=high,
                        target=1, progress=False)

    def stab(z: torch.Tensor) -> torch.Tensor:
        return torch.where(z >= 0, z + eps, z - eps)

    conv, lin = model[0], model[3]
    assert isinstance(conv, nn.Conv2d) and isinstance(lin, nn.Linear)
    with torch.no_grad():
        z = conv(x)
        act = z.clamp_min(0.0).flatten(1)
        out = lin(act)[:, 1]
        r_act = (act * (out / stab(out))[:, None] * lin.weight[1]).view_as(z)  # epsilon rule
        w, b = conv.weight, conv.bias
        assert b is not None
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        lo, hi = torch.full_like(x, low), torch.full_like(x, high)
        zb = z - F.conv2d(lo, wp, b.clamp(min=0)) - F.conv2d(hi, wn, b.clamp(max=0))
        s = r_act / stab(zb)
        shape = list(x.shape)
        want = (x * torch.nn.grad.conv2d_input(shape, w, s) - lo * torch.nn.grad.conv2d_input(shape, wp, s)
                - hi * torch.nn.grad.conv2d_input(shape, wn, s))
    torch.testing.assert_close(a.values, want, rtol=1e-9, atol=1e-12)


def test_lrp_box_bounds_that_miss_the_input() -> None:
    """aud43g: z^B assumes low <= x <= high. low > high ran (low=1, high=0), and bounds that miss
    the input (low=0.5, high=0.6 for x in [0, 1]) gave credits up to 1.39 where the data's
    range [0, 1] gives 0.038, silently. Now an InputError and a UserWarning; bounds that hold
    the input stay silent."""
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 16, 2))
    _seeded(model, 11)
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    box: dict[str, Any] = {"method": "lrp", "composite": "epsilon_gamma_box", "target": 1, "progress": False}
    with pytest.raises(InputError, match=r"ZBox low=1.0 exceeds high=0.0"):
        tribute.explain(model, x, low=1.0, high=0.0, **box)
    with pytest.warns(UserWarning, match=r"outside the z\^B bounds low=0.5, high=0.6"):
        tribute.explain(model, x, low=0.5, high=0.6, **box)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tribute.explain(model, x, low=0.0, high=1.0, **box)
        tribute.explain(model, x, low=torch.zeros(1, 1, 1, 1), high=None, **box)
