"""In-place edits of the model's input (DeepLIFT, gradient methods), two in-place activations
in a row, and LRP's message for a final Softmax (audit small37, stop 37).

Truths by hand in float64 numpy: the rescale rule's multipliers ``(relu(h) - relu(h0)) /
(h - h0)`` chained through the linear maps, and closed-form gradients of ``relu``. Weights are
fixed numbers or float64 draws of numpy's generator (no CPU-dependent torch draws).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import UnsupportedModelError

W = np.array([1.0, -2.0, 3.0])


class ReadsInputAgain(nn.Module):
    """``relu_`` on the model's own input, which is read again: f = (w + 1) . relu(x)."""

    def __init__(self, functional: bool) -> None:
        super().__init__()
        self.functional = functional
        self.act = nn.ReLU(inplace=True)
        self.lin = nn.Linear(3, 1, bias=False).double()
        with torch.no_grad():
            self.lin.weight.copy_(torch.from_numpy(W)[None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.relu_() if self.functional else self.act(x)
        return self.lin(h) + x.sum(1, keepdim=True)  # x is relu(x) now


X = np.array([[1.0, -2.0, 0.5], [-0.7, 1.5, 2.0]])
X0 = np.array([[0.5, -1.0, -0.3], [0.2, 1.0, -1.0]])


State = tuple[list[np.ndarray], list[bool], int, list[object]]


def _state(m: nn.Module) -> State:
    hooks = sum(len(x._forward_hooks) + len(x._forward_pre_hooks) + len(x._backward_hooks)
                for x in m.modules())
    return ([p.detach().numpy().copy() for p in m.parameters()],
            [x.training for x in m.modules()], hooks,
            [getattr(x, "inplace", None) for x in m.modules()])


def _same(m: nn.Module, before: State) -> None:
    params, training, hooks, inplace = _state(m)
    assert training == before[1] and hooks == before[2] and inplace == before[3]
    for a, b in zip(params, before[0]):
        np.testing.assert_array_equal(a, b)


def test_deeplift_on_an_inplace_relu_of_the_input_matches_the_rescale_rule() -> None:
    # before: the hooked model saw relu(x) in the Linear but the raw x in x.sum(1) (the in-place
    # write-back was skipped for the input leaf): [2, -2, 2] for x = (1, -2, .5), baseline 0,
    # a silent wrong answer whose gap was 0 (measured against the hooked model's own outputs)
    m = ReadsInputAgain(functional=False)
    before = _state(m)
    x, x0 = torch.from_numpy(X.copy()), torch.from_numpy(X0.copy())
    a = tribute.explain(m, x, method="deeplift", baseline=x0)
    want = (np.maximum(X, 0) - np.maximum(X0, 0)) * (W + 1)  # rescale: relu(x) - relu(x0) per unit
    np.testing.assert_allclose(a.values.numpy(), want, rtol=1e-12, atol=1e-12)
    f = (np.maximum(X, 0) * (W + 1)).sum(1) - (np.maximum(X0, 0) * (W + 1)).sum(1)
    np.testing.assert_allclose(a.values.numpy().sum(1), f, rtol=1e-12)
    np.testing.assert_array_equal(x.numpy(), X)  # the caller's inputs are untouched
    _same(m, before)


@pytest.mark.parametrize("functional", [False, True])
def test_gradient_methods_run_a_model_that_edits_its_input_in_place(functional: bool) -> None:
    # before: PyTorch's bare "a leaf Variable that requires grad is being used in an in-place
    # operation" from saliency and input_x_gradient
    m = ReadsInputAgain(functional)
    before = _state(m)
    x = torch.from_numpy(X.copy())
    grad = (X > 0) * (W + 1)  # d/dx (w + 1) . relu(x)
    sal = tribute.explain(m, x, method="saliency")
    np.testing.assert_allclose(np.abs(sal.values.numpy()), np.abs(grad), rtol=1e-12)
    ixg = tribute.explain(m, x, method="input_x_gradient")
    np.testing.assert_allclose(ixg.values.numpy(), X * grad, rtol=1e-12)
    # baseline 0: the straight path keeps every coordinate on one side of relu's kink
    ig = tribute.explain(m, x, method="integrated_gradients", baseline=0.0)
    np.testing.assert_allclose(ig.values.numpy(), np.maximum(X, 0) * (W + 1), rtol=1e-10)
    np.testing.assert_array_equal(x.numpy(), X)
    _same(m, before)


def _two_relus(first: bool) -> nn.Sequential:
    rng = np.random.default_rng(7)
    lin1, lin2 = nn.Linear(3, 4).double(), nn.Linear(4, 1).double()
    with torch.no_grad():
        for lin in (lin1, lin2):
            lin.weight.copy_(torch.from_numpy(rng.normal(size=tuple(lin.weight.shape))))
            lin.bias.copy_(torch.from_numpy(rng.normal(size=tuple(lin.bias.shape))))
    if first:
        return nn.Sequential(nn.ReLU(inplace=True), nn.ReLU(inplace=True), lin1, nn.ReLU(), lin2)
    return nn.Sequential(lin1, nn.ReLU(inplace=True), nn.ReLU(inplace=True), lin2)


@pytest.mark.parametrize("method", ["saliency", "input_x_gradient", "integrated_gradients"])
@pytest.mark.parametrize("first", [False, True])
def test_two_inplace_relus_in_a_row_give_a_clear_error(method: str, first: bool) -> None:
    # before: PyTorch's "one of the variables needed for gradient computation has been
    # modified by an inplace operation ... Hint: enable anomaly detection"
    m = _two_relus(first)
    m.train()
    before = _state(m)
    x = torch.from_numpy(X.copy())
    names = r"'0' \(ReLU\), '1' \(ReLU\)" if first else r"'1' \(ReLU\), '2' \(ReLU\)"
    with pytest.raises(UnsupportedModelError, match=names + r".*inplace=False"):
        tribute.explain(m, x, method=method, baseline=0.0)
    _same(m, before)
    # the fix the message gives: inplace=False everywhere gives the same forward values
    fixed = copy.deepcopy(m)
    for mod in fixed.modules():
        if hasattr(mod, "inplace"):
            setattr(mod, "inplace", False)  # noqa: B010 - mypy: not every Module has it
    tribute.explain(fixed, x, method=method, baseline=0.0)


def test_deeplift_on_two_inplace_relus_matches_the_rescale_rule() -> None:
    m = _two_relus(first=False)
    before = _state(m)
    lin1, lin2 = m[0], m[3]
    assert isinstance(lin1, nn.Linear) and isinstance(lin2, nn.Linear)
    w1, b1 = lin1.weight.detach().numpy(), lin1.bias.detach().numpy()
    w2 = lin2.weight.detach().numpy()[0]
    a = tribute.explain(m, torch.from_numpy(X.copy()), method="deeplift",
                        baseline=torch.from_numpy(X0.copy()))
    for i in range(2):
        h, h0 = w1 @ X[i] + b1, w1 @ X0[i] + b1
        dh = h - h0
        mult = np.where(np.abs(dh) > 1e-12, (np.maximum(h, 0) - np.maximum(h0, 0)) / dh,
                        (h > 0).astype(float))  # relu(relu(h)) = relu(h): multipliers chain
        want = (X[i] - X0[i]) * (w1.T @ (mult * w2))
        np.testing.assert_allclose(a.values.numpy()[i], want, rtol=1e-10, atol=1e-12)
    _same(m, before)


# ------------------------------------------------------------------- LRP on a final Softmax
def test_lrp_on_a_final_softmax_says_to_explain_the_logits() -> None:
    # before: "Add one with ...with_rules({Softmax: Epsilon()})", a rule that refuses Softmax
    # ("rule Epsilon applies to Linear and Conv1d/2d/3d layers, not Softmax")
    rng = np.random.default_rng(1)
    m = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3), nn.Softmax(dim=1)).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.from_numpy(rng.normal(size=tuple(p.shape))))
    x = torch.from_numpy(rng.normal(size=(2, 4)))
    with pytest.raises(UnsupportedModelError) as err:
        tribute.explain(m, x, method="lrp", target=1)
    msg = str(err.value)
    assert "'3' of type Softmax" in msg and "explain the logits" in msg
    assert "m[3] = torch.nn.Identity()" in msg and "Epsilon()" not in msg
    # the advice runs: the logits' LRP conserves the logit (bias-free layers; the epsilon
    # stabiliser, 1e-6, absorbs a little relevance where a unit's input z is small)
    logits = copy.deepcopy(m)
    logits[3] = torch.nn.Identity()
    for lin in (logits[0], logits[2]):
        assert isinstance(lin, nn.Linear)
        lin.register_parameter("bias", None)
    attr = tribute.explain(logits, x, method="lrp", target=1, composite="epsilon_plus")
    np.testing.assert_allclose(attr.values.numpy().sum(1),
                               logits(x)[:, 1].detach().numpy(), rtol=1e-4)


def test_lrp_hint_for_a_module_without_weights_names_a_rule_that_accepts_it() -> None:
    m = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3), nn.Linear(3, 1)).double()
    with pytest.raises(UnsupportedModelError) as err:
        tribute.explain(m, torch.ones(1, 3, dtype=torch.float64), method="lrp")
    msg = str(err.value)
    assert "LayerNorm: Pass()" in msg and "LayerNorm: Epsilon()" not in msg
