"""LRP: every rule against a plain matrix-form reference, conservation, canonizers, bad input.

The references write each rule as ``R_i = sum_j C_ji R_j / stab(sum_i C_ji + b'_j)`` with a
contribution matrix ``C`` built from ``w_ji x_i`` (Montavon et al. 2019, Sec. 10), with no
clamped weight or input tensors and no transposed convolutions; convolutions are turned into
their dense matrix by the Jacobian.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError, UnsupportedModelError
from tribute.methods.lrp import (
    Add,
    AlphaBeta,
    Composite,
    Epsilon,
    Flat,
    Gamma,
    Pass,
    WSquare,
    ZBox,
    ZPlus,
    get_composite,
    lrp_rules,
)

try:
    from ._lrp_models import images, resnet, vgg
except ImportError:
    from _lrp_models import images, resnet, vgg  # type: ignore[no-redef]

EPS = 1e-6


def _stab(z: np.ndarray, eps: float = EPS) -> np.ndarray:
    return z + np.where(z >= 0, 1.0, -1.0) * eps


def _dense(module: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) of the affine map ``module`` on one flattened input (out x in, out)."""
    jac = torch.autograd.functional.jacobian(lambda t: module(t[None])[0], x)
    w = jac.reshape(-1, x.numel())
    b = module(x[None])[0].flatten() - w @ x.flatten()
    return w.detach().numpy(), b.detach().numpy()


def _ref(rule: object, w: np.ndarray, b: np.ndarray, x: np.ndarray, r: np.ndarray,
         low: np.ndarray, high: np.ndarray) -> np.ndarray:
    c = w * x[None, :]  # c[j, i] = w_ji x_i
    pos, neg = np.clip(c, 0, None), np.clip(c, None, 0)
    bp, bn = np.clip(b, 0, None), np.clip(b, None, 0)
    if isinstance(rule, ZPlus):
        return (pos * (r / _stab(pos.sum(1) + bp))[:, None]).sum(0)
    if isinstance(rule, AlphaBeta):
        a, be = rule.alpha, rule.beta
        return (a * pos * (r / _stab(pos.sum(1) + bp))[:, None]
                - be * neg * (r / _stab(neg.sum(1) + bn))[:, None]).sum(0)
    if isinstance(rule, Epsilon):
        return (c * (r / _stab(c.sum(1) + b, rule.epsilon))[:, None]).sum(0)
    if isinstance(rule, Gamma):
        g = rule.gamma
        z = c.sum(1) + b
        up, dn = c + g * pos, c + g * neg
        s_up = np.where(z > 0, r / _stab(up.sum(1) + b + g * bp), 0.0)
        s_dn = np.where(z < 0, r / _stab(dn.sum(1) + b + g * bn), 0.0)
        return (up * s_up[:, None] + dn * s_dn[:, None]).sum(0)
    if isinstance(rule, Flat):
        ones = np.where(w != 0, 1.0, 0.0)  # receptive field (zero-padded conv: structural zeros)
        return (ones * (r / _stab(ones.sum(1)))[:, None]).sum(0)
    if isinstance(rule, WSquare):
        w2 = w * w
        return (w2 * (r / _stab(w2.sum(1) + b * b))[:, None]).sum(0)
    if isinstance(rule, ZBox):
        wp, wn = np.clip(w, 0, None), np.clip(w, None, 0)
        cb = c - wp * low[None, :] - wn * high[None, :]
        return (cb * (r / _stab(cb.sum(1) + b - bp - bn))[:, None]).sum(0)
    raise AssertionError(rule)


RULES = [Epsilon(), Epsilon(0.3), ZPlus(), AlphaBeta(2.0, 1.0), AlphaBeta(1.5, 0.5), Gamma(0.25),
         Gamma(1.0), Flat(), WSquare(), ZBox(-1.0, 1.5)]


def _modules() -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    torch.manual_seed(3)
    return [
        ("linear", nn.Linear(7, 5).double(), (7,)),
        ("conv", nn.Conv2d(2, 3, 3, padding=1).double(), (2, 5, 5)),
        ("conv-strided", nn.Conv2d(2, 4, 3, stride=2, padding=1, bias=False).double(), (2, 6, 6)),
    ]


