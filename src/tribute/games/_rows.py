"""Rows of a sample-major ``samples x K`` table without per-row index gathers.

Row ``r`` of such a table is sample ``r // K`` under coalition ``r % K``. Gathering
``masks[r % K]`` and ``x[r // K]`` row by row costs several times more than a tile or a
broadcast copy of the same values (mlp13 component patching, 11,392 rows x 64 units: the
gather of the masks took 1.7 ms, a tile 0.4 ms; the inputs' gather 0.5 ms, a broadcast copy
0.17 ms). The helpers below give the same tensors (same values, dtype, contiguous, on their
own fresh memory) as the gathers, so the rows the model sees are unchanged bit for bit.
"""

from __future__ import annotations

import torch

__all__ = ["PeriodicRows", "SampleIds", "repeat_rows", "sample_ids", "tile_rows"]

#: Byte alignment of a fresh allocation (see ``tribute.engine.core._ALIGN``): a slice of a
#: bigger buffer that starts elsewhere is copied, as a gather's output would be aligned.
_ALIGN = 64


def _fresh(t: torch.Tensor) -> torch.Tensor:
    return t if t.data_ptr() % _ALIGN == 0 else t.clone()


def sample_ids(start: int, stop: int, k_count: int, device: torch.device | str) -> torch.Tensor:
    """``(start..stop-1) // k_count`` as a long tensor (rows of a sample-major table)."""
    b0 = start // k_count
    return torch.arange(b0, (stop - 1) // k_count + 1, device=device)[:, None] \
        .expand(-1, k_count).contiguous().view(-1)[start - b0 * k_count : stop - b0 * k_count]


def tile_rows(t: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """``t[(start..stop-1) % K]`` for ``t`` of ``K`` rows: the rows tiled, then sliced."""
    k_count = int(t.shape[0])
    k0 = start % k_count
    periods = -(-(k0 + stop - start) // k_count)
    return _fresh(t.repeat(periods, *([1] * (t.ndim - 1)))[k0 : k0 + stop - start])


def repeat_rows(x: torch.Tensor, start: int, stop: int, k_count: int) -> torch.Tensor:
    """``x[(start..stop-1) // k_count]``: each row of ``x`` repeated ``k_count`` times (one
    broadcast copy), sliced to the table rows ``start..stop-1``. Needs ``k_count > 1`` (with
    one coalition there is nothing to repeat and ``x[b]`` is the way)."""
    if k_count < 2:
        raise ValueError("repeat_rows needs k_count >= 2")
    b0 = start // k_count
    b1 = (stop - 1) // k_count + 1
    rest = tuple(x.shape[1:])
    # the expanded axis has stride 0, so contiguous() copies (a reshape alone could return a
    # strided view of x when the rows lie within one sample)
    rows = x[b0:b1, None].expand(-1, k_count, *rest).contiguous().view(-1, *rest)
    return _fresh(rows[start - b0 * k_count : stop - b0 * k_count])


class PeriodicRows:
    """``tile_rows(t, start, stop)`` for every range of one run, as views of one tile.

    The rows of a sample-major table repeat ``t`` with period ``K``; the tile (``t`` repeated
    to cover the longest range asked for at any phase) is made once and each range is a
    contiguous slice of it: the same values, shape and strides as :func:`tile_rows`, without
    a copy per range (component patching, 8,192 rows x 64 units per block: 80 us and 2 MiB
    written per block before). The slices are *not* 64-byte aligned: for elementwise use
    (masks in hooks), not as model inputs (see ``tribute.engine.core._ALIGN``).
    """

    def __init__(self, t: torch.Tensor) -> None:
        self.t = t
        self._tile: torch.Tensor | None = None

    def __call__(self, start: int, stop: int) -> torch.Tensor:
        k_count = int(self.t.shape[0])
        k0, n = start % k_count, stop - start
        tile = self._tile
        if tile is None or int(tile.shape[0]) < k0 + n:
            # any phase fits: k0 <= K - 1
            periods = -(-(k_count - 1 + n) // k_count)
            tile = self._tile = self.t.repeat(periods, *([1] * (self.t.ndim - 1)))
        return tile[k0 : k0 + n]


class SampleIds:
    """``sample_ids(start, stop, K)`` for every range of one run: one add to a cached pattern.

    ``(start + i) // K = start // K + (start % K + i) // K``: the pattern ``(0..n+K-2) // K`` is
    made once (long enough for any phase) and each range is its slice plus ``start // K``, a
    fresh tensor (the arange, broadcast copy and slice of :func:`sample_ids` per call cost
    ~4x more: component patching makes one range per forward pass).
    """

    def __init__(self, k_count: int, device: torch.device | str) -> None:
        self.k_count = int(k_count)
        self.device = device
        self._pattern: torch.Tensor | None = None

    def __call__(self, start: int, stop: int) -> torch.Tensor:
        k_count = self.k_count
        b0, k0 = divmod(start, k_count)
        n = stop - start
        pat = self._pattern
        if pat is None or int(pat.shape[0]) < k0 + n:
            pat = self._pattern = torch.arange(k_count - 1 + n, device=self.device) // k_count
        return pat[k0 : k0 + n] + b0
