"""Similarity of two attributions per sample: Spearman rank correlation or SSIM."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..attribution import Attribution
from ..errors import InputError
from ._util import RANK_TIE_RTOL, channels_last, spearman_rows, warn_if_channels_last

__all__ = ["SIMILARITIES", "attribution_similarity", "check_similarity", "constant_rows", "ssim_maps"]

SIMILARITIES = ("spearman", "ssim")


def ssim_maps(a: np.ndarray, b: np.ndarray, win: int = 7) -> np.ndarray:
    """Mean structural similarity of 2-D maps ``... x H x W`` (uniform ``win x win`` window).

    Follows Wang et al. (2004) with ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2`` and the data range
    ``L = max(a) - min(a)`` of the first map of each pair (as in Adebayo et al.'s sanity
    checks); the window shrinks to the image for small maps and only fully covered positions
    are averaged (like scikit-image's cropped mean). NaN where ``a`` is constant.
    """
    lead = a.shape[:-2]
    h, w = a.shape[-2:]
    ta = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)).reshape(-1, 1, h, w)
    tb = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float64)).reshape(-1, 1, h, w)
    k = min(win, h, w)
    if k % 2 == 0:
        k -= 1
    ker = torch.full((1, 1, k, k), 1.0 / (k * k), dtype=torch.float64)
    rng = (ta.amax(dim=(1, 2, 3)) - ta.amin(dim=(1, 2, 3))).reshape(-1, 1, 1, 1)
    c1 = (0.01 * rng) ** 2
    c2 = (0.03 * rng) ** 2
    mu_a, mu_b = F.conv2d(ta, ker), F.conv2d(tb, ker)
    cov_norm = k * k / max(k * k - 1, 1)  # sample covariance, as scikit-image
    s_aa = (F.conv2d(ta * ta, ker) - mu_a**2) * cov_norm
    s_bb = (F.conv2d(tb * tb, ker) - mu_b**2) * cov_norm
    s_ab = (F.conv2d(ta * tb, ker) - mu_a * mu_b) * cov_norm
    num = (2 * mu_a * mu_b + c1) * (2 * s_ab + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2)
    s = (num / den).mean(dim=(1, 2, 3))
    s = torch.where(rng.flatten() > 0, s, torch.full_like(s, float("nan")))
    return s.numpy().reshape(lead)


def _maps(attr: Attribution, flat: np.ndarray, absolute: bool,
          channel_axis: Any = None) -> np.ndarray:
    """``B x T x H x W`` maps for SSIM: element credits summed over non-spatial axes
    (the last axis for channels-last ``(H, W, C)`` images, ``channel_axis=-1``; rev43m)."""
    shapes = attr.layout.input_shapes
    if len(shapes) != 1 or len(shapes[0]) < 2:
        raise InputError(
            "similarity='ssim' needs one image input (per-sample shape (H, W) or (C, H, W)); "
            f"the attribution's inputs have shapes {list(shapes)}. Use similarity='spearman'."
        )
    from .ground_truth import element_scores

    el = element_scores(attr, flat)
    if absolute:
        el = np.abs(el)
    shape = tuple(shapes[0])
    if channels_last(channel_axis, "similarity='ssim'", [shape]):
        return np.asarray(el.reshape(*el.shape[:2], *shape).sum(axis=-1))
    if channel_axis is None:
        warn_if_channels_last(shape, "similarity='ssim'", fix="channel_axis=-1")
    el = el.reshape(*el.shape[:2], -1, shape[-2], shape[-1])
    return np.asarray(el.sum(axis=2))


def check_similarity(kind: Any, absolute: Any, channel_axis: Any = None,
                     attr: Attribution | None = None) -> bool:
    """Check a similarity metric's ``similarity`` and ``absolute`` before any re-explanation;
    returns ``absolute`` as a bool.

    ``absolute="False"`` (a non-empty string) compared ``|phi|`` silently, as ``absolute=True``
    (random_logit 0.257 for -0.600); an unknown ``similarity`` was refused only after the
    first re-explanation had run (aud43m).
    """
    if not (isinstance(kind, str) and kind in SIMILARITIES):
        raise InputError(f"similarity={kind!r} is not one of {SIMILARITIES}.")
    # the layout before any re-explanation: channel_axis=-1 on (H, W) images was refused only
    # after model_randomisation's first re-explanation (rev43m)
    shapes = [tuple(sh) for sh in attr.layout.input_shapes] if attr is not None and kind == "ssim" else []
    channels_last(channel_axis, f"similarity={kind!r}", shapes)
    if isinstance(absolute, (bool, np.bool_)) or (
            isinstance(absolute, (int, np.integer)) and absolute in (0, 1)):
        return bool(absolute)
    raise InputError(f"absolute={absolute!r} must be True or False.")


def attribution_similarity(
    attr: Attribution, a: np.ndarray, b: np.ndarray, kind: str = "spearman",
    absolute: bool = True, channel_axis: Any = None,
) -> np.ndarray:
    """Per-sample, per-target similarity of flat ``B x T x n`` credits ``a`` and ``b``.

    ``attr`` supplies the layout (for SSIM maps). ``absolute`` compares ``|phi|``.

    A constant explanation (every credit, or every pixel of the map, equal; e.g. all zero once
    a randomised ReLU network is dead) ranks and structures nothing, so the correlation with it
    is 0/0. It used to be NaN and was skipped in the metrics' means, which then averaged only
    the layers or seeds where the explanation did not go flat (small39). It is scored here
    instead: 0 against a non-constant explanation (no agreement in order or structure: the
    expected Spearman correlation when its ties are broken at random, as ``precision_at_k``
    breaks ties) and 1 against another constant one (the same, empty, ranking). For SSIM the
    rule applies only to a constant FIRST map ``a`` (whose range sets SSIM's constants, 0/0);
    against a constant second map SSIM is defined and kept (a sparse map scores high against
    an all-zero one: the windows away from its credits agree). See :func:`constant_rows` for
    which rows this concerned.
    """
    if kind == "spearman":
        x, y = (np.abs(a), np.abs(b)) if absolute else (a, b)
        sim = spearman_rows(x, y)
        ca, cb = _flat_rows(x), _flat_rows(y)
    elif kind == "ssim":
        x, y = _maps(attr, a, absolute, channel_axis), _maps(attr, b, absolute, channel_axis)
        sim = ssim_maps(x, y)
        ca, cb = _flat_rows(x.reshape(*x.shape[:2], -1)), _flat_rows(y.reshape(*y.shape[:2], -1))
        # SSIM is defined against a constant second map (its constants follow the FIRST map's
        # range): a sparse 28x28 map against an all-zero one scores 0.85 (the windows away from
        # its few credits agree). Only a constant first map (range 0: 0/0) takes the rule;
        # forcing 0 for a constant second map scored that pair "changed completely" (rev39b)
        cb = cb & ca
    else:
        raise InputError(f"similarity={kind!r} is not one of {SIMILARITIES}.")
    return np.where(ca & cb, 1.0, np.where(ca | cb, 0.0, sim))


def _flat_rows(x: np.ndarray) -> np.ndarray:
    """``B x T`` whether each row of ``B x T x n`` is constant (and finite).

    Constant as the rank statistics see it: every value within ``RANK_TIE_RTOL`` times the
    row's largest magnitude of its neighbour in sorted order (one tie for
    :func:`~tribute.metrics._util.rank_rows`). Exact equality left credits equal but for
    rounding (``0.1 + 0.2`` next to five ``0.3``) out of the constant rule while Spearman tied
    them: NaN against a non-constant explanation where an exactly constant one scores 0, and
    0 against an exactly constant one where two constant ones score 1 (aud43m).
    """
    finite = np.isfinite(x).all(axis=-1)
    xs = np.sort(np.where(np.isfinite(x), x, 0.0), axis=-1)
    scale = np.abs(xs).max(axis=-1) if xs.shape[-1] else np.zeros(xs.shape[:-1])
    steps = np.diff(xs, axis=-1)
    flat = (steps <= RANK_TIE_RTOL * scale[..., None]).all(axis=-1)
    return np.asarray(finite & flat)


def constant_rows(attr: Attribution, a: np.ndarray, b: np.ndarray, kind: str = "spearman",
                  absolute: bool = True, channel_axis: Any = None) -> np.ndarray:
    """``B x T`` whether :func:`attribution_similarity` scored the pair by the constant rule
    (``a`` or ``b`` constant there; for SSIM ``a`` only, as SSIM is defined against a
    constant ``b``)."""
    if kind == "ssim":  # only a constant first map: SSIM is defined against a constant second one
        with warnings.catch_warnings():  # attribution_similarity warned already
            warnings.simplefilter("ignore", UserWarning)
            x = _maps(attr, a, absolute, channel_axis)
        return np.asarray(_flat_rows(x.reshape(*x.shape[:2], -1)))
    x, y = (np.abs(a), np.abs(b)) if absolute else (a, b)
    return np.asarray(_flat_rows(x) | _flat_rows(y))