@pytest.mark.parametrize("rule", RULES, ids=[repr(r) for r in RULES])
@pytest.mark.parametrize("name,module,shape", _modules(), ids=[m[0] for m in _modules()])
def test_rule_matches_matrix_reference(rule: object, name: str, module: nn.Module, shape: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, *shape, dtype=torch.float64, generator=gen)
    if isinstance(rule, ZBox):  # z^B is defined for inputs inside its bounds [-1, 1.5] (rev43g)
        x = -1.0 + 2.5 * torch.rand(2, *shape, dtype=torch.float64, generator=gen)
    z = module(x).detach()
    r = torch.randn(z.shape, dtype=torch.float64, generator=gen)
    assert isinstance(rule, (Epsilon, ZPlus, AlphaBeta, Gamma, Flat, WSquare, ZBox))
    bounds = rule.bounds(x) if isinstance(rule, ZBox) else None
    got = rule.relevance(module, x, z, r, bounds).detach().numpy()
    for i in range(2):
        w, b = _dense(module, x[i])
        if isinstance(rule, Flat) and name.startswith("conv"):
            # ones-weights see the zero padding structurally: build the receptive field from |W|+1
            probe = nn.Conv2d(module.in_channels, module.out_channels, 3, stride=module.stride,  # type: ignore[arg-type]
                              padding=module.padding, bias=False).double()  # type: ignore[arg-type]
            nn.init.ones_(probe.weight)
            w, _ = _dense(probe, x[i])
        lo = np.full(x[i].numel(), -1.0)
        hi = np.full(x[i].numel(), 1.5)
        want = _ref(rule, w, b, x[i].flatten().numpy(), r[i].flatten().numpy(), lo, hi)
        np.testing.assert_allclose(got[i].flatten(), want, atol=1e-10, rtol=1e-9)


# ------------------------------------------------------------------------ method level
def _relu_mlp(bias: bool) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 10, bias=bias), nn.ReLU(), nn.Linear(10, 8, bias=bias), nn.ReLU(),
                         nn.Linear(8, 3, bias=bias)).double().eval()


def test_lrp0_is_gradient_times_input_and_conserves() -> None:
    """LRP-0 on a bias-free ReLU network equals gradient x input, and sum(R) = f(x) (Montavon 2019)."""
    model = _relu_mlp(bias=False)
    x = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    comp = Composite([(nn.ReLU, Pass()), (nn.Linear, Epsilon(0.0))], name="lrp0")
    a = tribute.explain(model, x, method="lrp", composite=comp, target=[0, 2], progress=False)
    ixg = tribute.explain(model, x, method="input_x_gradient", target=[0, 2], progress=False)
    np.testing.assert_allclose(a.flat(), ixg.flat(), atol=1e-12)
    assert a.gap is not None and np.abs(a.gap).max() < 1e-12
    assert a.gap.shape == (5, 2)


def test_zplus_conserves_on_bias_free_relu_network() -> None:
    model = _relu_mlp(bias=False)
    x = torch.rand(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    comp = Composite([(nn.ReLU, Pass()), (nn.Linear, ZPlus(stabilizer=1e-12))], name="zplus")
    a = tribute.explain(model, x, method="lrp", composite=comp, target=1, progress=False)
    f = model(x)[:, 1].detach().numpy()
    rel = a.flat().reshape(4, -1)
    # every neuron that receives relevance is active (z > 0, hence z+ > 0) and passes all of it on
    np.testing.assert_allclose(rel.sum(1), f, rtol=1e-7)  # up to the stabiliser
    assert (rel * np.sign(f)[:, None] >= -1e-15).all()  # z+ relevance carries the sign of f(x)
    assert a.gap is not None and np.abs(a.gap).max() < 1e-7 * np.abs(f).max()


#: (state dict, per-module (type, training, inplace, hook counts, forward overridden, children),
#: which parameters are None): what a call must leave unchanged.
_Snapshot = tuple[dict[str, torch.Tensor], list[tuple[Any, ...]], list[bool]]


def _snapshot(model: nn.Module) -> _Snapshot:
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [(type(m).__name__, m.training, getattr(m, "inplace", None), len(m._forward_hooks),
              len(m._forward_pre_hooks), len(m._backward_hooks), "forward" in m.__dict__,
              sorted(m._modules)) for m in model.modules()],
            [p is None for m in model.modules() for p in m._parameters.values()])


