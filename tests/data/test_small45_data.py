"""small45: ``mislabel_auc`` refused a bfloat16 (or float16) copy of ``X_train`` as "30 of 30 rows
differ" while float32 copies were accepted: a copy rounded to any float dtype is now accepted
(within half a unit in that dtype's last place), a really different row is still refused.

Truth: sklearn's ``roc_auc_score`` over self-influences computed by hand for the linear model,
``phi_ii = g(x~_i) . g(x_i)``, ``g(x) = 2 (w.x + b - y_i) [x, 1]`` (``x~`` the rounded copy the
model was explained on)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import tribute
from tribute.errors import InputError
from tribute.games.data_fits import RidgeFit
from tribute.metrics import mislabel_auc

N = 30


def _setup(scale: float = 1.0, integer: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any, Any]:
    rng = np.random.default_rng(11)
    X = rng.normal(size=(N, 3)) * scale
    if integer:
        X = np.round(X * 40)
    y = X @ np.array([1.0, -2.0, 0.5]) / scale + rng.normal(size=N)
    flip = np.zeros(N, dtype=bool)
    flip[:6] = True
    y[:6] += np.array([2.5, -0.5, 0.3, -3.0, 0.1, 1.0])  # some flips too small to stand out
    fit = RidgeFit(l2=1.0)
    data = tribute.TrainingData(X, y, fit=fit)
    return X, y, flip, data, fit(data.X, data.y, seed=0)


def _auc(model: Any, X: np.ndarray, y: np.ndarray, Xc: Any, flip: np.ndarray, data: Any, target: Any = None) -> float:
    tgt = y if target is None else target
    attr = tribute.explain(model, Xc, target=tgt, output="loss", method="grad_dot", players=data)
    game = tribute.build_game(model, Xc, target=tgt, output="loss", players=data)
    return float(mislabel_auc(game, attr, ground_truth=flip).extra["auc"])


def _truth(model: Any, X: np.ndarray, y: np.ndarray, Xr: np.ndarray, flip: np.ndarray,
           yr: np.ndarray | None = None) -> float:
    w = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()  # weight, bias
    Z, Zr = np.hstack([X, np.ones((N, 1))]), np.hstack([Xr, np.ones((N, 1))])
    yt = y if yr is None else yr
    g_train = 2.0 * (Z @ w - y)[:, None] * Z
    g_test = 2.0 * (Zr @ w - yt)[:, None] * Zr
    return float(roc_auc_score(flip, np.abs((g_train * g_test).sum(1))))


_COPIES: dict[str, tuple[dict[str, Any], Callable[[np.ndarray], Any]]] = {
    "float64": ({}, lambda X: torch.tensor(X)),
    "float32 torch": ({}, lambda X: torch.tensor(X).float()),
    "float32 numpy": ({}, lambda X: X.astype(np.float32)),
    "bfloat16": ({}, lambda X: torch.tensor(X).bfloat16()),
    "float16": ({}, lambda X: torch.tensor(X).half()),
    "bfloat16 via float32": ({}, lambda X: torch.tensor(X).float().bfloat16()),
    "float16 numpy (direct rounding)": ({}, lambda X: torch.from_numpy(X.astype(np.float16))),
    "bfloat16, values ~1e3": ({"scale": 1e3}, lambda X: torch.tensor(X).bfloat16()),
    "float16, values ~1e-3": ({"scale": 1e-3}, lambda X: torch.tensor(X).half()),
    "bfloat16, integer values": ({"integer": True}, lambda X: torch.tensor(X).bfloat16()),
    "float16, integer values": ({"integer": True}, lambda X: torch.tensor(X).half()),
}


@pytest.mark.parametrize("case", list(_COPIES))
def test_mislabel_auc_accepts_a_rounded_copy_of_x_train(case: str) -> None:
    kw, copy = _COPIES[case]
    X, y, flip, data, model = _setup(**kw)
    Xc = copy(X)
    Xr = (Xc.double() if isinstance(Xc, torch.Tensor) else torch.from_numpy(Xc).double()).numpy()
    got = _auc(model, X, y, Xc, flip, data)
    assert got == pytest.approx(_truth(model, X, y, Xr, flip), abs=1e-12)
    assert 0.0 < got < 1.0  # not a trivial detector


def test_mislabel_auc_accepts_a_bfloat16_copy_of_y_train() -> None:
    X, y, flip, data, model = _setup()
    yb = torch.tensor(y).bfloat16()
    got = _auc(model, X, y, torch.tensor(X), flip, data, target=yb)
    assert got == pytest.approx(_truth(model, X, y, X, flip, yb.double().numpy()), abs=1e-12)


def _one_row_off(X: np.ndarray) -> Any:
    Xb = torch.tensor(X).bfloat16()
    Xb[7, 1] = Xb[7, 1] * (1 + 2.0**-6)  # two bfloat16 steps: not a rounding of X_train
    return Xb


@pytest.mark.parametrize(("copy", "rows"), [
    (_one_row_off, 1),
    (lambda X: torch.tensor(X + 0.01).bfloat16(), None),
    (lambda X: torch.tensor(X[::-1].copy()).half(), None),
    (lambda X: torch.tensor(np.round(X * 8) / 8), None),  # a coarser copy: not a float rounding
])
def test_mislabel_auc_still_refuses_rows_that_differ(copy: Callable[[np.ndarray], Any], rows: int | None) -> None:
    X, y, flip, data, model = _setup()
    Xc = copy(X)
    attr = tribute.explain(model, Xc, target=y, output="loss", method="grad_dot", players=data)
    game = tribute.build_game(model, Xc, target=y, output="loss", players=data)
    with pytest.raises(InputError, match=r"inputs are not the training examples \(%s of 30" % (rows or r"\d+")):
        mislabel_auc(game, attr, ground_truth=flip)
