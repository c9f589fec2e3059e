"""Reference tests from the data-attribution audit (notes25): each pins a silent wrong answer
found there against an independent truth (own closed forms, own enumeration, own trainers)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import tribute
from tribute.games.data import ModelMismatchWarning
from tribute.games.data_fits import MLPFit
from tribute_testing import shapley_from_table


def _mlp_data(n: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, MLPFit]:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, 2, generator=g, dtype=torch.float64)
    y = (X[:, 0] > 0).long()
    Xt = torch.randn(2, 2, generator=g, dtype=torch.float64)
    return X, y, Xt, MLPFit(2, hidden=3, steps=20)


def _margin(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        z = model(x)
    zy = z.gather(1, y[:, None])[:, 0]
    other = z.scatter(1, y[:, None], float("-inf"))
    return (zy - torch.logsumexp(other, 1)).numpy()


def test_retraining_warns_when_the_explained_model_is_not_fits_model() -> None:
    X, y, Xt, fit = _mlp_data()
    yt = torch.tensor([0, 1])
    other = fit(X, y, seed=1)  # the user's model: another seed than TrainingData's (0)
    with pytest.warns(ModelMismatchWarning, match="seed=0"):
        attr = tribute.explain(
            other,
            Xt,
            method="exact_shapley",
            target=yt,
            players=tribute.TrainingData(X, y, fit=fit),
        )
    # the credits explain fit's seed-0 model, not the explained one (what the warning says)
    total = np.asarray(attr.values).sum(-1).ravel() + np.asarray(attr.base_values).ravel()
    np.testing.assert_allclose(total, _margin(fit(X, y, seed=0), Xt, yt), atol=1e-9)
    assert np.abs(total - _margin(other, Xt, yt)).max() > 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelMismatchWarning)
        tribute.explain(
            fit(X, y, seed=0),
            Xt,
            method="feature_ablation",
            target=yt,
            players=tribute.TrainingData(X, y, fit=fit),
        )
        tribute.explain(
            other,
            Xt,
            method="feature_ablation",
            target=yt,
            players=tribute.TrainingData(X, y, fit=fit, seed=1),
        )


def _bce_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, torch.nn.Module]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 2))
    y = (X[:, 0] + rng.normal(size=10) > 0).astype(int)
    model = torch.nn.Linear(2, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.5, -0.3]]))
        model.bias.fill_(0.2)
    return X, y, rng.normal(size=(2, 2)), model


def test_bce_grad_dot_matches_closed_form_and_refuses_other_labels() -> None:
    X, y, Xt, model = _bce_case()
    A, At = np.c_[X, np.ones(10)], np.c_[Xt, np.ones(2)]
    p = 1 / (1 + np.exp(-(A @ np.array([1.5, -0.3, 0.2]))))
    yt = np.array([1, 0])
    # -<grad (2y_t - 1) z_t, grad BCE_i> for a linear logit z = a.theta
    truth = -(((2 * yt - 1)[:, None] * At) @ ((p - y)[:, None] * A).T)
    data = tribute.TrainingData(X, y, loss="binary_cross_entropy")
    attr = tribute.explain(model, Xt, method="grad_dot", players=data, target=yt)
    np.testing.assert_allclose(np.asarray(attr.values).reshape(2, -1), truth, atol=1e-12)
    with pytest.raises(tribute.InputError, match="labels 0 or 1 in y_train"):
        tribute.TrainingData(X, 2 * y - 1, loss="binary_cross_entropy")  # -1/+1 labels
    for bad in (2, np.array([0.5, 1.0])):
        with pytest.raises(tribute.InputError, match="must be 0 or 1"):
            tribute.explain(model, Xt, method="grad_dot", players=data, target=bad)


def _ridge_np(X: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Own closed-form ridge on [x, 1] with the intercept penalised (RidgeFit's objective)."""
    A = np.c_[X, np.ones(len(X))]
    return np.linalg.solve(A.T @ A + l2 * np.eye(A.shape[1]), A.T @ y)


