"""Blocks of columns (or samples) for estimators that stream a large solve (private).

An estimator whose solve is per column (samples x targets) runs it a block at a time through
small buffers reused from block to block, instead of temporaries as large as all the columns
(LIME's ridge fit, KernelSHAP's constrained fit and standard errors).
"""

from __future__ import annotations

__all__ = ["block_bounds"]


def block_bounds(total: int, per: int) -> list[int]:
    """Bounds ``0 = b_0 < b_1 < ... = total`` of ``ceil(total / per)`` blocks whose sizes
    differ by at most one, so that no block is much smaller than ``per / 2`` (a short last
    block could take another BLAS kernel than the others). ``[0, 0]`` when ``total`` is 0."""
    count = max(-(-total // max(per, 1)), 1)
    return [total * i // count for i in range(count + 1)]
