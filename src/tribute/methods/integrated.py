"""Path-integral gradient methods: integrated gradients and expected gradients (GradientSHAP).

Integrated gradients runs on the game's mask relaxation ``x(m) = b + m * (x - b)``: with the
straight-line mask ``m = alpha * 1`` the mask gradient is ``(x - b) * grad f(b + alpha (x - b))``
(summed over a player's elements when features are grouped), so a quadrature rule
``sum_k w_k dv/dm(alpha_k * 1)`` *is* integrated gradients with baseline ``b`` (grouped IG with
groups; the average of the per-baseline IGs with a background set). Any differentiable game
(features or components) can be integrated this way.

Expected gradients replaces the fixed baseline and the quadrature by Monte Carlo draws of a
baseline from the background set and of ``alpha ~ U(0, 1)``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from ..attribution import Attribution
from ..errors import InputError
from ..games.base import Game
from ..params import Interval, Options, declare, scalar_value
from ._stderr import t_factor
from .base import Cost, Method, Tags, coalition_cost, register
from .gradients_basic import StreamingMoments, feature_game, rows_to_players

__all__ = ["RULES", "ExpectedGradients", "IntegratedGradients", "quadrature"]

#: Quadrature rules for ``int_0^1 g(alpha) d alpha``.
RULES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gauss_legendre")
_RULE_ALIASES = {"gausslegendre": "gauss_legendre", "trapezoid": "riemann_trapezoid",
                 "left": "riemann_left", "right": "riemann_right", "middle": "riemann_middle"}

#: Mask entries per ``value_and_grad`` call (bounds the ``steps x players`` mask matrix).
_MASK_ELEMENTS = 4 * 1024**2


def quadrature(rule: str, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights of a ``steps``-point rule for ``int_0^1 g``.

    Args:
        rule: one of :data:`RULES` (Captum's ``"gausslegendre"`` is accepted too).
        steps: number of nodes (``>= 2`` for the trapezoid rule).

    Returns:
        ``(alphas, weights)``, float64 tensors of length ``steps``; the weights sum to 1 for
        every rule (exact for constant integrands).

    Note:
        ``riemann_trapezoid`` here is the composite trapezoid rule on ``steps`` equally spaced
        nodes ``0, 1/(n-1), ..., 1`` with weights ``1/(n-1)`` (halved at both ends). Captum's
        rule of the same name puts its nodes there but uses step ``1/n`` (weights sum to
        ``(n-1)/n``), so its completeness error is about ``|v(x) - v(b)| / n`` whatever the
        model; ours is the textbook ``O(1/n^2)`` rule.
    """
    key = _RULE_ALIASES.get(rule, rule)
    if key not in RULES:
        raise InputError(f"rule={rule!r} is not a quadrature rule; use one of {RULES}.")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise InputError(f"steps={steps!r} must be a positive int (gradient evaluations along the path).")
    n = int(steps)
    if key == "gauss_legendre":
        nodes, gl_w = _gauss_legendre(n)
        return torch.from_numpy(0.5 * (nodes + 1.0)), torch.from_numpy(0.5 * gl_w)
    k = torch.arange(n, dtype=torch.float64)
    if key == "riemann_trapezoid":
        if n < 2:
            raise InputError("rule='riemann_trapezoid' needs steps >= 2 (both end points).")
        w = torch.full((n,), 1.0 / (n - 1), dtype=torch.float64)
        w[0] = w[-1] = 0.5 / (n - 1)
        return k / (n - 1), w
    shift = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[key]
    return (k + shift) / n, torch.full((n,), 1.0 / n, dtype=torch.float64)


#: Up to this many nodes numpy's ``leggauss`` (a dense ``n x n`` eigenproblem: O(n^3) time,
#: O(n^2) memory; ~1 ms at 50 nodes, the default); above, :func:`_gauss_legendre_large`.
_DENSE_GL_MAX = 128


