"""Blocks of columns (or samples) for estimators that stream a large solve (private).

An estimator whose solve is per column (samples x targets) runs it a block at a time through
small buffers reused from block to block, instead of temporaries as large as all the columns
(LIME's ridge fit, KernelSHAP's constrained fit and standard errors).
"""

from __future__ import annotations

__all__ = ["GRAIN", "block_bounds"]

#: Blocks start at multiples of this many samples. BLAS kernels handle the columns of a
#: matrix in groups (OpenBLAS's dgemv: 4 rows of the column-major matrix at a time, the rest
#: by a tail loop that rounds differently), so a block that started mid-group would round
#: some columns differently from one product over all columns.
GRAIN = 16


def block_bounds(total: int, per: int, grain: int = GRAIN) -> list[int]:
    """Bounds ``0 = b_0 < b_1 < ... = total`` of about ``ceil(total / per)`` blocks.

    Every bound but the last is a multiple of ``grain``; the sizes differ by at most
    ``grain`` (the last one by less than ``2 grain``), so that no block is much smaller than
    ``per / 2`` (a short block could take another BLAS kernel than the others).
    ``[0, total]`` when one block holds everything; ``[0, 0]`` when ``total`` is 0.
    """
    grain = max(grain, 1)
    units = total // grain
    count = min(max(-(-total // max(per, 1)), 1), max(units, 1))
    return [grain * (units * i // count) for i in range(count)] + [total]
