"""Extremal perturbations with smooth masks (Fong, Patrick & Vedaldi 2019).

For each area ``a`` a mask ``m`` is optimised so that the perturbed input
``x_m = m * x + (1 - m) * p(x)`` (``p``: a Gaussian blur of the image, the paper's blur
perturbation, or the game's baseline) keeps the explained output as high as possible
(*preservation*), while the ranking-based area loss
``R_a(m) = mean((sort(m) - r_a)^2)``, ``r_a`` = ``(1 - a) N`` zeros then ``a N`` ones, pulls
``m`` towards masks that keep exactly a fraction ``a`` of the pixels (Section 3.2 of the paper).
The *deletion* variant minimises the output of ``(1 - m) * x + m * p(x)`` instead (the mask
marks what must be removed).

Smooth masks (Section 3.3): the mask is parametrised on a low-resolution grid (one parameter
per ``cell`` of the image side), bilinearly upsampled and blurred by a Gaussian of width
``smooth`` (a fraction of the image side), i.e. the "Gaussian-blurred upsampling" form of the
paper's smooth masks; the parameters are logits (``m = sigmoid(theta)``, so masks stay in
``[0, 1]`` without clamping, which would create ties in the sort of the area loss). On a
grouped game the mask has one parameter per player (no smoothing) and is spread over each
group's pixels; the area loss weighs each player by its pixels (:func:`area_loss` with
``sizes``), so ``a`` stays a fraction of the image when groups differ in size.

Optimisation: gradient descent with momentum 0.9 (``optimizer="sgd"``, as TorchRay) or Adam
on ``-v(x_m) + area_weight * ramp_t * N * R_a(m)``, where the output's gradient is scaled to
max 1 per mask and step (so ``lr`` does not depend on the output's units) and ``ramp_t`` grows
linearly from 0 to 1 over the first half of the steps. The ramp matters: the ranking-based
area loss is not convex, and at full weight from the start the masks' initial ties (all 0.5)
decide which pixels are sorted into the kept part. Adam's per-parameter normalisation also
erases the gradient's magnitude in the first steps (all masks move alike), which recreates
those ties; SGD keeps it and is the default.

Every optimisation step takes the gradient of the game's output at ``K = targets x areas x
variants`` points per input through :meth:`FeatureGame.input_gradients` (one forward and one
backward row each, batched over samples and points, counted), so ``n_evals = 1 + steps * K``.

Result: the input-shaped map ``sum_a m_a`` (averaged over the variants), the paper's summary
of the masks over areas; ``extra["masks"]`` holds every mask (``batch x targets x variants x
areas x H x W``, or ``... x players``) and ``extra["region_rank"]`` each pixel's region: the
index of the smallest area whose mask (thresholded at 0.5, variants averaged) contains it
(``len(areas)`` for none; areas counted in increasing order, whatever the order of ``areas``).
``extra["final_values"]`` is the output at each optimised mask (the
masks of the last evaluated step: no update follows the last evaluation).
The optimisation is deterministic (masks start at 0.5), so ``seed`` has no effect.

Reference: Fong, Patrick & Vedaldi (2019), "Understanding Deep Networks via Extremal
Perturbations and Smooth Masks" (ICCV).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ...attribution import Attribution
from ...errors import InputError
from ...games.base import Game
from ...games.features import FeatureGame
from ...params import InstanceOf, Interval, Options, declare
from ..base import Cost, Method, Tags, coalition_cost, register
from ._common import ImageInfo, image_info, player_sizes

__all__ = ["ExtremalPerturbation", "area_loss", "blur_images", "smooth_mask"]


def _gauss_kernel(sigma: float, dtype: torch.dtype) -> torch.Tensor:
    radius = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def blur_images(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``N x C x H x W`` images (replicated edges; ``sigma=0``: x)."""
    if sigma <= 0:
        return x
    k = _gauss_kernel(sigma, x.dtype).to(x.device)
    r = (k.numel() - 1) // 2
    n, c, h, w = x.shape
    y = x.reshape(n * c, 1, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return y.reshape(n, c, h, w)


def smooth_mask(params: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """``N x gh x gw`` parameters -> ``N x H x W`` smooth masks in ``[0, 1]`` (differentiable)."""
    up = F.interpolate(params[:, None], size=size, mode="bilinear", align_corners=False)
    return blur_images(up, sigma)[:, 0].clamp(0.0, 1.0)


def area_loss(masks: torch.Tensor, areas: torch.Tensor,
              sizes: torch.Tensor | None = None) -> torch.Tensor:
    """Ranking-based area loss ``mean((sort(m) - r_a)^2)`` per mask (``N x P`` -> ``N``).

    ``r_a`` holds ``round((1 - a) P)`` zeros followed by ones (sorted ascending, like
    ``sort(m)``); it is zero exactly for binary masks of area ``a``.

    With ``sizes`` (``N x P`` pixels per column, e.g. the groups of a grouped game) the sorted
    vector holds each column's value ``sizes`` times, so ``a`` is a fraction of the pixels, not
    of the columns: a column spanning ranks ``[lo, hi)`` of the ``S = sum(sizes)`` pixels
    whose last ``round(a S)`` are ones costs ``o (m - 1)^2 + (size - o) m^2``, ``o`` the
    overlap; divided by ``S``. Equal sizes give the unweighted loss when ``a * P`` is a whole
    number; otherwise the target ends inside a column (a fraction of its pixels), where the
    unweighted loss rounded to whole players.
    """
    if sizes is None:
        p = masks.shape[-1]
        ones = torch.round(areas * p).long()
        pos = torch.arange(p, device=masks.device)
        ref = (pos[None] >= (p - ones)[:, None]).to(masks.dtype)
        return ((torch.sort(masks, dim=-1).values - ref) ** 2).mean(-1)
    vals, idx = torch.sort(masks, dim=-1)
    w = torch.gather(sizes.to(masks.dtype).expand_as(masks), -1, idx)
    total = w.sum(-1, keepdim=True)
    hi = w.cumsum(-1)
    start = total - torch.round(areas[:, None] * total)  # pixel ranks >= start are ones
    o = (hi - torch.maximum(hi - w, start)).clamp_min(0.0)
    return (o * (vals - 1.0) ** 2 + (w - o) * vals**2).sum(-1) / total[:, 0].clamp_min(1e-300)


@register
class ExtremalPerturbation(Method):
    """Extremal perturbations: smooth masks of fixed areas that keep (or delete) the output.

    For each area a smooth low-resolution mask is optimised (SGD with momentum, or Adam)
    against the output of the masked image (blurred outside the mask) plus the ranking-based area loss. Returns the
    sum of the masks over areas as an input-shaped map; masks and region order in ``extra``.

    Args:
        areas: fractions of the image the masks keep. default=(0.05, 0.1, 0.2, 0.4).
        variant: ``"preserve"``, ``"delete"`` or ``"both"`` (masks averaged). default="preserve".
        steps: optimisation steps (each costs ``targets x areas x variants`` evaluations per
            input). default=150. With ``budget``: ``(budget - 1) // K`` (both given with other
            values are refused by :func:`tribute.explain`).
        optimizer: ``"sgd"`` (momentum 0.9, as TorchRay) or ``"adam"``. default="sgd".
        lr: learning rate. default=1.0.
        area_weight: weight of the area loss per mask column, against the output's gradient
            scaled to max 1 per mask; ramped up linearly over the first half of the steps.
            default=4.0.
        perturbation: ``"blur"`` (Gaussian blur of the image) or ``"baseline"`` (the game's
            baseline; a background set's mean, weighted by its weights). default="blur".
        blur: blur width as a fraction of the image side (10 px at 224: 0.045). default=0.045.
        cell: side of a mask parameter cell as a fraction of the image side (7 px at 224).
            default=0.031.
        smooth: width of the mask's Gaussian smoothing as a fraction of the side. default=0.05.
        channel_axis: the axis of the batched images that holds the channels (XRAI's, the CRAFT /
            TCAV / metrics convention): None or 1 for ``(batch, C, H, W)`` / ``(batch, H, W)``,
            -1 or 3 for channels-last ``(batch, H, W, C)``, masked over ``(H, W)`` and mapped
            back to that layout (equal to the same images channels-first). None refuses
            images the model's first ``Conv2d`` reads channels-last. default=None.

    Budget: ``1 + steps * K`` evaluations (forward + backward rows) per input, ``K = targets x
    areas x variants``.

    Reference: Fong, Patrick & Vedaldi (2019), "Understanding Deep Networks via Extremal
    Perturbations and Smooth Masks" (ICCV).
    """

    name = "extremal_perturbation"
    tags = Tags(family="region", needs_gradients=True, games=("feature",), budgeted=True,
                images_only=True, signed=False)
    paper = "Fong, Patrick & Vedaldi (2019), Understanding Deep Networks via Extremal Perturbations and Smooth Masks"
    constraints = declare({
        "areas": InstanceOf((tuple, list), "a tuple of fractions in (0, 1), e.g. (0.05, 0.1)"),
        "variant": Options(("preserve", "delete", "both")),
        "steps": Interval(int, 1),
        "optimizer": Options(("sgd", "adam")),
        "lr": Interval(float, 0.0, float("inf"), closed="neither"),
        "area_weight": Interval(float, 0.0, float("inf"), closed="left"),
        "perturbation": Options(("blur", "baseline")),
        "blur": Interval(float, 0.0, float("inf"), closed="left"),
        "cell": Interval(float, 0.0, 1.0, closed="right"),
        "smooth": Interval(float, 0.0, float("inf"), closed="left"),
        "channel_axis": Options((None, 1, 3, -1)),
    })

    def __init__(self, areas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4), variant: str = "preserve",
                 steps: int = 150, optimizer: str = "sgd", lr: float = 1.0, area_weight: float = 4.0,
                 perturbation: str = "blur", blur: float = 0.045, cell: float = 0.031,
                 smooth: float = 0.05, channel_axis: int | None = None) -> None:
        self.areas = areas
        self.variant = variant
        self.steps = steps
        self.optimizer = optimizer
        self.lr = lr
        self.area_weight = area_weight
        self.perturbation = perturbation
        self.blur = blur
        self.cell = cell
        self.smooth = smooth
        self.channel_axis = channel_axis

    def _points(self, game: Game) -> int:
        v = 2 if self.variant == "both" else 1
        return int(getattr(game, "n_targets", 1)) * len(tuple(self.areas)) * v

    def min_budget(self, game: Game) -> int:
        return 1 + self._points(game)

    def default_budget(self, game: Game) -> int | None:
        return 1 + int(self.steps) * self._points(game)

    budget_rule = "1 + steps * targets * areas * variants (steps=150, 4 areas)"
    budget_param = "steps"

    def budget_sets(self, game: Game, budget: int) -> int | None:
        return (int(budget) - game.n_evals) // self._points(game)

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """``steps x K`` input gradients per input; masks and gradients ``K x players``."""
        k = self._points(game)
        b = int(budget if budget is not None else self.default_budget(game) or 1)
        n = int(game.n_players)
        per = int(game.n_samples) * k * n * 8
        c = coalition_cost(game, b, grads=True, mask_rows=0, design=6 * per,
                           note=f"{(b - 1) // max(k, 1):,} Adam steps x {k} masks x {n:,} players")
        return Cost(int(game.n_samples) * b, c.bytes, c.note, c.flops)

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        # the masks' own gradient (autograd through the smoothing and the area loss) runs here,
        # outside the engine: under the caller's torch.no_grad() it raised torch's "element 0
        # of tensors does not require grad" (rev45z; the engine turns gradients on only for its
        # own rows, eng45)
        with torch.enable_grad():
            return self._attribute(game, budget=budget, seed=seed)

    def _attribute(self, game: Game, *, budget: int | None, seed: int) -> Attribution:
        fg, info = image_info(game, self.name, channel_axis=self.channel_axis, takes_axis=True)
        try:
            areas = tuple(float(a) for a in self.areas)
        except (TypeError, ValueError):
            raise InputError(f"areas={self.areas!r} must be a non-empty tuple of fractions in "
                             "(0, 1), e.g. (0.05, 0.1).") from None
        if not areas or any(not 0.0 < a < 1.0 for a in areas):
            raise InputError(f"areas={self.areas!r} must be a non-empty tuple of fractions in (0, 1).")
        k_points = self._points(fg)
        budget_used = budget if budget is not None else self.default_budget(fg)
        assert budget_used is not None
        steps = (int(budget_used) - fg.n_evals) // k_points
        b_count, t_count = fg.n_samples, fg.n_targets
        variants = ("preserve", "delete") if self.variant == "both" else (str(self.variant),)
        n_v, n_a = len(variants), len(areas)
        h, w, c = info.height, info.width, info.channels
        dtype = torch.float64
        weight = float(self.area_weight)

        # per element in the game's order: channel-major (C, H, W), or each pixel's channels
        # side by side for channels-last (H, W, C) images (small45: channel_axis=-1)
        x = fg.inputs_flat().detach().to("cpu", dtype).reshape(b_count, -1)
        pert = self._perturbed(fg, info, x)  # B x elements
        diff = x - pert  # x - p(x), per element
        # the point for (target t, variant v, area a) is k = (t * n_v + v) * n_a + a
        sign = torch.tensor([1.0 if v == "preserve" else -1.0 for v in variants], dtype=dtype)
        area_vec = torch.tensor(areas, dtype=dtype).repeat(t_count * n_v)  # K
        sign_k = sign.repeat_interleave(n_a).repeat(t_count)  # K
        target_k = torch.arange(t_count).repeat_interleave(n_v * n_a)  # K

        if info.dense:
            cell_px = max(1, round(float(self.cell) * max(h, w)))
            gh, gw = max(1, math.ceil(h / cell_px)), max(1, math.ceil(w / cell_px))
            theta = torch.zeros(b_count * k_points, gh, gw, dtype=dtype)
            sig = float(self.smooth) * max(h, w)

            def make_mask(p: torch.Tensor) -> torch.Tensor:  # -> (B*K) x cols (pixels)
                return smooth_mask(torch.sigmoid(p), (h, w), sig).reshape(p.shape[0], -1)
        else:
            theta = torch.zeros(b_count * k_points, fg.n_players, dtype=dtype)

            def make_mask(p: torch.Tensor) -> torch.Tensor:
                return torch.sigmoid(p)

        # pixels per mask column: areas are fractions of the image, also with unequal groups
        col_sizes = (None if info.dense
                     else player_sizes(fg, info).repeat_interleave(k_points, 0))
        theta.requires_grad_(True)
        opt: torch.optim.Optimizer = (
            torch.optim.SGD([theta], lr=float(self.lr), momentum=0.9) if self.optimizer == "sgd"
            else torch.optim.Adam([theta], lr=float(self.lr)))
        current = {"m": torch.zeros(0)}  # element masks of this step: B x K x D

        def elements(mcols: torch.Tensor) -> torch.Tensor:
            """(B*K) x cols -> B x K x D element masks (preserve form: 1 keeps x)."""
            m = mcols.reshape(b_count, k_points, -1)
            if info.dense:
                return m.repeat_interleave(c, -1) if info.last else m.repeat(1, 1, c)
            sample = torch.arange(b_count).repeat_interleave(k_points)
            return fg.element_masks(mcols, sample)[0].reshape(b_count, k_points, -1)

        def make_points(xs: tuple[torch.Tensor, ...], b: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, ...]:
            m = current["m"].to(xs[0].device, xs[0].dtype)[b.cpu(), k.cpu()]
            keep = torch.where(sign_k[k.cpu()].to(m.device)[:, None] > 0, m, 1.0 - m)
            p = pert.to(xs[0].device, xs[0].dtype)[b]
            pts = p + keep * (xs[0].reshape(xs[0].shape[0], -1) - p)
            return (pts.reshape(xs[0].shape),)

        grads = torch.zeros(b_count, k_points, diff.shape[1], dtype=dtype)

        def transform(g: torch.Tensor, b: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            grads[b, k] = g[torch.arange(g.shape[0]), target_k[k]]
            return g[..., :0]

        values = torch.zeros(b_count, k_points, dtype=dtype)
        final = make_mask(theta).detach()
        for step in range(steps):
            mcols = make_mask(theta)
            final = mcols.detach()  # the masks `values` are the outputs at
            current["m"] = elements(final)
            vals, _ = fg.input_gradients(k_points, make_points, powers=(), transform=transform)
            values = vals[:, torch.arange(k_points), target_k]  # B x K
            if step == steps - 1:
                break  # a last update would move the masks away from their reported outputs
            # d v / d m (preserve: x_m = p + m (x - p); delete: x_m = x - m (x - p))
            dv_dm = grads * diff[:, None, :] * sign_k[None, :, None]  # B x K x D
            if info.dense and info.last:
                dv_dcol = dv_dm.reshape(b_count, k_points, -1, c).sum(3)
            elif info.dense:
                dv_dcol = dv_dm.reshape(b_count, k_points, c, -1).sum(2)
            else:
                dv_dcol = fg.elements_to_players(dv_dm.reshape(b_count * k_points, -1),
                                                 torch.arange(b_count).repeat_interleave(k_points)
                                                 ).reshape(b_count, k_points, -1)
            # preserve: maximise v; delete: minimise v  ->  loss gradient -sign * dv/dm, each
            # mask's gradient scaled to max |.| = 1 (the step size does not depend on the
            # output's units)
            g_loss = -(sign_k[None, :, None] * dv_dcol).reshape(b_count * k_points, -1)
            g_loss = g_loss / g_loss.abs().amax(-1, keepdim=True).clamp_min(1e-300)
            ramp = min(1.0, (step + 1) / max(1.0, 0.5 * steps))  # area weight: 0 -> full at half
            opt.zero_grad()
            n_cols = mcols.shape[-1]  # area loss summed over columns (mean x N), per mask
            reg = weight * ramp * n_cols * area_loss(mcols, area_vec.repeat(b_count),
                                                     col_sizes).sum()
            loss = (mcols * g_loss).sum() + reg
            (grad_theta,) = torch.autograd.grad(loss, theta)
            theta.grad = grad_theta
            opt.step()
        final = final.reshape(b_count, t_count, n_v, n_a, -1)
        return self._result(fg, info, final, values, variants, areas, steps)

    def _perturbed(self, fg: FeatureGame, info: ImageInfo, x: torch.Tensor) -> torch.Tensor:
        """The perturbed images, ``batch x elements`` in the game's element order."""
        b, c, h, w = fg.n_samples, info.channels, info.height, info.width
        if self.perturbation == "blur":
            img = x.reshape(b, h, w, c).permute(0, 3, 1, 2) if info.last else x.reshape(b, c, h, w)
            out = blur_images(img.contiguous(), float(self.blur) * max(h, w))
            return (out.permute(0, 2, 3, 1) if info.last else out).reshape(b, -1)
        base = fg.baseline_flat().detach().to("cpu", torch.float64)
        if fg.n_background > 1:
            # a background set: its weighted mean (also when it has as many rows as the batch,
            # which is not a baseline per sample; aud38v)
            wts = fg.background_weights().to("cpu", torch.float64)
            base = (wts[:, None] * base).sum(0, keepdim=True)
        return base.expand(fg.n_samples, -1).reshape(x.shape).clone()

    def _result(self, fg: FeatureGame, info: ImageInfo, final: torch.Tensor, values: torch.Tensor,
                variants: tuple[str, ...], areas: tuple[float, ...], steps: int) -> Attribution:
        b_count, t_count = fg.n_samples, fg.n_targets
        summary = final.mean(2).sum(2)  # B x T x cols
        if info.dense:
            out = (summary.repeat_interleave(info.channels, -1) if info.last
                   else summary.repeat(1, 1, info.channels))
        else:
            out = summary
        # region order: the smallest area whose (variant-averaged) mask holds the column
        inside = final.mean(2) >= 0.5  # B x T x A x cols
        order = np.argsort(np.asarray(areas), kind="stable")
        rank = np.full(inside.shape[:2] + inside.shape[3:], len(areas), dtype=np.int64)
        for pos in reversed(range(len(areas))):
            rank[inside[:, :, int(order[pos])].numpy()] = pos
        shape = (info.height, info.width) if info.dense else (fg.n_players,)
        masks = final.reshape(b_count, t_count, len(variants), len(areas), *shape).numpy()
        # params state the steps that ran (set by a budget), not the default
        return fg.attribution(out, self.name, {**self.get_params(), "steps": steps}, extra={
            "masks": masks, "region_rank": rank.reshape(b_count, t_count, *shape),
            "final_values": values.reshape(b_count, t_count, len(variants), len(areas)).numpy(),
            "steps": steps, "variants": list(variants)})
