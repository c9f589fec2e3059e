"""Audit aud44d: training-data attribution checked against truths computed outside tribute
(sklearn's tie-aware AUROC on self-influences whose ties are restored by hand)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import tribute
from tribute.errors import InputError, UnsupportedModelError
from tribute.games.data_fits import LogisticFit, RidgeFit
from tribute.metrics import loo_correlation, mislabel_auc


def _duplicated_rows(k: int = 12) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """``2k`` training rows, row ``i + k`` an exact copy (x and label) of row ``i``; the
    "flipped" flags mark one copy of some pairs (its label was flipped onto its twin's)."""
    rng = np.random.default_rng(4)
    base = rng.normal(size=(k, 3))
    yb = (base[:, 0] + 0.3 * rng.normal(size=k) > 0).astype(np.int64)
    X = torch.tensor(np.vstack([base, base]))
    y = torch.tensor(np.concatenate([yb, yb]))
    flip = np.zeros(2 * k, dtype=bool)
    flip[k : k + 6] = True
    flip[[2, 8]] = True
    flip[[2 + k, 8 + k]] = False
    return X, y, flip


def test_mislabel_auc_scores_a_tie_split_by_rounding_as_half() -> None:
    # before: identical rows whose self-influences differ by rounding (here 1e-13 relative,
    # as CG leaves them: 8 of 12 pairs split by up to 2e-11 on an MLP) counted 0 or 1 per
    # flipped/clean pair instead of 1/2
    k = 12
    X, y, flip = _duplicated_rows(k)
    fit = LogisticFit(2, l2=1.0)
    model = fit(X, y, seed=0)
    data = tribute.TrainingData(X, y, fit=fit)
    attr = tribute.explain(model, X, target=y, output="loss", method="influence", players=data)
    game = tribute.build_game(model, X, target=y, output="loss", players=data)
    V = attr.values.numpy().reshape(2 * k, 2 * k).copy()
    idx = np.arange(k)
    V[idx + k, idx + k] = V[idx, idx] * (1.0 + 1e-13 * np.where(idx % 2 == 0, 1.0, -1.0))
    attr.values = torch.as_tensor(V)
    truth_values = np.abs(np.diag(V)).copy()
    truth_values[k:] = truth_values[:k]  # the copies' self-influence, exactly
    truth = roc_auc_score(flip, truth_values)
    split = roc_auc_score(flip, np.abs(np.diag(V)))
    assert abs(split - truth) > 0.01  # the case tells the two rules apart
    res = mislabel_auc(game, attr, ground_truth=flip)
    assert res.extra["auc"] == pytest.approx(truth, abs=1e-12)
    # a real difference (1e-6 relative in float64 credits) is still ranked
    V[idx + k, idx + k] = V[idx, idx] * (1.0 + 1e-6 * np.where(idx % 2 == 0, 1.0, -1.0))
    attr.values = torch.as_tensor(V)
    assert mislabel_auc(game, attr, ground_truth=flip).extra["auc"] == pytest.approx(
        roc_auc_score(flip, np.abs(np.diag(V))), abs=1e-12)


def test_mislabel_auc_float32_credits_one_ulp_apart_are_tied() -> None:
    k = 12
    X, y, flip = _duplicated_rows(k)
    X32 = X.float()
    fit = LogisticFit(2, l2=1.0)
    model = fit(X, y, seed=0).float()
    data = tribute.TrainingData(X32, y, fit=fit)
    attr = tribute.explain(model, X32, target=y, output="loss", method="grad_dot", players=data)
    assert attr.values.dtype == torch.float32
    game = tribute.build_game(model, X32, target=y, output="loss", players=data)
    V = attr.values.numpy().reshape(2 * k, 2 * k).copy()
    idx = np.arange(k)
    d = V[idx, idx]
    V[idx + k, idx + k] = np.where(idx % 2 == 0, np.nextafter(d, np.float32(np.inf)),
                                   np.nextafter(d, np.float32(-np.inf)))
    attr.values = torch.as_tensor(V)
    truth_values = np.abs(np.diag(V)).astype(np.float64)
    truth_values[k:] = truth_values[:k]
    res = mislabel_auc(game, attr, ground_truth=flip)
    assert res.extra["auc"] == pytest.approx(roc_auc_score(flip, truth_values), abs=1e-12)
    assert abs(roc_auc_score(flip, np.abs(np.diag(V))) - res.extra["auc"]) > 0.01


def test_mislabel_auc_of_grad_cos_self_influence_is_one_half() -> None:
    # grad_cos's self-influence is cos(g_i, g_i) = 1 for every example: no information, so
    # every flipped/clean comparison is a tie (AUROC 1/2); before, rounding of the cosines
    # (1e-16) ranked them: 0.5913 on this case
    X, y, flip = _duplicated_rows()
    fit = LogisticFit(2, l2=1.0)
    model = fit(X, y, seed=0)
    data = tribute.TrainingData(X, y, fit=fit)
    attr = tribute.explain(model, X, target=y, output="loss", method="grad_cos", players=data)
    game = tribute.build_game(model, X, target=y, output="loss", players=data)
    np.testing.assert_allclose(np.abs(np.diag(attr.values.numpy())), 1.0, rtol=1e-12)
    assert mislabel_auc(game, attr, ground_truth=flip).extra["auc"] == 0.5


def _flipped_case() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray,
                             tribute.TrainingData]:
    rng = np.random.default_rng(7)
    n = 40
    X = torch.tensor(rng.normal(size=(n, 3)))
    y0 = (X[:, 0] + 0.5 * X[:, 1] > 0).long()
    flip = np.zeros(n, dtype=bool)
    flip[::8] = True
    y = y0.clone()
    y[flip] = 1 - y[flip]
    fit = LogisticFit(2, l2=0.5)
    data = tribute.TrainingData(X, y, fit=fit)
    return fit(X, y, seed=0), X, y, torch.tensor(rng.normal(size=(n, 3))), flip, data


