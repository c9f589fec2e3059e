"""Honest standard errors: small-sample inflation, pooling and refusal (private).

Every stochastic method reports ``stderr`` so that ``estimate +- 2 stderr`` covers the
method's own estimand (its infinite-budget limit) about 95% of the time. Three rules keep
that promise at small budgets:

* **few replicates** — a variance estimated from ``dof`` degrees of freedom makes
  ``error / stderr`` Student-t distributed, not normal; the standard error is multiplied by
  ``t_dof(0.977) / 2`` so that two of them still span the 95.4% interval (Student 1908);
* **zero-variance accidents** — with few discrete replicates a player's sample variance can
  be exactly 0 while its error is not; variances are shrunk towards the mean variance of all
  players of the same sample and target (``(dof var_i + k0 mean_var) / (dof + k0)``), a
  standard empirical-Bayes pooling (Smyth 2004, limma's moderated variances);
* **not estimable** — with no degrees of freedom left (an interpolating regression, one
  replicate) the standard error is ``NaN`` and :class:`StderrWarning` says why and which
  budget would fix it; never a small number;
* **skewed draws** — a mean of draws with rare large values (a strong interaction that few
  random coalitions switch on) is skewed, and the t interval then covers less than it claims
  (0.83-0.90 within 2 standard errors at 12-26 masks on an AND game): :func:`inflate_skewed`
  widens it by the second-order Edgeworth expansion of the Studentized mean, from the draws'
  own skewness and kurtosis (Hall 1992).
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings

import numpy as np
import torch

from ..errors import StderrWarning, user_stacklevel

__all__ = ["StderrWarning", "central_moments", "flat_draws", "inflate", "inflate_skewed", "inflate_welch",
           "mean_interval", "moderate", "t_factor", "value_rounding",
           "warn_undefined"]

#: Two-sided coverage of +-2 standard normal deviations (0.9545): the convention "within two
#: standard errors" is matched to the t quantile of the same tail probability.
_TAIL = 0.5 * (1.0 + math.erf(2.0 / math.sqrt(2.0)))


@functools.lru_cache(maxsize=256)
def t_factor(dof: float) -> float:
    """``t_dof(0.977) / 2``: the inflation that keeps ``+-2 stderr`` at 95.4% coverage.

    1 for ``dof = inf``; ``nan`` for ``dof < 1``.
    """
    if not dof >= 1:
        return float("nan")
    if math.isinf(dof):
        return 1.0
    from scipy.stats import t as student_t

    return float(student_t.ppf(_TAIL, dof)) / 2.0


def moderate(var: torch.Tensor, dof: float, k0: float = 2.0) -> torch.Tensor:
    """Raise per-player variances (last axis) towards their mean over the players.

    ``var_i + k0 / (dof + k0) * max(mean(var) - var_i, 0)``: a player whose few replicates
    happen to agree exactly borrows the spread of the others; variances above the mean are
    left alone (pooling must never shrink a large one). ``k0`` prior degrees of freedom
    (default 2) matter only while ``dof`` is small.
    """
    if var.shape[-1] < 2 or math.isinf(dof):
        return var
    pooled = var.nanmean(dim=-1, keepdim=True)
    return var + k0 / (dof + k0) * (pooled - var).clamp_min(0.0)


def inflate(se: torch.Tensor, dof: float, k0: float = 2.0) -> torch.Tensor:
    """Moderated, t-inflated standard errors from raw ones estimated with ``dof`` dof."""
    if not dof >= 1:
        return torch.full_like(se, float("nan"))
    return moderate(se**2, dof, k0).sqrt() * t_factor(dof)


def warn_undefined(method: str, why: str, fix: str) -> None:
    """Warn that ``method``'s standard errors are NaN because ``why``; ``fix`` says how."""
    warnings.warn(f"{method}: standard errors are not estimable ({why}); stderr is NaN. {fix}",
                  StderrWarning, stacklevel=user_stacklevel())


