"""Greedy region growth by attribution density (the core loop of XRAI).

Given candidate regions (possibly overlapping boolean masks over columns: pixels or players),
per-column attributions ``a`` and per-column areas ``s``, repeatedly add the region whose
*not yet covered* columns have the largest density ``sum a / sum s`` (Kapishnikov et al.
2019, Algorithm 1). Every column takes the density of the region that first covered it;
columns no region covers take the density of the uncovered rest.

The greedy does not add regions in decreasing density: a region whose low-attribution columns
were covered by an earlier region can offer denser new columns than that region did. Like the
reference implementation (PAIR ``saliency``, ``XRAI._xrai``: ``masks_trace`` sorted by gain),
regions are therefore *ranked* by their gain (ties: in the order added), the uncovered rest
last, so the rank agrees with the map's values.
"""

from __future__ import annotations

import torch

__all__ = ["grow_regions"]


def _enough(new_area: torch.Tensor, min_new: float) -> torch.Tensor:
    """Regions still worth adding: at least ``min_new`` new area, and some new area at all.

    The reference implementation (PAIR ``saliency``, ``_xrai``) drops a mask when it adds
    *fewer than* ``min_pixel_diff`` pixels, so a region adding exactly ``min_new`` stays. Areas
    are sums of pixel counts (exact in float64); the tolerance only absorbs ``min_new`` given as
    a fraction times the image size.
    """
    floor = float(min_new)
    return (new_area >= floor - 1e-9 * max(1.0, abs(floor))) & (new_area > 1e-12)


def grow_regions(masks: torch.Tensor, attr: torch.Tensor, area: torch.Tensor,
                 min_new: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Order regions by attribution density of their new columns.

    Args:
        masks: ``R x P`` bool candidate regions over ``P`` columns.
        attr: ``P`` float64 attributions.
        area: ``P`` float64 areas (pixels per column), positive.
        min_new: a region is dropped once fewer than this much new area is left in it
            (XRAI's ``min_pixel_diff``; exactly ``min_new`` new area keeps it). default=0
            (dropped when nothing new is left).

    Returns:
        ``(gain P, rank P)``: each column's density (the gain of the region that added it) and
        that region's position when the added regions are sorted by decreasing gain (``0``
        first, ties in the order added; the uncovered rest comes last).
    """
    m = masks.to(torch.float64)
    new_sum = m @ attr
    new_area = m @ area
    alive = _enough(new_area, min_new)
    covered = torch.zeros(attr.shape[0], dtype=torch.bool)
    gain = torch.zeros_like(attr)
    rank = torch.full(attr.shape, -1, dtype=torch.long)
    step = 0
    step_gain: list[float] = []
    neg_inf = torch.tensor(float("-inf"), dtype=torch.float64)
    while bool(alive.any()) and not bool(covered.all()):
        dens = torch.where(alive, new_sum / new_area.clamp_min(1e-300), neg_inf)
        j = int(torch.argmax(dens).item())
        added = masks[j] & ~covered
        gain[added] = dens[j]
        rank[added] = step
        step_gain.append(float(dens[j]))
        covered |= added
        idx = added.nonzero().flatten()
        new_sum = new_sum - m[:, idx] @ attr[idx]
        new_area = new_area - m[:, idx] @ area[idx]
        alive[j] = False
        alive &= _enough(new_area, min_new)
        step += 1
    rest = ~covered
    if bool(rest.any()):
        gain[rest] = attr[rest].sum() / area[rest].sum()
        rank[rest] = step
    # addition step -> position by decreasing gain (stable: ties keep the order added)
    by_gain = sorted(range(step), key=lambda s: -step_gain[s])
    position = torch.arange(step + 1, dtype=torch.long)
    position[torch.tensor(by_gain, dtype=torch.long)] = torch.arange(step, dtype=torch.long)
    return gain, position[rank]
