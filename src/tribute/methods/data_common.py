"""Shared plumbing of the retraining-free data estimators (no method lives here).

Every gradient estimator on a data game computes, per test point ``b`` and training example
``i``, a bilinear score ``phi_bi = -scale * <u_b, g_i>`` between a test-side vector ``u_b``
(the explained output's gradient, possibly preconditioned by an inverse Hessian) and the
training loss gradient ``g_i``: the first-order change of the output from *including* example
``i`` (a gradient step on it moves the parameters by ``-lr * g_i``; up-weighting it moves them
by ``-H^-1 g_i``). Training gradients are streamed in blocks bounded by
:data:`tribute.games.data.GRAD_BUDGET_BYTES`; the ``n_train x n_params`` matrix is never held.

**Ensembles** (``n_models=k``): :func:`ensemble_scores` is the one path every gradient
estimator ensembles through. The members are :meth:`DataGame.ensemble`'s — the explained model
and ``k - 1`` models trained by ``fit`` on all of ``X_train`` with seeds derived from the
estimator's ``seed`` — and the credits are the mean of the per-model credits, each computed
exactly as for a single model at that model's parameters (TRAK's ensembling, Park et al. 2023).
``n_models=1`` runs the single-model computation unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..errors import UnsupportedModelError
from ..games.base import Game
from ..games.data import DataGame

__all__ = ["as_data_game", "ensemble_scores", "stream_scores"]

#: What a per-model scorer returns: ``batch x n_train`` credits and its ``attr.extra`` entries.
Scored = tuple[torch.Tensor, dict[str, Any]]


def as_data_game(game: Game, method: str) -> DataGame:
    if not isinstance(game, DataGame):
        raise UnsupportedModelError(
            f"method {method!r} needs a data game (players=tribute.TrainingData(...)); got "
            f"{type(game).__name__}."
        )
    return game


def stream_scores(game: DataGame, params: dict[str, torch.Tensor], U: torch.Tensor, *,
                  what: str = "loss",
                  transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  normalize_train: bool = False) -> torch.Tensor:
    """``B x n_train`` scores ``<U_b, t(g_i)>`` with training gradients streamed in blocks.

    Args:
        game: the data game.
        params: parameters the training gradients are taken at.
        U: ``B x n_params`` test-side vectors (or ``B x k`` when ``transform`` projects).
        what: ``"loss"`` or ``"output"`` gradients of the training examples.
        transform: maps a block of gradients ``rows x n_params`` to ``rows x dim(U)``.
        normalize_train: divide each training gradient by its norm (cosine scores).
    """
    n = game.data.n_train
    out = torch.empty(U.shape[0], n, dtype=torch.float64)
    for start, G in game.train_grads(params, what=what):
        if transform is not None:
            G = transform(G)
        if normalize_train:
            G = G / G.norm(dim=1, keepdim=True).clamp_min(1e-30)
        out[:, start : start + G.shape[0]] = U @ G.T
    return out


def ensemble_scores(game: DataGame, n_models: int, seed: int, method: str,
                    score: Callable[[dict[str, torch.Tensor]], Scored], *,
                    checkpoints: bool = False) -> Scored:
    """Mean of ``score(params)`` over the ensemble of :meth:`DataGame.ensemble`.

    ``score`` computes one model's ``batch x n_train`` credits at the given parameters and the
    ``attr.extra`` entries it reports. With ``n_models=1`` it runs once at the explained model
    and its result is returned as is (bit-identical to the single-model estimator), or, with
    ``checkpoints=True`` and ``TrainingData(checkpoints=...)``, once per checkpoint. Otherwise
    the extras are the explained model's, plus ``n_models``, ``fit_seeds``, ``n_fits``,
    ``fit_seconds`` (the extra training) and ``per_model`` (every member's extras); one
    evaluation per input is counted per member (``count_pass``).
    """
    members, info = game.ensemble(n_models, seed, method=method, checkpoints=checkpoints)
    phi: torch.Tensor | None = None
    extras: list[dict[str, Any]] = []
    for params in members:
        part, extra = score(params)
        game.count_pass()
        phi = part.clone() if phi is None else phi.add_(part)
        extras.append(extra)
    assert phi is not None
    if len(members) == 1:
        return phi, extras[0]
    return phi / len(members), {**extras[0], **info, "per_model": extras}
