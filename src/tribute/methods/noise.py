"""Noise wrappers around gradient methods: SmoothGrad, SmoothGrad², VarGrad.

Each wrapper explains ``K`` noisy copies ``x + eps_k`` of every input with a base gradient
method and reports a statistic of the ``K`` attributions ``phi_k``:

* ``smoothgrad``: the mean ``E[phi_k]``;
* ``smoothgrad_sq``: the mean square ``E[phi_k^2]``;
* ``vargrad``: the variance of the ``phi_k`` (the unbiased sample variance).

The noise ``eps_k = sigma_b * z_k`` uses one standard-normal draw ``z_k`` per copy shared by
every sample of the batch (common random numbers), scaled per sample by
``sigma_b = noise * (max(x_b) - min(x_b))`` as in the SmoothGrad paper.

``base="saliency"`` takes all ``K`` gradients in one batched pass
(:meth:`FeatureGame.input_gradients`). Any other base runs on a *noisy view* of the game: a
feature game whose samples are the ``batch x K`` noisy copies (each keeps its parent's target,
baseline, groups and forward arguments), evaluated through the same engine, in blocks of
copies that bound memory.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np
import torch

from ..attribution import Attribution
from ..errors import BudgetError, InputError
from ..games.base import Game
from ..games.features import FeatureGame
from ..params import NONE, InstanceOf, Interval, declare, scalar_value
from ._stderr import inflate, t_factor
from .base import Cost, Method, Tags, coalition_cost, get_method, register
from .gradients_basic import StreamingMoments, feature_game, rows_to_players

__all__ = ["SmoothGrad", "SmoothGradSq", "VarGrad", "noisy_view"]

#: Bytes of noisy inputs plus per-copy attributions held at once by the generic path.
_BLOCK_BYTES = 64 * 1024**2


def noisy_view(game: FeatureGame, z: torch.Tensor, sigma: torch.Tensor) -> FeatureGame:
    """A feature game whose samples are noisy copies ``x_b + sigma_b * z_k`` of ``game``'s.

    Sample ``b * K + k`` of the view is copy ``k`` of sample ``b``; it keeps that sample's
    target, baseline, groups and forward arguments (:meth:`FeatureGame.with_inputs`). The view
    shares the parent's engine and reports its evaluations to the parent (``K`` per parent
    sample for each of its own).

    Args:
        game: the parent feature game (real-valued inputs).
        z: ``K x D`` standard-normal draws (``D`` = all input elements).
        sigma: ``batch`` noise scales.
    """
    b_total, k_count = game.n_samples, int(z.shape[0])
    dtype = game.compute_dtype
    parent = torch.arange(b_total).repeat_interleave(k_count)
    x = game.inputs_flat().to("cpu", dtype)
    noisy = (x[:, None, :] + sigma.to(dtype)[:, None, None] * z.to(dtype)[None]).reshape(
        b_total * k_count, -1)
    shapes = game.input_shapes()
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    inputs = [part.reshape(-1, *s) for part, s in zip(torch.split(noisy, sizes, dim=1), shapes)]
    return game.with_inputs(inputs, parent=parent, flat_results=True)


def _variance_stderr(s2: torch.Tensor, mu4: torch.Tensor, k: float) -> torch.Tensor:
    """Standard error of the unbiased sample variance ``s2`` of ``k`` draws.

    ``Var(s2) = (mu_4 - sigma^4 (k - 3) / (k - 1)) / k`` (Cramér 1946, 27.4), with the fourth
    central moment ``mu4`` (divided by ``k``) and ``s2`` plugged in; reduces to the familiar
    ``(mu_4 - sigma^4) / k`` for large ``k``.
    """
    return ((mu4 - s2 * s2 * (k - 3.0) / (k - 1.0)).clamp_min(0.0) / k).sqrt()


def _copy_seed(seed: int, k: int) -> int:
    """The base method's seed for noisy copy ``k`` (independent streams per copy)."""
    return int(np.random.SeedSequence([int(seed) % (1 << 64), int(k)]).generate_state(1)[0])