#: :func:`flat_draws`: draws are "flat" when their range is at most this share of the gap
#: to ``v(N)``.
_FLAT = 1e-6
#: :func:`flat_draws`: the gap to ``v(N)`` counts when it exceeds this share of the values'
#: size, by the dtype the model computed them in (its rounding, not the values' own scale).
#: float32: 1e-6 = 8.4 eps (batch-size-dependent rounding of v(N) against draws of a model
#: that ignores every player reached 5.9 eps of the output in 60 random MLPs); float64: 1e-12
#: = 4500 eps (reached 34 eps in 103 MLPs). One share for every dtype (1e-6, before stop 48)
#: hid an interaction below 1e-6 of a float64 output's level: offset 1e6 + 0.5 AND(6
#: players), Banzhaf credits 0 with stderr 0 in 21 of 30 seeds (truth 1/64, rev47e).
_ROUND_F64 = 1e-12
_ROUND_F32_EPS = 1e-6 / torch.finfo(torch.float32).eps  # half types: the same multiple of eps


def value_rounding(game: object, *values: torch.Tensor) -> float:
    """The share of a value's size that rounding can move it by (:func:`flat_draws`).

    From the dtype of the model's raw output (``game.reference_output``: feature, text and
    component games); a game without one (a custom game) is read as float32 where every value
    is a float32 number (converted float32 outputs are) and float64 otherwise.
    """
    ref = getattr(game, "reference_output", None)
    dtype = ref.dtype if isinstance(ref, torch.Tensor) and ref.dtype.is_floating_point else None
    if dtype is None:
        exact32 = all(bool((v.to(torch.float32).to(v.dtype) == v).all()) for v in values)
        dtype = torch.float32 if exact32 else torch.float64
    eps = max(torch.finfo(dtype).eps, _computed_eps(getattr(game, "model", None)))
    if eps <= torch.finfo(torch.float64).eps:
        return _ROUND_F64
    return _ROUND_F32_EPS * max(eps, torch.finfo(torch.float32).eps)


def _computed_eps(model: object) -> float:
    """The machine epsilon of the least precise dtype the model computed its output in, where
    that is below the output's own: a numpy model's float32 array (converted to float64 for the
    game), a torch module with float32 parameters that returns float64. Read as float64, the
    batch rounding of such outputs (a sample at its baseline: 14 of 100 calls NaN, BASE 1;
    rev48s) passed the float64 gate. 0.0 when unknown."""
    eps = 0.0
    raw = getattr(model, "output_dtype", None)
    if raw is not None and np.issubdtype(raw, np.floating):
        eps = float(np.finfo(raw).eps)
    module = getattr(model, "module", None)
    if isinstance(module, torch.nn.Module):
        for t in itertools.chain(module.parameters(), module.buffers()):
            if t.dtype.is_floating_point:
                eps = max(eps, torch.finfo(t.dtype).eps)
    return eps


def flat_draws(lo: torch.Tensor, hi: torch.Tensor, full: torch.Tensor,
               rounding: float = 1e-6) -> torch.Tensor:
    """Which (sample, target) entries saw no spread while the game has some (``B x T`` bool).

    ``lo``/``hi`` are the smallest and largest value over the random draws and ``full`` is
    ``v(N)``, a coalition of the same population that the reference pass evaluated. Draws
    that all gave the same value (to ``_FLAT`` of the gap) while ``v(N)`` differs (by more
    than ``rounding`` of the values' size: :func:`value_rounding`) missed an interaction that
    none of them switched on: their spread, hence every standard error built from it, is 0
    for credits that are wrong (the 6-player AND game at budget 20: Banzhaf and RISE credits
    0 with stderr 0 in 74-76% of seeds, truth 3/32, aud47e). The standard error is then not
    estimable. A constant game (``v(N)`` equal to the draws up to rounding) is not flagged:
    its credits are exact.
    """
    gap = (full - 0.5 * (lo + hi)).abs()
    size = torch.maximum(full.abs(), torch.maximum(lo.abs(), hi.abs()))
    return ((hi - lo) <= _FLAT * gap) & (gap > rounding * size)


