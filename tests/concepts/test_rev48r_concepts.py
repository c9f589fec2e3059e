"""rev48r (stop 48): review of aud48r's certified chunking and of rashomon's candidate seeds.

* certified_attribution's input chunks (aud48r) rebuilt the whole batch's flat inputs for every
  block of every chunk (``inputs_flat`` concatenates: a copy of ``batch x D``), quadratic in the
  batch: 1,000 96x96 images with patch groups took 127 s against 52 s before aud48r. The chunk's
  rows are now built once per chunk (32 s, the same numbers byte for byte).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from tribute.games.features import FeatureGame
from tribute.methods import certified
from tribute.methods.certified import certified_attribution


class _Bowl(torch.nn.Module):
    """``f = 0.5 ||x||^2`` per row, elementwise (no BLAS reduction whose rounding depends on the
    batch): saliency is ``x`` itself, so the chunked and unchunked paths must agree exactly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (0.5 * (x * x).sum(1))[:, None]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chunks_copy_the_batch_once_and_match_one_view(dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64).to(dtype)
    kw: dict[str, Any] = {"k": 2, "n_samples": 6, "seed": 11, "target": 0, "noise": 0.3}
    one_view = certified_attribution(_Bowl(), x, "saliency", **kw)  # default blocks: one view of all
    copied: list[int] = []
    orig = FeatureGame.inputs_flat

    def counting(self: FeatureGame) -> torch.Tensor:
        copied.append(self.n_samples)
        return orig(self)

    monkeypatch.setattr(FeatureGame, "inputs_flat", counting)
    monkeypatch.setattr(certified, "_BLOCK_BYTES", 2 * (6 + 6) * 8 * 4)  # blocks of 2 draws, 1 input a chunk
    chunked = certified_attribution(_Bowl(), x, "saliency", **kw)
    # the batch's flat inputs are read once, not once per (chunk, block): 1 + 5 * 3 = 16 before
    assert sum(n == 5 for n in copied) <= 2, copied
    # smoothed saliency of the bowl is x + noise * mean(z): the same draws in both paths
    np.testing.assert_array_equal(chunked.smoothed, one_view.smoothed)
    np.testing.assert_array_equal(chunked.frequency, one_view.frequency)
    np.testing.assert_array_equal(chunked.radius, one_view.radius)
    assert chunked.n_evals == one_view.n_evals
