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
  budget would fix it; never a small number.
"""

from __future__ import annotations

import functools
import math
import warnings

import torch

from ..errors import StderrWarning, user_stacklevel

__all__ = ["StderrWarning", "inflate", "inflate_welch", "moderate", "t_factor", "warn_undefined"]

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
    """``t_factor(d)`` for the integers ``d = first..last`` (one vectorised quantile call)."""
    from scipy.stats import t as student_t

    d = torch.arange(first, last + 1, dtype=torch.float64)
    return torch.as_tensor(student_t.ppf(_TAIL, d.numpy()), dtype=torch.float64) / 2.0
