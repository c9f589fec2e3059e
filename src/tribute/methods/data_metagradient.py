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

Reference: Ilyas & Engstrom (2025), "MAGIC: Near-Optimal Data Attribution for Deep Learning";
Maclaurin, Duvenaud & Adams (2015), "Gradient-based Hyperparameter Optimization through
Reversible Learning".
"""

from __future__ import annotations

import torch

from ..attribution import Attribution
from ..errors import InputError, UnsupportedModelError
from ..games.base import Game
from .base import Method, Tags, register
from .data_common import as_data_game

__all__ = ["Metagradient"]


@register
class Metagradient(Method):
    """Exact metagradient ``d v / d w_i`` through the whole deterministic training run (MAGIC).

    Needs ``TrainingData(fit=...)`` whose ``fit`` has ``unrolled(X, y, *, seed, weights)``
    returning the trained parameters as a differentiable function of the weights.

    Reference: Ilyas & Engstrom (2025), "MAGIC: Near-Optimal Data Attribution for Deep
    Learning".
    """

    name = "metagradient"
    tags = Tags(family="data_gradient", needs_baseline=False, games=("data",))
    paper = "Ilyas & Engstrom (2025), MAGIC: Near-Optimal Data Attribution for Deep Learning"

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
        w = torch.ones(g.data.n_train, dtype=torch.float64, requires_grad=True)
        with torch.enable_grad():
            params = unrolled(g.X_train, g.data.y, seed=g.data.seed, weights=w)
            missing = set(g.param_names) - set(params)
            if missing:
                raise InputError(f"metagradient: fit.unrolled returned no {sorted(missing)}.")
            v = g.explained(g.forward({k: params[k] for k in g.param_names}, g.X_test), g.y_test)
            eye = torch.eye(v.shape[0], dtype=v.dtype)
            (J,) = torch.autograd.grad(v, w, grad_outputs=eye, is_grads_batched=True)
        gap = float((v.detach() - g.test_outputs()).abs().max())
        if gap > 1e-4 * max(1.0, float(v.detach().abs().max())):
            raise InputError(
                f"metagradient: fit.unrolled does not reproduce the explained model (outputs differ "
                f"by up to {gap:.3g}); explain the model that fit(X_train, y_train, seed="
                f"{g.data.seed}) returns."
            )
        vals = g.to_players(J.detach())[:, None, :]
        g.count_pass()
        return g.attribution(vals, self.name, self.get_params(), extra={"replay_gap": gap})
