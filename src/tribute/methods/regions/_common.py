"""Shared helpers of the region methods: image checks, segments per sample, pixel maps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...errors import InputError, UnsupportedModelError
from ...games.base import Game
from ...games.features import FeatureGame
from ...models.layout import CHANNEL_COUNTS, channels_last, channels_last_by_model
from .segmentation import multiscale_segments

__all__ = ["ImageInfo", "image_info", "lift_pixels", "sample_regions", "scale_params",
           "scaled_sigma"]

#: Reference image side of the XRAI paper's segmentation settings (224 x 224 ImageNet crops).
REF_SIDE = 224


@dataclass(frozen=True)
class ImageInfo:
    """The image input of a feature game.

    Attributes:
        channels: elements per pixel (``prod(shape[:-2])``; 1 for ``(H, W)`` images; ``C`` of
            channels-last ``(H, W, C)`` images).
        height, width: spatial size.
        dense: every element is a player (else players are the game's groups).
        last: the image is held channels-last ``(H, W, C)`` (``channel_axis=-1``): element
            ``(h * W + w) * C + c`` is channel ``c`` of pixel ``h * W + w``. default=False.
    """

    channels: int
    height: int
    width: int
    dense: bool
    last: bool = False

    @property
    def pixels(self) -> int:
        return self.height * self.width


def image_info(game: Game, method: str, *, min_side: int = 4,
               channel_axis: Any = None, takes_axis: bool = False) -> tuple[FeatureGame, ImageInfo]:
    """The game's single image input, or a clear error naming what was seen and the fix.

    ``channel_axis`` (methods that take one, ``takes_axis``): -1 reads ``(H, W, C)`` images.
    Without it, an image the model's first ``Conv2d`` reads channels-last (its
    ``in_channels`` is the last axis' length, not the first's) is refused naming
    ``channel_axis=-1``: ``(16, 16, 4)`` / ``(16, 16, 8)`` images were segmented as 16 x 4 /
    16 x 8 images of 16 channels, silently (small44).
    """
    if not isinstance(game, FeatureGame):
        raise UnsupportedModelError(
            f"method {method!r} explains images with regions of pixels; it needs a feature game, "
            f"got a {type(game).__name__} ({game.kind} players).")
    shapes = game.input_shapes()
    if len(shapes) != 1 or len(shapes[0]) not in (2, 3):
        raise UnsupportedModelError(
            f"method {method!r} needs one image input of per-sample shape (C, H, W) or (H, W) "
            f"(inputs of shape (batch, C, H, W) or (batch, H, W)); got per-sample shape(s) "
            f"{[tuple(s) for s in shapes]}. For tabular or sequence inputs use 'kernel_shap' "
            "or 'integrated_gradients'.")
    shape = tuple(int(d) for d in shapes[0])
    last = channels_last(channel_axis, f"method {method!r}", [shape])
    fix = ("pass channel_axis=-1 (or inputs.permute(0, 3, 1, 2) and a model that takes "
           "channels-first images)" if takes_axis else
           "pass inputs.permute(0, 3, 1, 2) and a model that takes channels-first images")
    if channel_axis is None and channels_last_by_model(shape, game.model):
        raise InputError(
            f"method {method!r} reads images as (C, H, W); the per-sample shape {shape} is "
            f"channels-last (H, W, C): the model's first Conv2d reads {shape[-1]} channels. "
            f"It would segment {shape[1]}x{shape[2]} images of {shape[0]} channels: {fix}.")
    h, w = (shape[0], shape[1]) if last else (shape[-2], shape[-1])
    if h < min_side or w < min_side:
        hint = ""
        if not last and len(shape) == 3 and shape[-1] in CHANNEL_COUNTS and min(shape[0], h) >= min_side:
            # (H, W, C) read as (C, H, W): the channels became the width
            hint = (f" The per-sample shape {shape} looks channels-last (H, W, C); region "
                    f"methods read (C, H, W): {fix}.")
        raise InputError(
            f"method {method!r}: images of {h}x{w} pixels are smaller than the segmentation "
            f"scale (at least {min_side}x{min_side} pixels are needed to form regions); "
            "explain larger images, or use 'occlusion' / 'integrated_gradients' on tiny ones."
            + hint)
    if game.integer_inputs()[0]:
        raise UnsupportedModelError(
            f"method {method!r} perturbs pixel values; the input holds integer ids.")
    if last:
        return game, ImageInfo(shape[2], h, w, bool(game.layout.dense), last=True)
    c = int(np.prod(shape[:-2], dtype=np.int64)) if len(shape) == 3 else 1
    return game, ImageInfo(c, h, w, bool(game.layout.dense))


def scale_params(info: ImageInfo, min_size: float, dilation: float) -> tuple[int, int]:
    """``(min_size pixels, dilation radius pixels)`` from fractions of the image."""
    ms = max(1, round(min_size * info.pixels))
    if ms >= info.pixels:
        raise InputError(
            f"min_size={min_size} asks for segments of at least {ms} pixels on {info.height}x"
            f"{info.width} images ({info.pixels} pixels): one segment would cover the whole "
            "image. Lower min_size (a fraction of the image's pixels).")
    rad = round(dilation * max(info.height, info.width))
    return ms, rad


def scaled_sigma(info: ImageInfo, sigma: float) -> float:
    """The segmentation's pre-blur in pixels: ``sigma`` is given for a 224-pixel image side.

    The paper's ``sigma = 0.8`` on 224 x 224 crops would wipe out two-pixel-wide structures
    of a 20 x 20 image; like the minimum size and the dilation it scales with the image.
    """
    return float(sigma) * max(info.height, info.width) / REF_SIDE


def sample_images(game: FeatureGame, info: ImageInfo) -> np.ndarray:
    """``batch x C x H x W`` float64 numpy images (for segmentation)."""
    x = game.inputs_flat().detach().to("cpu", torch.float64)
    if info.last:
        return x.reshape(game.n_samples, info.height, info.width, info.channels).permute(
            0, 3, 1, 2).contiguous().numpy()
    return x.reshape(game.n_samples, info.channels, info.height, info.width).numpy()


def normalise(image: np.ndarray) -> np.ndarray:
    """Min-max scale one image to ``[-1, 1]`` (XRAI's segmentation input; constant -> 0)."""
    lo, hi = float(image.min()), float(image.max())
    if hi - lo <= 0:
        return np.zeros_like(image)
    return (image - lo) / (hi - lo) * 2.0 - 1.0


def sample_regions(game: FeatureGame, info: ImageInfo, scales: tuple[float, ...], sigma: float,
                   min_size: float, dilation: float) -> list[np.ndarray]:
    """Candidate regions per sample as ``n_regions x players`` bool masks over pixels or groups.

    Dense games: every segment of :func:`multiscale_segments` over the pixels (``H*W``
    columns; the caller spreads them over channels). Grouped games: the groups themselves
    (``n_players`` disjoint regions, columns = players).
    """
    if not info.dense:
        return [np.eye(game.n_players, dtype=bool) for _ in range(game.n_samples)]
    ms, rad = scale_params(info, min_size, dilation)
    sigma = scaled_sigma(info, sigma)
    images = sample_images(game, info)
    # skimage's convention, used by XRAI: scale k on images in [-1, 1] is k / 255 in colour units
    ks = tuple(float(k) / 255.0 for k in scales)
    return [multiscale_segments(normalise(img), ks, sigma, ms, rad).reshape(-1, info.pixels)
            for img in images]


def player_sizes(game: FeatureGame, info: ImageInfo) -> torch.Tensor:
    """Pixels per player (``batch x players``; 1/C per element for dense games)."""
    ones = torch.ones(game.n_samples, info.channels * info.pixels, dtype=torch.float64)
    if info.dense:
        return ones / info.channels
    return game.elements_to_players(ones) / info.channels


def lift_pixels(game: FeatureGame, info: ImageInfo, pix: torch.Tensor) -> torch.Tensor:
    """``batch x targets x H*W`` pixel values -> ``batch x targets x players``.

    Dense games repeat the map over channels; grouped games average it over each group.
    """
    # C x H x W order: channel-major; H x W x C: each pixel's channels side by side
    per_el = pix.repeat_interleave(info.channels, -1) if info.last else pix.repeat(1, 1, info.channels)
    if info.dense:
        return per_el
    sums = game.elements_to_players(per_el)
    sizes = game.elements_to_players(torch.ones(game.n_samples, 1, per_el.shape[-1],
                                                dtype=torch.float64))
    return sums / sizes.clamp_min(1.0)