def test_mislabel_auc_refuses_inputs_or_targets_other_than_the_training_set() -> None:
    # before: only the count was checked; 40 test points beside 40 training examples scored
    # the diagonal of test-by-train credits (AUROC 0.72), target=None the predicted class's
    # loss (0.93); the self-influence AUROC (sklearn on |phi_ii|, target=y_train) is 0.97
    model, X, y, X_other, flip, data = _flipped_case()
    attr = tribute.explain(model, X, target=y, output="loss", method="influence", players=data)
    game = tribute.build_game(model, X, target=y, output="loss", players=data)
    truth = roc_auc_score(flip, np.abs(np.diag(attr.values.numpy())))
    assert mislabel_auc(game, attr, ground_truth=flip).extra["auc"] == pytest.approx(truth, abs=1e-12)
    for inputs, target, match in [(X_other, y, "inputs are not the training examples"),
                                  (X.flip(0), y.flip(0), "40 of 40 rows differ"),
                                  (X, None, "differ from y_train"),
                                  (X, torch.where(torch.as_tensor(flip), 1 - y, y), "at 5 of 40")]:
        kw: dict[str, Any] = {"target": target, "output": "loss", "players": data}
        other = tribute.explain(model, inputs, method="influence", **kw)
        with pytest.raises(InputError, match=match):
            mislabel_auc(tribute.build_game(model, inputs, **kw), other, ground_truth=flip)


