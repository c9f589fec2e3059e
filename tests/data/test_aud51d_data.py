"""aud51d: training-data attribution audit of stop 51."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from data_cases import FuncTanh, OnceTanh

import tribute
from tribute.errors import UnsupportedModelError


class _Net(torch.nn.Module):
    def __init__(self, act: Any) -> None:
        super().__init__()
        self.l1, self.l2, self.act = torch.nn.Linear(3, 4), torch.nn.Linear(4, 1), act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.l1(x)
        return self.l2(torch.tanh(h) if self.act is None else self.act(h))


def _tanh_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(12, 3, generator=g, dtype=torch.float64)
    y = torch.randn(12, generator=g, dtype=torch.float64)
    Xt = torch.randn(2, 3, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    return X, y, Xt, _Net(None).double().state_dict()


@pytest.mark.parametrize("solver", ["explicit", "cg"])
def test_influence_refuses_a_once_differentiable_function_in_the_hessian(solver: str) -> None:
    """Under torch.func a ``@once_differentiable`` backward's result carries no derivative, so
    the training loss's Hessian silently lost every term through it, with no error:
    ``influence`` (explicit) was up to 0.011 off with ``damping=1`` (credits up to 0.16) and
    1.74 off with ``damping=None`` (credits up to 0.32) against the same network with
    ``torch.tanh``, itself equal to a hand influence from ``torch.autograd.functional.hessian``."""
    X, y, Xt, state = _tanh_case()
    model = _Net(OnceTanh.apply).double()
    model.load_state_dict(state)
    data = tribute.TrainingData(X, y, loss="mse", l2=0.5)
    with pytest.raises(UnsupportedModelError, match=r"'OnceTanh'.*once_differentiable"):
        tribute.explain(model, Xt, method="influence", players=data, solver=solver, damping=1.0,
                        progress=False)
    # first-order estimators through the same Function stay exact
    ref = _Net(None).double()
    ref.load_state_dict(state)
    a = tribute.explain(model, Xt, method="grad_dot", players=data, progress=False)
    b = tribute.explain(ref, Xt, method="grad_dot", players=data, progress=False)
    assert torch.allclose(a.values, b.values, rtol=1e-10, atol=1e-12)


def test_influence_through_a_twice_differentiable_function_matches_torch_tanh() -> None:
    """The check refuses only the marker: the same Function with a differentiable backward
    gives torch.tanh's influence (explicit solver), and cg (forward mode, which the Function
    does not implement) is refused by name instead of torch's raw NotImplementedError."""
    X, y, Xt, state = _tanh_case()
    model, ref = _Net(FuncTanh.apply).double(), _Net(None).double()
    model.load_state_dict(state)
    ref.load_state_dict(state)
    data = tribute.TrainingData(X, y, loss="mse", l2=0.5)
    a = tribute.explain(model, Xt, method="influence", players=data, solver="explicit", damping=1.0,
                        progress=False)
    b = tribute.explain(ref, Xt, method="influence", players=data, solver="explicit", damping=1.0,
                        progress=False)
    assert torch.allclose(a.values, b.values, rtol=1e-10, atol=1e-12)
    with pytest.raises(UnsupportedModelError, match=r"solver='explicit'"):
        tribute.explain(model, Xt, method="influence", players=data, solver="cg", damping=1.0,
                        progress=False)


def test_trak_default_projection_runs_on_a_small_training_set() -> None:
    """``proj_dim=512`` by default refused every training set of up to 512 examples (the
    unregularised kernel is singular for ``proj_dim >= n_train``); the default is now
    ``min(512, n_train // 4)``, and the credits are those of that ``proj_dim`` given explicitly."""
    from data_cases import logistic_case

    from tribute.methods.data_trak import default_proj_dim

    assert [default_proj_dim(n) for n in (1, 3, 8, 178, 569, 1797, 2048, 60000)] == \
        [1, 1, 2, 44, 142, 449, 512, 512]
    case = logistic_case(n=40, d=3, n_test=2)
    data = case.data()
    a = tribute.explain(case.model, case.X_test, method="trak", players=data, target=case.y_test,
                        progress=False)
    b = tribute.explain(case.model, case.X_test, method="trak", players=data, target=case.y_test,
                        proj_dim=10, progress=False)
    assert a.extra["dim"] == 10
    assert torch.equal(a.values, b.values)
    assert a.params["proj_dim"] is None


@pytest.mark.parametrize(("method", "kw"), [
    ("feature_ablation", {}), ("banzhaf", {"budget": 40, "seed": 0}),
    ("datamodels", {"budget": 30, "seed": 0}), ("grad_dot", {}), ("trak", {"proj_dim": 3})])
