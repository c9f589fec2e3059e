"""Certified attribution robustness by uniform smoothing: radii per input (top-k set, cosine).

A base attribution method ``a(x)`` (any registered feature method: saliency, integrated
gradients, occlusion, ...) is smoothed with uniform noise,

    h(x) = E_{u ~ U(B)} [ a(x + u) ],

where ``B`` is the L2 ball of radius ``noise`` (Wang & Kong, "Certified L2 attribution
robustness via uniformly smoothed attributions", 2024) or the L-infinity cube
``[-noise, noise]^D`` (the uniform-noise smoothing of Levine & Feizi 2021 / Yang et al. 2020).

**The bound.** For any function ``g`` with values in ``[0, 1]``, the smoothed
``gbar(x) = E[g(x + u)]`` satisfies ``|gbar(x + delta) - gbar(x)| <= TV(delta)``, the total
variation between the uniform laws on ``x + B`` and ``x + delta + B``: the fraction of the
smoothing region that the shift moves out of the overlap. It is exact geometry:

- L2 ball in ``D`` dimensions (Wang & Kong's volume argument; two balls of radius ``r`` at
  distance ``e`` share ``I_{1 - e^2 / (4 r^2)}((D + 1) / 2, 1 / 2)`` of their volume, ``I`` the
  regularised incomplete beta): ``TV = 1 - I_{1 - e^2 / (4 r^2)}((D + 1) / 2, 1 / 2)``;
- cube, L-infinity shift ``e``: ``TV = 1 - (1 - e / (2 r))^D`` (and ``<= ||delta||_1 / (2 r)``).

**What is certified** (the sparsified smoothing of Levine, Singla & Feizi, "Certifiably robust
interpretation in deep learning", 2019, with the uniform laws above): ``g_i(x) = 1`` when player
``i`` is among the ``k`` largest of ``|a(x)|`` (``rank_by="abs"``) or of ``a(x)``
(``rank_by="signed"``) strictly, i.e. above the ``(k+1)``-th largest, else 0 (players tied at
the ``k``-th place are in no top-k of that draw: a tie is not broken by player order, which
would certify one of several zero-credit players by its position alone); ``gbar_i(x)`` is the
probability that ``i`` is in the top-k under noise. Let ``T`` be the ``k`` players with the largest estimated ``gbar``. If
``min_{i in T} gbar_i(x) - max_{j not in T} gbar_j(x) > 2 TV(delta)``, every player of ``T``
still outranks every other player at ``x + delta``: **the top-k set of the smoothed map does
not change**. The *radius* is the largest ``||delta||`` with ``2 TV(delta)`` below the certified
gap (solved in closed form for the cube, by bisection for the ball); 0 when nothing is
certified.

**Monte-Carlo confidence.** ``gbar`` is estimated from ``n_samples`` noise draws; the gap uses
a one-sided lower confidence bound for each ``i in T`` and an upper bound for each other
player. Which side a player gets depends on the same draws (``T`` is chosen from them), so both
bounds of every player are computed, each at level ``alpha / (2 players)`` (Bonferroni over the
``2 players`` bounds, so all hold together, and hence the ones used, with probability
``>= 1 - alpha``; at ``alpha / players`` per side only ``>= 1 - 2 alpha`` is guaranteed):
Clopper-Pearson (exact binomial, default) or Hoeffding (``sqrt(log(2 players / alpha) / (2 n))``).
Each input's certificate therefore holds with probability ``>= 1 - alpha`` over the noise draws
(all of ``B`` inputs' together ``>= 1 - B alpha``). Each coordinate of the smoothed top-k map moves by at
most ``TV(delta)`` within the radius as well (:meth:`CertifiedResult.max_change`).

**The cosine certificate** (Wang & Kong 2024, Section 4: a lower bound on the cosine similarity
between the smoothed attribution of ``x`` and of any ``x + delta``). Each base map is first put
into a ball of known radius ``M``, ``c(a) = a * min(1, M / ||a||_2)`` (``clip_norm=M``), or
normalised, ``c(a) = a / ||a||_2`` with ``M = 1`` (``clip_norm=None``, the default; a zero map
stays zero): the paper's theorem assumes a bounded attribution, ``||a(.)||_2 <= M`` everywhere,
and clipping makes that hold for every model instead of assuming it. The smoothed map is
``g(x) = E_{u ~ U(B)} c(a(x + u))``. Then

1. ``||g(x + delta) - g(x)||_2 = ||integral c(a(y)) (p_x(y) - p_{x+delta}(y)) dy|| <= M *
   integral |p_x - p_{x+delta}| = 2 M TV(delta)`` -- the paper's ``M V_U / V_S`` with ``V_U``
   the volume of the symmetric difference of the two balls, ``V_S`` the volume of one ball. The
   factor is attained (``c = +M v`` on one crescent, ``-M v`` on the other).
2. A vector ``w`` within distance ``rho`` of ``v`` (``rho < ||v||``) makes an angle of at most
   ``arcsin(rho / ||v||)`` with it (the tangent from the origin to the ball ``B(v, rho)``), so

       cos(g(x), g(x + delta)) >= sqrt(1 - (2 M TV(delta) / ||g(x)||)^2)  if 2 M TV(delta) < ||g(x)||

   and nothing (``-1``) otherwise. This is the tight form: it is attained by the worst ``w``.
   (A third-party summary of the paper states the bound as ``||g|| / sqrt(||g||^2 +
   (M V_U / V_S)^2)``, i.e. ``cos(arctan(rho / ||g||))``; that is the angle to a perpendicular
   displacement of length ``rho`` only and exceeds the worst case -- e.g. ``||g|| = 1``,
   ``rho = 0.5``: 0.894 vs the attained 0.866 -- so we use the ``arcsin`` form. We could not
   read the paper's proof itself; ``tests/concepts/test_certified.py`` checks ours is attained.)
3. The radius for a target cosine ``c0``: the largest ``||delta||`` with ``2 M TV(delta) <=
   ||g(x)|| sqrt(1 - c0^2)`` (``c0 > 0``; for ``c0 <= 0`` the supremum of ``2 M TV < ||g(x)||``),
   solved with :func:`smoothing_radius`. The L2 ball gives Wang & Kong's L2 certificate; the
   cube gives the same statement for L-infinity perturbations.

``g`` is only estimated, ``g_hat = mean_k c(a(x + u_k))`` over the ``n`` draws, so the bound is
never computed as if ``g_hat`` were ``g``. The bound only needs a *lower* confidence bound on
``||g(x)||`` (any ``g(x)`` with that norm or more, in any direction, is covered by step 2), and
``||g(x)|| >= ||g_hat|| - ||g_hat - g(x)||``. A vector concentration bound for ``n`` i.i.d.
vectors of norm ``<= M``: ``f = ||g_hat - g||`` changes by at most ``2 M / n`` when one draw
changes, so McDiarmid's inequality gives ``P(f >= E f + t) <= exp(-n t^2 / (2 M^2))``, and
``E f <= sqrt(E f^2) <= M / sqrt(n)``. Hence with probability ``>= 1 - alpha``

    ||g_hat - g(x)|| <= beta = (M / sqrt(n)) (1 + sqrt(2 log(1 / alpha)))

(a norm bound, dimension-free; per-coordinate Hoeffding with a union bound would grow with the
number of players), and the cosine bound and radius use ``m = ||g_hat|| - beta`` in place of
``||g(x)||`` (nothing certified when ``m <= 0``). The cosine certificate of each input holds
with probability ``>= 1 - alpha`` over the draws, separately from the top-k certificate (both
together ``>= 1 - 2 alpha``). Both Monte-Carlo arguments take the ``n`` maps as independent draws:
exact for a deterministic base method (gradients, integrated gradients, occlusion); a stochastic
base method (kernel SHAP, LIME) reuses one seed per block of draws, which breaks that
independence, so its certificates are approximate.

The smoothed attribution itself (``smoothed``) is the mean of the base maps over the same
draws (for a linear model and input x gradient its expectation is ``w * x``, uniform noise having
mean zero; the estimate is ``w * (x + mean_k u_k)``, off by ``O(noise / sqrt(n))``). Draws are shared by all inputs (common random numbers), seeded by a local generator, and
explained in blocks through a noisy view of one feature game, so every row is counted. The
blocks are sized for one input and a stochastic base method's seed is ``seed`` plus the block's
first draw (modulo ``2**64``): an input gets the same noise draws and base-method seeds in any batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import special, stats

from ..errors import InputError
from ..games.build import build_game, framework_of
from ..games.features import FeatureGame
from ..models import as_model
from ..params import check_seed
from .analyses import register_analysis
from .base import get_method
from .noise import noisy_view

__all__ = ["CertifiedResult", "binomial_bounds", "certified_attribution", "cosine_lower_bound", "norm_deviation_bound",
           "smoothing_radius", "smoothing_tv"]

SMOOTHINGS = ("l2", "linf")
BOUNDS = ("clopper_pearson", "hoeffding")
_BLOCK_BYTES = 64 * 1024**2


def smoothing_tv(eps: float | np.ndarray, noise: float, dim: int, smoothing: str = "l2") -> np.ndarray:
    """Total variation between uniform noise around ``x`` and around ``x + delta``, ``||delta|| = eps``.

    Args:
        eps: perturbation size(s) in the smoothing's norm (L2 for ``"l2"``, L-inf for ``"linf"``).
        noise: radius of the ball / half-width of the cube (> 0).
        dim: number of noised input elements ``D``.
        smoothing: ``"l2"`` (ball) or ``"linf"`` (cube).
    """
    e = np.clip(np.asarray(eps, dtype=np.float64) / (2.0 * noise), 0.0, 1.0)
    if smoothing == "l2":
        return np.asarray(1.0 - special.betainc((dim + 1) / 2.0, 0.5, 1.0 - e**2))
    if smoothing == "linf":
        return np.asarray(-np.expm1(dim * np.log1p(-np.minimum(e, 1.0 - 1e-300))))
    raise InputError(f"smoothing={smoothing!r} must be one of {SMOOTHINGS}.")


def smoothing_radius(tv: float, noise: float, dim: int, smoothing: str = "l2") -> float:
    """The largest perturbation size whose :func:`smoothing_tv` is at most ``tv`` (0 if ``tv <= 0``)."""
    if tv <= 0.0:
        return 0.0
    if tv >= 1.0:
        return 2.0 * noise
    if smoothing == "linf":
        return float(2.0 * noise * -np.expm1(np.log1p(-tv) / dim))
    lo, hi = 0.0, 2.0 * noise
    for _ in range(200):  # bisection: TV is increasing in eps
        mid = 0.5 * (lo + hi)
        if float(smoothing_tv(mid, noise, dim, smoothing)) <= tv:
            lo = mid
        else:
            hi = mid
    return lo


def binomial_bounds(successes: np.ndarray, n: int, alpha: float, method: str = "clopper_pearson",
                    ) -> tuple[np.ndarray, np.ndarray]:
    """One-sided ``1 - alpha`` lower and upper confidence bounds of a binomial proportion."""
    s = np.asarray(successes, dtype=np.float64)
    if method == "clopper_pearson":
        lower = np.where(s > 0, stats.beta.ppf(alpha, s, n - s + 1), 0.0)
        upper = np.where(s < n, stats.beta.ppf(1.0 - alpha, s + 1, n - s), 1.0)
        return np.asarray(lower), np.asarray(upper)
    if method == "hoeffding":
        half = math.sqrt(math.log(1.0 / alpha) / (2.0 * n))
        return np.clip(s / n - half, 0.0, 1.0), np.clip(s / n + half, 0.0, 1.0)
    raise InputError(f"bound={method!r} must be one of {BOUNDS}.")


def norm_deviation_bound(n: int, alpha: float, clip: float = 1.0) -> float:
    """``beta`` with ``P(||g_hat - g|| > beta) <= alpha`` for the mean of ``n`` i.i.d. vectors of norm ``<= clip``.

    McDiarmid's inequality on ``||g_hat - g||`` (bounded differences ``2 clip / n``) plus
    ``E ||g_hat - g|| <= clip / sqrt(n)``: ``beta = clip (1 + sqrt(2 log(1 / alpha))) / sqrt(n)``.
    """
    return float(clip * (1.0 + math.sqrt(2.0 * math.log(1.0 / alpha))) / math.sqrt(n))


def cosine_lower_bound(norm_lower: float | np.ndarray, shift: float | np.ndarray) -> np.ndarray:
    """Smallest cosine between any ``v`` with ``||v|| >= norm_lower`` and any ``w`` with ``||w - v|| <= shift``.

    ``sqrt(1 - (shift / norm_lower)^2)`` when ``shift < norm_lower`` (attained: ``w`` on the tangent
    from the origin to the ball ``B(v, shift)``), else ``-1`` (the ball reaches the origin).
    """
    m = np.asarray(norm_lower, dtype=np.float64)
    rho = np.asarray(shift, dtype=np.float64)
    ok = rho < m
    ratio = np.where(ok, rho / np.where(m > 0, m, 1.0), 1.0)
    return np.asarray(np.where(ok, np.sqrt(np.clip(1.0 - ratio**2, 0.0, 1.0)), -1.0))


@dataclass(frozen=True)
class CertifiedResult:
    """Smoothed attributions with a certified top-k radius and a certified cosine radius per input.

    Attributes:
        smoothed: ``batch x players`` mean of the base maps under the noise.
        frequency: ``batch x players`` estimated probability ``gbar_i`` of being in the top-k
            (strictly above the ``(k+1)``-th score; players tied at the k-th place count in none).
        lower, upper: ``batch x players`` simultaneous confidence bounds of ``gbar``.
        topk: ``batch x k`` players of the certified set ``T`` (largest ``frequency`` first).
        gap: ``batch`` certified gap ``min_T lower - max_rest upper`` (<= 0: not certified).
        radius: ``batch`` radius in the ``norm`` within which ``T`` provably stays the top-k.
        certified: ``batch`` booleans, ``radius > 0``.
        norm: the perturbation norm of ``radius`` (``"l2"`` or ``"linf"``).
        noise, smoothing, k, alpha, bound, n_samples, method: the settings.
        confidence: ``1 - alpha``, the probability that one input's certificates (all its players
            together) hold; over ``B`` inputs together only ``>= 1 - B alpha`` (Bonferroni).
        dim: number of noised input elements ``D``.
        feature_names: one name per player.
        input_shape: shape of one input (players are its elements when dense).
        n_evals: model evaluations per input.
        clipped: ``batch x players`` estimate ``g_hat`` of the smoothed *clipped* map the cosine
            certificate is about (``clip_norm=None``: mean of the unit-normalised base maps).
        clip_norm: ``M``, the norm bound of the clipped base maps (1.0 when normalised).
        normalised: True when the base maps were normalised (``clip_norm=None``).
        norm_error: ``beta``, the bound on ``||g_hat - g||`` that holds with ``1 - alpha``.
        norm_lower: ``batch`` lower confidence bound ``||g_hat|| - beta`` on ``||g(x)||`` (>= 0).
        min_cosine: the target cosine of ``cosine_radius``.
        cosine_radius: ``batch`` largest perturbation size (``norm``) whose certified cosine
            similarity between ``g(x)`` and ``g(x + delta)`` is still ``>= min_cosine``.
        eps: the perturbation size of ``cosine_lower`` (None if not asked for).
        cosine_lower: ``batch`` certified lower bound on the cosine at ``eps`` (None without ``eps``).
        channel_axis: the channel axis (0 or -1) of a 3-D ``input_shape`` as the model reads it
            (its first ``Conv2d``; :attr:`tribute.Attribution.layout`), None where it does not say:
            :func:`tribute.viz.certified_map` draws by it.
    """

    smoothed: np.ndarray
    frequency: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    topk: np.ndarray
    gap: np.ndarray
    radius: np.ndarray
    certified: np.ndarray
    norm: str
    noise: float
    smoothing: str
    k: int
    alpha: float
    bound: str
    n_samples: int
    method: str
    confidence: float
    dim: int
    feature_names: list[str]
    input_shape: tuple[int, ...]
    n_evals: int
    clipped: np.ndarray
    clip_norm: float
    normalised: bool
    norm_error: float
    norm_lower: np.ndarray
    min_cosine: float
    cosine_radius: np.ndarray
    eps: float | None = None
    cosine_lower: np.ndarray | None = None
    channel_axis: int | None = None

    def max_change(self, eps: float) -> float:
        """Largest change of any ``gbar_i`` under a perturbation of size ``eps`` (= ``TV(eps)``)."""
        return float(smoothing_tv(eps, self.noise, self.dim, self.smoothing))

    def max_shift(self, eps: float | np.ndarray) -> np.ndarray:
        """Bound ``2 M TV(eps)`` on ``||g(x + delta) - g(x)||_2`` for ``||delta|| <= eps`` (the clipped map)."""
        return np.asarray(2.0 * self.clip_norm * smoothing_tv(eps, self.noise, self.dim, self.smoothing))

    def cosine_bound(self, eps: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """Certified lower bound on ``cos(g(x), g(x + delta))`` for every ``||delta|| <= eps``.

        Args:
            eps: one perturbation size (-> ``batch``) or several (-> ``batch x len(eps)``), >= 0.
        """
        e = np.asarray(eps, dtype=np.float64)
        if not np.all(np.isfinite(e)) or np.any(e < 0):
            raise InputError(f"CertifiedResult.cosine_bound: eps={eps!r} must be finite and >= 0.")
        shift = self.max_shift(e)
        m = self.norm_lower.reshape((-1,) + (1,) * e.ndim)
        return cosine_lower_bound(m, shift[None])

    def radius_at(self, min_cosine: float) -> np.ndarray:
        """``batch`` largest perturbation size whose certified cosine is ``>= min_cosine`` (in (-1, 1])."""
        _check_cosine(min_cosine, "CertifiedResult.radius_at")
        return _cosine_radius(self.norm_lower, float(min_cosine), self.clip_norm, self.noise, self.dim,
                              self.smoothing)

    def plot(self, i: int = 0, kind: str = "topk", **kwargs: Any) -> Any:
        """Draw input ``i``: ``kind="topk"`` the smoothed map with its certified top-k and radius
        (:func:`tribute.viz.certified_map`); ``kind="cosine"`` the certified cosine bound against
        the perturbation size and the cosine radius of every input (:func:`tribute.viz.certified_cosine`)."""
        from ..viz import certified_cosine, certified_map  # viz sits above methods: lazy

        if kind == "topk":
            return certified_map(self, i, **kwargs)
        if kind == "cosine":
            return certified_cosine(self, i, **kwargs)
        raise InputError(f"CertifiedResult.plot: kind={kind!r} must be 'topk' or 'cosine'.")


def _check_cosine(value: Any, where: str) -> None:
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or not -1.0 < float(value) <= 1.0:
        raise InputError(f"{where}: min_cosine={value!r} must be a number in (-1, 1] (a cosine similarity; "
                         "e.g. 0.9).")


def _cosine_radius(norm_lower: np.ndarray, min_cosine: float, clip: float, noise: float, dim: int,
                   smoothing: str) -> np.ndarray:
    """Largest ``eps`` with ``cosine_lower_bound(norm_lower, 2 clip TV(eps)) >= min_cosine`` (0 if none)."""
    room = np.sqrt(max(0.0, 1.0 - min_cosine**2)) if min_cosine > 0 else 1.0
    tv = np.asarray(norm_lower, dtype=np.float64) * room / (2.0 * clip)
    return np.array([smoothing_radius(float(t), noise, dim, smoothing) for t in tv.ravel()]).reshape(tv.shape)


def _clip_maps(maps: np.ndarray, clip_norm: float | None) -> tuple[np.ndarray, float]:
    """Base maps (``... x players``) put in the ball of radius ``M``: normalised (``None``, ``M = 1``) or clipped."""
    norms = np.linalg.norm(maps, axis=-1, keepdims=True)
    if clip_norm is None:
        return np.where(norms > 0, maps / np.where(norms > 0, norms, 1.0), 0.0), 1.0
    scale = np.minimum(1.0, float(clip_norm) / np.where(norms > 0, norms, 1.0))
    return maps * scale, float(clip_norm)


def _map_statistics(maps: np.ndarray, k: int, rank_by: str, clip_norm: float | None,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(top-k counts, mean map, mean clipped map)``, each ``inputs x players``, of base maps
    ``inputs x draws x players``.

    A draw counts a player in its top-k only when the player outranks the ``(k+1)``-th score
    strictly, so players tied at the k-th place are in no draw's top-k (breaking the tie by
    player order "certified" a zero-credit player into the top-k: tanh(2 x0) on 4 inputs, k=2 ->
    {x0, x1}, frequency [1, 1, 0, 0], although x1, x2, x3 are all 0; review rev41d).
    """
    score = np.abs(maps) if rank_by == "abs" else maps
    next_score = -np.partition(-score, k, axis=2)[:, :, k:k + 1]
    counts = (score > next_score).astype(np.float64).sum(axis=1)
    del score, next_score
    clipped_maps, _ = _clip_maps(maps, clip_norm)
    return counts, maps.mean(axis=1), clipped_maps.mean(axis=1)


