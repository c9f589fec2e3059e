"""rev51d: review of aud51d (data games' n_rows against the rows the model saw)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from data_cases import OnceTanh
from torch._C import _functorch as functorch_c

import tribute
from tribute.errors import UnsupportedModelError
from tribute.games.data_fits import MLPFit


def _unwrap(x: torch.Tensor) -> torch.Tensor:
    """The plain tensor under torch.func's batched / grad-tracking wrappers."""
    for _ in range(20):
        if functorch_c.is_batchedtensor(x) or functorch_c.is_gradtrackingtensor(x):
            x = functorch_c.get_unwrapped(x)
        else:
            break
    return x


@pytest.mark.parametrize("method", ["representer", "metagradient", "grad_dot", "influence"])
def test_data_game_rows_count_every_test_point_the_model_saw(method: str) -> None:
    """``n_rows`` is the test points' rows the model saw (a global forward hook counts them, the
    training rows told apart by value). Before: representer's last-layer probe (one test point,
    once for the cost estimate and once in attribute) and metagradient's replay check (a pass
    over the test points) went uncounted: 4 reported, 6 seen."""
    g = torch.Generator().manual_seed(3)
    X = torch.randn(8, 3, generator=g, dtype=torch.float64)
    y = (X[:, 0] > 0).long()
    Xt = torch.randn(2, 3, generator=g, dtype=torch.float64) + 0.123
    fit = MLPFit(n_classes=2, hidden=3, steps=20)
    model = fit(X, y, seed=0)
    data = tribute.TrainingData(X, y, fit=fit)
    seen = [0]
    depth = [0]

    def pre(mod: Any, args: Any) -> None:
        depth[0] += 1
        if depth[0] == 1 and args and torch.is_tensor(args[0]):
            rows = _unwrap(args[0]).detach().reshape(-1, 3).to(torch.float64)
            seen[0] += int((torch.cdist(rows, Xt) < 1e-12).any(1).sum())

    def post(mod: Any, args: Any, out: Any) -> None:
        depth[0] -= 1

    h1 = torch.nn.modules.module.register_module_forward_pre_hook(pre)
    h2 = torch.nn.modules.module.register_module_forward_hook(post)
    try:
        a = tribute.explain(model, Xt, method=method, players=data, progress=False)
    finally:
        h1.remove()
        h2.remove()
    assert a.n_rows == seen[0]
    probes = {"representer": 2, "metagradient": 2}.get(method, 0)
    assert a.n_rows == 2 * (1 + a.n_evals) + probes


def test_trak_default_refusal_on_one_example_names_the_default_not_a_proj_dim_never_passed() -> None:
    """One training example: the default projection is 1 >= n_train, refused as singular. The
    message said ``proj_dim=1`` although the caller passed no proj_dim; it names the default."""
    X = torch.randn(1, 3, dtype=torch.float64)
    y = torch.tensor([1])
    model = torch.nn.Linear(3, 2).double()
    data = tribute.TrainingData(X, y, loss="cross_entropy", l2=1.0)
    with pytest.raises(tribute.InputError, match=r"default proj_dim=None \(min\(512, n_train // 4\)"):
        tribute.explain(model, X, method="trak", players=data, progress=False)
    with pytest.raises(tribute.InputError, match=r"'trak': proj_dim=1 is >= the number"):
        tribute.explain(model, X, method="trak", players=data, proj_dim=1, progress=False)


class _BatchBranch(torch.nn.Module):
    """Takes the custom Function only on batches of more than one row."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = torch.nn.Linear(3, 4), torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.l1(x)
        return self.l2(OnceTanh.apply(h) if x.shape[0] > 1 else torch.tanh(h))


def test_influence_refuses_a_once_differentiable_function_a_one_row_check_never_sees() -> None:
    """The Hessian check walked one training row's loss; a forward pass that takes the
    ``@once_differentiable`` Function only on larger batches passed it, and explicit influence
    was silently 0.011 off (credits up to 0.16) against the same network with ``torch.tanh``.
    The walk now covers the row blocks the Hessian is built from."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(12, 3, generator=g, dtype=torch.float64)
    y = torch.randn(12, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    model = _BatchBranch().double()
    data = tribute.TrainingData(X, y, loss="mse", l2=0.5)
    with pytest.raises(UnsupportedModelError, match=r"'OnceTanh'.*once_differentiable"):
        tribute.explain(model, X[:2], method="influence", players=data, solver="explicit",
                        damping=1.0, progress=False)


class _OldTanh(torch.autograd.Function):
    """Old-style tanh with a ``@once_differentiable`` backward (plain autograd only)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)


class _Act(torch.nn.Module):
    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _OldTanh.apply(x) if self.where == "hidden" else torch.tanh(x)


class _In(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _OldTanh.apply(x) * 0.5 + x  # parameter-free, on the inputs only


def _fit_with(where: str) -> Any:
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Fit(MLPFit):
        def init(self, d: int, seed: int) -> torch.nn.Module:
            m = super().init(d, seed)
            assert isinstance(m, torch.nn.Sequential)
            if where == "hidden":
                m[1] = _Act("hidden")
            elif where == "input":
                m.insert(0, _In())
            return m

    return Fit(2, hidden=3, steps=10)


@pytest.mark.parametrize("where", ["hidden", "input"])
def test_metagradient_refuses_a_once_differentiable_function_in_the_training_replay(where: str) -> None:
    """metagradient differentiates each replayed training step again; through a tanh whose
    backward is ``@once_differentiable`` torch cut the first layer's path to the weights (a
    DelayedError on detached copies, no error), and the credits were 0.31 off (of at most
    0.70) against the same run with ``nn.Tanh``. On the inputs only (no parameter behind it)
    the Function is never differentiated twice and the credits stay exact."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(8, 3, generator=g, dtype=torch.float64)
    y = (X[:, 0] > 0).long()
    fit = _fit_with(where)
    model = fit(X, y, seed=0)
    data = tribute.TrainingData(X, y, fit=fit)
    if where == "hidden":
        with pytest.raises(UnsupportedModelError, match=r"metagradient.*once_differentiable.*'_OldTanh'"):
            tribute.explain(model, X[:2], method="metagradient", players=data, progress=False)
        return
    a = tribute.explain(model, X[:2], method="metagradient", players=data, progress=False)
    ref_fit = _fit_with("ref")
    ref = tribute.explain(ref_fit(X, y, seed=0), X[:2], method="metagradient",
                          players=tribute.TrainingData(X, y, fit=ref_fit), progress=False)
    assert not torch.allclose(torch.as_tensor(a.values), torch.as_tensor(ref.values))  # another model
    # the same model written with torch.tanh on the inputs gives the same credits
    class _InRef(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(x) * 0.5 + x

    model2 = fit(X, y, seed=0)
    assert isinstance(model2, torch.nn.Sequential)
    model2[0] = _InRef()
    b = tribute.explain(model2, X[:2], method="metagradient", players=data, progress=False)
    torch.testing.assert_close(torch.as_tensor(a.values), torch.as_tensor(b.values), rtol=0, atol=1e-12)