def test_freeshap_stderr_covers_exact_data_shapley_with_few_permutations() -> None:
    import itertools

    from tribute.games.data_fits import RidgeFit

    rng = np.random.default_rng(5)
    n = 6
    X = rng.normal(size=(n, 2))
    y = X @ [2.0, -1.0] + rng.normal(size=n)
    X[0] *= 3
    y[0] += 4  # an outlier: v(S) far from additive
    Xt = rng.normal(size=(2, 2))
    At = np.c_[Xt, np.ones(2)]
    v = {
        b: At @ _ridge_np(X[np.array(b, bool)], y[np.array(b, bool)], 0.3)
        for b in itertools.product([0, 1], repeat=n)
    }
    truth = shapley_from_table(v, n)  # exact data Shapley (FreeShap equals it on ridge)
    fit = RidgeFit(l2=0.3)
    model = fit(torch.as_tensor(X), torch.as_tensor(y), seed=0)
    data = tribute.TrainingData(X, y, fit=fit)
    covered = []
    for seed in range(100):
        attr = tribute.explain(
            model, Xt, method="freeshap", players=data, seed=seed, n_permutations=6
        )
        err = np.abs(np.asarray(attr.values).reshape(2, -1) - truth)
        covered.append(err <= 2 * np.asarray(attr.stderr).reshape(2, -1))
    # before: 0.74 (std / sqrt(3 pairs) with normal quantiles); Student-t over 2 dof: 0.99
    assert np.mean(covered) >= 0.9


def test_single_output_losses_refuse_multi_output_models() -> None:
    rng = np.random.default_rng(0)
    X, Xt = rng.normal(size=(10, 2)), rng.normal(size=(2, 2))
    model = torch.nn.Linear(2, 2).double()
    W = np.c_[model.weight.detach().numpy(), model.bias.detach().numpy()]
    A, At = np.c_[X, np.ones(10)], np.c_[Xt, np.ones(2)]
    y1 = rng.normal(size=10)
    # before: accepted, explained output 0 trained against y1 (not what the model was trained
    # on); a one-output model gives the closed form -<a_t, a_i> r_i
    with pytest.raises(tribute.InputError, match="one output per example"):
        tribute.explain(
            model, Xt, method="grad_dot", players=tribute.TrainingData(X, y1, loss="mse")
        )
    with pytest.raises(tribute.InputError, match="one output per example"):
        tribute.explain(
            model,
            Xt,
            method="grad_dot",
            players=tribute.TrainingData(X, (y1 > 0).astype(int), loss="binary_cross_entropy"),
        )
    one = torch.nn.Linear(2, 1).double()
    with torch.no_grad():
        one.weight.copy_(torch.as_tensor(W[:1, :2]))
        one.bias.copy_(torch.as_tensor(W[:1, 2]))
    with pytest.raises(tribute.InputError, match="one target per training example"):
        tribute.explain(
            one,
            Xt,
            method="grad_dot",
            players=tribute.TrainingData(X, rng.normal(size=(10, 2)), loss="mse"),
        )
    attr = tribute.explain(
        one, Xt, method="grad_dot", players=tribute.TrainingData(X, y1, loss="mse")
    )
    r = A @ W[0] - y1
    np.testing.assert_allclose(
        np.asarray(attr.values).reshape(2, -1), -(At @ A.T) * r[None], atol=1e-12
    )


def test_ekfac_equals_ridge_influence_closed_form_only_without_damping() -> None:
    from tribute.games.data_fits import RidgeFit

    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.5 * rng.normal(size=30)
    Xt = rng.normal(size=(4, 3))
    A, At = np.c_[X, np.ones(30)], np.c_[Xt, np.ones(4)]
    theta = _ridge_np(X, y, 2.0)
    H = A.T @ A + 2.0 * np.eye(4)
    truth = (At @ np.linalg.solve(H, A.T)) * (y - A @ theta)[None]  # -a_t H^-1 grad loss_i
    fit = RidgeFit(l2=2.0)
    model = fit(torch.as_tensor(X), torch.as_tensor(y), seed=0)
    data = tribute.TrainingData(X, y, fit=fit)
    exact = tribute.explain(
        model, Xt, method="influence", players=data, solver="ekfac", damping=0.0
    )
    np.testing.assert_allclose(np.asarray(exact.values).reshape(4, -1), truth, atol=1e-12)
    damped = tribute.explain(model, Xt, method="influence", players=data, solver="ekfac")
    assert (
        np.abs(np.asarray(damped.values).reshape(4, -1) - truth).max() > 0.05 * np.abs(truth).max()
    )


