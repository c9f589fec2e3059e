"""Banzhaf values by maximum sample reuse (Data Banzhaf), exact by enumeration for small games.

The Banzhaf value of player ``i`` is its average marginal contribution over all coalitions,
each coalition equally likely::

    beta_i = 2^-(n-1) sum_{S not containing i} [v(S + i) - v(S)]
           = E[v(S) | i in S] - E[v(S) | i not in S],   S uniform over all 2^n coalitions.

The second form is what maximum sample reuse (MSR) estimates: every evaluated coalition is used
for every player, either on the "with" or the "without" side.
"""

from __future__ import annotations

import torch

from ..attribution import Attribution
from ..errors import InputError
from ..games.base import Game
from ..params import Options, declare
from ._stderr import flat_draws, inflate, inflate_welch, value_rounding, warn_undefined
from .base import Cost, Method, Tags, coalition_cost, register
from .data_common import model_flat_draws
from .exact import value_table

__all__ = ["Banzhaf", "banzhaf_from_table", "banzhaf_masks", "msr_estimate", "ols_estimate"]

#: Largest game enumerated when the budget covers every coalition.
_MAX_ENUMERATE = 20


def banzhaf_from_table(v: torch.Tensor, n: int) -> torch.Tensor:
    """Exact Banzhaf values from a full value table.

    Args:
        v: ``... x 2^n`` values indexed by coalition bitmask (see :func:`all_coalitions`).
        n: number of players.

    Returns:
        ``... x n``: ``mean_{S containing i} v(S) - mean_{S not containing i} v(S)``.
    """
    idx = torch.arange(2**n)
    out = torch.empty(*v.shape[:-1], n, dtype=torch.float64)
    for i in range(n):
        has = (idx >> i) & 1 == 1
        out[..., i] = v[..., has].mean(-1) - v[..., ~has].mean(-1)
    return out


#: Redraws of the Bernoulli design's constant columns (each succeeds with probability
#: ``1 - 2^(1-k)``, at least 1/2).
_BERNOULLI_REDRAWS = 200