class _NoiseWrapper(Method):
    """Shared machinery of the three wrappers (see the module docstring)."""

    statistic: ClassVar[str] = "mean"
    tags = Tags(family="gradient", needs_gradients=True, stochastic=True, budgeted=True,
                games=("feature",))
    constraints = declare({
        "base": InstanceOf((str,), "the registry name of a gradient method, e.g. 'saliency'"),
        "n_samples": Interval(int, 2),
        "noise": Interval(float, 0.0, math.inf, closed="left"),
        "base_params": (NONE, InstanceOf((dict,), "a dict of the base method's parameters")),
    })

    def __init__(self, base: str = "saliency", n_samples: int = 50, noise: float = 0.15,
                 base_params: dict[str, Any] | None = None) -> None:
        self.base = base
        self.n_samples = n_samples
        self.noise = scalar_value(noise)  # a 0-d tensor / array is the number it holds
        self.base_params = base_params

    # ------------------------------------------------------------- validation
    def _base_method(self) -> Method:
        cls = get_method(self.base)
        if issubclass(cls, _NoiseWrapper):
            raise InputError(f"base={self.base!r} is itself a noise wrapper; pick a plain gradient method.")
        if not cls.tags.needs_gradients:
            raise InputError(
                f"base={self.base!r} is not a gradient method; noise wrappers average gradient "
                "maps (saliency, input_x_gradient, integrated_gradients, deeplift, ...)."
            )
        params = dict(self.base_params or {})
        unknown = set(params) - set(cls.defaults())
        if unknown:
            raise InputError(
                f"base_params has unknown parameter(s) {sorted(unknown)} for base={self.base!r}; "
                f"its parameters are {sorted(cls.defaults()) or 'none'}."
            )
        return cls(**params)

    def _fast(self) -> bool:
        return self.base == "saliency"

    def min_budget(self, game: Game) -> int:
        # two noisy copies, plus v(N) of the clean input (the reference pass, already spent)
        if self._fast():
            return 2 + game.n_evals
        # every one of the n_samples copies runs the base method with its share (rev51g: "2 x
        # the base's minimum" let budget=7 / 81 through check(), n_samples=40 of IG needs 121)
        return int(self.n_samples) * self._base_method().min_budget(game) + game.n_evals

    def min_budget_reason(self, game: Game) -> str:
        if self._fast():
            return ""
        k, need = int(self.n_samples), self._base_method().min_budget(game)
        return (f" (n_samples={k} noisy copies x {need} for base={self.base!r}, plus the clean "
                f"input's pass; lower n_samples to need less)")

    # --------------------------------------------------------------- the method
    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        fg = feature_game(game, self.name)
        base = self._base_method()
        k_count: int = self.n_samples
        noise = float(self.noise)
        per_draw: int | None = None
        base_count: dict[str, int] | None = None
        if budget is not None:
            # v(N) of the clean input (the reference pass) is already spent
            if self._fast():
                k_count = fg.budget_left(budget)
            else:
                per_draw = fg.budget_left(budget) // k_count
                need = base.min_budget(fg)
                if per_draw < need:
                    raise BudgetError(
                        f"budget={budget} gives {per_draw} evaluations to each of the n_samples="
                        f"{k_count} noisy copies, but base={self.base!r} needs at least {need}; "
                        f"raise budget to >= {need * k_count + budget - fg.budget_left(budget)} "
                        "or lower n_samples."
                    )
                base_count = self._base_count(base, fg, budget, k_count, per_draw)
        k_count = int(k_count)

        gen = torch.Generator().manual_seed(seed)
        x64 = fg.inputs_flat().detach().to("cpu", torch.float64)
        z = torch.randn(k_count, x64.shape[1], generator=gen, dtype=torch.float64)
        sigma = noise * (x64.amax(dim=1) - x64.amin(dim=1))
        shape = (fg.n_samples, fg.n_targets, fg.n_players)
        # Moments of phi_k (SmoothGrad, VarGrad) or of phi_k^2 (SmoothGrad²); VarGrad's
        # standard error needs the fourth central moment.
        moments = StreamingMoments(shape, order=4 if self.statistic == "variance" else 2)

        def feed(phi: torch.Tensor, sample: torch.Tensor) -> None:
            moments.update(phi**2 if self.statistic == "square" else phi, sample)

        if self._fast():
            self._saliency_pass(fg, z, sigma, feed)
        else:
            self._generic_pass(fg, base, z, sigma, per_draw, seed, feed)

        k = float(k_count)
        # ``k - 1`` dof: Student's factor keeps +-2 stderr at 95% with few copies (._stderr)
        if self.statistic in ("mean", "square"):
            values = moments.mean
            stderr = moments.stderr_of_mean() * t_factor(k - 1)
        else:  # variance: the unbiased sample variance, its standard error from the 4th moment
            # (an estimate far noisier than a variance: pooled towards the other players')
            values = moments.variance()
            stderr = inflate(_variance_stderr(values, moments.central(4), k), k - 1)
        extra = {"n_samples": k_count, "sigma": sigma.numpy()}
        if base_count is not None:  # the base method's count each copy's share of the budget ran
            extra["base_count"] = base_count
        # params state the copies that ran (set by the budget on the saliency fast path)
        return fg.attribution(values, self.name, {**self.get_params(), "n_samples": k_count},
                              stderr=stderr, extra=extra)

    def _base_count(self, base: Method, fg: FeatureGame, budget: int, k_count: int,
                    per_draw: int) -> dict[str, int] | None:
        """The base method's count (integrated_gradients' ``steps``) that each copy's
        ``per_draw`` evaluations run; a different one in ``base_params`` is refused."""
        name = base.budget_count()
        if name is None:
            return None
        ran = base.budget_sets(fg, per_draw)
        given = (self.base_params or {}).get(name)
        if ran is None:
            return None
        if given is not None and given != ran:
            raise InputError(
                f"{self.name}: base_params {name}={given!r} and budget={budget} disagree: each of "
                f"the n_samples={k_count} copies gets {per_draw} evaluations, which run "
                f"{self.base} with {name}={ran}. Give one of them (budget, or base_params["
                f"{name!r}] with n_samples).")
        return {name: int(ran)}

    def _saliency_pass(self, fg: FeatureGame, z: torch.Tensor, sigma: torch.Tensor,
                       feed: Any) -> None:
        absolute = bool((self.base_params or {}).get("absolute", False))
        device, dtype = fg.model.device, fg.compute_dtype
        z_d, sig_d = z.to(device, dtype), sigma.to(device, dtype)
        shapes = fg.input_shapes()
        sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]

        def make_points(xs: tuple[torch.Tensor, ...], b: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, ...]:
            noise = torch.split(sig_d[b][:, None] * z_d[k], sizes, dim=1)
            return tuple(xi + ni.reshape(xi.shape) for xi, ni in zip(xs, noise))

        def transform(g: torch.Tensor, b: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            # Streaming sink: each noisy copy's saliency map (per player) feeds the moments.
            feed(rows_to_players(fg, g.abs() if absolute else g, b), b)
            return g[..., :0]

        fg.input_gradients(int(z.shape[0]), make_points, powers=(), transform=transform)

    def _generic_pass(self, fg: FeatureGame, base: Method, z: torch.Tensor, sigma: torch.Tensor,
                      per_draw: int | None, seed: int, feed: Any) -> None:
        b_total, k_count = fg.n_samples, int(z.shape[0])
        d = int(z.shape[1])
        per_copy = 8 * (2 * d + 2 * fg.n_targets * fg.n_players)
        block = int(max(1, min(k_count, _BLOCK_BYTES // max(1, b_total * per_copy))))
        # A stochastic base (expected_gradients) draws its alphas/baselines once per call,
        # shared by every sample of the view: copies in one view would share them, so their
        # Monte-Carlo error would not average out over the copies and the copies' spread (the
        # standard error) would miss it -- 5 stderr off at noise=0.01, stderr 1e-18 at noise=0
        # (audit aud36n). Each copy then runs alone, with its own seed.
        stochastic = bool(base.tags.stochastic)
        if stochastic:
            block = 1
        for k0 in range(0, k_count, block):
            kb = min(block, k_count - k0)
            view = noisy_view(fg, z[k0 : k0 + kb], sigma)
            use = base.check(view, per_draw)
            # Deterministic bases: the same seed for every block; stochastic ones: a seed per
            # copy. Either way copy k's base draws never depend on the blocking.
            attr = base.attribute(view, budget=use, seed=_copy_seed(seed, k0) if stochastic else seed)
            phi = torch.from_numpy(attr.flat())  # (B*kb) x T x n
            feed(phi, torch.arange(b_total).repeat_interleave(kb))  # view order b*kb + k

    budget_rule = "n_samples x the base method's evaluations + 1 (n_samples=50)"  # + the clean input's pass
    budget_param = "n_samples"

    def budget_count(self) -> str | None:
        # saliency copies: the budget is the copies; other bases split it over n_samples copies
        return "n_samples" if self._fast() else None

    def budget_sets(self, game: Game, budget: int) -> int | None:
        return feature_game(game, self.name).budget_left(budget) if self._fast() else None

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """``n_samples`` noisy copies: one input gradient each (the saliency fast path) or the
        base method's cost per block of copies (moments of the credits streamed)."""
        k = int(self.n_samples) if isinstance(self.n_samples, int) else 2
        if self._fast():
            k = int(budget) if budget is not None else k
            c = coalition_cost(game, k, grads=True, mask_rows=0, note=f"{k:,} noisy gradient passes")
            # a budget counts v(N)'s pass; n_samples copies come after it
            rows = int(game.n_samples) * (int(budget) if budget is not None else k + 1)
            return Cost(rows, c.bytes + 5 * c.bytes // 3, c.note, c.flops)
        # each copy runs the base method with its share of the budget (as attribute() splits
        # it), after v(N) of the clean input: one row per input. A base that never asks for
        # its noisy copy's own v(N) (Method.reads_full) does not run what its estimate counts.
        base = self._base_method()
        per_draw = game.budget_left(int(budget)) // k if budget is not None else None
        per = base.estimate_cost(game, per_draw)
        reads = base.reads_full if base.reads_full is not None else base.tags.has_gap
        per_rows = per.rows - (0 if reads else int(game.n_samples))
        return Cost(int(game.n_samples) + max(per_rows, 0) * k, per.bytes + _BLOCK_BYTES,
                    f"{k:,} noisy copies; " + per.note, per.flops * k)


@register
class SmoothGrad(_NoiseWrapper):
    """SmoothGrad: the mean of a gradient method's maps over noisy copies of the input.

    Args:
        base: registry name of the gradient method to smooth (``saliency``,
            ``input_x_gradient``, ``integrated_gradients``, ``expected_gradients``,
            ``deeplift``, ``grad_cam``, ...). default="saliency".
        n_samples: noisy copies per input (``>= 2``). default=50. With ``budget``: for
            ``base="saliency"`` ``n_samples = budget - 1`` (the clean input's reference pass is
            one evaluation; ``attr.params["n_samples"]`` is the number used); otherwise every
            copy gets ``(budget - 1) // n_samples`` evaluations of the base method. With
            ``base="saliency"``, ``n_samples`` and ``budget`` given with other values are
            refused by :func:`tribute.explain`.
        noise: noise standard deviation as a fraction of each sample's input range
            ``max(x) - min(x)``. default=0.15.
        base_params: hyperparameters of the base method, e.g. ``{"steps": 20}``. default=None.

    Standard errors: standard deviation of the per-copy maps over ``sqrt(n_samples)``, times
    Student's ``t_{n_samples - 1}(0.977) / 2`` so that +-2 stderr covers the infinite-sample
    mean 95% of the time with few copies (it covered 85% at ``n_samples=4`` without).

    Reference: Smilkov, Thorat, Kim, Viégas & Wattenberg (2017), "SmoothGrad: removing noise by
    adding noise".
    """

    name = "smoothgrad"
    statistic = "mean"
    paper = "Smilkov et al. (2017), SmoothGrad: removing noise by adding noise"


@register
class SmoothGradSq(_NoiseWrapper):
    """SmoothGrad²: the mean of the *squared* maps of a gradient method over noisy copies.

    Args:
        base: registry name of the gradient method. default="saliency".
        n_samples: noisy copies per input (``>= 2``). default=50.
        noise: noise standard deviation as a fraction of each sample's input range. default=0.15.
        base_params: hyperparameters of the base method. default=None.

    Standard errors: standard deviation of the squared maps over ``sqrt(n_samples)``, times
    Student's ``t_{n_samples - 1}(0.977) / 2`` (81% coverage at ``n_samples=4`` without, 89%
    with; 95% from about 64 copies).

    Reference: Hooker, Erhan, Kindermans & Kim (2019), "A Benchmark for Interpretability
    Methods in Deep Neural Networks" (SmoothGrad-Squared); Smilkov et al. (2017).
    """

    name = "smoothgrad_sq"
    statistic = "square"
    tags = dataclasses.replace(_NoiseWrapper.tags, signed=False)  # squared maps: no direction
    paper = "Hooker et al. (2019), A Benchmark for Interpretability Methods in Deep Neural Networks"


@register
class VarGrad(_NoiseWrapper):
    """VarGrad: the variance of a gradient method's maps over noisy copies (always >= 0).

    Reports the unbiased sample variance ``sum_k (phi_k - mean)^2 / (n_samples - 1)``, whose
    expectation is the variance of the maps under the noise (the infinite-sample limit).
    Captum's ``vargrad`` divides by ``n_samples``: its values are ``(n_samples - 1) /
    n_samples`` of these, biased low by 25% at 4 copies, 2% at 50.

    Args:
        base: registry name of the gradient method. default="saliency".
        n_samples: noisy copies per input (``>= 2``). default=50.
        noise: noise standard deviation as a fraction of each sample's input range. default=0.15.
        base_params: hyperparameters of the base method. default=None.

    Standard errors: ``sqrt((mu_4 - var^2 (K - 3) / (K - 1)) / K)`` with ``K = n_samples`` and
    ``mu_4`` the fourth central moment (the standard error of a sample variance), pooled
    towards the other players' and t-inflated with ``K - 1`` dof (:mod:`._stderr`). Coverage
    of the limit by +-2 stderr, measured on a small MLP (200 seeds): 85% at 4 copies, 91% at
    16, 93% at 64 (53%, 82% and 91% with the biased value and the plain standard error). A
    sample variance from few draws is skewed (right tail), so coverage stays below 95% at
    very small ``n_samples``.

    Reference: Adebayo, Gilmer, Goodfellow & Kim (2018), "Local Explanation Methods for Deep
    Neural Networks Lack Sensitivity to Parameter Values".
    """

    name = "vargrad"
    statistic = "variance"
    tags = dataclasses.replace(_NoiseWrapper.tags, signed=False)  # a variance: no direction
    paper = "Adebayo et al. (2018), Local Explanation Methods for Deep Neural Networks Lack Sensitivity to Parameter Values"