class _MeanRidge:
    """``mean_i (a_i.theta - y_i)^2 / 2 + l2/2 |theta|^2`` in closed form: a subset's weights
    are renormalised to its size, like MLPFit/ConvFit's ``sum w ce / sum w``."""

    l2 = 0.05
    reduction = "mean"
    loss = "mse"

    def __call__(
        self, X: torch.Tensor, y: torch.Tensor, *, seed: int, weights: torch.Tensor | None = None
    ) -> torch.nn.Module:
        Xn = np.asarray(X, dtype=np.float64).reshape(len(X), 3)
        w = np.ones(len(Xn)) if weights is None else np.asarray(weights, dtype=np.float64)
        A = np.c_[Xn, np.ones(len(Xn))]
        wn = w / max(w.sum(), 1e-300)
        th = np.linalg.solve(
            A.T @ (wn[:, None] * A) + self.l2 * np.eye(4), A.T @ (wn * np.asarray(y))
        )
        m = torch.nn.Linear(3, 1).double()
        with torch.no_grad():
            m.weight.copy_(torch.as_tensor(th[:3])[None])
            m.bias.copy_(torch.as_tensor(th[3:]))
        return m

    def __repr__(self) -> str:
        return "_MeanRidge()"


@pytest.mark.parametrize("iters", [1, 5])
def test_loo_newton_is_exact_leave_one_out_for_a_mean_objective(iters: int) -> None:
    rng = np.random.default_rng(1)
    n = 30
    X = rng.normal(size=(n, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.5 * rng.normal(size=n)
    Xt = rng.normal(size=(4, 3))
    At = np.c_[Xt, np.ones(4)]

    def ridge_mean(Xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        A = np.c_[Xs, np.ones(len(Xs))]
        return np.linalg.solve(A.T @ A / len(Xs) + 0.05 * np.eye(4), A.T @ ys / len(Xs))

    full = At @ ridge_mean(X, y)
    # own leave-one-out retraining: the mean over the other n - 1 examples
    loo = np.stack(
        [full - At @ ridge_mean(np.delete(X, i, 0), np.delete(y, i)) for i in range(n)], 1
    )
    fit = _MeanRidge()
    model = fit(torch.as_tensor(X), torch.as_tensor(y), seed=0)
    attr = tribute.explain(
        model,
        Xt,
        method="influence",
        loo_step=True,
        loo_iters=iters,
        players=tribute.TrainingData(X, y, fit=fit),
    )
    # before: 0.0146 on a scale of 0.18 for any number of iterations (weights kept at 1/n)
    np.testing.assert_allclose(
        np.asarray(attr.values).reshape(4, -1), loo, rtol=0, atol=1e-10 * np.abs(loo).max()
    )


def test_loo_newton_refuses_to_return_diverged_iterates() -> None:
    from data_cases import mlp_case

    case = mlp_case()  # a non-convex MLP, 60 gradient steps: not at a convex optimum
    data = case.data()
    kw = {"players": data, "target": case.y_test, "loo_step": True}
    loo = np.asarray(
        tribute.explain(
            case.model, case.X_test, method="feature_ablation", players=data, target=case.y_test
        ).values
    )
    one = np.asarray(tribute.explain(case.model, case.X_test, method="influence", **kw).values)
    assert np.abs(one).max() < 2 * np.abs(loo).max()  # the single step stays on scale
    # before: loo_iters=3 returned credits up to ~1e3 (1e8 at 20) for a retraining scale of 4.8
    with pytest.raises(tribute.InputError, match="diverged"):
        tribute.explain(case.model, case.X_test, method="influence", loo_iters=3, **kw)


def test_bad_class_labels_and_learning_rates_get_clear_errors() -> None:
    rng = np.random.default_rng(0)
    X, Xt = rng.normal(size=(10, 2)), rng.normal(size=(2, 2))
    model = torch.nn.Linear(2, 3).double()
    for bad in (5, -1):  # before: a torch RuntimeError from one_hot / gather
        y = np.r_[np.arange(9) % 3, bad]
        with pytest.raises(tribute.InputError, match=r"outside 0\.\.2"):
            tribute.explain(model, Xt, method="grad_dot", players=tribute.TrainingData(X, y))
    data = tribute.TrainingData(X, np.arange(10) % 3, checkpoints=[(model, True)])
    with pytest.raises(tribute.InputError, match="learning rate True"):  # before: lr 1.0
        tribute.explain(model, Xt, method="tracin", players=data)


def test_data_games_refuse_a_baseline_instead_of_ignoring_it() -> None:
    X, y, Xt, fit = _mlp_data()
    model = fit(X, y, seed=0)
    data = tribute.TrainingData(X, y, fit=fit)
    for method in ("feature_ablation", "grad_dot"):
        tribute.explain(model, Xt, method=method, players=data, baseline=0.0)
        for bad in (5.0, X.mean(0)):  # before: accepted and ignored (values as without it)
            with pytest.raises(tribute.InputError, match="no meaning for training-data"):
                tribute.explain(model, Xt, method=method, players=data, baseline=bad)
