"""Datamodels: regress retrained outputs on random training subsets (Ilyas et al. 2022).

Draw ``budget`` subsets ``S_k`` that keep each player independently with probability
``subset_fraction`` (independent draws rather than fixed-size subsets: with a fixed size the
weights are identified only up to a common constant, which the intercept absorbs), obtain ``v(S_k)`` from the game (on a data game: models retrained on
``S_k``, through the retrain bank, so subsets are trained once and shared with every other
retraining-based estimator and metric), and fit the linear datamodel

    v(S) ~ c + sum_{i in S} phi_i

per test point by ridge (``penalty="ridge"``) or the lasso (``"lasso"``, the paper's choice).
``phi_i`` is the datamodel weight of player ``i``: the change in the output from including it,
averaged over subsets of that size — the same sign and scale convention as leave-one-out.

The subsets are drawn from a generator seeded by ``(seed, "datamodels")``, a different stream
from the LDS metric's, so the metric scores datamodels on subsets they were not fitted to.

Registered for data games (on feature games ``lime``/``kernel_shap`` cover the same idea).

Reference: Ilyas, Park, Engstrom, Leclerc & Madry (2022), "Datamodels: Predicting Predictions
from Training Data" (ICML).
"""

from __future__ import annotations

import math
import warnings
import zlib

import torch

from ..attribution import Attribution
from ..errors import StderrWarning, user_stacklevel
from ..games.base import Game
from ..params import Interval, Options, declare
from ._stderr import warn_undefined
from .base import Cost, Method, Tags, coalition_cost, register
from .data_common import model_flat_draws
from .lime import weighted_lasso, weighted_ridge

__all__ = ["Datamodels", "datamodel_subsets"]


def datamodel_subsets(n: int, fraction: float, count: int, seed: int) -> torch.Tensor:
    """``count x n`` binary masks keeping each player with probability ``fraction``."""
    g = torch.Generator().manual_seed((int(seed) * 1_000_003 + zlib.crc32(b"datamodels")) % 2**63)
    return (torch.rand(count, n, generator=g, dtype=torch.float64) < fraction).to(torch.float64)


@register
class Datamodels(Method):
    """Datamodels: a (ridge or lasso) linear regression of ``v(S)`` on random subset masks.

    Args:
        subset_fraction: probability that a subset keeps a player, in (0, 1). default=0.5.
        penalty: ``"ridge"`` or ``"lasso"``. default="ridge".
        alpha: regularisation strength (scikit-learn's ``Ridge``/``Lasso`` ``alpha``).
            default=1e-3.

    The budget is the number of subsets drawn (with replacement: each enters the regression);
    default ``4 n`` (at least 100). A subset drawn twice is retrained and evaluated once, so
    ``n_evals`` counts the distinct subsets (``extra["n_subsets"]`` the draws). Standard errors
    (ridge) are NaN with a :class:`~tribute.StderrWarning` for an example the drawn subsets never
    vary (always or never kept) and, with ``alpha=0``, for examples they cannot separate.

    Reference: Ilyas et al. (2022), "Datamodels: Predicting Predictions from Training Data".
    """

    name = "datamodels"
    tags = Tags(family="surrogate", stochastic=True, budgeted=True, needs_baseline=False,
                games=("data",))
    paper = "Ilyas et al. (2022), Datamodels: Predicting Predictions from Training Data"
    constraints = declare({"subset_fraction": Interval(float, 0.0, 1.0, closed="neither"),
                           "penalty": Options(("ridge", "lasso")),
                           "alpha": Interval(float, 0.0, math.inf, closed="left")})

    def __init__(self, subset_fraction: float = 0.5, penalty: str = "ridge", alpha: float = 1e-3) -> None:
        self.subset_fraction = subset_fraction
        self.penalty = penalty
        self.alpha = alpha

    def min_budget(self, game: Game) -> int:
        return 3

    budget_rule = "max(100, 4n)"

    def default_budget(self, game: Game) -> int:
        return max(100, 4 * game.n_players)

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """``budget`` retrained subsets (training, through the retrain bank: each fit's
        ``steps`` (or ``max_iter``) passes over ``subset_fraction x n_train`` rows, plus one
        pass over the test points; subsets already in the bank cost nothing); memory: the
        masks and their example-level copy, the subsets' parameters, the values, the ridge
        normal equations (``players^2``, with their inverse for standard errors)."""
        k = budget if budget is not None else self.default_budget(game)
        n_p = int(game.n_players)
        data = getattr(game, "data", None)
        n = int(getattr(data, "n_train", n_p))
        P = int(getattr(game, "n_params", 0))
        B = int(game.n_samples)
        fit = getattr(data, "fit", None)
        steps = int(getattr(fit, "steps", None) or getattr(fit, "max_iter", None) or 1)
        fr = float(self.subset_fraction) if isinstance(self.subset_fraction, (int, float)) else 0.5
        design = (k * n + k * P + 2 * k * B + 3 * (n_p + 1) ** 2 + (n_p + 1) * B * 2) * 8
        base = coalition_cost(game, k, design=design, flops=2.0 * k * (n_p + 1) ** 2 + (n_p + 1) ** 3,
                              note=f"datamodels: {k:,} retrained subsets x {n_p:,} players")
        train = int(k * (steps * fr * n + B))
        return Cost(rows=train, bytes=base.bytes,
                    note=f"{base.note} (training: {k:,} fits x {steps} steps x ~{int(fr * n):,} rows)",
                    flops=base.flops)

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        fr = self.subset_fraction
        n = game.n_players
        k = budget if budget is not None else self.default_budget(game)
        masks = datamodel_subsets(n, float(fr), k, seed)
        v = game.value(masks)  # B x K x T
        B, _, T = v.shape
        y = v.permute(1, 0, 2).reshape(k, B * T)
        w = torch.ones(k, dtype=torch.float64)
        if self.penalty == "ridge":
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                beta, _, se = weighted_ridge(masks, y, w, float(self.alpha))
            for rec in caught:  # lime's ridge warns as "lime: ..." (aud48d): said as datamodels
                text = str(rec.message)
                if issubclass(rec.category, StderrWarning) and text.startswith("lime: "):
                    text = "datamodels: " + text[len("lime: "):]
                warnings.warn(text, rec.category, stacklevel=user_stacklevel())
        else:
            beta, _ = weighted_lasso(masks, y, w, float(self.alpha))
            se = torch.full_like(beta, float("nan"))
        phi = beta.T.reshape(B, T, n)
        stderr = se.T.reshape(B, T, n)
        # every subset gave one value while the explained model's differs: the residuals, hence
        # the ridge standard errors, are 0 for weights that are wrong (aud48d: 21 of 30 seeds at
        # budget 20 on a 6-example interaction); no fit is spent on v(N) to find it
        flat = model_flat_draws(game, v)
        if flat is not None and bool(flat.any()):
            stderr = torch.where(flat[..., None], torch.full_like(stderr, float("nan")), stderr)
            warn_undefined("datamodels", f"all {k} drawn training subsets gave the same value while the "
                           "explained model's own value differs: an interaction that no drawn subset "
                           "switched on, or a model that fit does not reproduce on all of X_train",
                           "Raise budget (more subsets).")
        return game.attribution(phi, self.name, self.get_params(), stderr=stderr,
                                extra={"n_subsets": int(k)})