def banzhaf_masks(n: int, k: int, gen: torch.Generator, design: str = "balanced") -> torch.Tensor:
    """``k x n`` random coalitions in which every player is present with probability 1/2.

    ``"bernoulli"``: independent fair coin per player and coalition (Wang & Jia 2023); a
    player's column drawn all present or all absent (its estimate undefined) is drawn again.
    ``"balanced"``: each player's column is a random arrangement of ``k/2`` ones and ``k/2``
    zeros, columns independent; for odd ``k`` a column holds ``(k - 1)/2`` or ``(k + 1)/2``
    ones, each with probability 1/2 (a fair coin per column). Every entry is then present with
    probability exactly 1/2 and the columns are independent, so each row is uniform over all
    ``2^n`` coalitions and the MSR estimate stays unbiased; every player is on both sides for
    every budget ``k >= 2``, so no estimate is undefined. (Its variance is essentially that of
    the Bernoulli design: fixing a column's total does not reduce the variance of a difference
    of the two group means.) A fixed ``ceil(k/2)`` ones for odd ``k``, as before, made every
    other player present with probability ``(k + 1) / (2k)`` next to each player: the estimate
    was then the binomial semivalue at that probability, not the Banzhaf value (the 6-player
    AND game at ``k = 7``: mean 0.0616 over 3000 seeds for the Banzhaf value 0.03125; at
    ``k = 15``: 0.0442).
    """
    if design == "bernoulli":
        masks = torch.rand(k, n, generator=gen, dtype=torch.float64) < 0.5
        # a column drawn all present or all absent leaves its player's MSR estimate undefined
        # (NaN: 9% of draws at 6 players and k = 7); it is drawn again from the same generator.
        # The columns stay independent and each column's law symmetric under swapping presence
        # and absence, so every entry is present with probability 1/2, every row uniform and the
        # estimate unbiased; a draw without such a column is unchanged
        if k >= 2:
            for _ in range(_BERNOULLI_REDRAWS):
                flat = masks.all(0) | ~masks.any(0)
                if not bool(flat.any()):
                    break
                cols = torch.nonzero(flat).ravel()
                masks[:, cols] = torch.rand(k, len(cols), generator=gen, dtype=torch.float64) < 0.5
        return masks.to(torch.float64)
    if design == "balanced":
        # an independent random permutation per column: ranks from argsort of uniform keys
        ranks = torch.rand(k, n, generator=gen, dtype=torch.float64).argsort(dim=0)
        ones = torch.full((n,), k // 2, dtype=torch.long)
        if k % 2:  # odd k: floor(k/2) or ceil(k/2) ones per column, by a fair coin
            ones = ones + (torch.rand(n, generator=gen, dtype=torch.float64) < 0.5).long()
        return (ranks < ones[None, :]).to(torch.float64)
    raise InputError(f"design={design!r} must be 'balanced' or 'bernoulli'.")


def msr_estimate(masks: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximum-sample-reuse Banzhaf estimate and its two-sample standard error.

    Args:
        masks: ``K x n`` binary coalitions.
        y: ``B x K x T`` values of those coalitions.

    Returns:
        ``(phi, stderr)``, each ``B x T x n``: ``phi_i = mean(y | i in S) - mean(y | i not in S)``
        and ``stderr_i = sqrt(s1^2 / K1 + s0^2 / K0)`` (Welch), pooled towards the other
        players' and t-inflated with the Welch-Satterthwaite dof of the two sides (Welch 1947;
        ``K - 2`` only when both sides are alike: :func:`._stderr.inflate_welch`). Players never (or always)
        present get ``nan``; a side with a single coalition gives an ``nan`` standard error.
    """
    z = masks.to(torch.float64)
    k1 = z.sum(0)  # n
    k0 = z.shape[0] - k1
    yt = y.permute(0, 2, 1)  # B x T x K
    yt = yt - yt.mean(-1, keepdim=True)  # centred: sums of squares stay well conditioned
    s1 = yt @ z  # B x T x n
    s0 = yt.sum(-1, keepdim=True) - s1
    q1 = (yt**2) @ z
    q0 = (yt**2).sum(-1, keepdim=True) - q1
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    m1 = torch.where(k1 > 0, s1 / k1.clamp(min=1), nan)
    m0 = torch.where(k0 > 0, s0 / k0.clamp(min=1), nan)
    # unbiased variances from sums of squares (the centring above does not change them)
    var1 = torch.where(k1 > 1, (q1 - k1 * m1**2) / (k1 - 1).clamp(min=1), nan).clamp(min=0)
    var0 = torch.where(k0 > 1, (q0 - k0 * m0**2) / (k0 - 1).clamp(min=1), nan).clamp(min=0)
    v1, v0 = var1 / k1.clamp(min=1), var0 / k0.clamp(min=1)
    # few coalitions: pooled towards the other players and t-inflated with the Welch-Satterthwaite
    # dof of the two sides (between min(K1, K0) - 1 and K - 2)
    welch = v1**2 / (k1 - 1).clamp(min=1) + v0**2 / (k0 - 1).clamp(min=1)
    stderr = inflate_welch(v1 + v0, welch, z.shape[0] - 2)
    # a side drawn as one coalition repeated has a spread of 0 by construction, not by estimate
    # (uniform draws repeat often when 2^n is small: at 4 players and 4 draws, |err| / stderr was
    # inf for 3% of the values): no variance is seen there
    distinct = torch.unique(z, dim=0)
    d1 = distinct.sum(0)
    blind = (d1 < 2) | (distinct.shape[0] - d1 < 2)
    if bool(blind.any()):
        stderr = torch.where(blind, torch.full_like(stderr, float("nan")), stderr)
        warn_undefined("banzhaf", f"{int(blind.sum())} of {z.shape[1]} players saw fewer than 2 "
                       f"distinct coalitions on one side among {z.shape[0]} draws",
                       "Raise budget (8 or more draws, or the exact 2^n).")
    return m1 - m0, stderr


def ols_estimate(masks: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Banzhaf values as least-squares slopes of ``v`` on the coalition indicators.

    Fits ``v(S) ~ c + sum_i beta_i [i in S]`` over the sampled coalitions; with uniform
    coalitions the population slopes are the Banzhaf values. Standard errors are
    heteroskedasticity-robust sandwich standard errors with leverage-corrected residuals
    (HC2: ``e / sqrt(1 - h)``, unbiased under constant variance), pooled and t-inflated with
    ``K - n - 1`` dof (:mod:`._stderr`); NaN with a warning below 3 residual dof (``K < n + 4``;
    at 2 they covered 0.79-0.81 instead of 0.95), when the design is rank-deficient (the
    values are then one of many least-squares solutions, and their residuals can be 0 while
    they are wrong) or when a coalition is fitted exactly (leverage 1).

    Args:
        masks: ``K x n`` binary coalitions (``K >= n + 2``).
        y: ``B x K x T`` values.

    Returns:
        ``(phi, stderr)``, each ``B x T x n``.
    """
    k, n = masks.shape
    x = _ols_design(masks)
    a = torch.linalg.pinv(x.T @ x, hermitian=True)  # (n+1) x (n+1)
    h = x @ a  # K x (n+1): beta = h^T y
    yt = y.permute(0, 2, 1)  # B x T x K
    beta = yt @ h  # B x T x (n+1)
    resid = yt - beta @ x.T  # B x T x K
    lev = (h * x).sum(1)  # K leverages
    dof = k - n - 1
    defect = _ols_defect(x, lev)
    if defect is not None or dof < _OLS_MIN_DOF:
        why = defect or (f"the OLS fit of {n} players on {k} coalitions leaves {max(dof, 0)} residual "
                         f"degrees of freedom; {_OLS_MIN_DOF} are needed")
        warn_undefined("banzhaf", why, f"Raise budget to at least {n + _OLS_MIN_DOF + 2}.")
        return beta[..., 1:], torch.full_like(beta[..., 1:], float("nan"))
    var = (resid**2 / (1.0 - lev)) @ (h**2)  # HC2: leverage-corrected residuals
    return beta[..., 1:], inflate(var[..., 1:].sqrt(), dof)


#: OLS: residual degrees of freedom below which the standard errors are NaN (at 2, 4 players
#: and budget 8: 0.79-0.81 coverage within 1.96 stderr on an additive and an MLP game, half
#: of the draws NaN by chance), and the most redraws of a design that cannot identify the
#: values or fits a coalition exactly (see :meth:`Banzhaf.attribute`).
_OLS_MIN_DOF, _OLS_REDRAWS = 3, 64


def _ols_design(masks: torch.Tensor) -> torch.Tensor:
    """``[1, masks]``: the OLS design with an intercept (``K x (n + 1)``)."""
    ones = torch.ones(masks.shape[0], 1, dtype=torch.float64)
    return torch.cat([ones, masks.to(torch.float64)], dim=1)


def _ols_defect(x: torch.Tensor, lev: torch.Tensor | None = None, leverage: bool = True) -> str | None:
    """Why the OLS design ``x`` (:func:`_ols_design`) leaves the fit undefined, or None:
    rank-deficient (the coefficients are not identified: a pseudo-inverse picks one solution
    of many, and its residuals, hence its standard errors, can be 0 while the values are
    wrong), or (``leverage``) a coalition with leverage 1 (fitted exactly: its residual is
    always 0)."""
    k, p = x.shape
    if k < p or int(torch.linalg.matrix_rank(x)) < p:
        return (f"{k} coalitions cannot identify {p - 1} Banzhaf values and an intercept "
                "(a rank-deficient design)")
    if not leverage:
        return None
    if lev is None:
        lev = (x @ torch.linalg.pinv(x.T @ x, hermitian=True) * x).sum(1)
    if k > p and bool((lev >= 1.0 - 1e-9).any()):
        return "a coalition is fitted exactly (leverage 1)"
    return None


def _default_budget(n: int) -> int:
    """:meth:`Banzhaf.default_budget` for ``n`` players."""
    return 2**n if n <= 11 else 2048


@register
class Banzhaf(Method):
    """Banzhaf values: each player's mean marginal contribution over uniformly random coalitions.

    Estimated by maximum sample reuse (MSR): ``budget - 1`` coalitions (the reference pass,
    ``v(N)``, is the first evaluation of every budget) in which every player is
    present with probability 1/2 (shared by all samples of the batch) are evaluated once each,
    and ``phi_i = mean v(S: i in S) - mean v(S: i not in S)`` reuses every evaluation for every
    player. Standard errors are the two-sample (Welch) standard errors of that difference of
    means. When the budget covers all ``2^n`` coalitions they are enumerated and the exact
    Banzhaf value is returned (standard error 0). Banzhaf values do not satisfy efficiency; on a
    linear model with a single baseline they equal ``w * (x - baseline)``, like Shapley values.
    Wang & Jia show they are the semivalue most robust to noise in ``v``.

    Args:
        design: how coalitions are drawn: ``"balanced"`` (every player present in half of the
            coalitions, ``(k - 1)/2`` or ``(k + 1)/2`` by a fair coin when their number ``k`` is
            odd, in random independent arrangements per player; each coalition is still uniform
            and the estimate unbiased, and no player is ever left without coalitions on one side) or ``"bernoulli"`` (an independent fair coin per player, as
            in the paper; a player drawn on one side only is drawn again). default="balanced".
        estimator: ``"msr"`` (difference of means, Wang & Jia) or ``"ols"`` (least-squares fit
            of ``v`` on the coalition indicators with an intercept: under uniform coalitions the
            best additive approximation's slopes ARE the Banzhaf values (Hammer & Holzman
            1992), and fitting all players at once removes the other players' additive effects
            from each estimate, so additive models are recovered exactly from ``n + 2``
            evaluations and nearly additive ones with far lower variance; consistent, with an
            ``O(1/budget)`` bias; heteroskedasticity-robust HC2 standard errors, from budget
            ``n + 5`` on, i.e. 3 residual degrees of freedom). A draw of coalitions that
            cannot identify the values (rank-deficient), or from ``n + 5`` on fits one
            coalition exactly, is drawn again from the same generator (at most 64 times;
            an acceptable first draw is kept). default="msr".

    Reference: Banzhaf (1965), "Weighted voting doesn't work"; Wang & Jia (2023), "Data Banzhaf:
    A Robust Data Valuation Framework for Machine Learning" (AISTATS).
    """

    name = "banzhaf"
    tags = Tags(family="banzhaf", stochastic=True, budgeted=True,
                games=("feature", "component", "data"))
    paper = "Wang & Jia (2023), Data Banzhaf: A Robust Data Valuation Framework for Machine Learning"
    constraints = declare({"design": Options(("balanced", "bernoulli")),
                           "estimator": Options(("msr", "ols"))})

    def __init__(self, design: str = "balanced", estimator: str = "msr") -> None:
        self.design = design
        self.estimator = estimator

    def min_budget(self, game: Game) -> int:
        # sampled coalitions (n + 2 for OLS, 4 for two per side) plus v(N), or the exact table
        n = game.n_players
        return int(min((n + 2 if self.estimator == "ols" else 4) + game.n_evals, 2**n))

    def default_budget(self, game: Game) -> int:
        return _default_budget(game.n_players)

    def exact_at(self, n_players: int, budget: int | None) -> bool:
        n = int(n_players)
        return n <= _MAX_ENUMERATE and (budget if budget is not None else _default_budget(n)) >= 2**n

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        n = game.n_players
        budget = budget if budget is not None else self.default_budget(game)
        if self.exact_at(n, budget):
            table = value_table(game)  # B x T x 2^n; v(N) is the reference pass
            phi = banzhaf_from_table(table, n)
            return game.attribution(phi, self.name, self.get_params(), stderr=torch.zeros_like(phi),
                                    extra={"exact": True, "n_coalitions": 2**n})
        gen = torch.Generator().manual_seed(seed)
        k = game.budget_left(budget)  # v(N) (the reference pass) is not a uniform draw
        masks = banzhaf_masks(n, k, gen, self.design)
        if self.estimator == "ols" and k >= n + 1:
            # a design that cannot identify the values (or, from _OLS_MIN_DOF residual dof on,
            # fits a coalition exactly) is drawn again from the same generator: the first
            # acceptable draw is kept, so a design acceptable at once is unchanged
            for _ in range(_OLS_REDRAWS - 1):
                if _ols_defect(_ols_design(masks), leverage=k - n - 1 >= _OLS_MIN_DOF) is None:
                    break
                masks = banzhaf_masks(n, k, gen, self.design)
        y = game.value(masks)
        phi, stderr = ols_estimate(masks, y) if self.estimator == "ols" else msr_estimate(masks, y)
        # every draw gave one value while v(N) (a uniform coalition too) differs: the spread,
        # hence every player's stderr, was 0 for credits that were wrong (aud47e). v(N) only
        # where the game already knows it (feature and component games: the reference pass): a
        # data game's v(N) is one more model trained, past the budget (rev47z: 21 fits and
        # n_evals 21 for budget=20), so its draws are compared with the explained model's own
        # value, which needs no fit (aud48d: 47 of 60 seeds gave wrong credits with stderr 0)
        full = game.peek_full() if k > 0 else None
        lo, hi = y.amin(1), y.amax(1)
        flat = None if full is None else flat_draws(lo, hi, full, value_rounding(game, lo, hi, full))
        what = "coalitions"
        if full is None and k > 0:
            flat, what = model_flat_draws(game, y), "training subsets"
        if flat is not None and bool(flat.any()):
            stderr = torch.where(flat[..., None], torch.full_like(stderr, float("nan")), stderr)
            differs = ("v(N) differs (an interaction that no draw switched on)" if full is not None else
                       "the explained model's own value differs: an interaction that no drawn subset "
                       "switched on, or a model that fit does not reproduce on all of X_train")
            warn_undefined("banzhaf", f"all {k} drawn {what} gave the same value while {differs}",
                           f"Raise budget (the exact 2^{n} = {2**n} where it is affordable).")
        return game.attribution(phi, self.name, self.get_params(), stderr=stderr,
                                extra={"exact": False, "n_coalitions": int(k)})

    budget_rule = "2^n if n <= 11 else 2048"

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """``budget`` coalitions x players; OLS adds the ``(n+1)^2`` normal matrix and a copy of the design."""
        n = int(game.n_players)
        k = int(budget if budget is not None else self.default_budget(game))
        if n <= _MAX_ENUMERATE and k >= 2**n:
            k = 2**n  # the exact table: every coalition once, however large the budget
        ols = self.estimator == "ols"
        design = 2 * k * (n + 1) * 8 if ols else k * n * 8
        solve = 4 * (n + 1) ** 2 * 8 if ols else 0
        return coalition_cost(game, k, design=design, solve=solve,
                              flops=float(k * n * n + n**3) if ols else float(k * n),
                              note=f"{k:,} coalitions x {n:,} players"
                              + (f", a {n + 1:,}^2 normal matrix" if ols else ""))