def _same(a: _Snapshot, b: _Snapshot) -> None:
    sa, la, pa = a
    sb, lb, pb = b
    assert la == lb and pa == pb
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("build", [vgg, resnet], ids=["vgg", "resnet"])
def test_model_unchanged(build: object) -> None:
    model = build()  # type: ignore[operator]
    model.train()
    before = _snapshot(model)
    a = tribute.explain(model, images(2), method="lrp", composite="epsilon_gamma_box", target=1, progress=False)
    assert a.gap is not None and np.isfinite(a.gap).all()
    _same(before, _snapshot(model))


def test_canonized_forward_equals_original() -> None:
    model = resnet()
    x = images(3)
    want = model(x)
    with lrp_rules(model, get_composite("epsilon_plus_flat")):
        got = model(x)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


def test_model_unchanged_after_error() -> None:
    model = resnet()
    model.append(nn.LayerNorm(5).double())
    before = _snapshot(model)
    with pytest.raises(UnsupportedModelError, match=r"'8'.*LayerNorm.*with_rules"):
        tribute.explain(model, images(2), method="lrp", target=0, progress=False)
    _same(before, _snapshot(model))
    # and once the user adds a rule it runs
    comp = get_composite("epsilon_plus_flat").with_rules({nn.LayerNorm: Pass()})
    a = tribute.explain(model, images(2), method="lrp", composite=comp, target=0, progress=False)
    assert np.isfinite(a.flat()).all()
    _same(before, _snapshot(model))


def test_inplace_activations_give_the_same_result() -> None:
    x = images(2)
    a = tribute.explain(vgg(inplace=True), x, method="lrp", target=[0, 1], progress=False).flat()
    b = tribute.explain(vgg(inplace=False), x, method="lrp", target=[0, 1], progress=False).flat()
    np.testing.assert_array_equal(a, b)


class _Reuse(nn.Module):
    def __init__(self, reuse_first: bool) -> None:
        super().__init__()
        self.reuse_first = reuse_first
        self.a, self.b, self.c = nn.Linear(6, 6), nn.Linear(6, 6), nn.Linear(6, 2)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.a(x))
        if self.reuse_first:
            h = self.relu(self.a(h))
        h = self.relu(self.b(self.relu(self.b(h))))
        return self.c(h)


def test_reused_module_gets_its_rule_at_every_call() -> None:
    torch.manual_seed(0)
    m = _Reuse(reuse_first=False).double().eval()
    unrolled = nn.Sequential(m.a, nn.ReLU(), m.b, nn.ReLU(), m.b, nn.ReLU(), m.c)
    x = torch.randn(3, 6, dtype=torch.float64)
    for comp in ("epsilon_plus_flat", "epsilon_plus"):
        a = tribute.explain(m, x, method="lrp", composite=comp, target=1, progress=False)
        b = tribute.explain(unrolled, x, method="lrp", composite=comp, target=1, progress=False)
        np.testing.assert_allclose(a.flat(), b.flat(), atol=1e-12)


def test_reused_first_layer_is_refused() -> None:
    m = _Reuse(reuse_first=True).double().eval()
    before = _snapshot(m)
    with pytest.raises(UnsupportedModelError, match=r"'a'.*called 2 times.*Flat"):
        tribute.explain(m, torch.randn(2, 6, dtype=torch.float64), method="lrp", target=0, progress=False)
    _same(before, _snapshot(m))


