"""Audit aud36d: frozen layers, Dataset / DataLoader training sets, labels given as names, and
tiny training sets with duplicated rows, checked against closed forms computed outside tribute
(ridge regression on fixed features, refits by enumeration)."""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, SubsetRandomSampler, TensorDataset

import tribute
from tribute.errors import InputError, UnsupportedModelError
from tribute.games.data_fits import RidgeFit
from tribute.methods.data_gradient import Representer
from tribute.methods.data_influence import Influence
from tribute.models import TorchModel

L2 = 0.5


def _frozen_case() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A frozen random feature layer and a ridge head fitted on its features (float64 draws).

    Returns the model, X, y, X_test and the closed-form influence ``-a_t^T H^-1 a_i r_i``
    of the head (``H = A^T A + l2 I``, ``A`` the features with a bias column): only the head
    was trained, so only its parameters enter the Hessian, gradients and penalty."""
    g = torch.Generator().manual_seed(1)
    n, d, h = 30, 4, 6
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    Xt = torch.randn(3, d, generator=g, dtype=torch.float64)
    feat = torch.nn.Linear(d, h).double()
    with torch.no_grad():
        feat.weight.copy_(torch.randn(h, d, generator=g, dtype=torch.float64))
        feat.bias.copy_(torch.randn(h, generator=g, dtype=torch.float64))
    feat.requires_grad_(False)

    def design(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([torch.tanh(feat(x)), torch.ones(len(x), 1, dtype=torch.float64)], 1)

    A, At = design(X), design(Xt)
    H = A.T @ A + L2 * torch.eye(h + 1, dtype=torch.float64)
    theta = torch.linalg.solve(H, A.T @ y)
    head = torch.nn.Linear(h, 1).double()
    with torch.no_grad():
        head.weight.copy_(theta[:h][None])
        head.bias.copy_(theta[h:])
    model = torch.nn.Sequential(feat, torch.nn.Tanh(), head)
    r = A @ theta - y
    truth = -(At @ torch.linalg.solve(H, (r[:, None] * A).T))
    return model, X, y, Xt, truth


@pytest.mark.parametrize("solver", ["explicit", "cg"])
def test_frozen_layer_is_not_trained_by_influence(solver: str) -> None:
    """A frozen layer (requires_grad=False) never moved in training: its parameters are not in
    the influence Hessian (before: they were, 1.8 off a closed form of scale 0.25)."""
    model, X, y, Xt, truth = _frozen_case()
    data = tribute.TrainingData(X, y, loss="mse", l2=L2, reduction="sum")
    game = data.make_game(TorchModel(model), Xt)
    assert game.param_names == ["2.weight", "2.bias"]
    assert game.frozen == ["0.weight", "0.bias"]
    attr = Influence(solver=solver, damping=0.0).attribute(game)
    got = torch.as_tensor(np.asarray(attr.values)).reshape(truth.shape)
    # explicit: an eigendecomposition of a 7 x 7 matrix; cg: converged to tol 1e-10
    assert torch.allclose(got, truth, rtol=1e-7, atol=1e-9 * float(truth.abs().max()))
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]


def test_model_frozen_as_a_whole_is_taken_as_trained() -> None:
    """requires_grad_(False) on every parameter (for inference) keeps all of them trained."""
    model, X, y, Xt, _ = _frozen_case()
    model.requires_grad_(False)
    game = tribute.TrainingData(X, y, loss="mse", l2=L2).make_game(TorchModel(model), Xt)
    assert game.param_names == [n for n, _ in model.named_parameters()]
    assert game.frozen == []


def test_frozen_layer_through_explain() -> None:
    """explain() builds the game inside TorchModel.session(), which switches requires_grad off:
    the game reads the caller's flags from the adapter's requires_grad_before."""
    model, X, y, Xt, truth = _frozen_case()
    data = tribute.TrainingData(X, y, loss="mse", l2=L2, reduction="sum")
    attr = tribute.explain(model, Xt, method="influence", players=data, damping=0.0)
    got = torch.as_tensor(np.asarray(attr.values)).reshape(truth.shape)
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]
    assert torch.allclose(got, truth, rtol=1e-7, atol=1e-9 * float(truth.abs().max()))


class _Pairs(Dataset):
    def __init__(self, X: torch.Tensor, y: torch.Tensor) -> None:
        self.X, self.y = X, y

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int) -> tuple[np.ndarray, float]:
        return self.X[i].numpy(), float(self.y[i])


def _ridge(n: int = 12) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, RidgeFit, torch.nn.Module]:
    g = torch.Generator().manual_seed(2)
    X = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    fit = RidgeFit(l2=0.7)
    return X, y, X[:2].clone(), fit, fit(X, y, seed=0)


@pytest.mark.parametrize("make", [
    lambda X, y: TensorDataset(X, y),
    lambda X, y: _Pairs(X, y),
    lambda X, y: DataLoader(TensorDataset(X, y), batch_size=5, shuffle=True),
    lambda X, y: DataLoader(_Pairs(X, y), batch_size=3, shuffle=True),
], ids=["TensorDataset", "Dataset", "DataLoader-shuffled", "Dataset-DataLoader-shuffled"])
def test_dataset_and_shuffled_dataloader_credit_the_dataset_rows(make: object) -> None:
    """Player i is dataset[i], whatever order a shuffling DataLoader visits rows in (before:
    "X_train of type TensorDataset is not array-like")."""
    X, y, Xt, fit, model = _ridge()
    ref = tribute.explain(model, Xt, method="influence", players=tribute.TrainingData(X, y, fit=fit))
    got = tribute.explain(model, Xt, method="influence",
                          players=tribute.TrainingData(make(X, y), fit=fit))  # type: ignore[operator]
    np.testing.assert_allclose(np.asarray(got.values), np.asarray(ref.values), rtol=0, atol=1e-12)


def test_dataset_errors_name_the_argument_and_the_fix() -> None:
    X, y, _, fit, _ = _ridge()
    with pytest.raises(InputError, match=r"SubsetRandomSampler.*exactly once"):
        tribute.TrainingData(DataLoader(TensorDataset(X, y), sampler=SubsetRandomSampler([0, 1])), fit=fit)
    with pytest.raises(InputError, match=r"drop_last=True.*never trains on the last 2 of its 12"):
        tribute.TrainingData(DataLoader(TensorDataset(X, y), batch_size=5, drop_last=True), fit=fit)
    with pytest.raises(InputError, match=r"collate_fn=<lambda>.*X_train, y_train arrays"):
        tribute.TrainingData(DataLoader(TensorDataset(X, y), collate_fn=lambda b: b), fit=fit)
    with pytest.raises(InputError, match="leave y_train=None"):
        tribute.TrainingData(TensorDataset(X, y), y, fit=fit)
    with pytest.raises(InputError, match="y_train is None"):
        tribute.TrainingData(X, fit=fit)
    with pytest.raises(InputError, match=r"y_train holds strings \(e\.g\. \['a', 'b'"):
        tribute.TrainingData(X, np.array(["a", "b"] * 6))


def _v(fit: RidgeFit, X: torch.Tensor, y: torch.Tensor, Xt: torch.Tensor, keep: list[int]) -> torch.Tensor:
    idx = [i for i in range(len(X)) if keep[i]]
    with torch.no_grad():
        return fit(X[idx], y[idx], seed=0)(Xt).reshape(-1)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_tiny_training_sets_with_a_duplicate_and_a_test_point_on_a_row(n: int, reduction: str) -> None:
    """1-3 rows (the first two equal when n > 1), a test point equal to row 0: leave-one-out
    retraining, the leave-one-out Newton step (exact for ridge) and exact data Shapley against
    refits by enumeration; duplicates get equal credits."""
    g = torch.Generator().manual_seed(5 + n)
    X = torch.randn(n, 2, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    if n > 1:
        X[1], y[1] = X[0], y[0]
    Xt = torch.cat([X[:1], torch.randn(1, 2, generator=g, dtype=torch.float64)])
    fit = RidgeFit(l2=0.7, reduction=reduction)
    model = fit(X, y, seed=0)
    full = _v(fit, X, y, Xt, [1] * n)
    loo = torch.stack([full - _v(fit, X, y, Xt, [int(j != i) for j in range(n)]) for i in range(n)], 1)
    vals = {S: _v(fit, X, y, Xt, list(S)) for S in itertools.product([0, 1], repeat=n)}
    shap = torch.zeros(2, n, dtype=torch.float64)
    for i in range(n):
        for S, vS in vals.items():
            if not S[i]:
                k = sum(S)
                w = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                shap[:, i] += w * (vals[tuple(1 if j == i else S[j] for j in range(n))] - vS)
    data = tribute.TrainingData(X, y, fit=fit)
    cases: list[tuple[str, dict[str, Any], torch.Tensor]] = [
        ("feature_ablation", {}, loo), ("influence", {"loo_step": True}, loo),
        ("exact_shapley", {}, shap)]
    for method, kw, truth in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            attr = tribute.explain(model, Xt, method=method, players=data, **kw)
        got = torch.as_tensor(np.asarray(attr.values)).reshape(2, n)
        assert torch.allclose(got, truth, rtol=1e-9, atol=1e-12), (method, got, truth)
        if n > 1:
            assert torch.allclose(got[:, 0], got[:, 1], rtol=1e-9, atol=1e-12), method


def test_reduction_other_than_the_trained_one_warns() -> None:
    """A plain fit function (no .reduction) that trains a summed ridge: TrainingData's default
    reduction='mean' changes the Hessian and the removal scale, 2.3x further off leave-one-out
    (0.26 vs 0.11) with no word. The model is a stationary point of the other objective: say so."""
    X, y, Xt, rf, model = _ridge(20)

    def plain_fit(X: Any, y: Any, *, seed: int, weights: Any = None) -> torch.nn.Module:
        return rf(X, y, seed=seed, weights=weights)

    with pytest.warns(RuntimeWarning, match=r"stationary point .* reduction='sum'.*"
                                            r"declared reduction='mean'.*TrainingData\(reduction='sum'\)"):
        tribute.explain(model, Xt, method="influence",
                        players=tribute.TrainingData(X, y, fit=plain_fit, loss="mse", l2=0.7))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        tribute.explain(model, Xt, method="influence", players=tribute.TrainingData(X, y, fit=rf))


def test_representer_refuses_a_frozen_last_layer() -> None:
    """A frozen last linear layer leaves representer nothing to split (before: torch.cat of an
    empty list, "expected a non-empty list of Tensors")."""
    model, X, y, Xt, _ = _frozen_case()
    feat, _, head = model.children()
    feat.requires_grad_(True)
    head.requires_grad_(False)
    game = tribute.TrainingData(X, y, loss="mse", l2=L2).make_game(TorchModel(model), Xt)
    with pytest.raises(UnsupportedModelError, match=r"last torch.nn.Linear layer '2' has no trained"):
        Representer().attribute(game)


def test_representer_on_a_frozen_feature_layer_splits_the_head() -> None:
    """Frozen features, a ridge head at its optimum: credits sum to the head's output."""
    model, X, y, Xt, _ = _frozen_case()
    game = tribute.TrainingData(X, y, loss="mse", l2=L2, reduction="sum").make_game(TorchModel(model), Xt)
    attr = Representer().attribute(game)
    with torch.no_grad():
        out = model(Xt).reshape(-1)
    np.testing.assert_allclose(np.asarray(attr.values).reshape(3, -1).sum(1), out.numpy(), rtol=1e-9)