@functools.lru_cache(maxsize=64)
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on ``[-1, 1]`` (cached: numpy's ``leggauss`` solves an
    eigenproblem and polishes the roots, ~1 ms per call for 50 nodes, as much as a whole IG
    call on a small MLP). Read-only arrays; callers build new tensors from them.

    Up to :data:`_DENSE_GL_MAX` nodes these are numpy's ``leggauss`` bit for bit; above, the
    O(n) :func:`_gauss_legendre_large` (numpy's dense eigenproblem took 8 of 11 s of a
    2,048-step IG call)."""
    if n <= _DENSE_GL_MAX:
        nodes, weights = np.polynomial.legendre.leggauss(n)
    else:
        nodes, weights = _gauss_legendre_large(n)
    nodes.flags.writeable = False
    weights.flags.writeable = False
    return nodes, weights


def _gauss_legendre_large(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights in O(n) time and memory (``n >= 2``).

    Newton's method on ``P_n(cos theta)`` in the angle ``theta`` (Hale & Townsend 2013): the
    ``n // 2`` nodes with ``x > 0`` start at Tricomi's approximation and are solved with
    Stieltjes' asymptotic series for ``P_n(cos theta)`` (:data:`_STIELTJES_TERMS` terms, O(1) per
    node), except the few within ``n sin(theta) < _STIELTJES_EDGE`` of the end (~13 per end,
    whatever ``n``), which start at Gatteschi's Bessel-zero approximation and use the three-term
    recurrence in differences (``n`` steps). The weights are ``2 / (dP_n/dtheta)^2``, free of the
    cancellation in ``1 - x^2`` near ``x = +-1`` (the recurrence in ``x`` lost ``eps / (1 - x)``
    relative: 7e-11 at 2,048 nodes). The negative nodes are the mirror image, and for odd ``n``
    the middle node is 0 with weight ``2 / (n P_{n-1}(0))^2``.

    The former O(n^2) tridiagonal eigenvalue call held Python's lock for 35 s at 30,000 nodes
    (every other thread stood still, the explorer server included; reviewer rev46x): now
    0.44 s at 30,000 nodes, 1.5 s at 100,000. Against a 40-digit reference: nodes within
    2.2e-16, weights within 7e-15 relative from 2 to 2,048 nodes (the eigenvalue path's were
    up to 7e-11 off); at 30,000 / 100,000 nodes the weights of the recurrence's nodes near the
    ends are within 1.1e-14 / 4.3e-14, the others within 1e-15.
    """
    import scipy.special

    h = n // 2
    k = np.arange(1, h + 1)
    theta0 = math.pi * (4 * k - 1) / (4 * n + 2)  # (n + 1/2) theta0 = pi (k - 1/4)
    psi = math.pi * (n + 1 - 2 * k) / (2 * n + 1)  # pi/2 - theta0, for cos(theta) near 0
    delta = np.zeros(h)  # theta - theta0
    dtheta = np.zeros(h)  # dP_n(cos theta)/dtheta at the nodes
    edge = n * np.sin(theta0) < _STIELTJES_EDGE

    # interior nodes: Stieltjes' series, Newton on delta from Tricomi's approximation
    inner = ~edge
    th0 = theta0[inner]
    d = (1.0 / (8.0 * n * n) - 1.0 / (8.0 * n**3)) / np.tan(th0)
    quarter = (2 * k[inner] - 1) % 4  # (n + 1/2) theta0 = (2k - 1) pi/2 + pi/4, exactly
    coef = [1.0]
    for m in range(1, _STIELTJES_TERMS):
        coef.append(coef[-1] * (m - 0.5) ** 2 / (m * (n + m + 0.5)))
    # P_n = c_n * series, c_n = (4/pi) n! / ((3/2)(5/2)...(n + 1/2))
    c_n = 4.0 / math.pi * math.exp(math.fsum(np.log1p(-0.5 / (np.arange(1, n + 1) + 0.5)).tolist()))
    for _ in range(_NEWTON_MAX):
        p, dp = _stieltjes(n, th0, d, quarter, coef)
        step = p / dp
        d = d - step
        if np.all(np.abs(step) <= _NEWTON_TOL * th0):
            break
    dtheta[inner] = c_n * _at_root(dp, p, step, th0 + d, n)
    delta[inner] = d

    # the nodes near x = 1: recurrence, Newton on theta from Gatteschi's approximation
    nu = n + 0.5
    t = scipy.special.jn_zeros(0, int(edge.sum())) / nu if edge.any() else np.zeros(0)
    t = t + (t / np.tan(t) - 1.0) / (8.0 * t * nu * nu)
    for _ in range(_NEWTON_MAX):
        p, dp = _legendre_theta(t, n)
        step = p / dp
        t = t - step
        if np.all(np.abs(step) <= _NEWTON_TOL * t):
            break
    dtheta[edge] = _at_root(dp, p, step, t, n)
    delta[edge] = t - theta0[edge]

    xs = np.sin(psi - delta)  # cos(theta0 + delta), decreasing
    ws = 2.0 / dtheta**2
    if n % 2:  # |P_{n-1}(0)| = prod_{i <= (n-1)/2} (1 - 1/(2i))
        p0 = math.exp(math.fsum(np.log1p(-0.5 / np.arange(1, h + 1)).tolist()))
        x = np.concatenate([-xs, [0.0], xs[::-1]])
        w = np.concatenate([ws, [2.0 / (n * p0) ** 2], ws[::-1]])
    else:
        x = np.concatenate([-xs, xs[::-1]])
        w = np.concatenate([ws, ws[::-1]])
    return x, w