def test_bad_input() -> None:
    model = vgg()
    x = images(2)
    with pytest.raises(InputError, match=r"composite=.nope.*epsilon_plus_flat"):
        tribute.explain(model, x, method="lrp", composite="nope", target=0, progress=False)
    with pytest.raises(InputError, match="output='probability'"):
        tribute.explain(model, x, method="lrp", output="probability", target=0, progress=False)
    with pytest.raises(InputError, match="low/high"):
        tribute.explain(model, x, method="lrp", composite="epsilon_plus", low=0.0, target=0, progress=False)
    with pytest.raises(InputError, match="alpha - beta must be 1"):
        AlphaBeta(2.0, 2.0)
    with pytest.raises(InputError, match=r"ZBox low has shape \(7,\)"):
        tribute.explain(model, x, method="lrp", composite="epsilon_gamma_box", low=torch.zeros(7), target=0,
                        progress=False)
    bn_first = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(72, 2)).double().eval()
    with pytest.raises(UnsupportedModelError, match=r"'0'.*BatchNorm2d.*folded"):
        tribute.explain(bn_first, x, method="lrp", target=0, progress=False)


def test_named_composites_resolve() -> None:
    for name in ("epsilon_plus_flat", "EpsilonPlusFlat", "epsilon_gamma_box", "epsilon_alpha2_beta1", "epsilon_plus"):
        assert isinstance(get_composite(name), Composite)


def test_box_bounds_as_lists_work_end_to_end() -> None:
    """Review finding 4: ``low``/``high`` as lists (all ``--param low=[...]`` can give) were
    refused; a list is read as the tensor it spells, broadcast to the first layer's input."""
    model = vgg()
    x = images(2)
    box: dict[str, Any] = {"method": "lrp", "composite": "epsilon_gamma_box", "target": 1, "progress": False}
    ref = tribute.explain(model, x, low=-3.0, high=3.0, **box)
    got = tribute.explain(model, x, low=[-3.0], high=(3.0,), **box)
    torch.testing.assert_close(got.values, ref.values, atol=0, rtol=0)
    # per channel, as nested lists (C, 1, 1) from JSON
    lo, hi = [[[-1.0]], [[-2.0]], [[-3.0]]], [[[1.0]], [[2.0]], [[3.0]]]
    ref = tribute.explain(model, x, low=torch.tensor(lo), high=torch.tensor(hi), **box)
    got = tribute.explain(model, x, low=lo, high=hi, **box)
    torch.testing.assert_close(got.values, ref.values, atol=0, rtol=0)
    # one bound per feature (a flat list) of a model whose first layer is a convolution over
    # the features (z^B goes to the first convolution: on an MLP the bounds applied to no layer
    # and this comparison held vacuously; aud43g refuses them there)
    mlp = nn.Sequential(nn.Conv1d(1, 2, 2), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2)).double()
    xt = 2 * torch.rand(4, 1, 3, dtype=torch.float64) - 1  # inside the bounds below (rev43g)
    ref = tribute.explain(mlp, xt, low=torch.tensor([-1.0, -2.0, -3.0]), high=3, **box)
    got = tribute.explain(mlp, xt, low=[-1, -2, -3], high=3, **box)
    torch.testing.assert_close(got.values, ref.values, atol=0, rtol=0)
    assert not torch.equal(ref.values, tribute.explain(mlp, xt, **box).values)  # the bounds are read
    with pytest.raises(InputError, match=r"ZBox low has shape \(2,\)"):
        tribute.explain(model, x, low=[0.0, 0.0], **box)
    for bad in ([], ["a"], [[0.0], [0.0, 1.0]], [float("nan")], [float("inf"), 0.0], [True]):
        with pytest.raises(InputError, match=r"low=.* is not allowed; low must be None or a number"):
            tribute.explain(model, x, low=bad, **box)


def test_composite_name_with_surrounding_spaces() -> None:
    """Review finding 5: the declared constraint refused ' epsilon_plus_flat '; and the box
    bounds still reach a spaced ' epsilon_gamma_box '."""
    model, x = vgg(), images(2)
    ref = tribute.explain(model, x, method="lrp", composite="epsilon_plus_flat", target=0, progress=False)
    got = tribute.explain(model, x, method="lrp", composite=" epsilon_plus_flat ", target=0, progress=False)
    torch.testing.assert_close(got.values, ref.values, atol=0, rtol=0)
    a = tribute.explain(model, x, method="lrp", composite=" Epsilon_Gamma_Box ", low=0.0, high=1.0,
                        target=0, progress=False)
    assert a.params["composite"] == "epsilon_gamma_box"


