"""XRAI: regions ranked by their integrated-gradient density (Kapishnikov et al. 2019).

1. **Attribution**: integrated gradients of the explained output with the game's baseline
   (:func:`tribute.methods.integrated.integrate_mask_gradients`, Gauss-Legendre nodes, counted
   through the game like every gradient point), summed over channels per pixel (the
   reference implementation, PAIR ``saliency``, takes the channel maximum; the sum keeps IG's
   completeness per region). The paper averages the IG of a black and a white baseline; here
   the baseline is the game's removal value (pass ``baseline=`` to :func:`tribute.explain`),
   so XRAI ranks regions for the same game every other method explains.
2. **Over-segmentation**: Felzenszwalb-Huttenlocher segments (:mod:`.segmentation`) at the
   paper's scales ``k = 50, 100, 150, 250, 500, 1200`` (skimage's convention: images scaled
   to ``[-1, 1]``, ``k / 255`` in colour units), ``sigma = 0.8``; the pre-blur, the minimum
   segment size and the dilation radius scale with the image (the paper's 0.8, 150 and 5
   pixels on 224 x 224 images: ``sigma * side / 224``, fractions ``0.003`` of the pixels and
   ``0.022`` of the side). Every segment of every scale is a candidate
   region (regions overlap). On a grouped game (``groups=`` superpixels or patches) the groups
   are the regions and the grouped IG their attribution.
3. **Region growth**: starting from nothing, add the region whose not-yet-covered pixels have
   the highest mean attribution (:func:`.growth.grow_regions`); regions with fewer than
   ``min_new`` new pixels are dropped (the paper's ``min_pixel_diff``, 50 / 224^2).

Result: a pixel map (input-shaped, the same value over channels) in which every pixel holds
the gain (IG density) of the region that added it; ``Attribution.extra["region_rank"]``
(``batch x targets x H x W`` for dense games, ``batch x targets x players`` for grouped ones)
gives each pixel's region position by decreasing gain (0 = the densest region; ties in the
order added; the uncovered rest last), as the reference implementation ranks them, so sorting
the added regions' pixels by value reproduces the rank. The greedy may add a region before a
denser one (its low-attribution pixels were covered first), so the rank is not the order of
addition. ``extra["n_regions"]`` holds the number of regions per sample and target.
"""

from __future__ import annotations

import numpy as np
import torch

from ...attribution import Attribution
from ...errors import InputError
from ...games.base import Game
from ...params import InstanceOf, Interval, Options, declare
from ..base import Cost, Method, Tags, coalition_cost, register
from ..integrated import integrate_mask_gradients, quadrature
from ._common import image_info, lift_pixels, player_sizes, sample_regions, scale_params
from .growth import grow_regions

__all__ = ["XRAI"]

_SCALES = (50.0, 100.0, 150.0, 250.0, 500.0, 1200.0)