def test_mislabel_auc_accepts_training_rows_holding_nan() -> None:
    # the check compares inputs with X_train NaN-safely (NaN == NaN there); a model that
    # imputes NaN features has finite credits, scored as usual
    class Impute(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.inner(torch.nan_to_num(x))
            return out

    model, X, y, _, flip, _ = _flipped_case()
    Xn = X.clone()
    Xn[3, 1] = float("nan")
    wrapped = Impute(model)
    data = tribute.TrainingData(Xn, y)
    attr = tribute.explain(wrapped, Xn, target=y, output="loss", method="grad_dot", players=data)
    game = tribute.build_game(wrapped, Xn, target=y, output="loss", players=data)
    truth = roc_auc_score(flip, np.abs(np.diag(attr.values.numpy())))
    assert mislabel_auc(game, attr, ground_truth=flip).extra["auc"] == pytest.approx(truth, abs=1e-12)


def _ridge_loo(X: np.ndarray, y: np.ndarray, Xt: np.ndarray, l2: float) -> np.ndarray:
    """``v(all) - v(all without i)`` of ridge on ``[X, 1]`` (bias penalised, summed loss),
    solved in numpy: ``batch x n``."""
    n, d = X.shape

    def v(S: list[int]) -> np.ndarray:
        A = np.hstack([X[S], np.ones((len(S), 1))])
        th = np.linalg.solve(A.T @ A + l2 * np.eye(d + 1), A.T @ y[S])
        out: np.ndarray = np.hstack([Xt, np.ones((len(Xt), 1))]) @ th
        return out

    every = list(range(n))
    return np.stack([v(every) - v([j for j in every if j != i]) for i in every], 1)


@pytest.mark.parametrize("kind", ["numpy_X", "torch_y"])
def test_training_data_edited_in_place_is_retrained(kind: str) -> None:
    # before: the retrain bank kept serving models trained on the old data (a label fixed
    # in place after mislabel detection, a feature corrected): leave-one-out credits 0.38
    # (torch) / 0.55 (numpy) off retraining on the new data, with a ModelMismatchWarning
    rng = np.random.default_rng(0)
    n, l2 = 6, 0.5
    X = rng.normal(size=(n, 2))
    y = rng.normal(size=n)
    Xt = rng.normal(size=(2, 2))
    fit = RidgeFit(l2=l2)
    X_in: Any = X if kind == "numpy_X" else torch.tensor(X)
    y_in: Any = y if kind == "numpy_X" else torch.tensor(y)
    data = tribute.TrainingData(X_in, y_in, fit=fit)
    model = fit(torch.tensor(X), torch.tensor(y), seed=0)
    before = tribute.explain(model, torch.tensor(Xt), method="feature_ablation", players=data)
    np.testing.assert_allclose(before.values.numpy().reshape(2, n), _ridge_loo(X, y, Xt, l2), atol=1e-12)
    if kind == "numpy_X":
        X_in[0, 0] += 3.0
    else:
        y_in[2] += 3.0
    X_new = X_in.copy() if kind == "numpy_X" else X_in.numpy().copy()
    y_new = y_in.copy() if kind == "numpy_X" else y_in.numpy().copy()
    model = fit(torch.tensor(X_new), torch.tensor(y_new), seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ModelMismatchWarning either
        after = tribute.explain(model, torch.tensor(Xt), method="feature_ablation", players=data)
    np.testing.assert_allclose(after.values.numpy().reshape(2, n), _ridge_loo(X_new, y_new, Xt, l2),
                               atol=1e-12)
    # credits of the old data are not scored against the new data
    game = tribute.build_game(model, torch.tensor(Xt), players=data)
    with pytest.raises(InputError, match="fingerprint"):
        loo_correlation(game, before)


def test_mislabel_auc_accepts_a_float32_copy_of_the_training_rows() -> None:
    # a float32 model explained on X_train.float() while TrainingData holds the float64 rows:
    # the same examples up to rounding, not refused; sklearn's AUROC on |phi_ii|
    model, X, y, _, flip, data = _flipped_case()
    m32 = model.float()
    attr = tribute.explain(m32, X.float(), target=y, output="loss", method="grad_dot", players=data)
    game = tribute.build_game(m32, X.float(), target=y, output="loss", players=data)
    truth = roc_auc_score(flip, np.abs(np.diag(attr.values.numpy())))
    assert mislabel_auc(game, attr, ground_truth=flip).extra["auc"] == pytest.approx(truth, abs=1e-12)


def test_ekfac_refusal_names_a_partly_frozen_linear_layer() -> None:
    # before: "parameters ['0.bias'] of Sequential are in other modules", though 0.bias is an
    # nn.Linear's (its weight is frozen)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    model[0].weight.requires_grad_(False)
    X = torch.randn(10, 3, dtype=torch.float64)
    y = (X[:, 0] > 0).long()
    with pytest.raises(UnsupportedModelError, match=r"layers \['0'\] whose weight or bias is frozen"):
        tribute.explain(model, X[:2], method="influence", solver="ekfac", players=tribute.TrainingData(X, y))
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True]
