"""Metagradients: the exact derivative of the output w.r.t. per-example data weights.

Training is a deterministic function ``theta(w)`` of the example weights ``w`` (all ones for the
trained model). Differentiating the explained output through the *whole* training run gives

    phi_bi = d v_b(theta(w)) / d w_i   at w = 1,

the exact first-order effect of including example ``i`` (up-weighting it from 0 to 1, to first
order) — no convexity, optimality or Hessian approximation involved. This is the idea of MAGIC
(Ilyas & Engstrom 2025), which computes such metagradients for large models with a
memory-efficient replay; here, for the small models it is meant for on CPU, autograd records the
unrolled run (memory grows with ``steps x activations``) and one reverse pass per test point
(batched with ``is_grads_batched``) gives all ``n_train`` derivatives at once.

Needs a ``fit`` with a differentiable replay ``fit.unrolled(X, y, *, seed, weights) -> params``
(``tribute.games.data_fits.MLPFit`` has one); the replay must reproduce the explained model
(checked: ``extra["replay_gap"]`` is the largest output difference).

**From a tangent towards the secant.** What a dropped set ``D`` changes is a secant,
``v(1 - 1_D) - v(1)``, and the tangent at ``w = 1`` misses its curvature. Two options move the
credit towards the secant while keeping its meaning (a positive credit: including the example
raises the explained output; credits of a dropped set sum to the predicted change):

* ``curvature_probes=K`` — the second-order self term. Along one example's own weight the
  whole training run responds like a rank-one update (Sherman–Morrison: removing ``i`` moves the
  parameters by ``tangent / (1 - h_i)`` for a convex quadratic objective, ``h_i`` its leverage),
  so every output's curvature along ``w_i`` is ``d2 v_b / d w_i^2 = -2 h_i d v_b / d w_i`` — the
  same ``h_i`` for every test point. The second-order secant of removing ``i`` is then
  ``phi_bi = (1 + h_i) d v_b / d w_i`` (tangent plus half the curvature). ``h_i`` is read from
  the example's *own* training output ``f_i``: the self-derivative ``s_i = d f_i / d w_i``
  (diagonal blocks of the ``n_train x n_train`` Jacobian of the training outputs w.r.t. the
  weights) gives ``h_i = -<W_i r_i, s_i> / <r_i, r_i>`` with ``r_i`` and ``W_i`` the first and
  second derivatives of the training loss w.r.t. the outputs (exact for one output and squared
  loss; the projection on the residual for softmax outputs). ``s`` is estimated with ``K``
  random +-1 directions ``z`` (Hutchinson 1990; Bekas, Kokiopoulou & Saad 2007):
  ``s_i ~ mean_z z_i (f(1 + eps z) - f(1 - eps z))_i / (2 eps)``, two replays without a graph per
  direction; with ``K >= n_train`` the coordinate directions give the exact diagonal. ``h`` is
  clipped to ``[-1, 1]`` (a leverage; the estimate's noise can leave it).
* ``points=P, drop_fraction=q`` — the *expected* metagradient: the mean of the metagradients at
  ``w = 1`` and at ``P`` weight vectors ``w = 1 - m`` with ``m ~ Bernoulli(q)`` masks (q about
  half the fraction that will be dropped): a derivative taken where some of the data is
  already missing, the data-weight analogue of expected gradients (Erion et al. 2021) and of the
  random-coalition averaging of Banzhaf values. Each point costs one more full metagradient.

* ``retrain_top=m`` (with ``curvature_probes``) — exact leave-one-out retraining of the ``m``
  examples with the largest leverage ``h``: their credits become ``v(all) - v(all without i)``
  (``m + 1`` evaluations of the game, i.e. retrains through its bank). On digits + MLP (seed
  0) the tangent's error that no per-example rescaling removes is concentrated in a few
  examples (the 10 / 50 largest carry 71% / 96% of it), and ranking by leverage finds them
  about as well as ranking by the size of the credits. Leverage is the rank-one self term's
  own warning sign (Cook 1977: the Sherman–Morrison factor ``1/(1 - h)`` is unbounded as
  ``h -> 1``): where the second-order expansion is least trustworthy, the exact secant is
  bought by retraining. LDS at 1 / 3 / 5% dropped with ``curvature_probes=16`` (m chosen on
  seed 0; seeds 1 and 2 held out): seed 0 0.928 / 0.884 / 0.860 -> 0.957 / 0.949 / 0.936 with
  ``retrain_top=25`` (0.946 / 0.927 / 0.901 with 10); seed 1 0.910 / 0.895 / 0.862 -> 0.948 /
  0.946 / 0.934; seed 2 0.948 / 0.935 / 0.931 -> 0.974 / 0.971 / 0.969. Exact leave-one-out
  for all 900 examples reaches 0.991 / 0.978 / 0.964 (seed 0).

All are off by default (``curvature_probes=0, points=0, retrain_top=0``: the plain tangent,
bit for bit).
``extra`` records what was averaged and the cost: ``replays`` (training runs: one recorded run
per metagradient, two graph-free runs per probe), ``metagradient_seconds``,
``curvature_seconds``, ``leverage`` (``h``, ``n_train``), ``masks`` (``P x n_train``) and
``retrained`` (the examples given their exact leave-one-out change).

On digits + MLP (``benchmarks/bench_data_metagradient_drop.py``), per example, the retrained
LOO change and the metagradient correlate at 0.99+ over test points (median 0.9975) with a ratio
of 1.0-2.8: a per-example factor, which is what the second-order term targets. For LDS that is
not the whole story: even the best such factor per example (an oracle fitted to the true LOO
changes) reaches only 0.934 / 0.898 / 0.875 at 1 / 3 / 5% dropped (seed 0), because what no
rescaling removes sits in a few examples — hence ``retrain_top``.

References: Ilyas & Engstrom (2025), "MAGIC: Near-Optimal Data Attribution for Deep Learning";
Maclaurin, Duvenaud & Adams (2015), "Gradient-based Hyperparameter Optimization through
Reversible Learning"; Cook (1977), "Detection of Influential Observation in Linear Regression"
(leverage and leave-one-out); Hutchinson (1990), "A stochastic estimator of the trace of the
influence matrix"; Bekas, Kokiopoulou & Saad (2007), "An estimator for the diagonal of a
matrix"; Erion et al. (2021), "Improving performance of deep learning models with axiomatic
attribution priors and expected gradients".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from ..attribution import Attribution
from ..errors import InputError, UnsupportedModelError
from ..games.base import Game
from ..games.data import DataGame
from ..params import Interval, declare
from .base import Cost, Method, Tags, coalition_cost, register
from .data_common import as_data_game

__all__ = ["Metagradient"]

#: Step of the central differences of the replay along a probe direction (float64 runs).
PROBE_EPS = 1e-4


def _metagradient(g: DataGame, unrolled: Callable[..., dict[str, torch.Tensor]],
                  weights: torch.Tensor, check: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch x n_train`` derivatives ``d v_b / d w_i`` at ``weights`` and the outputs ``v``.

    ``check``: first refuse a ``@once_differentiable`` custom Function on the replay's path
    (each training step's gradient is differentiated again; its backward's result carried no
    derivative and the credits were silently wrong; rev51d)."""
    w = weights.clone().requires_grad_(True)
    with torch.enable_grad():
        params = unrolled(g.X_train, g.data.y.cpu(), seed=g.data.seed, weights=w)
        missing = set(g.param_names) - set(params)
        if missing:
            raise InputError(f"metagradient: fit.unrolled returned no {sorted(missing)}.")
        v = g.explained(g.forward({k: params[k] for k in g.param_names}, g.X_test), g.y_test)
        if check:
            g.refuse_once_differentiable(
                v, w, who="metagradient (it differentiates fit.unrolled's training steps)",
                instead="trak, grad_dot, tracin, representer, influence(solver='ekfac'), or a "
                        "retraining method such as datamodels")
        eye = torch.eye(v.shape[0], dtype=v.dtype)
        (J,) = torch.autograd.grad(v, w, grad_outputs=eye, is_grads_batched=True)
    return J.detach(), v.detach()


