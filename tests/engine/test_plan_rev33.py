"""Proposed regression tests (rev33). Fail on main 9048a94, pass with the patches in r_rev33.md."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.games.components import Ablation, components
from tribute_testing import record_plan


class _CMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.act, self.out = nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        return self.out(self.act(self.fc1(x)))


def _plan(monkeypatch: pytest.MonkeyPatch, call: Callable[[], Any]) -> tuple[list[int], list[tuple[int, int]]]:
    planned, seen, _ = record_plan(monkeypatch, call)
    return planned, seen


@pytest.mark.parametrize("ablation", ["patch", "resample"])
@pytest.mark.parametrize("method", ["exact_shapley", "feature_ablation", "integrated_gradients", "atp",
                                    "input_x_gradient", "layer_grad_cam", "conductance", "permutation_shapley"])
def test_component_plan_counts_the_reference_rows_once(method: str, ablation: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    net, x = _CMLP(), torch.randn(2, 6)
    abl = Ablation("patch", counterfactual=torch.randn(2, 6)) if ablation == "patch" else \
        Ablation("resample", n_resample=3, reference=torch.randn(5, 6))
    planned, _ = _plan(monkeypatch, lambda: tribute.explain(
        net, x, method=method, players=components(net, "act", unit="neuron"), target=1, budget=40,
        ablation=abl, progress=False))
    assert planned == [net.rows]


class _Counted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2)).double()
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        return self.net(x)


@pytest.mark.parametrize("method", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_noise_default_budget_plan(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _Counted()
    planned, _ = _plan(monkeypatch, lambda: tribute.explain(
        model, torch.randn(2, 6, dtype=torch.float64), method=method, target=1, progress=False))
    assert planned == [model.rows]  # 50 copies + v(N): 102 rows (planned 100)


def test_grad_cam_plan_with_a_background_set(monkeypatch: pytest.MonkeyPatch) -> None:
    class CNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.conv, self.fc = nn.Conv2d(1, 3, 3, padding=1), nn.Linear(3, 2)
            self.rows = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.rows += x.shape[0]
            return self.fc(torch.relu(self.conv(x)).mean((2, 3)))

    net = CNN()
    planned, _ = _plan(monkeypatch, lambda: tribute.explain(
        net, torch.randn(2, 1, 8, 8), method="grad_cam", target=1,
        baseline=tribute.Background(torch.randn(3, 1, 8, 8)), progress=False))
    assert planned == [net.rows]  # 4 (planned 8)


def test_plan_message_counts_evaluations_per_input_with_a_background_set() -> None:
    import importlib

    base = importlib.import_module("tribute.methods.base")
    method = base.get_method("exact_shapley")()
    from tribute.games.build import build_game
    from tribute.models import as_model

    x = torch.randn(2, 6, dtype=torch.float64)
    game = build_game(as_model(_Counted(), "torch", None), x, target=1,
                      baseline=tribute.Background(torch.randn(3, 6, dtype=torch.float64)), progress=False)
    cost = method.estimate_cost(game, None)
    assert "x 64 evaluations" in method.plan_message(game, None, cost, 60.0)  # 2^6 (said 63)


def _lgb_rf(objective: str, **kw: object) -> tuple[Any, np.ndarray]:
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = X[:, 0] + 2 * X[:, 1] * X[:, 2]
    label = (y > 0).astype(int) if objective == "binary" else np.digitize(y, [-1, 1])
    params = {"boosting": "rf", "objective": objective, "bagging_fraction": 0.7, "bagging_freq": 1,
              "max_depth": 3, "verbose": -1, **kw}
    return lgb.train(params, lgb.Dataset(X[:200], label[:200]), 15), X


@pytest.mark.parametrize("objective", ["binary", "multiclass"])
def test_lightgbm_rf_booster_is_explained_as_it_predicts(objective: str) -> None:
    booster, X = _lgb_rf(objective, **({"num_class": 3} if objective == "multiclass" else {}))
    bg = tribute.Background(X[200:216])
    target = [0, 1] if objective == "binary" else [0, 1, 2]
    a = tribute.explain(booster, X[:4], method="exact_shapley", baseline=bg, output="prob",
                        target=target, progress=False)
    got = a.flat().sum(-1) + np.asarray(a.base_values).reshape(4, -1)
    p = booster.predict(X[:4])
    want = np.stack([1 - p, p], 1) if objective == "binary" else p
    np.testing.assert_allclose(got, want, atol=1e-9)  # was sigmoid/softmax of the trees' SUM
    t = tribute.explain(booster, X[:4], method="tree_shap", baseline=bg, target=target, progress=False)
    e = tribute.explain(booster, X[:4], method="exact_shapley", baseline=bg, target=target, progress=False)
    np.testing.assert_allclose(t.flat(), e.flat(), atol=1e-9)  # tree_shap refused it


def test_evaluate_refuses_a_progress_that_is_not_a_bool() -> None:
    from tribute.errors import InputError

    model, x = _Counted(), torch.randn(2, 6, dtype=torch.float64)
    attr = tribute.explain(model, x, method="saliency", target=1, progress=False)
    with pytest.raises(InputError, match="progress='no' must be True, False or None"):
        tribute.evaluate(model, x, attr=attr, metric="deletion", target=1, progress="no")  # type: ignore[arg-type]


def test_explain_dataset_takes_a_numpy_seed(tmp_path: object) -> None:
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    model = LinearRegression().fit(X, X @ [1.0, 2.0, 3.0])
    a = tribute.explain_dataset(model, X, str(tmp_path), method="kernel_shap", seed=np.int64(0),  # type: ignore[arg-type]
                                progress=False, budget=8)
    b = tribute.explain(model, X, method="kernel_shap", seed=0, budget=8, progress=False)
    assert a.values.shape == b.values.shape  # was TypeError: int64 is not JSON serializable
