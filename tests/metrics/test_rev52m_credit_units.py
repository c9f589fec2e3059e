"""rev52m: evaluate's credit-units refusal (aud52m) on models it must score / must refuse.

* A Booster called for its margins (``xgboost.Booster`` / ``lightgbm.Booster`` of a
  classification objective: ``output_kind == "logit"``) makes the game of ``output="raw"`` read
  the trees' margin, the quantity tree_shap explains: it was refused although the credits equal
  that game's exact Shapley values (shapley_error 1e-15, LightGBM; 5e-8, XGBoost float32).
* XGBoost / LightGBM / CatBoost regressors (identity link: ``params["explained"]`` "margin of
  the ...") predict their margin: they were refused too (XGBRegressor shapley_error 6.7e-8,
  LGBMRegressor 6.6e-16 once scored).
* deeplift skips a final Softmax registered before the layers it follows
  (``self.sm = nn.Softmax(-1)`` first in ``__init__``): only the last registered module was
  looked at, so its logit credits were scored against the softmax output (shapley_error 3.41,
  where the same credits score 0.197 on the logits), silently.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError
from tribute.metrics.api import credit_units_problem


def _data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(200, 5))
    return x, (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)


@pytest.mark.parametrize("metric", ["shapley_error", "infidelity"])
def test_margin_credits_of_a_booster_called_for_margins_are_scored(metric: str) -> None:
    lgb = pytest.importorskip("lightgbm")
    x, y = _data()
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 7},
                        lgb.Dataset(x, y), 10)
    rows, bg = x[:4], x[100:120]
    attr = tribute.explain(booster, rows, method="tree_shap", baseline=bg, kernel="numpy")
    assert "margin" in str(attr.params["explained"])
    assert credit_units_problem(attr, metric, "raw", booster) is None  # the bench runner's check
    res = tribute.evaluate(booster, rows, attr, metric=metric, baseline=bg)  # was refused
    explicit = tribute.evaluate(booster, rows, attr, metric=metric, baseline=bg, output="raw")
    assert np.array_equal(np.asarray(res.scores), np.asarray(explicit.scores), equal_nan=True)
    if metric == "shapley_error":
        assert res.mean < 1e-10  # the credits are that game's exact Shapley values


@pytest.mark.parametrize("metric", ["shapley_error", "infidelity"])
def test_margin_credits_of_an_identity_link_regressor_are_scored(metric: str) -> None:
    lgb = pytest.importorskip("lightgbm")
    x, _ = _data()
    y = x[:, 0] + x[:, 1] * x[:, 2]
    model = lgb.LGBMRegressor(n_estimators=10, num_leaves=7, verbose=-1).fit(x, y)
    rows, bg = x[:4], x[100:120]
    attr = tribute.explain(model, rows, method="tree_shap", baseline=bg, kernel="numpy")
    assert str(attr.params["explained"]).startswith("margin of ")
    assert credit_units_problem(attr, metric, "raw", model) is None
    res = tribute.evaluate(model, rows, attr, metric=metric, baseline=bg)  # was refused
    if metric == "shapley_error":
        assert res.mean < 1e-10


class _SoftmaxRegisteredFirst(nn.Module):
    def __init__(self, apply_softmax: bool = True) -> None:
        super().__init__()
        self.sm = nn.Softmax(dim=-1)  # registered first, applied last
        self.l1, self.act, self.l2 = nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)
        self.apply_softmax = apply_softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.l2(self.act(self.l1(x)))
        return self.sm(z) if self.apply_softmax else z


@pytest.mark.parametrize("metric", ["shapley_error", "infidelity"])
def test_deeplift_logits_refused_when_the_softmax_is_not_registered_last(metric: str) -> None:
    torch.manual_seed(0)
    model = _SoftmaxRegisteredFirst().double()
    x = torch.randn(5, 4, dtype=torch.float64)
    attr = tribute.explain(model, x, method="deeplift", target=1)
    assert attr.extra["explained"] == "logits"
    with pytest.raises(InputError, match=r"logits before the model's final Softmax.*output='raw'"):
        tribute.evaluate(model, x, attr, metric=metric)
    assert np.asarray(tribute.evaluate(model, x, attr, metric=metric, output="raw").scores).shape == (5,)


def test_deeplift_of_a_model_holding_an_unused_softmax_is_scored() -> None:
    torch.manual_seed(0)
    model = _SoftmaxRegisteredFirst(apply_softmax=False).double()  # returns logits
    x = torch.randn(5, 4, dtype=torch.float64)
    attr = tribute.explain(model, x, method="deeplift", target=1)
    assert attr.extra["explained"] == "output"
    res = tribute.evaluate(model, x, attr, metric="shapley_error")
    assert np.isfinite(res.mean)