#: Terms of Stieltjes' series and the smallest ``n sin(theta)`` it is used at (its truncation
#: error there is below 1e-17 relative); Newton stops after a step below ``_NEWTON_TOL * theta``
#: (the error left is about its square); a cap on the iterations, never reached.
_STIELTJES_TERMS = 16
_STIELTJES_EDGE = 40.0
_NEWTON_TOL = 1e-9
_NEWTON_MAX = 12


def _stieltjes(n: int, th0: np.ndarray, delta: np.ndarray, quarter: np.ndarray,
               coef: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Stieltjes' series for ``P_n(cos theta) / c_n`` and its ``theta`` derivative at
    ``theta = th0 + delta``: ``sum_m coef_m cos(a_m) / (2 sin theta)^(m + 1/2)`` with
    ``a_m = (n + m + 1/2) theta - (m + 1/2) pi/2``, whose multiple of ``pi/2`` is taken exactly
    (``a_m = (2k - 1 - m) pi/2 + (n + 1/2) delta + m theta``)."""
    th = th0 + delta
    s2, c2 = 2.0 * np.sin(th), 2.0 * np.cos(th)
    p, dp = np.zeros_like(th), np.zeros_like(th)
    scale = 1.0 / np.sqrt(s2)
    for m in range(_STIELTJES_TERMS):
        phi = (n + 0.5) * delta + m * th
        c, s = np.cos(phi), np.sin(phi)
        q = (quarter - m) % 4
        cos_a = np.choose(q, [c, -s, -c, s])
        sin_a = np.choose(q, [s, c, -s, -c])
        p += coef[m] * cos_a * scale
        dp -= coef[m] * scale * ((n + m + 0.5) * sin_a + (m + 0.5) * cos_a * c2 / s2)
        scale = scale / s2
    return p, dp


def _legendre_theta(theta: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``P_n(cos theta)`` and its ``theta`` derivative by the three-term recurrence written
    in differences ``P_j - P_{j-1}`` and ``1 - cos theta`` (accurate near ``theta = 0``)."""
    t = 2.0 * np.sin(0.5 * theta) ** 2
    p, d = 1.0 - t, -t  # P_1, P_1 - P_0
    for j in range(2, n + 1):
        d = ((j - 1) * d - (2 * j - 1) * t * p) / j
        p = p + d
    return p, n * (d - t * p) / np.sin(theta)  # x P_n - P_{n-1} = (P_n - P_{n-1}) - t P_n


def _at_root(dp: np.ndarray, p: np.ndarray, step: np.ndarray, theta: np.ndarray,
             n: int) -> np.ndarray:
    """``dP/dtheta`` moved from the last Newton iterate to the root ``step`` away, by
    Legendre's equation ``P'' = -cot(theta) P' - n (n + 1) P`` (error O(step^2))."""
    d2 = -dp / np.tan(theta + step) - n * (n + 1.0) * p
    at_root: np.ndarray = dp - d2 * step
    return at_root


def _canonical_rule(rule: str) -> str:
    key = _RULE_ALIASES.get(rule, rule)
    if key not in RULES:
        raise InputError(f"rule={rule!r} is not a quadrature rule; use one of {RULES}.")
    return key


@register
class IntegratedGradients(Method):
    """Integrated gradients: ``(x - b) * int_0^1 grad f(b + alpha (x - b)) d alpha``.

    Computed on the game's mask relaxation (see the module docstring), so it also works on
    grouped features (grouped IG), background sets (average of per-baseline IGs) and
    differentiable component games. Completeness ``sum(phi) = v(x) - v(b)`` holds up to the
    quadrature error, reported per sample in ``Attribution.gap`` (costs 2 evaluations).

    Args:
        steps: quadrature nodes (gradient evaluations per input). default=50. With ``budget``,
            ``steps = budget - 2`` (``attr.params["steps"]`` is the number used); both given
            with other values are refused by :func:`tribute.explain`.
        rule: ``"gauss_legendre"``, ``"riemann_left"``, ``"riemann_right"``,
            ``"riemann_middle"`` or ``"riemann_trapezoid"`` (the correct trapezoid rule, whose
            weights sum to 1 — unlike Captum's, see :func:`quadrature`). default="gauss_legendre".

    Budget: ``steps + 2`` evaluations per input.

    Reference: Sundararajan, Taly & Yan (2017), "Axiomatic Attribution for Deep Networks".
    """

    name = "integrated_gradients"
    tags = Tags(family="gradient", needs_gradients=True, has_gap=True, budgeted=True)
    paper = "Sundararajan et al. (2017), Axiomatic Attribution for Deep Networks"
    constraints = declare({"steps": Interval(int, 1),
                           "rule": Options((*RULES, *_RULE_ALIASES))})

    def __init__(self, steps: int = 50, rule: str = "gauss_legendre") -> None:
        self.steps = steps
        self.rule = rule

    def min_budget(self, game: Game) -> int:
        return 4 if _canonical_rule(self.rule) == "riemann_trapezoid" else 3

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        steps = self.steps if budget is None else budget - 2
        alphas, weights = quadrature(self.rule, steps)
        phi = integrate_mask_gradients(game, alphas, weights)
        gap = game.efficiency_gap(phi)
        # params state the steps that ran (budget - 2 when a budget is given), not the default
        return game.attribution(phi, self.name, {**self.get_params(), "steps": int(steps)}, gap=gap,
                                extra={"steps": int(steps), "rule": _canonical_rule(self.rule)})

    budget_rule = "steps + 2 (steps=50)"
    budget_param = "steps"

    def budget_sets(self, game: Game, budget: int) -> int | None:
        return int(budget) - 2

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """``steps`` mask gradients per input; masks in blocks of ``_MASK_ELEMENTS`` entries,
        gradients summed on the fly (``batch x targets x players``)."""
        n = int(game.n_players)
        steps = int(self.steps if budget is None else budget - 2)
        k = steps + 2
        block = max(1, _MASK_ELEMENTS // max(n, 1))
        return coalition_cost(game, k, grads=True, mask_rows=min(k, block),
                              note=f"{steps:,} gradient points x {n:,} players")


def integrate_mask_gradients(game: Game, alphas: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_k w_k dv/dm(alpha_k * 1)`` as ``batch x targets x players`` (float64).

    The ``steps x players`` masks are sent in blocks of at most ``_MASK_ELEMENTS`` entries; the
    engine chunks the rows of each block and the game sums the weighted gradients on the fly.
    """
    n = game.n_players
    phi = torch.zeros(game.n_samples, game.n_targets, n, dtype=torch.float64)
    block = max(1, _MASK_ELEMENTS // max(n, 1))
    for s in range(0, int(alphas.numel()), block):
        a = alphas[s : s + block]
        masks = a[:, None].expand(-1, n)
        _, g = game.value_and_grad(masks, weights=weights[s : s + block])
        phi += g
    return phi


@register
class ExpectedGradients(Method):
    """Expected gradients / GradientSHAP: IG averaged over baselines drawn from a background set.

    ``phi = E_{b ~ background, alpha ~ U(0,1), eps ~ N(0, stdevs^2)} [(x' - b) * grad f(b +
    alpha (x' - b))]`` with ``x' = x + eps``, estimated with ``n_samples`` draws shared by every
    sample of the batch (common random numbers). With a background set (``baseline`` with
    several rows, or :class:`tribute.Background`) baselines are drawn from it (uniformly, or by
    the set's weights); with a
    single (or per-sample) baseline it is integrated gradients with random ``alpha``. With
    ``stdevs > 0`` it is Captum's GradientSHAP. Standard errors are the standard deviation of the
    per-draw contributions over ``sqrt(n_samples)``, times Student's ``t_{n_samples - 1}(0.977) / 2``
    (so that +-2 stderr covers the infinite-sample value ~95% of the time with few draws); the
    completeness gap
    ``sum(phi) - (v(x) - E_b v(b))`` is reported (zero in expectation without input noise).

    Args:
        n_samples: Monte Carlo draws (gradient evaluations per input), ``>= 2``. default=64.
            With ``budget``, ``n_samples = budget - 2`` (``attr.params["n_samples"]`` is the
            number used); both given with other values are refused by :func:`tribute.explain`.
        stdevs: standard deviation of Gaussian noise added to the input (absolute, in input
            units; GradientSHAP). default=0.0.

    Budget: ``n_samples + 2`` evaluations per input.

    Reference: Erion, Janizek, Sturmfels, Lundberg & Lee (2021), "Improving performance of deep
    learning models with axiomatic attribution priors and expected gradients"; Lundberg & Lee
    (2017), "A Unified Approach to Interpreting Model Predictions" (GradientSHAP).
    """

    name = "expected_gradients"
    tags = Tags(family="gradient", needs_gradients=True, stochastic=True, has_gap=True,
                budgeted=True, games=("feature",))
    paper = "Erion et al. (2021), Improving performance of deep learning models with axiomatic attribution priors and expected gradients"
    constraints = declare({"n_samples": Interval(int, 2),
                           "stdevs": Interval(float, 0.0, math.inf, closed="left")})

    def __init__(self, n_samples: int = 64, stdevs: float = 0.0) -> None:
        self.n_samples = n_samples
        self.stdevs = scalar_value(stdevs)  # a 0-d tensor / array is the number it holds

    def min_budget(self, game: Game) -> int:
        return 4

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        fg = feature_game(game, self.name)
        k_count = self.n_samples if budget is None else budget - 2
        if k_count < 2:  # n_samples is checked by its declaration; a budget must leave 2 draws
            raise InputError(f"budget={budget!r} leaves {k_count} draws; expected_gradients needs >= 2 (budget >= 4).")
        k_count = int(k_count)
        stdevs = float(self.stdevs)

        gen = torch.Generator().manual_seed(seed)
        b_total = fg.n_samples
        x64 = fg.inputs_flat().detach().to("cpu", torch.float64)
        base64 = fg.baseline_flat().detach().to("cpu", torch.float64)
        d = x64.shape[1]
        alpha64 = torch.rand(k_count, generator=gen, dtype=torch.float64)
        if fg.n_background > 1:  # a background set: draw one row per draw, shared by the batch
            mode = "draw"
            bg_w = fg.background_weights()
            if bool((bg_w == bg_w[0]).all()):
                pick = torch.randint(base64.shape[0], (k_count,), generator=gen)
            else:  # a weighted set (e.g. k-means centres): draw rows by their weights
                pick = torch.multinomial(bg_w, k_count, replacement=True, generator=gen)
        elif base64.shape[0] == b_total and b_total > 1:
            mode, pick = "per_sample", torch.zeros(0, dtype=torch.long)
        else:
            mode, pick = "single", torch.zeros(0, dtype=torch.long)
        eps64 = stdevs * torch.randn(k_count, d, generator=gen, dtype=torch.float64) if stdevs > 0 else None

        device, dtype = fg.model.device, fg.compute_dtype
        x_d, base_d, alpha_d = x64.to(device, dtype), base64.to(device, dtype), alpha64.to(device, dtype)
        pick_d = pick.to(device)
        eps_d = None if eps64 is None else eps64.to(device, dtype)
        shapes = fg.input_shapes()
        sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]

        def baseline_rows(table: torch.Tensor, b: torch.Tensor, k: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
            if mode == "draw":
                return table[sel[k]]
            if mode == "per_sample":
                return table[b]
            return table.expand(b.shape[0], -1)

        def make_points(xs: tuple[torch.Tensor, ...], b: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, ...]:
            xf = x_d[b] if eps_d is None else x_d[b] + eps_d[k]
            bf = baseline_rows(base_d, b, k, pick_d)
            pts = torch.addcmul(bf, alpha_d[k][:, None], xf - bf)
            return tuple(p.reshape(p.shape[0], *s) for p, s in zip(torch.split(pts, sizes, dim=1), shapes))

        moments = StreamingMoments((b_total, fg.n_targets, fg.n_players), order=2)

        def transform(g: torch.Tensor, b: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            # Used as a streaming sink: per-draw contributions go into `moments` (numerically
            # stable mean/variance); nothing is left for input_gradients to accumulate.
            xf = x64[b] if eps64 is None else x64[b] + eps64[k]
            contrib = (xf - baseline_rows(base64, b, k, pick))[:, None, :] * g  # R x T x D
            moments.update(rows_to_players(fg, contrib, b), b)
            return g[..., :0]

        fg.input_gradients(k_count, make_points, powers=(), transform=transform)
        phi = moments.mean
        # ``k - 1`` dof: Student's factor keeps +-2 stderr at ~95% with few draws (._stderr);
        # without it 68% / 85% / 93% at 2 / 4 / 16 draws on a tanh MLP with a background set
        stderr = moments.stderr_of_mean() * t_factor(k_count - 1)
        gap = fg.efficiency_gap(phi)
        extra: dict[str, Any] = {"n_samples": k_count, "baseline_mode": mode}
        return fg.attribution(phi, self.name, {**self.get_params(), "n_samples": k_count},
                              stderr=stderr, gap=gap, extra=extra)

    budget_rule = "n_samples + 2 (n_samples=64)"
    budget_param = "n_samples"

    def budget_sets(self, game: Game, budget: int) -> int | None:
        return int(budget) - 2

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """``n_samples`` input gradients per input (one drawn baseline row each)."""
        k = int(self.n_samples if budget is None else budget - 2) + 2
        c = coalition_cost(game, k, grads=True, mask_rows=0,
                           note=f"{k - 2:,} gradient draws x {int(game.n_players):,} players")
        mb = int(getattr(game, "n_background", 1) or 1)  # v(empty) averages the background set
        return Cost(int(game.n_samples) * (k - 1 + mb), c.bytes, c.note, c.flops)