def _train_outputs(g: DataGame, unrolled: Callable[..., dict[str, torch.Tensor]],
                   weights: torch.Tensor) -> torch.Tensor:
    """Raw outputs on the training set (``n_train x C``) of the run with ``weights`` (no graph)."""
    params = unrolled(g.X_train, g.data.y.cpu(), seed=g.data.seed, weights=weights)
    with torch.no_grad():
        out = g.forward({k: params[k].detach() for k in g.param_names}, g.X_train)
    return out.reshape(out.shape[0], -1)


def self_output_derivatives(g: DataGame, unrolled: Callable[..., dict[str, torch.Tensor]],
                            probes: int, gen: torch.Generator) -> torch.Tensor:
    """``n_train x C`` estimate of ``d f_i / d w_i`` (each example's own outputs, own weight).

    ``probes`` random +-1 directions (Hutchinson-style diagonal estimate); the exact diagonal
    from the ``n_train`` coordinate directions when ``probes >= n_train``. Central differences of
    the replay with step :data:`PROBE_EPS`.
    """
    n = g.data.n_train
    one = torch.ones(n, dtype=torch.float64)
    exact = probes >= n
    acc: torch.Tensor | None = None
    for k in range(n if exact else probes):
        if exact:
            z = torch.zeros(n, dtype=torch.float64)
            z[k] = 1.0
        else:
            z = torch.randint(0, 2, (n,), generator=gen).to(torch.float64) * 2 - 1
        d = (_train_outputs(g, unrolled, one + PROBE_EPS * z)
             - _train_outputs(g, unrolled, one - PROBE_EPS * z)) / (2 * PROBE_EPS)
        term = z[:, None] * d
        if exact:
            term = torch.zeros_like(d)
            term[k] = d[k]
        acc = term if acc is None else acc + term
    assert acc is not None
    return acc if exact else acc / probes


