"""RISE: randomized input sampling for explanation (Petsiuk, Das & Saenko 2018).

Random masks ``M_k`` keep each region with probability ``p``; the saliency of a player is the
mask-weighted average output::

    S_i = (1 / (N p)) sum_k v(M_k) M_k,i     (= E[v(M) | M_i = 1] for binary masks)

On dense image games (every pixel a player, per-sample shape ``(..., H, W)``) the masks are the
paper's smooth masks: an ``s x s`` grid of Bernoulli(``p``) cells, bilinearly upsampled
(PyTorch's ``interpolate``, ``align_corners=False``, edges clamped) to
``(s + 1) x cell`` pixels (``cell = ceil(H / s)``), and cropped to ``H x W`` at a random offset
inside one cell; the same mask covers all channels. Other games (tabular, grouped superpixels,
components) use plain Bernoulli(``p``) masks over the players.

Sign convention: the raw RISE saliency is not centred: a player the model ignores gets about
``E[v(M)]`` (not 0), the same for every player. ``center=True`` subtracts the mean output
(``sum_k (v(M_k) - mean v) M_k,i / ((N - 1) p)``, the sample covariance of ``v`` and ``M_i`` over
``p``: unbiased for its limit ``Cov(v, M_i) / p = E[v | M_i = 1] - E[v]`` for binary masks), so
that an ignored player gets about 0 and a positive credit means keeping the player raises ``v``;
rankings within a sample do not change. (Dividing by ``N`` instead, as this method did before,
is biased by ``-1/N`` of the credit: 6% at 16 masks.)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..attribution import Attribution
from ..games.base import VALUE_BLOCK_ELEMENTS, Game
from ..games.features import FeatureGame
from ..params import InstanceOf, Interval, declare
from ._stderr import (
    central_moments,
    flat_draws,
    inflate,
    inflate_skewed,
    value_rounding,
    warn_undefined,
)
from .base import Cost, Method, Tags, coalition_cost, register

__all__ = ["Rise", "bernoulli_masks", "smooth_masks"]

#: a standard error at most this fraction of the output's scale is rounding noise of one that is
#: 0 in exact arithmetic (the variances are differences of power sums: ~sqrt(eps) ~ 1.5e-8)
_ROUNDING = 1e-6



def smooth_masks(grid: torch.Tensor, shifts: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """RISE's smooth masks from binary grids.

    Args:
        grid: ``K x s x s`` binary cells.
        shifts: ``K x 2`` integer offsets in ``[0, cell_h) x [0, cell_w)``.
        height, width: image size.

    Returns:
        ``K x height x width`` float64 masks in ``[0, 1]``.
    """
    s_h, s_w = grid.shape[1:]
    cell_h, cell_w = math.ceil(height / s_h), math.ceil(width / s_w)
    up = F.interpolate(grid[:, None].to(torch.float64), size=((s_h + 1) * cell_h, (s_w + 1) * cell_w),
                       mode="bilinear", align_corners=False)[:, 0]
    rows = shifts[:, 0, None] + torch.arange(height)[None]  # K x H
    cols = shifts[:, 1, None] + torch.arange(width)[None]  # K x W
    k = torch.arange(grid.shape[0])[:, None, None]
    return up[k, rows[:, :, None], cols[:, None, :]]


#: Most masks whose standard errors get the skewness correction (:func:`._stderr.inflate_skewed`):
#: its coverage deficit is about ``gamma^2 / (4 n)``, under 0.01 beyond 256 masks for a
#: skewness up to 3, while its two extra moment sums and search cost 2.2x the time of an image
#: RISE call on a model that costs almost nothing (8 images of 112 x 112, 10 targets, 200 masks:
#: 0.93 -> 2.06 s; ``center=True``, whose moments take a second pass over the re-made masks:
#: 1.6 -> 6.0 s at load 10); next to a real image model's 1,600 forward passes it is small.
SKEWED_MASKS = 256


def bernoulli_masks(k: int, n: int, p: float, g: torch.Generator) -> torch.Tensor:
    """``k x n`` float64 masks, each entry 1 with probability ``p``."""
    return (torch.rand(k, n, generator=g, dtype=torch.float64) < p).to(torch.float64)


def _pixels(shape: tuple[int, ...], last: bool) -> tuple[int, int]:
    """The image's rows and columns: the first two axes of an ``(H, W, C)`` sample the model
    reads channels-last (:meth:`FeatureGame.image_channel_axis`), else the last two (aud52v:
    a channels-last CNN's ``(16, 16, 3)`` images got masks over columns x channels, the same
    for every row)."""
    if last and len(shape) == 3:
        return int(shape[0]), int(shape[1])
    return int(shape[-2]), int(shape[-1])


@register
class Rise(Method):
    """RISE saliency: the average output under random masks, weighted by each player's mask.

    ``S_i = sum_k v(M_k) M_k,i / (N p)`` over ``N = budget`` random masks. On dense image games
    the masks are the paper's smooth, randomly shifted low-resolution masks (per pixel); on
    other games plain Bernoulli masks over the players. ``stderr`` is the Monte Carlo standard
    error of the average (of the centred estimator's influence terms with ``center=True``),
    t-inflated and, up to 256 masks, widened where the draws are skewed. The draws cannot show
    an interaction that none of the masks switches on: on a 4-player game whose three-way AND
    a mask switches on with probability ``p^3``, 16 masks covered 0.81 within 1.96 stderr at
    ``p=0.5`` and 0.36 at ``p=0.3`` (60 seeds; 0.98 and 0.90 at 200 masks). With
    ``center=True`` the variance is that of a sample covariance, second-order term included
    (the first-order one vanishes for one player at ``p = 1/2``), and 2 masks give NaN with a
    :class:`StderrWarning` (centring uses both); a player kept in every mask or in none whose
    standard error would be 0 (nothing to pool from) gets NaN with a warning too.

    Args:
        s: cells per side of the low-resolution grid (the paper's ``s``; each cell is
            ``ceil(H / s) x ceil(W / s)`` pixels; capped at the image size). default=8.
        p: probability that a cell (or player) is kept. default=0.5 (the paper's p1).
        center: subtract the mean output before weighting (see the module notes).
            default=False (the paper's saliency).

    Budget: ``N`` masks (evaluations) per input; default 1000 (the paper uses 4000-8000 masks
    on ImageNet).

    Reference: Petsiuk, Das & Saenko (2018), "RISE: Randomized Input Sampling for Explanation
    of Black-box Models" (BMVC).
    """

    name = "rise"
    tags = Tags(family="perturbation", stochastic=True, budgeted=True)
    paper = "Petsiuk, Das & Saenko (2018), RISE: Randomized Input Sampling for Explanation of Black-box Models"
    constraints = declare({"s": Interval(int, 1), "p": Interval(float, 0.0, 1.0, closed="right"),
                   "center": InstanceOf((bool,), "True or False")})

    def __init__(self, s: int = 8, p: float = 0.5, center: bool = False) -> None:
        self.s = s
        self.p = p
        self.center = center

    def reads_player_count(self) -> str | None:
        # a padded text's masks drew Bernoulli bits for the dummy players too, so its own
        # players' bits (and credits) followed the longest text's count: 3e-4 to 1.7e-3 off
        # its own credits at the same seed, small48b
        return "its random masks are drawn over every player"

    def min_budget(self, game: Game) -> int:
        return 2 + game.n_evals  # two masks (a standard error needs two), plus v(N)

    def default_budget(self, game: Game) -> int | None:
        return 1000

    def _mask_block(self, game: Game, lo: int, hi: int, grids: list[torch.Tensor | None],
                    shifts: list[torch.Tensor | None], bern: torch.Tensor | None) -> torch.Tensor:
        """Masks ``lo..hi-1`` over all players (``(hi - lo) x n``)."""
        if bern is not None:
            return bern[lo:hi]
        assert isinstance(game, FeatureGame)
        parts = []
        last = game.image_channel_axis() == -1
        for shape, grid, shift in zip(game.input_shapes(), grids, shifts):
            if grid is None or shift is None:  # pragma: no cover - only image inputs reach here
                raise RuntimeError("rise: missing grid")
            h, w = _pixels(shape, last)
            m = smooth_masks(grid[lo:hi], shift[lo:hi], h, w)  # k x H x W
            if last:  # (H, W, C): one mask value for a pixel's channels
                parts.append(m[:, :, :, None].expand(hi - lo, h, w, shape[2]).reshape(hi - lo, -1))
                continue
            lead = math.prod(shape[:-2])
            parts.append(m[:, None].expand(hi - lo, lead, h, w).reshape(hi - lo, -1))
        return torch.cat(parts, dim=1)

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        n = game.n_players
        # v(N) (the reference pass) is the first of the budget's evaluations
        n_masks = game.budget_left(budget if budget is not None else 1000)
        g = torch.Generator().manual_seed(seed)
        images = (isinstance(game, FeatureGame) and game.layout.dense
                  and all(len(s) >= 2 for s in game.input_shapes()))
        grids: list[torch.Tensor | None] = []
        shifts: list[torch.Tensor | None] = []
        bern = None
        if images:
            assert isinstance(game, FeatureGame)
            last = game.take_image_channel_axis("rise's masks") == -1
            for shape in game.input_shapes():
                h, w = _pixels(shape, last)
                sh, sw = min(self.s, h), min(self.s, w)
                grids.append((torch.rand(n_masks, sh, sw, generator=g, dtype=torch.float64) < self.p)
                             .to(torch.float64))
                ch, cw = math.ceil(h / sh), math.ceil(w / sw)
                shifts.append(torch.stack([torch.randint(0, ch, (n_masks,), generator=g),
                                           torch.randint(0, cw, (n_masks,), generator=g)], dim=1))
        else:
            bern = bernoulli_masks(n_masks, n, float(self.p), g)

        b_count, t_count = game.n_samples, game.n_targets
        s1 = torch.zeros(b_count, t_count, n, dtype=torch.float64)  # sum_k v_k m_k
        s2 = torch.zeros(b_count, t_count, n, dtype=torch.float64)  # sum_k (v_k m_k)^2
        # sum_k (v_k m_k)^3 and ^4: the draws' skewness and kurtosis (plain saliency, up to
        # SKEWED_MASKS masks: beyond, the skewness correction is below ~0.01 of coverage)
        skewed = n_masks <= SKEWED_MASKS
        s3 = (torch.zeros(b_count, t_count, n, dtype=torch.float64)
              if skewed and not self.center else None)
        s4 = torch.zeros_like(s3) if s3 is not None else None
        # centre=True up to SKEWED_MASKS masks: the values and block bounds are kept for a
        # second pass over the (re-made) masks that takes the influence terms' moments
        kept: list[tuple[int, int, torch.Tensor]] | None = [] if skewed and self.center else None
        vsum = torch.zeros(b_count, t_count, dtype=torch.float64)
        # largest |v| and the range of v over the masks: the scale of the rounding noise in a
        # variance that is 0 in exact arithmetic (see the blind columns below)
        vabs = torch.zeros(b_count, t_count, dtype=torch.float64)
        vlo = torch.full((b_count, t_count), math.inf, dtype=torch.float64)
        vhi = torch.full((b_count, t_count), -math.inf, dtype=torch.float64)
        msum = torch.zeros(n, dtype=torch.float64)
        # centre=True: sums of u = v - c (c: the first block's mean value, a pivot against
        # cancellation) for the centred estimator's influence terms (:func:`_centred_variance`)
        cen = _CentredSums(b_count, t_count, n) if self.center else None
        def make(lo: int, hi: int) -> torch.Tensor:
            return self._mask_block(game, lo, hi, grids, shifts, bern)

        for blk in game.value_stream(n_masks, make):
            m, v = blk.masks, blk.values  # k x n, B x k x T
            s1 += torch.einsum("bkt,kn->btn", v, m)
            m2 = m if bern is not None else m**2  # Bernoulli masks are 0 / 1: m^j = m
            s2 += torch.einsum("bkt,kn->btn", v**2, m2)
            if s3 is not None and s4 is not None:
                s3 += torch.einsum("bkt,kn->btn", v**3, m if bern is not None else m2 * m)
                s4 += torch.einsum("bkt,kn->btn", v**4, m if bern is not None else m2 * m2)
            vsum += v.sum(1)
            vabs = torch.maximum(vabs, v.abs().amax(1))
            vlo, vhi = torch.minimum(vlo, v.amin(1)), torch.maximum(vhi, v.amax(1))
            msum += m.sum(0)
            if cen is not None:
                cen.add(v, m)
            if kept is not None:
                kept.append((blk.start, blk.stop, v))
        p = float(self.p)
        mean_v = vsum / n_masks  # B x T
        sal = s1 / (n_masks * p)
        if self.center:
            # sum_k (v_k - mean) m_k / (N p) = S - mean * sum_k m_k / (N p); its expectation is
            # (N - 1) / N of the limit Cov(v, m_i) / p, rescaled below (the sample covariance)
            sal = sal - mean_v[..., None] * (msum / (n_masks * p))
        unbias = n_masks / max(n_masks - 1, 1) if self.center else 1.0
        if cen is not None:
            var = cen.variance(n_masks, p, msum)
            # the delta method's Var(psi) / K is only the first-order term of the sample
            # covariance's variance; the exact one adds (Cov^2 + Var(v) Var(m_i)) / (K (K - 1))
            # (see :meth:`_CentredSums.second_order`). Without it an influence term that is
            # stationary (one player at p = 1/2: every psi_k equal whenever half the masks keep
            # it) reported stderr 0 for errors of 10-20% (coverage 0.52 at 4 masks, aud45e)
            se = (var / n_masks + cen.second_order(n_masks, p, msum, sal * unbias) / unbias**2).sqrt()
            if kept is not None:
                # few masks: pooled, t-inflated and widened where the influence terms are skewed
                # (as for the plain saliency; :func:`._stderr.inflate_skewed`)
                mom = _centred_moments(kept, make, mean_v, msum / (n_masks * p), sal, p)
                stderr = inflate_skewed(se, *mom, n_masks)
            else:
                stderr = inflate(se, n_masks - 1)  # pooled and t-inflated (:mod:`._stderr`)
            if n_masks < 3 and p < 1:
                # (p = 1: every mask keeps every player, the credits are exact)
                # centring spends one of two masks: psi_1 = psi_2 always, so their spread says
                # nothing (it gave stderr 0 on every player, coverage 0, aud45e)
                stderr = torch.full_like(stderr, float("nan"))
                warn_undefined("rise", "center=True with 2 masks: the centred credits use both for the mean",
                               "Raise the budget by one (3 masks) or more.")
        else:
            # Monte Carlo standard error of the mean of y_k = v_k m_k / p
            ey = s1 / (n_masks * p)
            ey2 = s2 / (n_masks * p * p)
            var = (ey2 - ey**2).clamp(min=0) * n_masks / max(n_masks - 1, 1)
            se = (var / n_masks).sqrt()
            if s3 is not None and s4 is not None:
                # few masks: pooled, t-inflated, and widened where the draws are skewed (a
                # strong interaction that few masks switch on; :func:`._stderr.inflate_skewed`)
                mom = central_moments(s1 / p, s2 / p**2, s3 / p**3, s4 / p**4, n_masks)
                stderr = inflate_skewed(se, *mom, n_masks)
            else:
                stderr = inflate(se, n_masks - 1)  # pooled and t-inflated (:mod:`._stderr`)
        # a player kept in every mask or in none: the draws hold nothing about its own term, and
        # with nothing to pool from (one player, or every player so) its stderr was 0 for a wrong
        # credit (1 player, 4 masks: 10% of seeds; 2 masks: 48%, aud45e)
        # "0" up to rounding (rev45e: the expanded sums left 1e-16..1e-7 of the output where the
        # exact value is 0, e.g. plain, 1 player kept by all of 5-12 masks: stderr ~1e-7 for a
        # credit 2x its truth, in 21 of 40 random linear games); p = 1 keeps every player in
        # every mask, and the credits are then exact (stderr 0 is right there)
        noise = ((_ROUNDING * (vhi - vlo) + 1e-12 * vabs) if self.center else _ROUNDING * vabs) / p
        blind = ((msum == 0) | (msum == n_masks))[None, None, :] & (stderr <= noise[..., None])
        if p < 1 and bool(blind.any()) and not (self.center and n_masks < 3):
            stderr = torch.where(blind, torch.full_like(stderr, float("nan")), stderr)
            warn_undefined("rise", f"player(s) {sorted(set(blind.nonzero()[:, 2].tolist()))[:5]} kept in every "
                           "mask or in none, with no other player's spread to pool",
                           "Raise the budget (more masks).")
        # every mask gave one value while v(N) differs: no mask switched the interaction on, and
        # the spread (0) said the credits were exact (6 players, AND game, 19 masks: credit 0,
        # stderr 0 in 74% of seeds for a truth of 3/32, aud47e); p = 1 keeps every player (exact)
        full = game.full()
        flat = flat_draws(vlo, vhi, full, value_rounding(game, vlo, vhi, full))
        if p < 1 and bool(flat.any()):
            stderr = torch.where(flat[..., None], torch.full_like(stderr, float("nan")), stderr)
            warn_undefined("rise", f"all {n_masks} masks gave the same value while v(N) differs "
                           "(an interaction that no mask switched on)", "Raise the budget (more masks).")
        params = {**self.get_params(), "smooth_masks": images}
        return game.attribution(sal * unbias, self.name, params, stderr=stderr * unbias,
                                extra={"mean_value": _np(mean_v, game)})

    budget_rule = "1000"

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """``budget`` random masks, made and evaluated in blocks of ``VALUE_BLOCK_ELEMENTS`` entries."""
        n = int(game.n_players)
        k = int(budget if budget is not None else 1000)
        block = max(1, VALUE_BLOCK_ELEMENTS // max(n, 1))
        return coalition_cost(game, k, mask_rows=min(k, block), design=2 * min(k, block) * n * 8,
                              note=f"{k:,} masks in blocks of {min(k, block):,} x {n:,} players")


class _CentredSums:
    """Running sums for the Monte Carlo variance of the centred saliency (``center=True``).

    The centred saliency ``A - B C`` (``A = mean(v m) / p``, ``B = mean(v)``,
    ``C = mean(m) / p``) moves by ``psi_k = v_k m_k / p - B m_k / p - C v_k`` per mask (delta
    method), so its variance is ``Var(psi) / K``. Sums are of ``u = v - c`` with ``c`` the first
    block's mean value: a constant ``c`` shifts every ``psi_k`` by ``-C c`` and leaves the
    variance unchanged, and the pivot keeps the expanded sums from cancelling. The uncentred
    formula, used for ``center=True`` before, carries ``E[v]^2 Var(m) / p^2``, which centring
    removes: with an output offset of 3 it was 20-30x the actual error.
    """

    def __init__(self, b: int, t: int, n: int) -> None:
        z = torch.zeros
        self.um, self.u2m2, self.um2, self.u2m = (z(b, t, n, dtype=torch.float64) for _ in range(4))
        self.u, self.u2 = z(b, t, dtype=torch.float64), z(b, t, dtype=torch.float64)
        self.m2 = z(n, dtype=torch.float64)
        self.pivot: torch.Tensor | None = None

    def add(self, v: torch.Tensor, m: torch.Tensor) -> None:
        """One block: values ``B x k x T``, masks ``k x n``."""
        if self.pivot is None:
            self.pivot = v.mean(1, keepdim=True)
        u = v - self.pivot
        self.um += torch.einsum("bkt,kn->btn", u, m)
        self.u2m2 += torch.einsum("bkt,kn->btn", u**2, m**2)
        self.um2 += torch.einsum("bkt,kn->btn", u, m**2)
        self.u2m += torch.einsum("bkt,kn->btn", u**2, m)
        self.u += u.sum(1)
        self.u2 += (u**2).sum(1)
        self.m2 += (m**2).sum(0)

    def second_order(self, k: int, p: float, msum: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        """The ``O(1/K^2)`` term of the variance of the centred saliency ``cov`` (the unbiased
        sample covariance of ``v`` and ``m_i`` over ``p``, ``B x T x n``):
        ``(Cov^2 + Var(v) Var(m_i)) / (K (K - 1) p^2)``, from the exact variance of a sample
        covariance of ``K`` i.i.d. pairs, ``(mu_22 - Cov^2) / K + (Cov^2 + Var(v) Var(m)) /
        (K (K - 1))`` (the first term is :meth:`variance`), with plug-in moments."""
        if k < 2:
            return torch.zeros_like(cov)
        var_v = ((self.u2 - self.u * self.u / k) / (k - 1)).clamp(min=0)[..., None]  # B x T x 1
        var_m = ((self.m2 - msum * msum / k) / (k - 1)).clamp(min=0)[None, None, :]  # 1 x 1 x n
        return (cov * cov + var_v * var_m / (p * p)) / (k * (k - 1))

    def variance(self, k: int, p: float, msum: torch.Tensor) -> torch.Tensor:
        """Sample variance of ``psi`` (``B x T x n``)."""
        b = (self.u / k)[..., None]  # mean u
        c = (msum / (k * p))[None, None, :]
        s1 = (self.um - b * msum) / p - c * self.u[..., None]
        s2 = ((self.u2m2 - 2.0 * b * self.um2 + b * b * self.m2) / (p * p)
              - 2.0 * c / p * (self.u2m - b * self.um) + c * c * self.u2[..., None])
        return ((s2 - s1**2 / k) / max(k - 1, 1)).clamp(min=0)


def _centred_moments(kept: list[tuple[int, int, torch.Tensor]], make: Callable[[int, int], torch.Tensor],
                     mean_v: torch.Tensor, c: torch.Tensor, sal: torch.Tensor, p: float,
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Central moments (divided by ``K``) of the centred saliency's influence terms
    ``psi_k = v_k m_k / p - B m_k / p - C v_k`` (:class:`_CentredSums`), ``B x T x n`` each.

    ``kept`` holds every block's ``(start, stop, values B x k x T)``; ``make(start, stop)``
    re-makes its masks. ``psi_k - mean(psi) = X_k - S`` with ``X_k = (v_k - B)(m_k / p - C)``
    and ``S = mean(X)`` the centred saliency ``sal``; the power sums of ``X`` are products
    ``sum_k (v_k - B)^j (m_k / p - C)^j`` (one matrix product per power, as the plain
    saliency's moments).
    """
    k_total = sum(hi - lo for lo, hi, _ in kept)
    sums = [torch.zeros_like(sal) for _ in range(4)]
    for lo, hi, v in kept:
        a = make(lo, hi) / p - c[None, :]  # k x n
        w = v - mean_v[:, None, :]  # B x k x T
        for j in range(4):
            sums[j] += torch.einsum("bkt,kn->btn", w ** (j + 1), a ** (j + 1))
    return central_moments(sums[0], sums[1], sums[2], sums[3], k_total)


def _np(t: torch.Tensor, game: Game) -> np.ndarray:
    arr = t.detach().cpu().numpy()
    return arr if game.layout.multi_target else arr[:, 0]