def _noisy_subset(game: FeatureGame, rows: torch.Tensor, x: torch.Tensor, z: torch.Tensor,
                  noise: float) -> FeatureGame:
    """A view of the noisy copies ``x_b + noise * z_k`` of the samples ``rows`` only (copy ``k`` of
    ``rows[i]`` is sample ``i * K + k``), charging its evaluations to those samples. ``x`` holds
    those samples' flat inputs in the game's compute dtype (on the CPU): built once per chunk,
    not per block (rebuilding the whole batch per block made 1,000 images 2.4x slower; rev48r)."""
    dtype = game.compute_dtype
    k_count = int(z.shape[0])
    sigma = torch.full((len(rows),), noise, dtype=torch.float64)  # as noisy_view: the same numbers
    noisy = (x[:, None, :] + sigma.to(dtype)[:, None, None] * z.to(dtype)[None]).reshape(len(rows) * k_count, -1)
    shapes = game.input_shapes()
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    inputs = [part.reshape(-1, *s) for part, s in zip(torch.split(noisy, sizes, dim=1), shapes)]
    return game.with_inputs(inputs, parent=rows.repeat_interleave(k_count), flat_results=True)


def _check(name: str, value: Any, kind: type, low: float, *, strict: bool = False) -> None:
    # numpy integers (np.int64 from an array or a config) are integers too: they were refused
    # as "np.int64(10) must be a integer"
    ok = isinstance(value, (int, np.integer) if kind is not float else (int, float, np.floating, np.integer))
    ok = ok and not isinstance(value, (bool, np.bool_)) and (value > low if strict else value >= low)
    if not ok or (kind is float and not math.isfinite(float(value))):
        raise InputError(f"certified_attribution: {name}={value!r} must be "
                         f"{'a number' if kind is float else 'an integer'} {'>' if strict else '>='} {low}.")