def inflate_welch(var: torch.Tensor, welch: torch.Tensor, dof: int) -> torch.Tensor:
    """Pooled, t-inflated standard errors from a stratified variance ``var = sum_h V_h``.

    The t factor of each entry uses the Welch-Satterthwaite degrees of freedom
    ``var^2 / welch`` (``welch = sum_h V_h^2 / dof_h``), clipped to ``[1, dof]`` (``dof`` where
    ``var`` is 0); the factor is interpolated linearly between integer degrees of freedom
    (:func:`t_factor` is convex in them, so the interpolation errs on the wide side). Pooling across
    players (:func:`moderate`) keeps the fit's ``dof``.
    """
    if dof < 1:
        return torch.full_like(var, float("nan"))
    eff = torch.where(welch > 0, var * var / welch.clamp_min(1e-300), torch.full_like(var, float(dof)))
    eff = eff.nan_to_num(nan=float(dof)).clamp(min=1.0, max=float(dof))
    if eff.numel() == 0:
        return var.sqrt()
    lo = eff.floor()
    first, last = int(lo.min()), int(lo.max()) + 1
    table = _t_factors(first, last).to(var.device)  # t_factor(d) for d = first..last
    i = lo.long() - first
    frac = eff - lo
    factor = table[i] * (1.0 - frac) + table[(i + 1).clamp(max=last - first)] * frac
    return moderate(var, float(dof)).sqrt() * factor


def _t_factors(first: int, last: int) -> torch.Tensor:
    """``t_factor(d)`` for the integers ``d = first..last`` (a fresh tensor).

    Read from a table of ``d = 1..D`` kept across calls (:func:`_t_table`): the quantile is a
    pure function of ``d``, computed element by element, so a slice of the table holds the
    same bits as a call over ``first..last`` alone (checked in the tests), without scipy's
    ~0.1-0.5 ms per call (issue #9: every kernel_shap / banzhaf call paid it)."""
    if first >= 1 and last <= _T_TABLE_MAX:
        return _t_table(last)[first - 1 : last].clone()
    return _t_factors_direct(first, last)


def _t_factors_direct(first: int, last: int) -> torch.Tensor:
    """``t_factor(d)`` for ``d = first..last`` in one vectorised quantile call."""
    from scipy.stats import t as student_t

    d = torch.arange(first, last + 1, dtype=torch.float64)
    return torch.as_tensor(student_t.ppf(_TAIL, d.numpy()), dtype=torch.float64) / 2.0


#: Largest degrees of freedom the cached table covers (8 MB of float64); larger ones are
#: computed per call.
_T_TABLE_MAX = 1 << 20
#: ``t_factor(d)`` for ``d = 1..len``; grown (doubling) when a call needs more, never changed
#: in place (a reader holding the old table keeps valid values).
_T_TABLE: torch.Tensor = torch.empty(0, dtype=torch.float64)


def _t_table(last: int) -> torch.Tensor:
    """The cached ``t_factor(1..D)`` table with ``D >= last`` (``last <= _T_TABLE_MAX``)."""
    global _T_TABLE
    table = _T_TABLE
    if table.shape[0] < last:
        size = min(max(last, 2 * table.shape[0], 64), _T_TABLE_MAX)
        table = _t_factors_direct(1, size)
        _T_TABLE = table
    return table


#: Two-sided coverage the Edgeworth correction restores (that of +-2 normal deviations).
_TWO_SIDED = 2.0 * _TAIL - 1.0
#: The skewness correction widens an interval at most this many times the normal one's
#: (beyond it the expansion itself is no longer a guide).
_SKEW_MAX = 4.0
#: Grid steps of the half-width searched (in standard errors; the found width errs wide).
_SKEW_COARSE = 0.25
_SKEW_STEP = 0.02


