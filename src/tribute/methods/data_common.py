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

**Costs** (``estimate_cost`` of every data estimator, read by ``max_memory=`` refusals and the
slow-run warning): ``rows`` are the rows the model's forward pass sees — one per training or
test example per gradient pass (a pass vmapped over ``m`` parameter *tangents* counts its input
rows once; the tangents' work is in ``flops``); ensemble members are *training*:
``(k - 1) x steps x n_train`` rows (``fit.steps``, else ``fit.max_iter``, else one pass), said
in the note; ``bytes`` are what the estimator allocates (per-example gradient blocks, the
test-side vectors, Hessians and their factors, projections, the ``batch x n_train`` credits):
:func:`data_sizes`, :func:`grad_block_bytes`, :func:`score_cost`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..errors import InputError, UnsupportedModelError
from ..games.base import Game
from ..games.data import MODEL_GAP_TOL, DataGame
from ._stderr import flat_draws
from .base import Cost

__all__ = ["as_data_game", "data_sizes", "ensemble_scores", "fit_cost", "grad_block_bytes",
           "model_flat_draws", "require_finite_losses", "score_cost", "stream_scores"]

_F64 = 8
#: :func:`model_flat_draws`' same-model tolerance for a float64 model (relative to ``1 + |v|``):
#: a float64 fit reproduces its model to far below it (bit for bit when deterministic)
_F64_GAP_TOL = 1e-9

#: What a per-model scorer returns: ``batch x n_train`` credits and its ``attr.extra`` entries.
Scored = tuple[torch.Tensor, dict[str, Any]]


def as_data_game(game: Game, method: str) -> DataGame:
    if not isinstance(game, DataGame):
        raise UnsupportedModelError(
            f"method {method!r} needs a data game (players=tribute.TrainingData(...)); got "
            f"{type(game).__name__}."
        )
    return game


def model_flat_draws(game: Game, values: torch.Tensor) -> torch.Tensor | None:
    """On a data game: which (test point, target) entries got one value from every drawn
    training subset while the explained model's own value differs (``B x T`` bool, from
    ``values`` ``B x K x T``); None on any other game or without draws.

    Standard errors built from the spread of such draws are 0 for credits that are wrong: the
    draws missed an interaction that none of them switched on (a data game whose output rises
    only with 6 given examples all present: Banzhaf credits 0 with stderr 0 at budget 20 in
    47 of 60 seeds, truth 1/32; aud48d). Feature games compare with ``v(N)`` from their
    reference pass (:func:`._stderr.flat_draws`); a data game's ``v(N)`` is one more model
    trained on all of ``X_train``, past the budget (rev47z), so the explained model's value
    (:attr:`DataGame.model_values`, no fit) stands in for it. It is ``v(N)`` when ``fit``
    reproduces the model, as the game assumes (it warns when it sees otherwise), so the gap
    counts only beyond the game's tolerance for the same model (``MODEL_GAP_TOL``), or, for a
    float64 model, beyond ``_F64_GAP_TOL`` of its level: 1e-5 of the level hid a unit
    interaction at an output level of 1e5 (Banzhaf credits wrong with stderr 0 in 25 of 30
    seeds, rev48d), the data-game twin of the feature games' float64 rounding (small48a).
    """
    if not isinstance(game, DataGame) or values.ndim != 3 or values.shape[1] == 0:
        return None
    lo, hi = values.amin(1), values.amax(1)
    ref = game.model_values.reshape(-1, 1).to(lo)
    gap = (ref - 0.5 * (lo + hi)).abs()
    if all(p.dtype == torch.float64 for p in game.module.parameters() if p.is_floating_point()):
        return flat_draws(lo, hi, ref, _F64_GAP_TOL) & (gap > _F64_GAP_TOL * (1.0 + ref.abs()))
    return flat_draws(lo, hi, ref) & (gap > MODEL_GAP_TOL * (1.0 + ref.abs()))


def require_finite_losses(game: DataGame, method: str) -> None:
    """Refuse a training set with an example whose loss is not finite at the explained model.

    Influence (its Hessian), TRAK (its kernel) and FreeShap (its eNTK) mix every example into
    each credit, so one NaN or infinite example (a NaN feature, an infinite label) made all
    credits NaN (``solver="cg"``) or failed deep inside LAPACK (``linalg.eigh``/``svd``/
    ``cholesky`` errors; LiSSA blamed the damping). One forward pass over ``X_train`` in blocks.
    """
    params = game.model_params()
    X, y = game.X_train, game.y_train
    n = int(X.shape[0])
    step = max(1, game.block_size() * 4)
    bad: list[int] = []
    with torch.no_grad():
        for s in range(0, n, step):
            loss = game.loss(game.forward(params, X[s:s + step]), y[s:s + step])
            bad += (s + torch.nonzero(~torch.isfinite(loss.reshape(-1))).reshape(-1)).tolist()
    if bad:
        raise InputError(
            f"method {method!r}: the training loss is not finite for training example(s) "
            f"{bad[:10]}{'...' if len(bad) > 10 else ''} ({len(bad)} of {n}): a NaN or infinity "
            "in X_train / y_train there, or in the model's output on it. Every credit of this "
            "method mixes all examples (Hessian / kernel), so all would be undefined. Drop or "
            "repair those examples (e.g. keep = torch.isfinite(X_train).flatten(1).all(1) & "
            "torch.isfinite(y_train)), and explain a model trained on the rest."
        )


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


def data_sizes(game: Any) -> tuple[int, int, int, int]:
    """``(n_train, test points, n_params, outputs per example)`` of a data game."""
    data = getattr(game, "data", None)
    n = int(getattr(data, "n_train", game.n_players))
    return n, int(game.n_samples), int(getattr(game, "n_params", 0)), int(getattr(game, "n_outputs", 1))


def grad_block_bytes(game: Any, width: int | None = None) -> int:
    """Peak bytes of one block of per-example gradients (:meth:`DataGame.train_grads`): the
    vmapped gradients and their concatenation (``2 x block x n_params``), the block's
    activations, and the block reduced to ``width`` columns (a projection or a slice)."""
    n, _, P, _ = data_sizes(game)
    rows = min(n, int(game.block_size()))
    act = int(game.activation_bytes()) if hasattr(game, "activation_bytes") else 0
    return rows * (2 * P * _F64 + act + (width or 0) * _F64)


def fit_cost(game: Any, n_fits: int) -> Cost:
    """Rows of training ``n_fits`` ensemble members on all of ``X_train`` (as the fit does:
    ``steps`` (or ``max_iter``) full-batch passes), their parameters held as members."""
    if n_fits <= 0:
        return Cost(0, 0)
    n, _, P, _ = data_sizes(game)
    fit = getattr(getattr(game, "data", None), "fit", None)
    steps = int(getattr(fit, "steps", None) or getattr(fit, "max_iter", None) or 1)
    return Cost(rows=n_fits * steps * n, bytes=(n_fits + 1) * P * _F64,
                note=f"training {n_fits} ensemble member(s): {n_fits} x {steps} steps x {n:,} rows")


def score_cost(game: Any, method: str, *, models: int = 1, width: int | None = None,
               design: int = 0, solve: int = 0, flops: float = 0.0, rows: int = 0,
               note: str = "", fits: int = 0) -> Cost:
    """The common cost of a gradient estimator run on ``models`` parameter settings.

    Per setting: ``batch`` test and ``n_train`` training rows (one gradient pass each; ``rows``
    adds the method's own passes) and ``2 batch x n_train x width`` flops of products
    (``width`` = ``n_params`` by default). Memory: the larger of the streaming phase (the test
    gradients ``batch x n_params``, one block of training gradients, :func:`grad_block_bytes`,
    the ``batch x n_train`` scores being filled) and the scoring phase (a model's scores, the
    running mean, the credits handed out: three ``batch x n_train``), plus the method's own
    ``design`` / ``solve`` matrices; ``fits`` ensemble fits (:func:`fit_cost`).
    """
    n, B, P, _ = data_sizes(game)
    w = P if width is None else int(width)
    streaming = B * P * _F64 + grad_block_bytes(game, None if width is None else w) + B * n * _F64
    scores = 3 * B * n * _F64  # a model's scores, the running mean, the credits handed out
    base = Cost(rows=models * (B + n) + int(rows),
                bytes=max(streaming, scores) + int(design) + int(solve),
                note=note or f"{method}: {B:,} test x {n:,} training gradients of {P:,} parameters",
                flops=models * 2.0 * B * n * w + float(flops))
    return base + fit_cost(game, fits)


class _FewerTests:
    """A data game seen with ``n_samples`` test points (for what-if costs)."""

    def __init__(self, game: Any, n_samples: int) -> None:
        self._game = game
        self.n_samples = n_samples

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._game, name)


def settings_that_fit(candidates: list[tuple[str, Callable[[], Cost]]], cap: int) -> list[str]:
    """Words for the first of ``candidates`` (``(setting, its cost)``) that fits under ``cap``."""
    from ..engine.memory import format_bytes

    for words, cost in candidates:
        try:
            c = cost()
        except Exception:  # a setting the model cannot take (e.g. EK-FAC on other layers)
            continue
        if c.bytes <= cap:
            return [f"{words} (est. {format_bytes(c.bytes)});"]
    return []


def fewer_test_points(estimate: Callable[[Any], Cost], game: Any, cap: int) -> list[str]:
    """The most test points per call whose cost fits under ``cap`` (words), if fewer than now."""
    from ..engine.memory import format_bytes

    B = int(game.n_samples)
    if B <= 1 or estimate(_FewerTests(game, 1)).bytes > cap:
        return []
    lo, hi = 1, B
    while lo < hi - 1:
        mid = (lo + hi) // 2
        if estimate(_FewerTests(game, mid)).bytes <= cap:
            lo = mid
        else:
            hi = mid
    nbytes = estimate(_FewerTests(game, lo)).bytes
    return [f"explain at most {lo:,} test point(s) per call (est. {format_bytes(nbytes)});"]
