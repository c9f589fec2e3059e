"""Layer conductance along the straight input path, per component unit.

``cond_u = sum_k <dv/dy_u(x_k), y_u(x_{k+1}) - y_u(x_k)>`` with ``x_k = x' + (k/K)(x - x')``
(``k = 0..K-1``, ``K = n_steps``), ``y_u`` the unit's elements of the (unablated) layer
activation and ``x'`` the game's input ``baseline``: the Riemann-sum form of Dhamdhere,
Sundararajan & Yan (2019), equal to Captum's ``LayerConductance`` with
``method="riemann_trapezoid"``. Summed over all units of a layer that every path crosses, it
telescopes to integrated gradients ``~ v(x) - v(x')``.

A module called several times in one forward pass (one activation module reused) credits each
unit with the sum of its conductance over the calls (each call's elements are summed like any
other element of the unit): over a layer that every path crosses at every call the credits
then sum to ``calls x (v(x) - v(x'))`` (checked by hand against per-call sums, aud36a); Captum's
``LayerConductance`` reads a single call there.

The model is reached only through :meth:`ComponentGame.probe_sites` (public, counted).
"""

from __future__ import annotations

import torch

from ..errors import UnsupportedModelError
from ..games.components import ComponentGame

__all__ = ["input_path_conductance"]


def input_path_conductance(game: ComponentGame, n_steps: int) -> torch.Tensor:
    """Conductance of every unit of ``game`` (``batch x targets x players`` float64).

    Counts ``n_steps + 1`` evaluations per input; keeps every point's activations (small
    layers).
    """
    if any(not x.dtype.is_floating_point for x in game.inputs):
        raise UnsupportedModelError(
            "conductance integrates along a path between input and baseline; it needs "
            "real-valued inputs (not token ids)."
        )
    if not game.differentiable:
        raise UnsupportedModelError("conductance needs a differentiable torch model.")
    k1 = int(n_steps) + 1
    bases = game.input_baselines()

    def make_inputs(xs: list[torch.Tensor], b: torch.Tensor, k: torch.Tensor) -> list[torch.Tensor]:
        alpha = k.to(game.compute_dtype) / (k1 - 1)
        out = []
        for x, base in zip(xs, bases):
            bb = base[b] if base.shape[0] > 1 else base
            a = alpha.reshape(-1, *([1] * (x.ndim - 1)))
            out.append(bb + a * (x - bb))
        return out

    probe = game.probe_sites(game.sites, n_points=k1, make_inputs=make_inputs)
    b_total, t_count = game.n_samples, game.n_targets
    out = torch.zeros(b_total, t_count, game.n_players, dtype=torch.float64)
    for (i, c), (act, grad) in probe.items():
        site = game.sites[i]
        y = act.reshape(b_total, k1, -1)
        g = grad.reshape(b_total, k1, t_count, -1)
        contrib = g[:, :-1] * (y[:, 1:] - y[:, :-1])[:, :, None, :]  # B x K x T x E
        per_unit = site.reduce(contrib.sum(1), site.shapes[c])  # B x T x units
        out[..., site.offset : site.offset + site.n_units] += per_unit
    return out