@pytest.mark.parametrize("method", ["lrp", "grad_cam", "grad_cam_pp"])
def test_one_pass_methods_refuse_a_budget_below_their_two_rows(method: str) -> None:
    # v(N) (the reference pass) and the gradient pass: two rows reach the model (counted with a
    # pre-hook); budget=1 was accepted and overrun
    torch.manual_seed(20)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                          nn.Flatten(), nn.Linear(16, 3)).double().eval()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    rows = [0]
    h = model.register_forward_pre_hook(lambda m, a: rows.__setitem__(0, rows[0] + a[0].shape[0]))
    try:
        with pytest.raises(tribute.BudgetError):
            tribute.explain(model, x, method=method, target=1, budget=1)
        rows[0] = 0
        attr = tribute.explain(model, x, method=method, target=1, budget=2)
    finally:
        h.remove()
    assert rows[0] // 2 == attr.n_evals <= 2


def test_flat_on_a_dense_first_layer_gives_equal_relevance_and_says_so() -> None:
    # aud28: the default composite (epsilon_plus_flat) on a tabular MLP returned the same
    # relevance for every feature of a sample, silently
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).double().eval()
    x = torch.randn(3, 5, dtype=torch.float64)
    with pytest.warns(UserWarning, match=r"flat rule on the first layer '0' \(nn.Linear\).*"
                                         r"composite='epsilon_plus'"):
        a = tribute.explain(mlp, x, method="lrp", target=1, progress=False)
    v = np.asarray(a.values)
    np.testing.assert_allclose(v, v[:, :1].repeat(5, 1), rtol=1e-9)  # what the warning says
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = tribute.explain(mlp, x, method="lrp", target=1, composite="epsilon_plus",
                            progress=False)
    assert not np.allclose(np.asarray(b.values), np.asarray(b.values)[:, :1])


def test_gamma_of_another_composite_is_refused() -> None:
    # aud28: gamma=... with composite='epsilon_plus' was accepted and ignored (low/high were
    # already refused there)
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).double().eval()
    x = torch.randn(2, 5, dtype=torch.float64)
    with pytest.raises(InputError, match=r"gamma=0.5 applies to composite='epsilon_gamma_box' only"):
        tribute.explain(mlp, x, method="lrp", target=1, composite="epsilon_plus", gamma=0.5)
    tribute.explain(mlp, x, method="lrp", target=1, composite="epsilon_plus", gamma=0.25)


class _HeadDeclaredFirst(nn.Module):
    """The classifier head is declared before the convolution that reads the input."""

    def __init__(self, seq: nn.Sequential) -> None:
        super().__init__()
        self.head = seq[3]
        self.conv = seq[0]
        self.relu = seq[1]
        self.flat = seq[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.flat(self.relu(self.conv(x))))


