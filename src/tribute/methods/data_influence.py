"""Influence functions: ``phi_bi = -s * grad v_b^T (H + d I)^-1 grad loss_i``.

Up-weighting training example ``i`` by ``eps`` in the objective
``reduce_i loss_i + l2/2 ||theta||^2`` moves its minimiser by ``-eps H^-1 grad loss_i``
(Cook & Weisberg 1982; Koh & Liang 2017), ``H`` the objective's Hessian. Including the example
is ``eps = s`` (``s = 1`` for a summed objective, ``1/n`` for a mean), so the first-order
change of the explained output ``v_b`` is the formula above: the data-game sign convention
(positive = including raises ``v``). It is the one-Newton-step approximation of leave-one-out
retraining and matches it closely on convex problems (ridge, logistic regression).

**Mean objectives** (``reduction="mean"``) renormalise their weights: retraining without
example ``i`` averages over the ``n - 1`` others, and scaling every weight at once changes
nothing, so the effect of including ``i`` is ``-(1/n) grad v_b^T (H + d I)^-1 (grad loss_i -
mean_j grad loss_j)``: the credits are centred over the training examples (they sum to 0 for
each test point). At an ``l2 > 0`` optimum ``mean_j grad loss_j = -l2 theta``, a shift
shared by every credit that the uncentred formula kept: it was 41% (rms) off leave-one-out
retraining of a mean ridge regression at every ``n`` (0.0026 vs rms 0.0063 at ``n = 160``);
centred, the error is second order (0.00018). Rankings and correlation scores over subsets of
one size are unchanged.

Solvers for the test-side ``(H + d I)^-1 grad v_b`` (all test points at once):

* ``"explicit"``: the full Hessian (``n_params^2`` memory) and a symmetric eigendecomposition;
* ``"cg"``: conjugate gradients with Hessian-vector products (Martens 2010; Koh & Liang 2017);
  its final relative residual is ``attr.extra["cg_residual"]``, and a ``RuntimeWarning`` says
  when ``max_iter`` stopped it above ``max(tol, 1e-6)``;
* ``"lissa"``: the Neumann-series recursion of Agarwal, Bullins & Hazan (2017) with full-batch
  Hessian-vector products (deterministic), ``x <- u + x - (H + d I) x / scale``; the error left
  by the truncated series is estimated from the contraction of its last steps
  (``attr.extra["lissa_error_estimate"]``, relative) and a ``RuntimeWarning`` names it above
  ``1e-3`` (an ill-conditioned ``H + d I`` needs more than ``10 x max_iter`` terms);
* ``"ekfac"``: the eigenvalue-corrected Kronecker-factored Gauss-Newton matrix of the model's
  ``nn.Linear`` and ``nn.Conv2d`` layers (George et al. 2018; Grosse et al. 2023),
  block-diagonal over layers — see :mod:`tribute.methods.data_ekfac` (its own damping rule: ``0.1 x`` each layer's mean
  eigenvalue).

The objective is :class:`~tribute.TrainingData`'s (``l2``, ``reduction``); with ``l2 > 0`` a
``RuntimeWarning`` says when the explained model is a stationary point of the *other* reduction's
objective (:func:`check_reduction`: a plain ``fit`` function that trains a sum, read as the
default mean).

Damping ``d`` (``damping=None``): 0 when the Hessian is positive definite with condition
number below ``1e8``; otherwise ``max(0, -lambda_min) + 1e-3 * lambda_max`` (shifts an
indefinite Hessian of a non-convex model to positive definite with a margin). Extremal
eigenvalues come from the eigendecomposition (explicit) or 50 power iterations (cg, lissa).
Power iterations can underestimate ``|lambda_min|``, leaving ``H + d I`` indefinite; CG detects
that (a search direction of non-positive curvature), LiSSA too (its step, which can only shrink
for a positive definite matrix within its scale, grows), and, with ``damping=None``, restarts:
the offending direction's curvature ``p^T H p / p^T p`` bounds ``lambda_min`` from above and
replaces the power iteration's estimate where lower, and the margin above ``-lambda_min`` is
doubled (at least ``1e-3 lambda_max``: it is 0 after a negative eigenvalue missed behind a
positive estimate) — at most 8 times, ``attr.extra["damping_restarts"]``; with a given
``damping`` it refuses instead of returning NaN. The damping used and the extremal eigenvalues
are reported in ``attr.extra``.

``indefinite="abs"`` (explicit solver) makes an indefinite Hessian positive definite by taking
absolute eigenvalues instead of shifting all of them: ``(|H| + d I)^-1`` with ``|H| = Q |Lambda|
Q^T`` and ``d = 1e-3 lambda_max`` (the "saddle-free" curvature of Dauphin et al. 2014). The shift
damps every direction by ``|lambda_min|``; the absolute value keeps the scale of the well-curved
directions and treats a negative-curvature direction like a positive one of the same size. For
a positive definite Hessian both rules are the same (``d = 0`` below condition number
``1e8``). On digits + MLP it raised LDS from 0.837 to 0.845 (see the data benchmark).

``loo_step=True`` (explicit solver) replaces ``H`` by the leave-one-out objective's Hessian
``H - s H_i`` for each example — one Newton step of the leave-one-out problem from the trained
optimum (Pregibon 1981; the "Newton" approximation of Koh, Ang, Teo & Liang 2019). With the
Gauss-Newton form ``H_i = J_i^T M_i J_i`` (``J_i`` the output Jacobian, ``M_i`` the loss's
output Hessian) the Woodbury identity needs only ``C x C`` solves per example:
``(H - s J^T M J)^-1 J^T r = H^-1 J^T (r + s M (I - s K M)^-1 K r)`` with
``K = J H^-1 J^T``. For ridge regression this is exact leave-one-out (``r / (1 - h_ii)``); for
logistic regression it removes most of the leverage error of the plain influence function.
It leaves out one example at a time, so it is refused with ``TrainingData(groups=...)`` (the
sum of a group's leave-one-out steps is not its leave-out; the plain first-order influence is
additive over a group).
For a *mean* objective (``reduction="mean"``) leaving an example out renormalises the other
weights to ``1/(n - 1)``, as retraining on the ``n - 1`` examples does: the leave-one-out
objective is ``n/(n - 1) (F_loss - s loss_i) + l2/2 ||theta||^2``, so its common Hessian part is
``c (H - l2 I) + l2 I`` (``c = n/(n - 1)``), its rank-``C`` update is ``s' H_i`` with
``s' = 1/(n - 1)``, and its gradient at the optimum gains ``(c - 1) l2 theta`` (before: weights
kept at ``1/n``, 8% off leave-one-out retraining on a mean ridge, for any ``loo_iters``).

``loo_iters=k >= 2`` (with ``loo_step=True``) keeps going: ``k`` chord-Newton iterations on
every leave-one-out objective at once, ``theta_i <- theta_i - (H - s H_i)^-1 grad F_{-i}(theta_i)``
with the Hessian fixed at the trained model (the same Woodbury solve) and the gradient of the
leave-one-out objective recomputed at each example's own iterate (``n x n_train`` gradient
evaluations per iteration, vmapped); the credit is then the exact output difference
``v(theta) - v(theta_i)``, not its linearisation. On a strictly convex objective (ridge,
logistic regression) the iterates converge linearly to the leave-one-out optimum — the iterated
approximate leave-one-out of Beirami et al. (2017) and Wilson, Kasy & Mackey (2020) — so the
credits approach exact leave-one-out retraining. The trained model is taken as the optimum of
the objective tilted by its final gradient (``F(theta) - grad F(theta_hat)^T theta``), so a
fit stopped short of the optimum does not leak its residual gradient into every credit.
Iterations stop early once every step is below ``tol`` times the largest displacement.

``subset_fraction=alpha`` (explicit solver, ``reduction="mean"``) evaluates the gradients at the
*expected model of the random subsets* the linear datamodeling score retrains on (each keeping a
fraction ``alpha`` of the data), not at the trained model. With mean-normalised weights a subset
``S`` gives its examples weight ``s / alpha`` (``s = 1/n``) and the others 0: the weights average
``s`` (the trained model is the centre) and vary by ``dw_k`` with variance
``v = s^2 (1 - alpha) / alpha * n / (n - 1)`` and covariance ``-v / (n - 1)`` (subsets of fixed
size). One Newton step from the trained optimum on the subset objective
(Koh, Ang, Teo & Liang 2019) expanded to second order in ``dw`` is
``dtheta = -R dg + R dH R dg`` with ``dg = sum_k dw_k g_k``, ``dH = sum_k dw_k A_k``, ``R`` the
(damped) inverse Hessian used for the credits and ``A_k = J_k^T M_k J_k`` the example's
Gauss-Newton Hessian. The first term averages to zero; the second does not (the second-order
group effect of Basu, You & Feizi 2020): the subset models sit, on average, at
``theta_bar = theta + v R sum_k A_k R (g_k - g_mean)`` (``g_mean`` centres the gradients for
subsets of fixed size). The best linear predictor of the output over the subset distribution
projects the expansion's cubic terms onto the mask; the pairings that run through this mean
displacement are kept by taking the test and training gradients at ``theta_bar`` (the Hessian
and its damping stay those of the trained model). Costs the training Jacobians (``n_train x C x
n_params`` in blocks) and one more pass of gradients. On digits + MLP seed 0 (the tuning seed;
``alpha = 1/2`` is fixed by the score's subsets, nothing was fitted) it raised the LDS of
``indefinite="abs"`` from 0.845 to 0.858, and on the held-out seeds 1-4 from 0.862, 0.873,
0.851, 0.858 to 0.875, 0.884, 0.867, 0.873 (``benchmarks/bench_data_attribution.py``).

``n_models=k`` averages the credits of every solver over an ensemble: the explained model and
``k - 1`` models trained by ``fit`` on all of ``X_train`` with seeds derived from ``seed``
(:meth:`tribute.games.data.DataGame.ensemble`), each with its own Hessian and damping (what
TRAK does with its projected kernels, Park et al. 2023). Retraining on a subset is itself
seed-dependent for a non-convex model, and the ensemble averages over that. ``attr.extra``
reports the explained model's damping, the ensemble's training seeds and the seconds its
``k - 1`` fits took (``fit_seconds``; ``seconds`` includes them).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch

from ..attribution import Attribution
from ..errors import InputError, user_stacklevel
from ..games.base import Game
from ..games.data import DataGame
from ..params import BOOL, NONE, Interval, Options, declare
from .base import Cost, Method, Tags, register
from .data_common import (
    as_data_game,
    data_sizes,
    ensemble_scores,
    fewer_test_points,
    require_finite_losses,
    score_cost,
    settings_that_fit,
    stream_scores,
)
from .data_ekfac import ekfac_factors, ekfac_solve

__all__ = ["Influence", "auto_damping", "check_reduction"]

SOLVERS = ("explicit", "cg", "lissa", "ekfac")
#: Estimated relative error of LiSSA's truncated series above which ``influence`` warns.
LISSA_WARN = 1e-3
#: Relative residual above which CG stopped by ``max_iter`` (short of ``tol``) warns.
CG_WARN = 1e-6


def auto_damping(lam_min: float, lam_max: float) -> float:
    """The automatic damping rule of the module docstring."""
    if lam_max <= 0:
        return 1.0
    if lam_min > 1e-8 * lam_max:
        return 0.0
    return max(0.0, -lam_min) + 1e-3 * lam_max


#: The declared objective's gradient at the explained model this many times the other
#: reduction's flags a ``reduction`` that is not the one the model was trained with.
REDUCTION_RATIO = 100.0


def check_reduction(g: DataGame, method: str) -> None:
    """Warn when the explained model is a stationary point of the *other* reduction's objective.

    With ``l2 > 0`` the two objectives ``reduce_i loss_i + l2/2 ||theta||^2`` (sum, mean) have
    different minimisers, so a model trained with one has a gradient of the other that is not
    small. ``TrainingData``'s ``reduction`` defaults to ``fit.reduction`` and else ``"mean"``:
    a plain ``fit`` function that trains a sum (a ridge, 20 rows, l2 0.7) left the credits 2.3x
    further off leave-one-out (0.26 vs 0.11, scale 0.59), silently. One pass of training
    gradients (``n_train`` rows); nothing with ``l2 = 0`` (the two are then proportional)."""
    if g.data.l2 <= 0 or g.data.n_train < 2:
        return
    p = g.model_params()
    total = torch.zeros(g.n_params, dtype=torch.float64)
    for _, G in g.train_grads(p):
        total += G.sum(0)
    reg = g.data.l2 * g.flatten(p)
    n = g.data.n_train
    res = {"sum": float((total + reg).norm()), "mean": float((total / n + reg).norm())}
    mine = g.data.reduction
    other = "mean" if mine == "sum" else "sum"
    # each gradient relative to its own objective's scale: the summed data term is n times the
    # mean's, so a correctly declared sum that has not converged (n = 300, l2 = 1e-4, a partly
    # trained MLP) had a raw mean gradient far below its own and was told to switch to 'mean'
    rel = {r: res[r] / max(float(total.norm()) / (1.0 if r == "sum" else n) + float(reg.norm()),
                           1e-300) for r in res}
    if rel[mine] > 1e-6 and rel[other] * REDUCTION_RATIO < rel[mine]:
        warnings.warn(
            f"{method}: the explained model is a stationary point of the training objective with "
            f"reduction={other!r} (gradient norm {res[other]:.3g}), not of the declared "
            f"reduction={mine!r} (gradient norm {res[mine]:.3g}, l2={g.data.l2:g}); the Hessian "
            f"and the removal scale follow the declared objective, so the credits are off. Pass "
            f"TrainingData(reduction={other!r}) (or give fit a .reduction attribute).",
            RuntimeWarning, stacklevel=user_stacklevel())


def _power_extremes(game: DataGame, n_params: int, iters: int, seed: int,
                    params: dict[str, torch.Tensor] | None = None) -> tuple[float, float]:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n_params, 1, generator=g, dtype=torch.float64)
    lam_max = 0.0
    for _ in range(iters):
        w = game.hvp(v / v.norm(), params)
        lam_max = float((v / v.norm()).T @ w)
        v = w
    shift = abs(lam_max)
    v = torch.randn(n_params, 1, generator=g, dtype=torch.float64)
    mu = 0.0
    for _ in range(iters):
        u = v / v.norm()
        w = shift * u - game.hvp(u, params)
        mu = float(u.T @ w)
        v = w
    return shift - mu, lam_max


class _Indefinite(Exception):
    """CG met a direction of non-positive curvature, or the LiSSA series grew: ``H + d I`` is not
    positive definite (or its spectrum exceeds LiSSA's scale).

    ``rayleigh``: ``p^T H p / p^T p`` of the offending direction (CG's search direction, LiSSA's
    growing step), an upper bound on ``lambda_min`` that the power iteration may have missed
    (None when not known)."""

    def __init__(self, rayleigh: float | None = None) -> None:
        super().__init__(rayleigh)
        self.rayleigh = rayleigh


#: Iterations between LiSSA's checks of its step size.
_LISSA_CHECK = 50


def _lissa(game: DataGame, Bm: torch.Tensor, d: float, scale: float, iters: int,
           params: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, float]:
    """``(H + d I)^-1 Bm`` by the Neumann recursion ``X <- Bm + X - (H + d I) X / scale``.

    Each step is ``(I - (H + d I) / scale)`` applied to the previous one, so with every
    eigenvalue of ``(H + d I) / scale`` in ``(0, 2)`` every component of the step shrinks and its
    norm never grows. A step that grows (checked every :data:`_LISSA_CHECK` iterations) or a
    non-finite iterate means an eigenvalue outside that range — a negative one missed by the
    power iteration — and the series diverges: raises :class:`_Indefinite` instead of returning
    a huge or NaN answer. The recursion itself is unchanged.

    Returns the solution and an estimate of its relative error: the series' remaining tail
    ``step * rho / (1 - rho)`` over the iterate's norm, with ``rho`` the per-iteration
    contraction of the last two checked steps (the slowest direction's ``1 - lambda / scale``,
    which dominates late steps); ``inf`` when the steps stopped shrinking measurably."""
    U = Bm.clone()
    last: float | None = None
    last_it = 0
    err = math.inf
    for it in range(1, iters + 1):
        new = Bm + U - (game.hvp(U, params) + d * U) / scale
        if it % _LISSA_CHECK == 0 or it == iters:
            step = float((new - U).norm())
            if not math.isfinite(step) or not bool(torch.isfinite(new).all()):
                raise _Indefinite
            if last is not None and step > last * (1 + 1e-6) and step > 1e-12 * float(new.norm()):
                D = new - U  # the growing step: dominated by the eigenvector outside the range
                raise _Indefinite(float((D * game.hvp(D, params)).sum() / (D * D).sum().clamp_min(1e-300)))
            size = max(float(new.norm()), 1e-300)
            if step <= 1e-14 * size:
                err = step / size
            elif last is not None and last > 0 and step < last:
                rho = (step / last) ** (1.0 / (it - last_it))
                err = step * rho / (1.0 - rho) / size if rho < 1.0 else math.inf
            last, last_it = step, it
        U = new
    return U / scale, err


def _cg(game: DataGame, Bm: torch.Tensor, d: float, iters: int, tol: float,
        params: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, int, float]:
    """Solve ``(H + d I) X = Bm`` column-wise by conjugate gradients.

    Returns the solution, the iterations run and the largest relative residual
    ``||Bm - (H + d I) X|| / ||Bm||`` over the columns (the recursion's residual).

    Raises :class:`_Indefinite` when a search direction of a column not yet converged has
    ``p^T (H + d I) p <= 0``."""
    X = torch.zeros_like(Bm)
    R = Bm.clone()
    P = R.clone()
    rs = (R * R).sum(0)
    b_norm = Bm.norm(dim=0).clamp_min(1e-300)
    done = 0
    for it in range(1, iters + 1):
        done = it
        AP = game.hvp(P, params) + d * P
        curv = (P * AP).sum(0)
        bad = (curv <= 0) & (rs > 0)
        if bool(torch.any(bad)):
            j = int(torch.nonzero(bad)[0])
            raise _Indefinite(float(curv[j] / (P[:, j] @ P[:, j]).clamp_min(1e-300)) - d)
        alpha = rs / curv.clamp_min(1e-300)
        X += alpha * P
        R -= alpha * AP
        rs_new = (R * R).sum(0)
        if bool(torch.all(rs_new.sqrt() <= tol * b_norm)):
            break
        P = R + (rs_new / rs.clamp_min(1e-300)) * P
        rs = rs_new
    return X, done, float((R.norm(dim=0) / b_norm).max())


def _loo_scales(g: DataGame) -> tuple[float, float]:
    """``(c, s')`` of the leave-one-out objectives ``c (F_loss - s loss_i) + l2/2 ||theta||^2``.

    A summed objective drops the example (``c = 1``, ``s' = s = 1``). Retraining a *mean*
    objective on the other ``n - 1`` examples renormalises their weights to ``1/(n - 1)``
    (what ``fit`` and the retrain bank do): ``c = n/(n - 1)``, ``s' = c s = 1/(n - 1)``.
    """
    n = g.data.n_train
    if g.data.reduction != "mean" or n < 2:
        return 1.0, g.removal_scale
    c = n / (n - 1)
    return c, c * g.removal_scale


def _loo_step_scores(g: DataGame, p: dict[str, torch.Tensor], U: torch.Tensor,
                     Hinv: torch.Tensor) -> torch.Tensor:
    """``B x n`` scores of one Newton step on each leave-one-out objective (Woodbury form).

    ``Hinv`` (and ``U = Hinv grad v``) invert the leave-one-out objectives' common part
    ``c (H - l2 I) + l2 I`` (:func:`_loo_scales`). With ``c > 1`` the step also carries the
    renormalisation term ``(c - 1) l2 theta`` of the leave-one-out gradient at the optimum.
    """
    c, s = _loo_scales(g)
    out = g.train_outputs(p)
    r_all, M_all = g.loss_output_derivatives(out.reshape(out.shape[0], -1), g.y_train)
    phi = torch.empty(U.shape[1], g.data.n_train, dtype=torch.float64)
    e = None
    if c != 1.0:  # the leave-one-out gradient at theta is -(s' g_i + e), e = (c - 1) l2 theta
        e = (c - 1.0) * g.data.l2 * g.flatten(p)
        Ue = e @ U  # B
        He = Hinv @ e  # P
    for start, J in g.train_jacobians(p):
        rows = slice(start, start + J.shape[0])
        r, M = r_all[rows], M_all[rows]
        K = torch.einsum("ncp,pq,ndq->ncd", J, Hinv, J)
        eye = torch.eye(K.shape[1], dtype=K.dtype).expand_as(K)
        Kr = (K @ r[:, :, None])
        corr = M @ torch.linalg.solve(eye - s * K @ M, Kr)
        sv = r + s * corr[:, :, 0]  # n x C
        JU = torch.einsum("ncp,pb->nbc", J, U)  # n x B x C
        phi[:, rows] = -s * torch.einsum("nbc,nc->bn", JU, sv)
        if e is not None:
            JHe = torch.einsum("ncp,p->nc", J, He)
            ce = M @ torch.linalg.solve(eye - s * K @ M, JHe[:, :, None])
            phi[:, rows] -= Ue[:, None] + s * torch.einsum("nbc,nc->bn", JU, ce[:, :, 0])
    return phi


def _woodbury_blocks(g: DataGame, p: dict[str, torch.Tensor], Hinv: torch.Tensor
                     ) -> list[tuple[slice, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per block of examples: ``(rows, J, M, (I - s' K M)^-1)`` for the leave-one-out Hessians."""
    s = _loo_scales(g)[1]
    out = g.train_outputs(p)
    _, M_all = g.loss_output_derivatives(out.reshape(out.shape[0], -1), g.y_train)
    blocks = []
    for start, J in g.train_jacobians(p):
        rows = slice(start, start + J.shape[0])
        M = M_all[rows]
        K = torch.einsum("ncp,pq,ndq->ncd", J, Hinv, J)
        eye = torch.eye(K.shape[1], dtype=K.dtype).expand_as(K)
        blocks.append((rows, J, M, torch.linalg.inv(eye - s * K @ M)))
    return blocks


def _loo_newton_scores(g: DataGame, p: dict[str, torch.Tensor], Hinv: torch.Tensor,
                       iters: int, tol: float) -> tuple[torch.Tensor, int]:
    """``B x n`` credits ``v(theta) - v(theta_i)`` after chord-Newton iterations (module doc).

    The leave-one-out objectives are ``c (F_loss - s loss_i) + l2/2 ||theta||^2``
    (:func:`_loo_scales`; ``Hinv`` inverts ``c (H - l2 I) + l2 I``), tilted like the trained one.
    """
    c, s = _loo_scales(g)
    n = g.data.n_train
    flat0 = g.flatten(p)
    buf = g.buffers_of(p)
    blocks = _woodbury_blocks(g, p, Hinv)
    tilt = g.loo_objective_grads(flat0[None], None, buf)[0]
    theta = flat0.expand(n, -1).clone()
    idx = torch.arange(n)
    done = 0
    for it in range(1, iters + 1):
        done = it
        G = g.loo_objective_grads(theta, idx, buf) - tilt  # n x P
        if c != 1.0:  # c (grad F - tilt - l2 theta - s g_i) + l2 theta
            G = c * G - (c - 1.0) * g.data.l2 * theta
        HG = G @ Hinv
        step = HG.clone()
        for rows, J, M, F in blocks:
            JHG = torch.einsum("ncp,np->nc", J, HG[rows])
            corr = s * (M @ (F @ JHG[:, :, None]))[:, :, 0]
            step[rows] += torch.einsum("ncp,nc->np", J, corr) @ Hinv
        theta -= step
        size = step.norm(dim=1)
        if it == 1:
            first = size
        moved = float((theta - flat0).norm(dim=1).max())
        if float(size.max()) <= tol * max(moved, 1e-300):
            break
    if done > 1:
        # a contracting iteration shrinks every example's step; one that does not diverges
        # (a non-convex objective, or a model far from its optimum) and its credits are noise
        grew = ~(size <= first)
        if bool(grew.any()):
            worst = int(torch.argmax(torch.nan_to_num(size / first.clamp_min(1e-300), nan=math.inf)))
            raise InputError(
                f"influence: loo_iters={iters} diverged for {int(grew.sum())} of {n} examples "
                f"(example {worst}: step {float(first[worst]):.3g} at iteration 1, "
                f"{float(size[worst]):.3g} at iteration {done}); the chord-Newton iterations "
                "converge only where the training objective is convex around the trained model "
                "(e.g. ridge, logistic regression trained to convergence). Use loo_iters=1 (or "
                "loo_step=False) for this model, or retraining (method='feature_ablation')."
            )
    v0 = g.test_outputs_at(flat0[None], buf)[0]  # B
    phi = v0[:, None] - g.test_outputs_at(theta, buf).T
    return phi, done


def _subset_centre(g: DataGame, p: dict[str, torch.Tensor], evecs: torch.Tensor,
                   denom: torch.Tensor, alpha: float) -> tuple[dict[str, torch.Tensor], float]:
    """Parameters ``theta_bar`` of the subset distribution's expected Newton model (module doc).

    ``theta_bar = theta + v R sum_k J_k^T M_k J_k R (g_k - g_mean)`` with
    ``R = evecs diag(1 / denom) evecs^T`` and ``v = s^2 (1 - alpha) / alpha * n / (n - 1)``. Returns the
    parameters and the norm of the shift.
    """
    s = g.removal_scale
    n = g.data.n_train

    def R(V: torch.Tensor) -> torch.Tensor:
        return evecs @ ((evecs.T @ V) / denom[:, None])

    Gt = torch.empty(n, evecs.shape[0], dtype=torch.float64)
    for start, Gb in g.train_grads(p):
        Gt[start : start + Gb.shape[0]] = Gb
    Y = R((Gt - Gt.mean(0, keepdim=True)).T)  # P x n: R (g_k - g_mean)
    del Gt
    out = g.train_outputs(p)
    _, M_all = g.loss_output_derivatives(out.reshape(out.shape[0], -1), g.y_train)
    z = torch.zeros(evecs.shape[0], dtype=torch.float64)
    for start, J in g.train_jacobians(p):
        rows = slice(start, start + J.shape[0])
        JY = torch.einsum("ncp,pn->nc", J, Y[:, rows])
        z += torch.einsum("ncp,nc->p", J, (M_all[rows] @ JY[:, :, None])[:, :, 0])
    # fixed-size subsets (sampling without replacement): Cov(w_j, w_k) = v (delta_jk - (1 -
    # delta_jk) / (n - 1)) with v = s^2 (1 - alpha) / alpha * n / (n - 1) — the centring above
    shift = (s * s * (1 - alpha) / alpha * n / max(n - 1, 1)) * R(z[:, None])[:, 0]
    flat = g.flatten(p)
    return g.unflatten(flat + shift), float(shift.norm())


@register
class Influence(Method):
    """Influence functions (Koh & Liang 2017): inverse-Hessian-preconditioned gradient products.

    Args:
        solver: ``"explicit"``, ``"cg"``, ``"lissa"`` or ``"ekfac"`` (``nn.Linear``/``nn.Conv2d`` layers).
            default="explicit".
        damping: ``d`` added to the Hessian's diagonal; None chooses it (module docstring).
        max_iter: CG iterations / LiSSA depth. default=200 (LiSSA uses ``10 x``).
        tol: relative residual at which CG stops. default=1e-10.
        loo_step: Newton step of the leave-one-out objective (explicit solver; module
            docstring). default=False.
        loo_iters: Newton iterations on each leave-one-out objective with ``loo_step=True``:
            1 is the one linearised step; ``k >= 2`` iterates (module docstring; stops early
            at relative step ``tol``) and credits exact output differences. default=1.
        indefinite: how an indefinite Hessian is made positive definite: ``"shift"`` (add
            ``|lambda_min|`` plus a margin to every eigenvalue) or ``"abs"`` (absolute
            eigenvalues plus ``1e-3 lambda_max``; explicit solver). default="shift".
        n_models: average the credits over the explained model and ``n_models - 1`` models
            trained by ``fit`` on all of ``X_train`` (seeds from ``seed``; module docstring).
            default=1.
        subset_fraction: take the gradients at the Newton model's expected parameters over random
            subsets keeping this fraction of the data (``0.5`` for the LDS's halves; explicit
            solver, mean-reduced objectives; module docstring). None keeps the trained model.
            default=None.

    Reference: Koh & Liang (2017), "Understanding Black-box Predictions via Influence
    Functions" (ICML); Agarwal, Bullins & Hazan (2017), "Second-Order Stochastic Optimization
    for Machine Learning in Linear Time" (LiSSA); Basu, You & Feizi (2020), "On Second-Order
    Group Influence Functions for Black-Box Predictions" (ICML) for ``subset_fraction``.
    """

    name = "influence"
    tags = Tags(family="data_gradient", needs_baseline=False, games=("data",))
    paper = "Koh & Liang (2017), Understanding Black-box Predictions via Influence Functions"
    constraints = declare({
        "solver": Options(SOLVERS),
        "damping": (NONE, Interval(float, 0.0, math.inf, closed="left")),
        "max_iter": Interval(int, 1),
        "tol": Interval(float, 0.0, math.inf, closed="left"),
        "loo_step": BOOL,
        "indefinite": Options(("shift", "abs")),
        "loo_iters": Interval(int, 1),
        "n_models": Interval(int, 1),
        "subset_fraction": (NONE, Interval(float, 0.0, 1.0, closed="neither")),
    })

    def __init__(self, solver: str = "explicit", damping: float | None = None,
                 max_iter: int = 200, tol: float = 1e-10, loo_step: bool = False,
                 indefinite: str = "shift", loo_iters: int = 1, n_models: int = 1,
                 subset_fraction: float | None = None) -> None:
        self.solver = solver
        self.damping = damping
        self.max_iter = max_iter
        self.tol = tol
        self.loo_step = loo_step
        self.indefinite = indefinite
        self.loo_iters = loo_iters
        self.n_models = n_models
        self.subset_fraction = subset_fraction

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """Per model: the test and training gradient passes of :func:`score_cost` plus the
        solver's own — ``explicit``: the ``n_params^2`` Hessian (one forward pass over the
        training rows, its vmapped blocks) and its eigendecomposition (eigenvectors and LAPACK
        workspace, ``3 n_params^2``), ``loo_step`` another two ``n_params^2`` and the training
        Jacobians (all of them, ``n_train x C x n_params``, with ``loo_iters >= 2``, plus four
        ``n_train x n_params`` iterates); ``cg`` / ``lissa``: 100 power-iteration and
        ``max_iter`` (LiSSA ``10 x``) Hessian-vector products over the training rows (upper
        bound: CG may stop early); ``subset_fraction``: a training gradient, output and Jacobian
        pass (two ``n_train x n_params`` matrices) and the test gradients again; ``ekfac``: two passes over the training rows, per layer the
        Kronecker factors and their eigenbases; ``n_models - 1`` ensemble fits (training)."""
        n, B, P, C = data_sizes(game)
        k = int(self.n_models) if isinstance(self.n_models, int) else 1
        f64 = 8
        act = int(game.activation_bytes())  # type: ignore[attr-defined]
        design = 2 * P * B * f64  # U and its transposed copy
        solve, rows, flops = 0, 0, 0.0
        note = ""
        if self.solver == "explicit":
            hr, hc = game.hessian_blocks()  # type: ignore[attr-defined]
            solve = 4 * P * P * f64 + 2 * hc * P * f64 + hr * hc * act
            rows = n
            flops = 8.0 * n * P * P + 4.0 * P**3
            note = f"influence(solver='explicit'): the {P:,} x {P:,} Hessian and its eigenvectors"
            if self.loo_step:
                blk = max(1, min(n, int(game.block_size())) // max(C, 1))  # type: ignore[attr-defined]
                solve += 2 * P * P * f64 + 3 * blk * C * P * f64 + n * C * (C + 1) * f64
                rows += 2 * n
                flops += 2.0 * n * C * P * P
                iters = int(self.loo_iters) if isinstance(self.loo_iters, int) else 1
                if iters > 1:  # every Jacobian, the iterates; a vmapped pass per iterate and row
                    # holds its logits, softmax and their gradient: ~3 activations each
                    solve += n * C * P * f64 + 5 * n * P * f64 + 3 * n * n * act
                    rows += (2 * iters + 1) * n + 2 * B
                    flops += iters * (2.0 * n * P * P + 4.0 * n * n * P)
            if self.subset_fraction is not None:
                # _subset_centre: the training gradients and R(g_k - g_mean) (two n x P), the
                # training outputs, the Jacobian blocks (two passes, as loo_step's); then the
                # test gradients again
                blk = max(1, min(n, int(game.block_size())) // max(C, 1))  # type: ignore[attr-defined]
                solve += 2 * n * P * f64 + 3 * blk * C * P * f64
                rows += 4 * n + B
                flops += 4.0 * n * P * P + 4.0 * n * C * P
        elif self.solver in ("cg", "lissa"):
            its = int(self.max_iter) if isinstance(self.max_iter, int) else 200
            hvps = 100 + (its if self.solver == "cg" else 10 * its)
            hv_rows = min(n, 4 * int(game.block_size()))  # type: ignore[attr-defined]
            solve = 6 * P * B * f64 + 2 * B * hv_rows * act
            rows = hvps * n
            flops = 8.0 * n * P * (100 + (hvps - 100) * B)
            note = f"influence(solver={self.solver!r}): {hvps:,} Hessian-vector products"
        elif self.solver == "ekfac":
            layers = []
            try:
                params = game.model_params()  # type: ignore[attr-defined]
                mods = dict(game.module.named_modules())  # type: ignore[attr-defined]
                for m, w, b in game.linear_layers():  # type: ignore[attr-defined]
                    out_f = int(params[w].shape[0])
                    in_f = int(params[w][0].numel()) + (b is not None)
                    layers.append((out_f, in_f, isinstance(mods[m], torch.nn.Conv2d)))
            except Exception:  # not a Kronecker-factored model: attribute() refuses it
                pass
            blk = min(n, int(game.block_size()))  # type: ignore[attr-defined]
            # factors and eigenbases; a block's rotated per-example weight gradients (Conv2d)
            solve = sum(3 * (o * o + i * i) + 2 * o * i + blk * C * (o * i if conv else o + i)
                        for o, i, conv in layers) * f64
            solve += blk * act * C
            rows = 2 * n
            flops = sum(2.0 * n * C * (o * o + i * i) + 4.0 * (o**3 + i**3) for o, i, _ in layers)
            note = f"influence(solver='ekfac'): Kronecker factors of {len(layers)} layer(s)"
        data = getattr(game, "data", None)
        check = n if float(getattr(data, "l2", 0.0)) > 0 and n > 1 else 0  # check_reduction
        return score_cost(game, self.name, models=k, fits=k - 1, design=design, solve=solve,
                          rows=k * rows + check, flops=k * flops, note=note)

    def settings_that_fit(self, game: Game, budget: int | None, cap: int) -> list[str]:
        def other(solver: str) -> Callable[[], Cost]:
            return lambda: Influence(solver=solver, n_models=self.n_models).estimate_cost(game, budget)

        parts: list[str] = []
        if self.solver == "explicit":
            try:
                game.linear_layers()  # type: ignore[attr-defined]
                alts = [("solver='ekfac'", other("ekfac")), ("solver='cg'", other("cg"))]
            except Exception:
                alts = [("solver='cg'", other("cg"))]
            parts += settings_that_fit(alts, cap)
        return parts + fewer_test_points(lambda g: self.estimate_cost(g, budget), game, cap)

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        g = as_data_game(game, self.name)
        # each parameter alone is checked by the declaration (validate_params); these are the
        # combinations, and what depends on the training objective
        if self.loo_iters > 1 and not self.loo_step:
            raise InputError(
                f"method 'influence': loo_iters={self.loo_iters} iterates the leave-one-out Newton "
                "step; pass loo_step=True with it (or leave loo_iters=1)."
            )
        if self.indefinite == "abs" and self.solver != "explicit":
            raise InputError(
                f"method 'influence': indefinite='abs' needs the eigendecomposition of "
                f"solver='explicit' (got solver={self.solver!r}); use indefinite='shift' with "
                "iterative solvers."
            )
        if self.loo_step and g.data.n_players != g.data.n_train:
            # each example's own leave-one-out step, summed over a group, is not the group's
            # leave-out (15% off leave-group-out retraining on a ridge regression, groups of 3)
            raise InputError(
                f"method 'influence': loo_step=True leaves out one training example at a time, but "
                f"this TrainingData has groups ({g.data.n_players} players over {g.data.n_train} "
                "examples) and summing the examples' leave-one-out steps is not a group's "
                "leave-out. Use loo_step=False (first order, additive over a group), or "
                "method='feature_ablation' for exact leave-group-out retraining."
            )
        if self.loo_step and self.solver != "explicit":
            raise InputError(f"method 'influence': loo_step=True needs solver='explicit' (it uses "
                             f"H^-1 explicitly); got solver={self.solver!r}.")
        a = self.subset_fraction
        if a is not None:
            if self.solver != "explicit" or self.loo_step:
                raise InputError(
                    f"method 'influence': subset_fraction={a!r} needs solver='explicit' without loo_step "
                    f"(got solver={self.solver!r}, loo_step={self.loo_step!r})."
                )
            if g.data.reduction != "mean":
                raise InputError(
                    f"method 'influence': subset_fraction={a!r} needs a mean-reduced objective (the trained "
                    f"model is then the centre of the subset distribution); this TrainingData has "
                    f"reduction={g.data.reduction!r}. Leave subset_fraction=None."
                )
        require_finite_losses(g, self.name)
        check_reduction(g, self.name)
        phi, extra = ensemble_scores(g, self.n_models, seed, self.name,
                                     lambda p: self._scores(g, p, seed))
        vals = g.to_players(phi)[:, None, :]
        return g.attribution(vals, self.name, {**self.get_params(), "damping_used": extra["damping"]},
                             extra={"n_grad_evals": g.n_grad_evals, **extra})

    def _scores(self, g: DataGame, p: dict[str, torch.Tensor], seed: int
                ) -> tuple[torch.Tensor, dict[str, object]]:
        """One model's ``B x n_train`` credits at parameters ``p`` and its ``attr.extra``."""
        G = g.test_grads(p)  # B x P
        n_p = G.shape[1]
        extra: dict[str, object] = {"solver": self.solver}
        if self.solver == "explicit":
            H = g.hessian(p)
            evals, evecs = torch.linalg.eigh(H)
            lo, hi = float(evals[0]), float(evals[-1])
            if self.indefinite == "abs":
                hi = float(evals.abs().max())
                auto = 0.0 if lo > 1e-8 * hi else 1e-3 * hi
                d = auto if self.damping is None else float(self.damping)
                denom = evals.abs() + d
            else:
                d = auto_damping(lo, hi) if self.damping is None else float(self.damping)
                denom = evals + d
            if bool(torch.any(denom <= 0)):
                raise InputError(
                    f"influence: H + {d:g} I is not positive definite (lambda_min={lo:.3g}); "
                    "raise damping or leave damping=None."
                )
            if self.subset_fraction is not None:
                p, extra["subset_shift_norm"] = _subset_centre(g, p, evecs, denom,
                                                               float(self.subset_fraction))
                G = g.test_grads(p)
            U = evecs @ ((evecs.T @ G.T) / denom[:, None])  # P x B
        elif self.solver == "ekfac":
            layers = ekfac_factors(g, p)
            lam = torch.cat([L.Lam.reshape(-1) for L in layers]) + g.data.l2
            lo, hi = float(lam.min()), float(lam.max())
            U, per_layer = ekfac_solve(g, layers, G, self.damping)
            if any(float(L.Lam.min()) + g.data.l2 + d <= 0 for L, d in zip(layers, per_layer)):
                raise InputError(
                    f"influence: the EK-FAC curvature plus damping {per_layer} has a zero "
                    "eigenvalue (no l2 in the objective); pass damping > 0 or leave damping=None."
                )
            extra["damping_per_layer"] = dict(zip([L.module for L in layers], per_layer))
            d = float(sum(per_layer) / len(per_layer))
        else:
            lo, hi = _power_extremes(g, n_p, 50, seed, p)
            d = auto_damping(lo, hi) if self.damping is None else float(self.damping)
            lissa_err, cg_res = math.nan, math.nan
            for restart in range(9):
                try:
                    if self.solver == "cg":
                        U, its, cg_res = _cg(g, G.T.contiguous(), d, self.max_iter, float(self.tol), p)
                        extra["cg_residual"] = cg_res
                    else:
                        scale = 1.1 * (hi + d)
                        U, lissa_err = _lissa(g, G.T.contiguous(), d, scale, 10 * self.max_iter, p)
                        its = 10 * self.max_iter
                        extra["lissa_scale"] = scale
                        extra["lissa_error_estimate"] = lissa_err
                    break
                except _Indefinite as exc:
                    # the offending direction's curvature bounds lambda_min from above: power
                    # iterations that missed a negative eigenvalue (lambda_min +0.0005 reported,
                    # some direction at -0.004) kept d = 0, and "doubling" a zero margin left it
                    # 0 for all 8 restarts, then called H indefinite with a positive lambda_min
                    rq = exc.rayleigh
                    seen = f"; a direction of curvature {rq:.3g} was found" if rq is not None else ""
                    margin = d - max(0.0, -lo)  # what d added above the lambda_min bound
                    if rq is not None and math.isfinite(rq):
                        lo = min(lo, rq)
                    if self.damping is not None or restart == 8:
                        how = ("CG found a direction of non-positive curvature of H + d I"
                               if self.solver == "cg" else "the LiSSA series diverged")
                        raise InputError(
                            f"influence: H + {d:g} I is not positive definite ({how}{seen}; "
                            f"lambda_min <= {lo:.3g}); raise damping above {max(0.0, -lo):.3g}, "
                            "leave damping=None, or use solver='explicit'."
                        ) from None
                    d = max(0.0, -lo) + max(2 * margin, 1e-3 * max(hi, 1e-12))
            extra["iterations"] = its
            extra["damping_restarts"] = restart
            if self.solver == "cg" and its == self.max_iter and cg_res > max(float(self.tol), CG_WARN):
                warnings.warn(
                    f"influence(solver='cg'): conjugate gradients stopped at max_iter={its} with "
                    f"relative residual {cg_res:.2g} (tol={float(self.tol):g}); the credits are "
                    "not converged. Raise max_iter, raise damping, or use solver='explicit'.",
                    RuntimeWarning, stacklevel=user_stacklevel())
            if self.solver == "lissa" and lissa_err > LISSA_WARN:
                warnings.warn(
                    f"influence(solver='lissa'): the Neumann series has not converged after {its} "
                    f"terms (estimated relative error {lissa_err:.2g} > {LISSA_WARN:g}; H + {d:.3g} I "
                    f"has condition number up to ~{(hi + d) / max(lo + d, 1e-300):.3g}). Raise "
                    "max_iter (LiSSA runs 10 x max_iter terms), raise damping, or use "
                    "solver='cg' or 'explicit'.", RuntimeWarning, stacklevel=user_stacklevel())
        extra.update(damping=d, lambda_min=lo, lambda_max=hi)
        if self.loo_step:
            c = _loo_scales(g)[0]
            if c != 1.0:  # mean objective: the other examples' weights become 1/(n - 1)
                denom = c * denom - (c - 1.0) * g.data.l2
                if bool(torch.any(denom <= 0)):
                    raise InputError(
                        f"influence: the leave-one-out Hessians c (H + {d:g} I) - (c - 1) l2 I of "
                        f"this mean objective (c = {c:.6g}, l2 = {g.data.l2:g}) are not positive "
                        "definite; pass a larger damping."
                    )
                U = evecs @ ((evecs.T @ G.T) / denom[:, None])
            Hinv = evecs @ (evecs.T / denom[:, None])
            if self.loo_iters > 1:
                phi, extra["loo_iterations"] = _loo_newton_scores(g, p, Hinv, self.loo_iters,
                                                                  float(self.tol))
            else:
                phi = _loo_step_scores(g, p, U, Hinv)
        else:
            phi = -g.removal_scale * stream_scores(g, p, U.T.contiguous())
            if g.data.reduction == "mean":
                # a mean objective renormalises its weights: up-weighting example i moves the
                # optimum by -H^-1 (g_i - mean_j g_j) / n (scaling every weight at once moves
                # nothing), so the credits are centred over the training set. Without it every
                # credit carried the shared -(1/n) grad v^T H^-1 l2 theta (the mean gradient
                # at an l2 optimum): 41% (rms) off leave-one-out retraining at every n on a
                # mean ridge (0.0026 vs rms 0.0063 at n = 160), not O(1/n^2) (now 1.8e-4)
                phi = phi - phi.mean(dim=1, keepdim=True)
        return phi, extra

