"""aud51k: TRAK refused an explicit ``proj_dim >= n_train`` as "singular ... noise" although the
model had fewer parameters than training examples. ``Phi = G R`` has rank ``<= min(n, P, k)``:
with ``P < n`` every gradient lies in the ``P``-dim range of ``R^T`` where the kernel is inverted
exactly, so any ``k`` gives ``projector='none'``'s scores (measured 1e-15 relative). Truth:
``projector='none'`` and ``T (Phi^T Phi)^+ Psi^T`` in numpy on the unprojected gradients."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.games.data import DataGame
from tribute.games.data_fits import LogisticFit


def _logistic() -> tuple[torch.nn.Module, torch.Tensor, dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=g)
    fit = LogisticFit(3, l2=0.5)
    return fit(X, y, seed=0), X[:3], {"players": tribute.TrainingData(X, y, fit=fit), "target": "predicted"}


def _ridge() -> tuple[torch.nn.Module, torch.Tensor, dict[str, Any]]:
    g = torch.Generator().manual_seed(1)
    X = torch.randn(10, 3, generator=g, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    model = torch.nn.Linear(3, 1).double()
    return model, X[:2], {"players": tribute.TrainingData(X, y[:, None], loss="mse", l2=1e-2), "target": 0}


@pytest.mark.parametrize("case", [_logistic, _ridge])
def test_trak_proj_dim_at_or_above_n_train_with_few_parameters_is_exact(case: Any) -> None:
    model, xt, kw = case()
    n = kw["players"].n_train
    game = tribute.build_game(model, xt, **kw)
    assert isinstance(game, DataGame)
    p = game.model_params()
    Phi = torch.cat([G for _, G in game.train_grads(p, what="output")]).numpy()
    Psi = -torch.cat([G for _, G in game.train_grads(p, what="loss")]).numpy()
    want = game.test_grads(p).numpy() @ np.linalg.pinv(Phi.T @ Phi) @ Psi.T
    assert game.n_params < n
    none = tribute.explain(model, xt, method="trak", projector="none", progress=False, **kw)
    for k in (n, 2 * n):  # both were refused as singular
        a = tribute.explain(model, xt, method="trak", proj_dim=k, progress=False, **kw)
        got = a.values.numpy().reshape(want.shape)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())
        np.testing.assert_allclose(got, none.values.numpy().reshape(want.shape), rtol=0,
                                   atol=1e-12 * np.abs(want).max())
        assert a.extra["kernel_rank"] == none.extra["kernel_rank"]


def test_trak_still_refuses_when_parameters_also_reach_n_train() -> None:
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Linear(3, 2).double()  # 8 parameters
    X = torch.randn(8, 3, generator=g, dtype=torch.float64)
    data = tribute.TrainingData(X, torch.randint(0, 2, (8,), generator=g), loss="cross_entropy", l2=1e-2)
    with pytest.raises(tribute.InputError, match=r"proj_dim=8 is >= the number of training examples \(8\) "
                                                 r".*the model's 8 parameters are >= 8 too"):
        tribute.explain(model, X[:2], method="trak", players=data, target=0, proj_dim=8, progress=False)
    with pytest.raises(tribute.InputError, match=r"projector='none' \(the model's 8 parameters\)"):
        tribute.explain(model, X[:2], method="trak", players=data, target=0, projector="none", progress=False)
    ok = tribute.explain(model, X[:2], method="trak", players=data, target=0, proj_dim=7, progress=False)
    assert np.isfinite(ok.values.numpy()).all()