def leverages(g: DataGame, self_derivs: torch.Tensor) -> torch.Tensor:
    """Per-example ``h_i = -<W_i r_i, s_i> / <r_i, r_i>`` clipped to ``[-1, 1]`` (``n_train``).

    ``s_i = d f_i / d w_i`` (``n_train x C``); ``r_i``, ``W_i`` the loss's first and second
    derivatives w.r.t. the outputs of the explained model on example ``i``.
    """
    with torch.no_grad():
        out = g.forward(g.model_params(), g.X_train)
    r, W = g.loss_output_derivatives(out.reshape(out.shape[0], -1), g.y_train)
    Wr = torch.einsum("ncd,nd->nc", W, r)
    h = -(Wr * self_derivs).sum(1) / (r * r).sum(1).clamp_min(1e-300)
    return h.clamp(-1.0, 1.0)


@register
class Metagradient(Method):
    """Exact metagradient ``d v / d w_i`` through the whole deterministic training run (MAGIC).

    Needs ``TrainingData(fit=...)`` whose ``fit`` has ``unrolled(X, y, *, seed, weights)``
    returning the trained parameters as a differentiable function of the weights.

    Args:
        curvature_probes: random directions for the second-order self term
            ``phi_i = (1 + h_i) d v / d w_i`` (see the module docstring); 0 = the plain
            tangent; ``>= n_train`` = the exact diagonal. Two graph-free replays each.
            default=0.
        points: weight vectors ``w = 1 - m``, ``m ~ Bernoulli(drop_fraction)``, whose
            metagradients are averaged with the one at ``w = 1`` (the expected metagradient);
            one recorded replay each. default=0.
        drop_fraction: ``q`` of those masks, in ``[0, 1)``; about half the fraction you will
            drop. ``0`` (or ``points=0``) is the plain tangent. default=0.02.
        retrain_top: give the ``m`` examples with the largest leverage their exact
            leave-one-out change (``m + 1`` retrains through the game); needs
            ``curvature_probes > 0`` and players that are single examples. default=0.

    Reference: Ilyas & Engstrom (2025), "MAGIC: Near-Optimal Data Attribution for Deep
    Learning"; Cook (1977) for leverage; Hutchinson (1990) for random-probe diagonals.
    """

    name = "metagradient"
    tags = Tags(family="data_gradient", needs_baseline=False, games=("data",))
    paper = "Ilyas & Engstrom (2025), MAGIC: Near-Optimal Data Attribution for Deep Learning"
    constraints = declare({"curvature_probes": Interval(int, 0),
                           "points": Interval(int, 0),
                           "drop_fraction": Interval(float, 0.0, 1.0, closed="left"),
                           "retrain_top": Interval(int, 0)})

    def __init__(self, curvature_probes: int = 0, points: int = 0,
                 drop_fraction: float = 0.02, retrain_top: int = 0) -> None:
        self.curvature_probes = curvature_probes
        self.points = points
        self.drop_fraction = drop_fraction
        self.retrain_top = retrain_top

    def _n_points(self) -> int:
        return int(self.points) if float(self.drop_fraction) > 0 else 0

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """One batched reverse pass per metagradient (``1 + points``): ``batch`` rows each;
        memory: the ``batch x n_train`` Jacobians, their mean and the result."""
        k = 1 + self._n_points() + (int(self.retrain_top) + 1 if self.retrain_top else 0)
        n_train = int(getattr(getattr(game, "data", None), "n_train", game.n_players))
        jac = 3 * int(game.n_samples) * n_train * 8
        return coalition_cost(game, k, design=jac,
                              note=f"{k} metagradient(s) of {game.n_samples:,} test points x "
                                   f"{n_train:,} examples")

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        g = as_data_game(game, self.name)
        fit = g.data.fit
        unrolled = getattr(fit, "unrolled", None)
        if not callable(unrolled):
            raise UnsupportedModelError(
                f"metagradient differentiates through training and needs fit.unrolled(X, y, *, "
                f"seed, weights) -> parameters (a differentiable replay); {type(fit).__name__} "
                "has none. tribute.games.data_fits.MLPFit provides one."
            )
        n = g.data.n_train
        top_m = min(int(self.retrain_top), n)
        if top_m and not self.curvature_probes:
            raise InputError(
                f"metagradient: retrain_top={self.retrain_top} ranks examples by their leverage, "
                "which curvature_probes estimates; set curvature_probes > 0 (e.g. 16) or "
                "retrain_top=0."
            )
        groups = torch.as_tensor(g.data.groups, dtype=torch.long)
        if top_m and not (g.data.n_players == n and bool(torch.all(groups == torch.arange(n)))):
            raise InputError(
                f"metagradient: retrain_top={self.retrain_top} retrains without single examples, "
                f"but the players are {g.data.n_players} groups of the {n} examples; use "
                "ungrouped players or retrain_top=0."
            )
        t0 = time.perf_counter()
        J, v = _metagradient(g, unrolled, torch.ones(n, dtype=torch.float64), check=True)
        gap = float((v - g.test_outputs()).abs().max())
        if gap > 1e-4 * max(1.0, float(v.abs().max())):
            raise InputError(
                f"metagradient: fit.unrolled does not reproduce the explained model (outputs differ "
                f"by up to {gap:.3g}); explain the model that fit(X_train, y_train, seed="
                f"{g.data.seed}) returns."
            )
        g.count_pass()
        extra: dict[str, Any] = {"replay_gap": gap}
        gen = torch.Generator().manual_seed(int(seed))
        n_points = self._n_points()
        replays = 1
        if n_points:
            q = float(self.drop_fraction)
            masks = torch.rand(n_points, n, generator=gen, dtype=torch.float64) < q
            total = J.clone()
            for m in masks:
                total += _metagradient(g, unrolled, 1.0 - m.to(torch.float64))[0]
                g.count_pass()
            J = total / (n_points + 1)
            replays += n_points
            extra["masks"] = masks.numpy()
        extra["metagradient_seconds"] = time.perf_counter() - t0
        if self.curvature_probes:
            t1 = time.perf_counter()
            s = self_output_derivatives(g, unrolled, int(self.curvature_probes), gen)
            h = leverages(g, s)
            J = J * (1.0 + h)[None, :]
            replays += 2 * (n if self.curvature_probes >= n else int(self.curvature_probes))
            extra["leverage"] = h.numpy()
            extra["curvature_seconds"] = time.perf_counter() - t1
        if top_m:
            h_t = torch.as_tensor(extra["leverage"])
            top = torch.argsort(h_t, descending=True, stable=True)[:top_m]
            masks_t = torch.ones(top_m + 1, n, dtype=torch.float64)
            masks_t[torch.arange(1, top_m + 1), top] = 0.0
            vals = g.value(masks_t)[:, :, 0]  # batch x (1 + m): v(all), v(all without i)
            J[:, top] = vals[:, :1] - vals[:, 1:]
            extra["retrained"] = top.numpy()
        extra["replays"] = replays
        vals = g.to_players(J)[:, None, :]
        return g.attribution(vals, self.name, self.get_params(), extra=extra)