@register_analysis("certified_attribution", kind="robustness",
                   paper="Wang & Kong (2024), Certified L2 attribution robustness via uniformly smoothed "
                   "attributions; Levine, Singla & Feizi (2019), Certifiably robust interpretation in deep learning")
def certified_attribution(
    model: Any,
    inputs: Any,
    method: str = "saliency",
    *,
    noise: float = 0.1,
    smoothing: str = "l2",
    k: int = 3,
    n_samples: int = 200,
    alpha: float = 0.05,
    bound: str = "clopper_pearson",
    rank_by: str = "abs",
    seed: int = 0,
    target: Any = None,
    output: str = "raw",
    baseline: Any = 0.0,
    groups: Any = None,
    method_params: dict[str, Any] | None = None,
    feature_names: Sequence[str] | None = None,
    model_output: str | None = None,
    batch_size: int | None = None,
    min_cosine: float = 0.9,
    clip_norm: float | None = None,
    eps: float | None = None,
) -> CertifiedResult:
    """Smoothed attributions under uniform noise, with certified top-k and cosine radii per input.

    Args:
        model: a model :func:`tribute.explain` accepts.
        inputs: a batch of real-valued inputs.
        method: the base attribution method (registry name). default="saliency".
        noise: radius of the L2 ball (``smoothing="l2"``) or half-width of the cube
            (``"linf"``), in input units (> 0). default=0.1.
        smoothing: ``"l2"`` (certifies L2 perturbations) or ``"linf"`` (L-inf). default="l2".
        k: size of the certified top-k set (1 <= k < players). default=3.
        n_samples: noise draws per input (>= 2). default=200.
        alpha: each input's certificates (all its players together) hold with probability
            ``>= 1 - alpha``. default=0.05.
        bound: ``"clopper_pearson"`` or ``"hoeffding"``. default="clopper_pearson".
        rank_by: rank players by ``"abs"`` (magnitude) or ``"signed"`` credit. default="abs".
        seed: seed of the local generator (noise draws and the base method). default=0.
        target, output, baseline, groups, feature_names, model_output, batch_size: as in
            :func:`tribute.explain`. The target is fixed at ``x`` (``target=None``: the class
            predicted at ``x``) and every noisy copy explains that target, so the certificates are
            about that target's map, also at an ``x + delta`` where the model predicts another class.
        method_params: the base method's hyperparameters. default=None.
        min_cosine: target cosine similarity of the cosine radius (Wang & Kong), in (-1, 1].
            default=0.9.
        clip_norm: ``M`` for the cosine certificate: base maps longer than ``M`` are scaled down
            to norm ``M`` (> 0); None normalises every map to unit norm (``M = 1``). default=None.
        eps: also report the certified cosine lower bound at this perturbation size (>= 0, in the
            smoothing's norm) as ``cosine_lower``. default=None.

    Returns:
        A :class:`CertifiedResult`.
    """
    seed = check_seed(seed)
    _check("noise", noise, float, 0.0, strict=True)
    _check("n_samples", n_samples, int, 2)
    _check("alpha", alpha, float, 0.0, strict=True)
    if not alpha < 1.0:
        raise InputError(f"certified_attribution: alpha={alpha!r} must be in (0, 1).")
    if smoothing not in SMOOTHINGS:
        raise InputError(f"certified_attribution: smoothing={smoothing!r} must be one of {SMOOTHINGS}.")
    if bound not in BOUNDS:
        raise InputError(f"certified_attribution: bound={bound!r} must be one of {BOUNDS}.")
    if rank_by not in ("abs", "signed"):
        raise InputError(f"certified_attribution: rank_by={rank_by!r} must be 'abs' or 'signed'.")
    _check_cosine(min_cosine, "certified_attribution")
    if clip_norm is not None:
        _check("clip_norm", clip_norm, float, 0.0, strict=True)
    if eps is not None:
        _check("eps", eps, float, 0.0)
    cls = get_method(method)
    params = dict(method_params or {})
    unknown = set(params) - set(cls.defaults())
    if unknown:
        raise InputError(f"certified_attribution: method_params has unknown parameter(s) {sorted(unknown)} "
                         f"for method={method!r}; its parameters are {sorted(cls.defaults()) or 'none'}.")
    base = cls(**params)
    # build_game reads an int target of a classifier fitted on labels such as 1, 2, 3 as a
    # class label, as tribute.explain does
    # the model runs in eval mode with its parameters frozen (dropout off, batch-norm statistics
    # untouched) and is restored afterwards, as in tribute.explain (adapter.session)
    adapter = as_model(model, framework_of(inputs), model_output)
    with adapter.session():
        game = build_game(adapter, inputs, target=target, baseline=baseline, groups=groups, output=output,
                          feature_names=feature_names, batch_size=batch_size)
        if not isinstance(game, FeatureGame):
            raise InputError(f"certified_attribution: needs input-feature players; got a {type(game).__name__}.")
        if game.target.multi:
            raise InputError("certified_attribution: explain one target at a time (target is a list/matrix).")
        players = game.n_players
        _check("k", k, int, 1)
        if k >= players:
            raise InputError(f"certified_attribution: k={k} must be below the number of players ({players}); "
                             "a top-k set of every player cannot change.")
        x = game.inputs_flat().detach().to("cpu", torch.float64)
        b, dim = x.shape
        gen = torch.Generator().manual_seed(seed)
        if smoothing == "l2":
            g = torch.randn(n_samples, dim, generator=gen, dtype=torch.float64)
            u = torch.rand(n_samples, 1, generator=gen, dtype=torch.float64) ** (1.0 / dim)
            z = g / g.norm(dim=1, keepdim=True) * u
        else:
            z = torch.rand(n_samples, dim, generator=gen, dtype=torch.float64) * 2.0 - 1.0
        # blocks of draws sized for ONE input, so the base method's seed of every draw (seed + the
        # block's first draw) does not depend on the batch; inputs go in chunks that bound memory.
        # Blocks sized for the whole batch gave a stochastic base method other seeds in a batch
        # than alone (rise, 3000 inputs, batch of 2: frequencies off by 0.13, radius 0.0011 vs
        # 0.0021 alone; aud48r), and seed + lo overflowed torch's generator past 2**64 - 1.
        per_draw = max(1, (dim + players) * 8 * 4)
        block = max(1, min(n_samples, _BLOCK_BYTES // per_draw))
        chunk = max(1, _BLOCK_BYTES // (block * per_draw))
        # the base maps of one chunk of inputs at a time, reduced to per-input statistics before
        # the next chunk: holding every input's maps (batch x draws x players, float64, plus four
        # working copies of that size) took 100 MB of peak memory per 3 x 64 x 64 image (16 images:
        # 1.6 GB over the baseline; aud50r). Each input's statistics are reduced from its own rows
        # alone, so they are the numbers the whole-batch reduction gave.
        counts = np.zeros((b, players))
        smoothed = np.zeros((b, players))
        clipped = np.zeros((b, players))
        clip = 1.0 if clip_norm is None else float(clip_norm)
        for first in range(0, b, chunk):
            rows = torch.arange(first, min(b, first + chunk))
            sigma = torch.full((len(rows),), float(noise), dtype=torch.float64)
            # x is the compute-dtype inputs widened to float64: narrowing back is exact
            x_rows = x[rows].to(game.compute_dtype) if len(rows) < b else x
            maps = np.zeros((len(rows), n_samples, players))
            for lo in range(0, n_samples, block):
                hi = min(n_samples, lo + block)
                view = noisy_view(game, z[lo:hi], sigma) if len(rows) == b else _noisy_subset(
                    game, rows, x_rows, z[lo:hi], float(noise))
                attr = base.attribute(view, seed=(seed + lo) % 2**64)
                vals = attr.values
                vals = vals.detach().cpu().numpy() if isinstance(vals, torch.Tensor) else np.asarray(vals)
                maps[:, lo:hi] = np.asarray(vals, dtype=np.float64).reshape(len(rows), hi - lo, players)
            sl = slice(first, first + len(rows))
            counts[sl], smoothed[sl], clipped[sl] = _map_statistics(maps, k, rank_by, clip_norm)
            del maps
    freq = counts / n_samples
    # 2 x players one-sided bounds (T is picked from the same draws): all hold with >= 1 - alpha
    lower, upper = binomial_bounds(counts, n_samples, alpha / (2 * players), bound)
    mag = np.abs(smoothed) if rank_by == "abs" else smoothed
    topk = np.lexsort((-mag, -freq), axis=1)[:, :k] if b else np.zeros((0, k), dtype=np.int64)
    rest = np.ones((b, players), dtype=bool)
    np.put_along_axis(rest, topk, False, axis=1)
    gap = np.take_along_axis(lower, topk, axis=1).min(1) - np.where(rest, upper, -np.inf).max(1)
    radius = np.array([smoothing_radius(float(gp) / 2.0, float(noise), dim, smoothing) for gp in gap])
    # the cosine certificate (module docstring): clipped maps, a norm confidence bound, the radius
    beta = norm_deviation_bound(n_samples, float(alpha), clip)
    norm_lower = np.maximum(np.linalg.norm(clipped, axis=1) - beta, 0.0)
    cos_radius = _cosine_radius(norm_lower, float(min_cosine), clip, float(noise), dim, smoothing)
    cos_lower = None
    if eps is not None:
        shift = 2.0 * clip * smoothing_tv(float(eps), float(noise), dim, smoothing)
        cos_lower = cosine_lower_bound(norm_lower, shift)
    return CertifiedResult(
        smoothed=smoothed, frequency=freq, lower=lower, upper=upper, topk=topk, gap=gap, radius=radius,
        certified=radius > 0, norm=smoothing, noise=float(noise), smoothing=smoothing, k=int(k),
        alpha=float(alpha), bound=bound, n_samples=int(n_samples), method=method, confidence=1.0 - float(alpha),
        dim=int(dim), feature_names=list(game.player_names), input_shape=tuple(game.input_shapes()[0]),
        n_evals=int(game.n_evals), clipped=clipped, clip_norm=clip, normalised=clip_norm is None,
        norm_error=beta, norm_lower=norm_lower, min_cosine=float(min_cosine), cosine_radius=cos_radius,
        eps=None if eps is None else float(eps), cosine_lower=cos_lower,
        channel_axis=getattr(getattr(game, "layout", None), "channel_axis", None))
