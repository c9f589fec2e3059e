"""Total-order Sobol indices of the players (Fel et al. 2021).

Masks ``m ∈ [0, 1]^n`` are drawn by quasi-Monte Carlo and applied through the game's relaxation
(``x(m) = b + m (x - b)`` for features: Fel et al.'s "inpainting" perturbation with the game's
baseline; with ``groups=tribute.patches(k)`` the masks are their low-resolution grid upsampled by
nearest neighbour). The total-order index of player ``i`` is the share of ``Var[v(m)]`` that
involves ``m_i`` (alone or in interaction):

    S_T,i = E[Var(v | m_~i)] / Var(v),

estimated with Jansen's estimator from two independent designs ``A``, ``B`` (``N x n``) and the
``n`` hybrids ``C_i`` (``A`` with column ``i`` taken from ``B``)::

    S_T,i ≈ mean_k (v(A_k) - v(C_i,k))^2 / (2 Var),   Var from v(A) and v(B) together.

Cost: ``N (n + 2)`` evaluations per input.

Sign convention: Sobol indices are *unsigned* importances in ``[0, 1]`` (up to estimation noise;
Jansen's estimator is never negative): they say how much of the output's variance a player
drives, not whether keeping it raises or lowers the output. Use them for rankings/masks, not as
signed credits; the efficiency gap is not defined.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from ..attribution import Attribution
from ..games.base import VALUE_BLOCK_ELEMENTS, Game
from ..params import Options, declare
from ._stderr import inflate
from .base import Cost, Method, Tags, coalition_cost, register

__all__ = ["Sobol", "jansen_total", "sobol_designs"]

#: scipy's Sobol sequence supports up to 21201 dimensions (two designs: n <= 10600 players).
_MAX_QMC_DIM = 21201


def sobol_designs(n: int, n_designs: int, seed: int, sampler: str = "sobol",
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent ``N x n`` designs in ``[0, 1)``.

    ``"sobol"``: the first/second halves of a scrambled (Owen) Sobol sequence in ``2n``
    dimensions, seeded (falls back to pseudo-random points above 10600 players).
    ``"random"``: i.i.d. uniform points from a seeded torch generator.
    """
    if sampler == "sobol" and 2 * n <= _MAX_QMC_DIM:
        from scipy.stats import qmc

        eng = qmc.Sobol(d=2 * n, scramble=True, seed=np.random.default_rng(seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # balance warning for N not a power of two
            pts = torch.from_numpy(eng.random(n_designs))
    else:
        g = torch.Generator().manual_seed(seed)
        pts = torch.rand(n_designs, 2 * n, generator=g, dtype=torch.float64)
    return pts[:, :n].contiguous(), pts[:, n:].contiguous()


def jansen_total(fa: torch.Tensor, fb: torch.Tensor, fc: torch.Tensor,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Jansen's total-order estimator and a CLT standard error.

    Args:
        fa, fb: ``... x N`` values on designs ``A`` and ``B``.
        fc: ``... x n x N`` values on the hybrids ``C_i``.

    Returns:
        ``(S_T ... x n, stderr ... x n)``. Where the output does not vary (``Var = 0``) the
        indices are 0. The standard error treats the ``N`` designs as i.i.d. and the variance
        as known (conservative for QMC points, which converge faster).
    """
    var = torch.cat([fa, fb], dim=-1).var(dim=-1, unbiased=False)  # ...
    sq = (fa[..., None, :] - fc) ** 2  # ... x n x N
    n_designs = fa.shape[-1]
    denom = 2.0 * var[..., None]
    ok = denom > 1e-300
    safe = torch.where(ok, denom, torch.ones_like(denom))
    st = torch.where(ok, sq.mean(-1) / safe, torch.zeros_like(denom))
    sd = sq.std(dim=-1, unbiased=True) if n_designs > 1 else torch.zeros_like(st)
    se = torch.where(ok, sd / math.sqrt(n_designs) / safe, torch.zeros_like(denom))
    # few designs: pooled towards the other players and t-inflated (:mod:`._stderr`)
    return st, inflate(se, n_designs - 1)


@register
class Sobol(Method):
    """Total-order Sobol indices of each player under random fractional masks (unsigned).

    Draws ``N = (budget - 1) // (n + 2)`` pairs of quasi-Monte Carlo mask designs and estimates each
    player's total Sobol index with Jansen's estimator: the expected share of the output's
    variance lost when the player's mask is re-drawn. Indices are non-negative importances (see
    the module notes on the sign convention); ``stderr`` is a CLT standard error over the ``N``
    designs.

    Needs real-valued inputs (fractional masks); on token ids use a gradient-free binary method
    (``kernel_shap``, ``lime``) or attribute embeddings.

    Args:
        sampler: ``"sobol"`` (scrambled Sobol sequence, seeded) or ``"random"`` (i.i.d.
            uniform). default="sobol".

    Budget: ``N (n + 2) + 1`` evaluations per input (the 1 is ``v(N)``, the reference pass
    every game makes); default ``N = 32`` (Fel et al. use 32 designs
    on an 11x11 grid). Powers of two for ``N`` keep the Sobol sequence balanced.

    Reference: Fel, Cadène, Chalvidal, Cord, Vigouroux & Serre (2021), "Look at the Variance!
    Efficient Black-box Explanations with Sobol-based Sensitivity Analysis" (NeurIPS);
    estimator: Jansen (1999).
    """

    name = "sobol"
    tags = Tags(family="sensitivity", stochastic=True, budgeted=True)
    paper = "Fel et al. (2021), Look at the Variance! Efficient Black-box Explanations with Sobol-based Sensitivity Analysis"
    constraints = declare({"sampler": Options(("sobol", "random"))})

    def __init__(self, sampler: str = "sobol") -> None:
        self.sampler = sampler

    def min_budget(self, game: Game) -> int:
        return 2 * (game.n_players + 2) + game.n_evals  # two designs, plus v(N) already spent

    def default_budget(self, game: Game) -> int | None:
        return 32 * (game.n_players + 2) + game.n_evals

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        n = game.n_players
        total = budget if budget is not None else self.default_budget(game)
        assert total is not None
        n_designs = max(2, game.budget_left(total) // (n + 2))
        a, b = sobol_designs(n, n_designs, seed, self.sampler)
        b_count, t_count = game.n_samples, game.n_targets
        fa = game.value(a)  # B x N x T
        fb = game.value(b)
        fc = torch.empty(b_count, t_count, n, n_designs, dtype=torch.float64)
        def make(lo: int, hi: int) -> torch.Tensor:  # A with column i from B, players lo..hi-1
            players = torch.arange(lo, hi)
            c = a[None].repeat(hi - lo, 1, 1)  # p x N x n
            c[torch.arange(hi - lo), :, players] = b[:, players].T
            return c.reshape(-1, n)

        for blk in game.value_stream(n, make, coalitions_per_item=n_designs):
            lo, hi = blk.start, blk.stop
            v = blk.values  # B x (p N) x T
            fc[:, :, lo:hi] = v.reshape(b_count, hi - lo, n_designs, t_count).permute(0, 3, 1, 2)
        st, se = jansen_total(fa.permute(0, 2, 1), fb.permute(0, 2, 1), fc)
        return game.attribution(st, self.name, {**self.get_params(), "n_designs": n_designs},
                                stderr=se, extra={"variance": _per_sample(
                                    torch.cat([fa, fb], 1).var(1, unbiased=False), game)})

    budget_rule = "32 (n + 2)"

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """Designs ``A``, ``B`` (``N x n``), re-drawn blocks of ``VALUE_BLOCK_ELEMENTS`` entries and the
        ``batch x targets x n x N`` values of every re-drawn design."""
        n = int(game.n_players)
        k = int(budget if budget is not None else self.default_budget(game) or 0)
        designs = max(2, k // (n + 2))
        b, t = int(game.n_samples), int(game.n_targets)
        block = max(1, VALUE_BLOCK_ELEMENTS // max(n * designs, 1)) * designs
        return coalition_cost(game, k, mask_rows=min(k, block + 2 * designs),
                              design=b * t * n * designs * 8 * 2,
                              note=f"{designs:,} designs x {n:,} players")


def _per_sample(t: torch.Tensor, game: Game) -> np.ndarray:
    arr = t.detach().cpu().numpy()
    return arr if game.layout.multi_target else arr[:, 0]