def central_moments(s1: torch.Tensor, s2: torch.Tensor, s3: torch.Tensor, s4: torch.Tensor,
                    n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Second, third and fourth central moments (divided by ``n``) from raw power sums
    ``s_j = sum_k y_k^j`` of ``n`` draws (float64; for draws whose spread is not tiny next to
    their mean, as masked values are: a mask that drops the value makes them bimodal)."""
    mu = s1 / n
    e2, e3, e4 = s2 / n, s3 / n, s4 / n
    m2 = (e2 - mu * mu).clamp_min(0.0)
    m3 = e3 - 3.0 * mu * e2 + 2.0 * mu**3
    m4 = (e4 - 4.0 * mu * e3 + 6.0 * mu * mu * e2 - 3.0 * mu**4).clamp_min(0.0)
    return m2, m3, m4


def _t_coverage(x: torch.Tensor, dof: int) -> torch.Tensor:
    """``P(|t_dof| <= x)``: the exact two-sided coverage of a normal sample's t interval."""
    from scipy.stats import t as student_t

    xs = x.detach().cpu().double().numpy()
    return torch.as_tensor(2.0 * student_t.cdf(xs, dof) - 1.0, dtype=x.dtype).to(x.device)


def _skew_term(x: torch.Tensor, skew2: torch.Tensor, kurt: torch.Tensor, n: int) -> torch.Tensor:
    """The skewness and kurtosis part of the two-sided coverage of the Studentised mean of
    ``n`` draws to order ``1/n``: ``(2/n) x [kappa (x^2 - 3) / 12 - gamma^2 (x^4 + 2 x^2 - 3) / 18]
    phi(x)`` (Hall 1992, The Bootstrap and Edgeworth Expansion, sec. 2.6; ``gamma`` the
    skewness, ``kappa`` the excess kurtosis; the odd ``1/sqrt(n)`` terms cancel in a two-sided
    interval). Its normal-theory part, ``-(x^2 + 3) / 4``, is what Student's t with ``n - 1``
    dof corrects for an unbiased variance; :func:`_edgeworth_coverage` takes that part from
    the t distribution exactly, so draws without skewness or excess kurtosis get the t
    interval, not a wider one."""
    x2 = x * x
    q = x * (kurt * (x2 - 3.0) / 12.0 - skew2 * (x2 * x2 + 2.0 * x2 - 3.0) / 18.0)
    return 2.0 / n * q * torch.exp(-0.5 * x2) / math.sqrt(2.0 * math.pi)


def _edgeworth_coverage(x: torch.Tensor, skew2: torch.Tensor, kurt: torch.Tensor,
                        n: int) -> torch.Tensor:
    """``P(|T| <= x)`` for the Studentised mean of ``n`` draws (unbiased variance): Student's
    ``t_{n-1}`` coverage plus the skewness and kurtosis term of :func:`_skew_term`."""
    return _t_coverage(x, n - 1) + _skew_term(x, skew2, kurt, n)


#: Entries searched at once by :func:`inflate_skewed` (bounds its memory: a grid of ``13-25``
#: half-widths per entry; image RISE has an entry per pixel, target and input).
_SKEW_CHUNK = 1 << 15


def _skew_weights(x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, b)`` with ``_skew_term(x) = a kappa - b gamma^2``: tabulated once per grid point."""
    one = torch.ones((), dtype=x.dtype)
    zero = torch.zeros((), dtype=x.dtype)
    return _skew_term(x, zero, one, n), _skew_term(x, -one, zero, n)


def _first_reaching(tcov: torch.Tensor, a: torch.Tensor, b: torch.Tensor, skew2: torch.Tensor,
                    kurt: torch.Tensor) -> torch.Tensor:
    """Index of the first grid point (rows of ``tcov``, ``a``, ``b``: the t coverage and the
    skew weights of :func:`_skew_weights`, ``points x entries`` or ``points x 1``) whose expanded
    coverage reaches the target, per entry; the last row where none does."""
    reach = tcov + a * kurt[None] - b * skew2[None] >= _TWO_SIDED
    last = torch.full(skew2.shape, tcov.shape[0] - 1, dtype=torch.long)
    return torch.where(reach.any(0), reach.to(torch.uint8).argmax(0), last)


def _half_width(skew2: torch.Tensor, kurt: torch.Tensor, n: int) -> torch.Tensor:
    """The smallest half-width (in raw standard errors, on a ``_SKEW_STEP`` grid, at most
    ``2 * _SKEW_MAX``) whose expanded coverage reaches 95.45%: the first on a coarse grid, then
    the first on the fine grid of the coarse step before it (the coverage is not monotone for
    large skewness, so the search scans up from 2 instead of bisecting). The t coverage and the
    skew weights of every grid point are tabulated once (``coarse x steps`` fine points);
    entries go in chunks (memory)."""
    coarse = torch.arange(2.0, 2.0 * _SKEW_MAX + _SKEW_COARSE / 2, _SKEW_COARSE, dtype=skew2.dtype)
    steps = torch.arange(1, math.ceil(_SKEW_COARSE / _SKEW_STEP) + 1, dtype=skew2.dtype)
    fine_all = coarse[:, None] + steps[None, :] * _SKEW_STEP  # coarse x steps
    c_t, (c_a, c_b) = _t_coverage(coarse, n - 1)[:, None], _skew_weights(coarse, n)
    f_t, (f_a, f_b) = _t_coverage(fine_all, n - 1), _skew_weights(fine_all, n)
    out = torch.empty_like(skew2)
    for lo_i in range(0, skew2.numel(), _SKEW_CHUNK):
        s2, ku = skew2[lo_i:lo_i + _SKEW_CHUNK], kurt[lo_i:lo_i + _SKEW_CHUNK]
        j = _first_reaching(c_t, c_a[:, None], c_b[:, None], s2, ku)
        below = (j - 1).clamp_min(0)
        k = _first_reaching(f_t[below].T, f_a[below].T, f_b[below].T, s2, ku)
        x = torch.minimum(fine_all[below, k], coarse[j])  # coarse[j] reaches (or is the cap)
        out[lo_i:lo_i + _SKEW_CHUNK] = torch.where(j == 0, coarse[0], x)
    return out


def inflate_skewed(se: torch.Tensor, m2: torch.Tensor, m3: torch.Tensor, m4: torch.Tensor,
                   n: int, k0: float = 2.0) -> torch.Tensor:
    """:func:`inflate` (pooled, t-inflated with ``n - 1`` dof), widened where the draws are skewed.

    ``se`` is each entry's raw standard error of a mean of ``n`` i.i.d. draws (unbiased
    variance) and ``m2, m3, m4`` the draws' central moments (divided by ``n``). Where the
    second-order Edgeworth expansion of the Studentised mean (:func:`_edgeworth_coverage`:
    Student's t plus the skewness and kurtosis term, with the sample skewness and excess
    kurtosis adjusted for small samples as Joanes & Gill 1998 do) says that ``+-2`` of the
    inflated errors cover less than ``+-2`` normal deviations do (95.45%), the standard error
    is raised to ``x / 2`` raw errors, ``x`` the smallest half-width (in raw errors, on a grid
    of ``0.02``) whose expanded coverage reaches 95.45%, at most ``2 * _SKEW_MAX``. Never
    lowered; draws without skewness or excess kurtosis keep the t interval. The expansion sees
    only what the draws show: an interaction that none of them switched on leaves no skewness
    to correct. Entries with ``m2 = 0`` are left to :func:`inflate`.
    """
    out = inflate(se, float(n - 1), k0)
    if n < 4 or out.numel() == 0:
        return out
    ok = (m2 > 0) & (se > 0) & torch.isfinite(m3) & torch.isfinite(m4)
    safe = torch.where(ok, m2, torch.ones_like(m2))
    g1 = torch.where(ok, m3 / safe**1.5, torch.zeros_like(m2))
    g2 = torch.where(ok, m4 / (safe * safe) - 3.0, torch.zeros_like(m2))
    # small-sample adjusted skewness and excess kurtosis (Joanes & Gill 1998, G1 and G2)
    skew = g1 * math.sqrt(n * (n - 1)) / (n - 2)
    kurt = ((n + 1) * g2 + 6.0) * (n - 1) / ((n - 2) * (n - 3))
    skew2 = skew * skew
    # the inflated interval covers at least the t coverage (pooling only widens it), so only
    # entries whose skewness term is negative there can fall short of the target
    have = torch.where(ok, out / se.clamp_min(1e-300), torch.zeros_like(se))
    cand = ok & (_skew_term(2.0 * have, skew2, kurt, n) < 0)
    if not bool(cand.any()):
        return out
    idx = cand.nonzero(as_tuple=True)
    x_have = 2.0 * have[idx]
    # the t coverage at x_have: the target itself where pooling left the t interval as it was
    plain = x_have <= 2.0 * t_factor(float(n - 1)) * (1.0 + 1e-12)
    tcov = torch.full_like(x_have, _TWO_SIDED)
    if not bool(plain.all()):
        tcov[~plain] = _t_coverage(x_have[~plain], n - 1)
    short = tcov + _skew_term(x_have, skew2[idx], kurt[idx], n) < _TWO_SIDED
    if not bool(short.any()):
        return out
    idx = tuple(i[short] for i in idx)
    x = _half_width(skew2[idx], kurt[idx], n)
    widened = out.clone()
    widened[idx] = torch.maximum(out[idx], se[idx] * x / 2.0)
    return widened


def mean_interval(samples: torch.Tensor, level: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Interval of the mean of each column of ``samples`` (``n x k``, i.i.d. rows) at ``level``:
    Student's t with ``n - 1`` dof, each column on its own (no pooling across columns: they are
    different quantities, e.g. features of an importance plot), widened where the rows are
    skewed (:func:`inflate_skewed`). NaN below 2 rows (one row shows no spread).

    Coverage at 95% (400 seeds each, 2-200 rows): half-normal rows 0.92-0.98, lognormal rows
    0.85-0.95 (a percentile bootstrap of the same means: 0.47-0.95 and 0.46-0.94, e.g. 0.82 and
    0.72 at 5 rows). Rows where a rare large value is missing from every draw cannot show it
    (0.34 at 5 rows when 90% of the values are ~0, 0.92 at 50).
    """
    if not (isinstance(level, (int, float)) and 0.0 < level < 1.0):
        raise ValueError(f"mean_interval: level must be in (0, 1); got {level!r}")
    x = samples.to(torch.float64)
    n = int(x.shape[0])
    mean = x.mean(0)
    if n < 2:
        nan = torch.full_like(mean, float("nan"))
        return nan, nan.clone()
    se = x.std(0, unbiased=True) / math.sqrt(n)
    c = x - mean
    m2, m3, m4 = (c * c).mean(0), (c**3).mean(0), (c**4).mean(0)
    # +-2 wide errors span 95.45% (t-inflated by t_factor, then widened for skew): another
    # level keeps the widening and takes its own t quantile
    wide = inflate_skewed(se[None], m2[None], m3[None], m4[None], n, k0=0.0)[0]
    from scipy.stats import t as student_t

    half = wide * float(student_t.ppf(0.5 + level / 2.0, n - 1)) / t_factor(float(n - 1))
    return mean - half, mean + half