@register
class XRAI(Method):
    """XRAI: over-segment the image, rank regions by integrated-gradient density.

    Regions come from Felzenszwalb-Huttenlocher segmentation at several scales (or from the
    game's groups); they are added greedily by the mean IG of their new pixels. Returns a
    pixel map holding each pixel's region gain, and the region order in
    ``extra["region_rank"]`` (see the module docstring).

    Args:
        steps: integrated-gradient points (Gauss-Legendre) per input. default=32. With
            ``budget``, ``steps = budget - 1`` (both given with other values are refused by
            :func:`tribute.explain`).
        scales: Felzenszwalb-Huttenlocher ``k`` values (skimage convention). default=(50, 100,
            150, 250, 500, 1200) (the paper's).
        sigma: Gaussian pre-blur of the segmentation, in pixels of a 224-pixel side (scaled
            with the image, like ``min_size`` and ``dilation``). default=0.8.
        min_size: smallest segment as a fraction of the image's pixels. default=0.003.
        dilation: segment dilation radius as a fraction of the image side. default=0.022.
        min_new: drop a region once fewer than this fraction of the image's pixels would be
            new. default=0.001.
        channel_axis: the axis of the batched images that holds the channels (the CRAFT /
            TCAV / metrics convention): None or 1 for ``(batch, C, H, W)`` / ``(batch, H, W)``,
            -1 or 3 for channels-last ``(batch, H, W, C)``, segmented over ``(H, W)`` and
            mapped back to that layout (equal to the same images channels-first). None refuses
            images the model's first ``Conv2d`` reads channels-last. default=None.

    Budget: ``steps + 1`` evaluations per input (the gradient points and ``v(N)``).

    Reference: Kapishnikov, Bolukbasi, Viégas & Terry (2019), "XRAI: Better Attributions
    Through Regions" (ICCV).
    """

    name = "xrai"
    tags = Tags(family="region", needs_gradients=True, games=("feature",), budgeted=True,
                images_only=True)
    paper = "Kapishnikov et al. (2019), XRAI: Better Attributions Through Regions"
    constraints = declare({
        "steps": Interval(int, 1),
        "scales": InstanceOf((tuple, list), "a tuple of positive numbers, e.g. (50, 100, 500)"),
        "sigma": Interval(float, 0.0, float("inf"), closed="left"),
        "min_size": Interval(float, 0.0, 1.0, closed="neither"),
        "dilation": Interval(float, 0.0, 1.0, closed="left"),
        "min_new": Interval(float, 0.0, 1.0, closed="left"),
        "channel_axis": Options((None, 1, 3, -1)),
    })

    def __init__(self, steps: int = 32, scales: tuple[float, ...] = _SCALES, sigma: float = 0.8,
                 min_size: float = 0.003, dilation: float = 0.022, min_new: float = 0.001,
                 channel_axis: int | None = None) -> None:
        self.steps = steps
        self.scales = scales
        self.sigma = sigma
        self.min_size = min_size
        self.dilation = dilation
        self.min_new = min_new
        self.channel_axis = channel_axis

    def min_budget(self, game: Game) -> int:
        return 2

    budget_rule = "steps + 1 (steps=32)"
    budget_param = "steps"

    def budget_sets(self, game: Game, budget: int) -> int | None:
        return game.budget_left(budget)

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """``steps`` mask gradients per input plus the candidate regions per sample."""
        steps = int(self.steps if budget is None else budget - 1)
        n = int(game.n_players)
        # about 64 segments per scale (bool masks kept for every sample; one growth at a time
        # holds them as float64)
        masks = 64 * len(tuple(self.scales)) * n
        return coalition_cost(game, steps + 1, grads=True, mask_rows=min(steps, 1 << 20),
                              design=masks * (int(game.n_samples) + 8),
                              note=f"{steps:,} IG points x {n:,} players + segment masks")

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        fg, info = image_info(game, self.name, channel_axis=self.channel_axis, takes_axis=True)
        try:
            scales = tuple(float(k) for k in self.scales)
        except (TypeError, ValueError):
            raise InputError(f"scales={self.scales!r} must be a non-empty tuple of positive "
                             "numbers, e.g. (50, 100, 500).") from None
        if not scales or any(not np.isfinite(k) or k <= 0 for k in scales):
            raise InputError(f"scales={self.scales!r} must be a non-empty tuple of positive numbers.")
        if info.dense:
            scale_params(info, self.min_size, self.dilation)  # refuse before spending evaluations
        steps = int(self.steps if budget is None else game.budget_left(budget))
        alphas, weights = quadrature("gauss_legendre", steps)
        ig = integrate_mask_gradients(fg, alphas, weights)  # B x T x players
        b_count, t_count = fg.n_samples, fg.n_targets
        regions = sample_regions(fg, info, scales, float(self.sigma), float(self.min_size),
                                 float(self.dilation))
        if info.dense:  # per pixel: IG summed over channels; every pixel has area 1
            col_attr = (ig.reshape(b_count, t_count, info.pixels, info.channels).sum(3) if info.last
                        else ig.reshape(b_count, t_count, info.channels, info.pixels).sum(2))
            col_area = torch.ones(b_count, info.pixels, dtype=torch.float64)
        else:  # per group: grouped IG; area = the group's pixels
            col_attr = ig
            col_area = player_sizes(fg, info)
        min_new = float(self.min_new) * info.pixels
        gains = torch.zeros_like(col_attr)
        ranks = torch.zeros(col_attr.shape, dtype=torch.long)
        for b in range(b_count):
            masks = torch.from_numpy(regions[b])
            area = col_area[b]
            if not info.dense:  # players with no pixel (unused ids) cannot form a region
                masks = masks & (area > 0)[None]
            for t in range(t_count):
                gains[b, t], ranks[b, t] = grow_regions(masks, col_attr[b, t], area.clamp_min(1e-12),
                                                        min_new)
        values = lift_pixels(fg, info, gains) if info.dense else gains
        rank_out = (ranks.reshape(b_count, t_count, info.height, info.width) if info.dense
                    else ranks)
        n_regions = ranks.amax(-1) + 1
        # params state the steps that ran (budget - 1 with a budget), not the default
        return fg.attribution(values, self.name, {**self.get_params(), "steps": steps}, extra={
            "region_rank": rank_out.numpy(), "n_regions": n_regions.numpy(),
            "steps": steps, "n_candidate_regions": np.array([len(r) for r in regions])})
