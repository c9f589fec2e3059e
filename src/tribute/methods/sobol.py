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

The ratio is biased by ``O(1/N)`` (the variance in the denominator is estimated too): the estimate
is the delete-a-replicate jackknife of Jansen's ratio from 8 designs on, which removes that term
(see :func:`jansen_total`; the plain ratio was 4% high at the default 32 designs, 19% at 8).

Sign convention: Sobol indices are *unsigned* importances in ``[0, 1]`` (up to estimation noise:
Jansen's ratio is never negative, its jackknife can be, by noise, for an index near 0): they say
how much of the output's variance a player drives, not whether keeping it raises or lowers the
output. Use them for rankings/masks, not as signed credits; the efficiency gap is not defined.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from ..attribution import Attribution
from ..games.base import VALUE_BLOCK_ELEMENTS, Game
from ..params import Interval, Options, declare
from ._stderr import flat_draws, inflate_skewed, value_rounding, warn_undefined
from .base import Cost, Method, Tags, coalition_cost, register

__all__ = ["Sobol", "jansen_total", "replicate_count", "sobol_designs"]

#: scipy's Sobol sequence supports up to 21201 dimensions (two designs: n <= 10600 players).
_MAX_QMC_DIM = 21201


def replicate_count(n_designs: int, sampler: str = "sobol", replicates: int = 8) -> int:
    """How many independent replicates ``n_designs`` designs are split into.

    ``"random"``: every design is its own replicate. ``"sobol"``: ``n_designs / g`` scrambled
    Sobol sequences of ``g`` points each, ``g`` the largest power of two that leaves at least
    ``replicates`` of them (``g = 1``, i.e. independent uniform points, below
    ``2 replicates`` designs); ``replicates = 1``: one sequence.
    """
    if sampler != "sobol":
        return n_designs
    if replicates <= 1:
        return 1
    if n_designs < 2 * replicates:
        return n_designs
    g = 1 << math.floor(math.log2(n_designs / replicates))
    return n_designs // g


def sobol_designs(n: int, n_designs: int, seed: int, sampler: str = "sobol", replicates: int = 1,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two ``N x n`` designs in ``[0, 1)``, independent of each other.

    ``"sobol"``: the first/second halves of a scrambled (Owen) Sobol sequence in ``2n``
    dimensions, seeded (falls back to pseudo-random points above 10600 players). With
    ``replicates = R > 1`` the ``N`` rows are ``R`` independently scrambled sequences (rows
    ``r::R`` hold replicate ``r``, of ``N // R`` or ``N // R + 1`` points; seeds spawned from
    ``seed``), so that the spread between replicates measures the estimator's error.
    ``"random"``: i.i.d. uniform points from a seeded torch generator (``replicates`` unused).
    """
    if sampler == "sobol" and 2 * n <= _MAX_QMC_DIM:
        from scipy.stats import qmc

        if replicates <= 1:
            seeds = [np.random.default_rng(seed)]
        else:
            seeds = [np.random.default_rng(c) for c in np.random.SeedSequence(seed).spawn(replicates)]
        r_count = len(seeds)
        pts = torch.empty(n_designs, 2 * n, dtype=torch.float64)
        for r, gen in enumerate(seeds):
            eng = qmc.Sobol(d=2 * n, scramble=True, seed=gen)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # balance warning for N not a power of two
                pts[r::r_count] = torch.from_numpy(eng.random(len(range(r, n_designs, r_count))))
    else:
        g = torch.Generator().manual_seed(seed)
        pts = torch.rand(n_designs, 2 * n, generator=g, dtype=torch.float64)
    return pts[:, :n].contiguous(), pts[:, n:].contiguous()


def jansen_total(fa: torch.Tensor, fb: torch.Tensor, fc: torch.Tensor, replicates: int | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Jansen's total-order estimator and its standard error.

    Args:
        fa, fb: ``... x N`` values on designs ``A`` and ``B``.
        fc: ``... x n x N`` values on the hybrids ``C_i``.
        replicates: ``R``: design ``k`` belongs to replicate ``k mod R`` (the layout of
            :func:`sobol_designs`), replicates independent of each other. default=None: every
            design its own (i.i.d.) replicate.

    Returns:
        ``(S_T ... x n, stderr ... x n)``. Where the output does not vary (``Var = 0``) the
        indices are 0. With ``R >= 2`` replicates and at least 8 designs the estimate is the
        jackknife of the ratio over the replicates (:func:`_jackknife`), which removes its
        ``O(1/N)`` bias. With one player (``n = 1``) and fewer than 8 designs the stderr is NaN,
        with a :class:`~tribute.errors.StderrWarning` (the ratio reads the same values above and
        below; its delta-method stderr vanished where the estimate was far off).

    The estimate is the ratio ``S_i = U_i / (2 V)`` of two means over the designs
    (``U_i = mean_k (f(A_k) - f(C_i,k))^2``, ``V`` the variance of all ``f(A)``, ``f(B)``),
    so its standard error comes from the delta method: design ``k``'s linearised influence
    ``L_ik = (u_ik - 2 S_i (q_k - 2 p p_k)) / (2 V)`` (``p_k``, ``q_k`` the mean of its two
    values and of their squares, ``p`` the mean of all) carries the error of the denominator
    as well as the numerator's (a modest correction: the worst ``|error| / stderr`` of the
    calibration sweep at 30 players and 8 designs drops from 12.5 to 10.1). The standard error
    is the spread of the replicates' mean influences, ``sd_r / sqrt(R)``, pooled and
    t-inflated with ``R - 1`` dof (:mod:`._stderr`). Replicates must be independent: the
    points of one scrambled Sobol sequence are not (its first two points lie in opposite
    halves of every coordinate; at 8 and 32 points the coordinates ``i`` and ``n + i`` that
    pair a player's ``A`` and ``B`` values can be badly matched: for player 12 of 30 the mean
    of ``(a - b)^2`` over 32 points varies 3.6x more between scrambles than over independent
    points), and treating them as independent gave standard errors up to 39x below the error.
    """
    both = torch.cat([fa, fb], dim=-1)
    var = both.var(dim=-1, unbiased=False)  # ...
    sq = (fa[..., None, :] - fc) ** 2  # ... x n x N
    n_designs = fa.shape[-1]
    denom = 2.0 * var[..., None]
    ok = denom > 1e-300
    safe = torch.where(ok, denom, torch.ones_like(denom))
    st = torch.where(ok, sq.mean(-1) / safe, torch.zeros_like(denom))
    r_count = n_designs if replicates is None else max(1, min(int(replicates), n_designs))
    if fc.shape[-2] == 1 and n_designs < _JACKKNIFE_DESIGNS:
        # one player: its hybrids are design B, so numerator and denominator are the same 2N values
        # (S = 2 / (1 + 4 sum_k (m_k - p)^2 / sum_k d_k^2), m_k, d_k the mean and difference of a
        # design's two values): S ranges over (0, 2] around the truth 1, and the delta method's
        # influences vanish where S is far off (two designs that swap their values: S = 2, stderr
        # 0). +-1.96 stderr covered the truth 0.68 / 0.74 / 0.79 / 0.88 / 0.92 at 2 / 3 / 4 / 6 / 7
        # designs (200 seeds x 3 samples, rev49e; |error| up to 1e5 stderr)
        warn_undefined("sobol", f"one player and {n_designs} designs: the ratio of its variances "
                       f"is not estimable from fewer than {_JACKKNIFE_DESIGNS} designs",
                       f"Raise the budget to {_JACKKNIFE_DESIGNS} designs or more (budget >= "
                       f"{_JACKKNIFE_DESIGNS} * (n + 2) + 1).")
        return st, torch.full_like(st, float("nan"))
    if r_count < 2:
        warn_undefined("sobol", "one scrambled Sobol sequence is one replicate",
                       "Pass replicates >= 2 (default 8).")
        return st, torch.full_like(st, float("nan"))
    # the denominator's influence q_k - 2 p p_k, from values centred on p (the same up to the
    # constant p^2, which moves every influence alike): uncentred, an output offset of 1e6
    # cancelled it to rounding (stderr 0 for indices whose seed-to-seed spread was 0.84, and
    # one stderr for every player, where offset 0 gave them their own; small48a)
    p = both.mean(-1, keepdim=True)
    ca, cb = fa - p, fb - p
    lin_v = (ca * ca + cb * cb) / 2.0  # ... x N
    infl = (sq - 2.0 * st[..., None] * lin_v[..., None, :]) / safe[..., None]  # ... x n x N
    # replicate means: design k in replicate k mod R
    idx = torch.arange(n_designs) % r_count
    sums = torch.zeros(*infl.shape[:-1], r_count, dtype=infl.dtype).index_add_(-1, idx, infl)
    counts = torch.bincount(idx, minlength=r_count).to(infl.dtype)
    means = sums / counts
    se = means.std(dim=-1, unbiased=True) / math.sqrt(r_count)
    se = torch.where(ok, se, torch.zeros_like(se))
    dev = means - means.mean(dim=-1, keepdim=True)
    m2, m3, m4 = ((dev**j).mean(dim=-1) for j in (2, 3, 4))
    # few replicates: pooled towards the other players, t-inflated, and widened where the
    # replicates are skewed (squared differences that a rare interaction makes large;
    # :func:`._stderr.inflate_skewed`)
    if n_designs >= _JACKKNIFE_DESIGNS:
        st = _jackknife(st, sq, fa, fb, idx, r_count, ok)
    return st, inflate_skewed(se, m2, m3, m4, r_count)


#: Fewest designs whose estimate is jackknifed (:func:`_jackknife`): below, the ratio of
#: variances from 6 values is too unstable for it (at 4 designs on an additive 12-player
#: game the plain ratio is 48% high, the jackknife 45% low).
_JACKKNIFE_DESIGNS = 8


def _jackknife(st: torch.Tensor, sq: torch.Tensor, fa: torch.Tensor, fb: torch.Tensor,
               idx: torch.Tensor, r_count: int, ok: torch.Tensor) -> torch.Tensor:
    """Delete-a-replicate jackknife of the ratio ``S = U / (2 V)`` (Quenouille 1956):
    ``R S - (R - 1) mean_r S_(-r)``, ``S_(-r)`` the estimate without replicate ``r``.

    The ratio of two means is biased by ``O(1 / N)``: the variance ``V`` in the denominator is
    itself estimated (its plain form low by ``1 / (2N)``, and ``E[1 / V] > 1 / E[V]``). Without
    the correction the indices of an additive 12-player game summed to 1.47, 1.18 and 1.04
    (300 seeds, 4, 8 and 32 designs; exactly 1 in the limit), each index high by 48%, 19% and
    4.3% (median); jackknifed, 3.8-6.8% low at 8 designs and within 0.5% at 32 (used from
    ``_JACKKNIFE_DESIGNS`` designs on). Entries without output variance stay 0.
    """
    p = torch.cat([fa, fb], dim=-1).mean(-1, keepdim=True)
    ca, cb = fa - p, fb - p  # centred: the variance from sums stays well conditioned
    n_designs = fa.shape[-1]
    counts = torch.bincount(idx, minlength=r_count).to(sq.dtype)
    n_out = n_designs - counts  # R: designs left when replicate r is deleted
    rep = torch.zeros(*sq.shape[:-1], r_count, dtype=sq.dtype).index_add_(-1, idx, sq)
    u_out = (sq.sum(-1, keepdim=True) - rep) / n_out  # ... x n x R
    s1 = torch.zeros(*fa.shape[:-1], r_count, dtype=fa.dtype).index_add_(-1, idx, ca + cb)
    s2 = torch.zeros(*fa.shape[:-1], r_count, dtype=fa.dtype).index_add_(-1, idx, ca * ca + cb * cb)
    mean_out = (s1.sum(-1, keepdim=True) - s1) / (2.0 * n_out)
    var_out = ((s2.sum(-1, keepdim=True) - s2) / (2.0 * n_out) - mean_out**2)[..., None, :]
    live = var_out > 1e-300
    s_out = torch.where(live, u_out / (2.0 * torch.where(live, var_out, torch.ones_like(var_out))),
                        torch.zeros_like(u_out))
    st_j = r_count * st - (r_count - 1) * s_out.mean(-1)
    return torch.where(ok, st_j, st)


@register
class Sobol(Method):
    """Total-order Sobol indices of each player under random fractional masks (unsigned).

    Draws ``N = (budget - 1) // (n + 2)`` pairs of quasi-Monte Carlo mask designs and estimates each
    player's total Sobol index with Jansen's estimator: the expected share of the output's
    variance lost when the player's mask is re-drawn, jackknifed over the replicates from 8
    designs on (removes the ratio's ``O(1/N)`` bias). Indices are non-negative importances, up
    to noise (see the module notes on the sign convention). ``stderr`` is the spread of independent
    replicates: the ``N`` designs are ``R`` independently scrambled Sobol sequences of about
    ``N / R`` points (the largest power of two that leaves at least ``replicates`` sequences;
    below ``2 replicates`` designs, ``N`` independent uniform points), and the delta method
    carries the error of the variance in the denominator (see :func:`jansen_total`). One
    sequence's points are not independent: treating them as such, as this method did before,
    left standard errors up to 39 times below the error at 30 players (a player whose two
    Sobol coordinates pair badly at 8 or 32 points; the first two points of a sequence, which
    always fall in opposite halves of every coordinate). Replicates cost QMC accuracy: at 10
    players and 128 designs the RMS error is 1.5x that of one sequence of 128 points
    (``replicates=1``: one sequence, QMC-accurate, NaN standard errors with a warning). With a
    single player (or ``groups=`` of one group) the index is 1 for any output that varies, and
    below 8 designs its standard error is NaN with a warning (see :func:`jansen_total`).

    Needs real-valued inputs (fractional masks); on token ids use a gradient-free binary method
    (``kernel_shap``, ``lime``) or attribute embeddings.

    Args:
        sampler: ``"sobol"`` (scrambled Sobol sequences, seeded) or ``"random"`` (i.i.d.
            uniform). default="sobol".
        replicates: the fewest independent Sobol sequences the designs are split into (the
            standard errors' ``R - 1`` degrees of freedom); 1 keeps one sequence and reports
            NaN standard errors. default=8.

    Budget: ``N (n + 2) + 1`` evaluations per input (the 1 is ``v(N)``, the reference pass
    every game makes); default ``N = 32`` (Fel et al. use 32 designs
    on an 11x11 grid). Powers of two for ``N`` keep the Sobol sequence balanced.

    Reference: Fel, Cadène, Chalvidal, Cord, Vigouroux & Serre (2021), "Look at the Variance!
    Efficient Black-box Explanations with Sobol-based Sensitivity Analysis" (NeurIPS);
    estimator: Jansen (1999).
    """

    name = "sobol"
    tags = Tags(family="sensitivity", stochastic=True, budgeted=True, fractional_masks=True,
                signed=False)
    paper = "Fel et al. (2021), Look at the Variance! Efficient Black-box Explanations with Sobol-based Sensitivity Analysis"
    constraints = declare({"sampler": Options(("sobol", "random")), "replicates": Interval(int, 1)})

    def __init__(self, sampler: str = "sobol", replicates: int = 8) -> None:
        self.sampler = sampler
        self.replicates = replicates

    def reads_player_count(self) -> str | None:
        # a padded text's dummy players took designs (N = budget // (n + 2) for the longest
        # text's n) and QMC dimensions: "good" next to a 9-word text got credits 0.17-0.31 off
        # its own (same seed), small48b
        return ("its number of designs is the budget over (players + 2), and its quasi-random "
                "masks are drawn over every player")

    def min_budget(self, game: Game) -> int:
        return 2 * (game.n_players + 2) + game.n_evals  # two designs, plus v(N) already spent

    def default_budget(self, game: Game) -> int | None:
        return 32 * (game.n_players + 2) + game.n_evals

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        n = game.n_players
        total = budget if budget is not None else self.default_budget(game)
        assert total is not None
        n_designs = max(2, game.budget_left(total) // (n + 2))
        replicates = replicate_count(n_designs, self.sampler, self.replicates)
        a, b = sobol_designs(n, n_designs, seed, self.sampler, replicates)
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
        st, se = jansen_total(fa.permute(0, 2, 1), fb.permute(0, 2, 1), fc, replicates)
        # every design gave one value while v(N) differs: "the output does not vary" gave
        # indices 0 with stderr 0 for a game that does (6-player AND-like sigmoid, budget 20:
        # 9 of 50 seeds, aud47e)
        v_lo = torch.minimum(torch.minimum(fa.amin(1), fb.amin(1)), fc.amin((2, 3)))
        v_hi = torch.maximum(torch.maximum(fa.amax(1), fb.amax(1)), fc.amax((2, 3)))
        full = game.full()
        flat = flat_draws(v_lo, v_hi, full, value_rounding(game, v_lo, v_hi, full))
        if bool(flat.any()):
            se = torch.where(flat[..., None], torch.full_like(se, float("nan")), se)
            warn_undefined("sobol", f"all {n_designs * (n + 2)} masks gave the same value while v(N) "
                           "differs (an interaction that no mask switched on)", "Raise the budget.")
        return game.attribution(st, self.name, {**self.get_params(), "n_designs": n_designs,
                                                "n_replicates": replicates},
                                stderr=se, extra={"variance": _per_sample(
                                    torch.cat([fa, fb], 1).var(1, unbiased=False), game)})

    budget_rule = "32 (n + 2) + 1"  # + v(N)'s reference pass (default_budget)

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """Designs ``A``, ``B`` (``N x n``), re-drawn blocks of ``VALUE_BLOCK_ELEMENTS`` entries and the
        ``batch x targets x n x N`` values of every re-drawn design."""
        n = int(game.n_players)
        k = int(budget if budget is not None else self.default_budget(game) or 0)
        designs = max(2, (k - 1) // (n + 2))  # as attribute(): v(N)'s reference pass comes first
        b, t = int(game.n_samples), int(game.n_targets)
        block = max(1, VALUE_BLOCK_ELEMENTS // max(n * designs, 1)) * designs
        rows = 1 + designs * (n + 2)
        return coalition_cost(game, rows, mask_rows=min(rows, block + 2 * designs),
                              design=b * t * n * designs * 8 * 2,
                              note=f"{designs:,} designs x {n:,} players")


def _per_sample(t: torch.Tensor, game: Game) -> np.ndarray:
    arr = t.detach().cpu().numpy()
    return arr if game.layout.multi_target else arr[:, 0]