def test_data_game_rows_count_the_reference_pass(method: str, kw: dict[str, Any]) -> None:
    """A data game runs the explained model once on the test points when it is built (the
    target, ``model_values``); retraining calls left those rows out of ``n_rows`` (rows seen =
    ``n_rows`` + the batch in every run: feature_ablation on 6 examples and 2 test points
    reported 14 for the 16 rows a forward hook counted) and gradient estimators reported
    ``n_rows=0`` for one counted pass. Now ``n_rows = n_samples * (1 + n_evals)``; for the
    retraining estimators it equals the rows a forward hook on the explained module counts."""
    from data_cases import ridge_case

    case = ridge_case(n=6, d=3, n_test=2, l2=0.5)
    seen: list[int] = []
    h = case.model.register_forward_hook(lambda m, i, o: seen.append(int(i[0].shape[0])))
    try:
        attr = tribute.explain(case.model, case.X_test, method=method, players=case.data(loss="mse"),
                               progress=False, **kw)
    finally:
        h.remove()
    assert attr.n_rows == 2 * (1 + attr.n_evals)
    if method not in ("grad_dot", "trak"):  # gradient passes run vmapped (one traced row)
        assert attr.n_rows == sum(seen)


def test_data_game_merges_a_copy_among_no_more_coalitions_than_players() -> None:
    """The copy search ran only with more coalitions than players: datamodels at ``budget=8``
    on 8 examples (seed 14 draws 7 distinct subsets) ran and counted the copy (n_evals 8 for
    7 retrained subsets). A data game searches at any size; the credits stay the same."""
    import numpy as np
    from data_cases import ridge_case

    from tribute.methods.data_retrain import datamodel_subsets

    masks = datamodel_subsets(8, 0.5, 8, 14).numpy()
    distinct = len(np.unique(masks, axis=0))
    assert distinct == 7
    case = ridge_case(n=8, d=3, n_test=2, l2=0.5)
    data = case.data(loss="mse")
    with pytest.warns(tribute.StderrWarning):
        attr = tribute.explain(case.model, case.X_test, method="datamodels", players=data, budget=8,
                               seed=14, progress=False)
    assert attr.n_evals == distinct  # 8 before
    assert attr.n_rows == 2 * (distinct + 1)
    P = data.bank.params(masks)  # the retrained ridge models, by hand on the test points
    v = case.X_test.numpy() @ P[:, :3].T + P[:, 3]  # 2 x 8, copies included
    A = np.c_[np.ones(8), masks]
    reg = 1e-3 * np.eye(9)
    reg[0, 0] = 0.0
    beta = np.linalg.solve(A.T @ A + reg, A.T @ v.T)[1:].T
    assert np.allclose(attr.values.reshape(2, 8).numpy(), beta, atol=1e-8)


def test_freeshap_surrogate_merges_a_copy_among_few_coalitions() -> None:
    """The sibling of the data game's search: freeshap's kernel-regression surrogate also
    searched for copies only with more coalitions than players (3 coalitions of 8 examples,
    two equal: 3 solves counted before, 2 after; the copy gets the first one's value)."""
    from data_cases import ridge_case

    from tribute.games.data import DataGame
    from tribute.methods.data_freeshap import KernelRegressionGame, ntk_regression

    case = ridge_case(n=8, d=3, n_test=2, l2=0.5)
    game = tribute.build_game(case.model, case.X_test, players=case.data(loss="mse"))
    assert isinstance(game, DataGame)
    sur = KernelRegressionGame(game, ntk_regression(game))
    m = torch.tensor([[1, 0, 1, 1, 0, 1, 0, 1], [0, 1, 1, 1, 1, 0, 0, 1], [1, 0, 1, 1, 0, 1, 0, 1]],
                     dtype=torch.float64)
    v = sur.value(m)
    assert sur.n_evals == 2  # 3 before
    assert torch.equal(v[:, 0], v[:, 2])


def test_a_scikit_learn_model_with_training_data_is_told_what_to_pass() -> None:
    """The refusal said only "got NumpyModel" (the adapter, not the user's estimator) with no
    way forward; it names the estimator and the torch reference trainers."""
    from data_cases import logistic_case
    from sklearn.linear_model import LogisticRegression

    case = logistic_case(n=20, d=3, n_test=2)
    clf = LogisticRegression().fit(case.X.numpy(), case.y.numpy())
    with pytest.raises(UnsupportedModelError, match=r"got NumpyModel \(a LogisticRegression\)\. "
                                                    r".*data_fits\.RidgeFit, LogisticFit and MLPFit"):
        tribute.explain(clf, case.X_test.numpy(), method="grad_dot", players=case.data(), progress=False)