@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "epsilon_gamma_box"])
def test_first_layer_rule_goes_to_the_layer_the_forward_pass_calls_first(composite: str) -> None:
    # aud31g: the first-layer rule went to the first Linear/Conv in named_modules() order, so a
    # model declaring its head first got the flat rule on the head (and a warning naming the
    # head as "the first layer"), silently another number than the same network in call order
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    seq = seq.double().eval()
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    ref = tribute.explain(seq, x, method="lrp", composite=composite, target=[0, 2], progress=False)
    model = _HeadDeclaredFirst(seq)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no flat-on-a-dense-layer warning: the head is not first
        got = tribute.explain(model, x, method="lrp", composite=composite, target=[0, 2], progress=False)
    np.testing.assert_allclose(np.asarray(got.values), np.asarray(ref.values), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(np.asarray(got.gap), np.asarray(ref.gap), rtol=1e-10, atol=1e-15)


def test_first_declared_layer_without_a_rule_of_its_own_is_refused_when_not_called_first() -> None:
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    model = _HeadDeclaredFirst(seq.double().eval())
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    comp = Composite([(nn.ReLU, Pass()), (nn.Conv2d, ZPlus())], [((nn.Linear, nn.Conv2d), Flat())])
    with pytest.raises(UnsupportedModelError, match=r"'head' \(Linear\) comes first.*reads the input with 'conv'"):
        tribute.explain(model, x, method="lrp", composite=comp, target=0, progress=False)
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("out_features", [1, 4])
def test_flat_on_a_linear_layer_with_token_axis(out_features: int) -> None:
    # aud31g: flat on an nn.Linear reading (batch, tokens, features) summed the relevance over
    # the token axis (the conv channel axis): wrong numbers for one output, a crash otherwise
    torch.manual_seed(0)
    lin = nn.Linear(5, out_features).double()
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    with torch.no_grad():
        z = lin(x)
    r = torch.randn_like(z)
    got = Flat().relevance(lin, x, z, r)
    per_token = (r / (5 + EPS)).sum(-1, keepdim=True)  # every input of a token shares its sum
    torch.testing.assert_close(got, per_token.expand_as(x), rtol=1e-12, atol=0.0)
    w = torch.ones(out_features, 5, dtype=torch.float64)  # the matrix form, token by token
    for b in range(2):
        for t in range(3):
            ref = w.T @ (r[b, t] / (w.sum(1) + EPS))
            torch.testing.assert_close(got[b, t], ref, rtol=1e-12, atol=0.0)


class _LookalikeBlock(nn.Module):
    """torchvision's block attribute names, another forward (a gated skip, no final ReLU)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
        self.relu = nn.ReLU()
        self.conv2, self.bn2 = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
        self.downsample: nn.Module | None = None
        self.gate = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + self.gate(x)


def test_canonizer_that_changes_the_function_is_refused() -> None:
    # aud31g: ResidualBlocks ran torchvision's forward on any block with these attribute names,
    # so LRP explained another function than the model's (explained 0.12 for an output -0.15)
    torch.manual_seed(0)
    model = nn.Sequential(_LookalikeBlock(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)).double().eval()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(UnsupportedModelError, match=r"computes another function than the model.*ResidualBlocks"):
        tribute.explain(model, x, method="lrp", composite="epsilon_plus", target=1, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert "forward" not in model[0].__dict__ and not any(m._forward_hooks for m in model.modules())
    # without the residual canonizer the model's own function is explained (its '+' is reported)
    from tribute.methods.lrp import EpsilonPlus
    from tribute.methods.lrp.canonizers import MergeBatchNorm, NoInplace

    with pytest.warns(UserWarning, match="add x1"):
        a = tribute.explain(model, x, method="lrp", composite=EpsilonPlus(canonizers=(NoInplace(), MergeBatchNorm())),
                            target=1, progress=False)
    np.testing.assert_allclose(np.asarray(a.extra["explained"]).ravel(), model(x)[:, 1].detach().numpy(), rtol=1e-12)


class _FunctionalResidual(nn.Module):
    """A bias-free ReLU network with a residual sum written as ``+`` (or as an Add module)."""

    def __init__(self, use_add: bool) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 6, bias=False), nn.Linear(6, 6, bias=False)
        self.h = nn.Linear(6, 2, bias=False)
        self.relu = nn.ReLU()
        self.add = Add() if use_add else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.b(self.relu(self.a(x)))
        s = self.add(x, y) if self.add is not None else x + y
        return self.h(self.relu(s))


def test_functional_operations_in_forward_are_reported() -> None:
    # aud31g: 'x + f(x)' in a model's forward gave both summands the full relevance (the total
    # was exactly 2 f(x) on a bias-free ReLU network), torch.tanh(x) rescaled it, silently
    torch.manual_seed(0)
    x = torch.rand(3, 6, dtype=torch.float64)
    model = _FunctionalResidual(use_add=False).double().eval()
    with pytest.warns(UserWarning, match=r"functional operations.*add x1 per forward pass.*lrp\.Add"):
        a = tribute.explain(model, x, method="lrp", composite="epsilon_plus", target=1, progress=False)
    assert a.extra["functional_ops"] == {"add": 1}
    np.testing.assert_allclose(np.asarray(a.values).sum(-1), 2 * np.asarray(a.extra["explained"]).ravel(), rtol=1e-4)
    fixed = _FunctionalResidual(use_add=True).double().eval()
    fixed.load_state_dict(model.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = tribute.explain(fixed, x, method="lrp", composite="epsilon_plus", target=1, progress=False)
    assert b.extra["functional_ops"] == {}
    np.testing.assert_allclose(np.asarray(b.values).sum(-1), np.asarray(b.extra["explained"]).ravel(), rtol=1e-4)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(torch.tanh(x / 255.0)).mean(-1, keepdim=True) * 2.0

    with pytest.warns(UserWarning, match=r"div x1, mean x1, mul x1, tanh x1"):
        tribute.explain(Scaled().double().eval(), x, method="lrp", composite="epsilon_plus", target=0, progress=False)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_per_sample_box_bounds_follow_the_chunked_rows(batch_size: int) -> None:
    # aud31g: bounds with a batch axis (documented) were broadcast to each chunk of rows as
    # given: a crash when the engine ran the samples in chunks, and with as many bound rows as a
    # chunk's rows, the first samples' bounds for every chunk (wrong numbers, silently)
    model, x = vgg(), images(4)
    low = x.amin((1, 2, 3), keepdim=True) - 0.1  # (4, 1, 1, 1): one row per sample
    high = x.amax((1, 2, 3), keepdim=True) + 0.1
    got = tribute.explain(model, x, method="lrp", composite="epsilon_gamma_box", low=low, high=high,
                          target=[1, 3], batch_size=batch_size, progress=False)
    for i in range(4):
        one = tribute.explain(model, x[i:i + 1], method="lrp", composite="epsilon_gamma_box", low=low[i:i + 1],
                              high=high[i:i + 1], target=[1, 3], progress=False)
        np.testing.assert_allclose(np.asarray(got.values)[i], np.asarray(one.values)[0], rtol=1e-10, atol=1e-18)
    with pytest.raises(InputError, match=r"ZBox low has 2 rows on its batch axis but sample 3 is explained"):
        tribute.explain(model, x, method="lrp", composite="epsilon_gamma_box", low=low[:2], high=high[:2],
                        target=1, batch_size=2, progress=False)


class _Negated(nn.Module):
    """A bias-free ReLU network whose hidden layer is negated in ``forward`` (``-h``) or
    passed through a functional elementwise map."""

    def __init__(self, op: str) -> None:
        super().__init__()
        self.a, self.h = nn.Linear(6, 6, bias=False), nn.Linear(6, 2, bias=False)
        self.relu = nn.ReLU()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.relu(self.a(x))
        ops = {"neg": lambda t: -t, "rsub": lambda t: 1.0 - t, "abs": torch.abs, "clamp": lambda t: t.clamp(max=0.1),
               "square": torch.square, "erf": torch.erf}
        return self.h(ops[self.op](z))


@pytest.mark.parametrize("op", ["neg", "rsub", "abs", "clamp", "square", "erf"])
def test_negations_and_elementwise_maps_in_forward_are_reported(op: str) -> None:
    # aud34l: '-h' in a model's forward handed back -R (LRP-0 of a negation gives +R: on this
    # bias-free network the relevance summed to -f(x)), silently; abs/clamp/square/erf
    # likewise went through as plain gradients without a warning
    torch.manual_seed(0)
    x = torch.rand(3, 6, dtype=torch.float64)
    model = _Negated(op).double().eval()
    with pytest.warns(UserWarning, match=rf"functional operations.*{op} x1 per forward pass"):
        a = tribute.explain(model, x, method="lrp", composite="epsilon_plus", target=1, progress=False)
    assert a.extra["functional_ops"] == {op: 1}
    if op == "neg":
        np.testing.assert_allclose(np.asarray(a.values).sum(-1), -np.asarray(a.extra["explained"]).ravel(), rtol=1e-4)
