"""aud50r (stop 50): certified attribution holds one chunk of base maps at a time.

Every input's base maps (``batch x draws x players`` float64) were kept until the end, plus four
working copies of that size for the top-k counts and the clipped maps: 100 MB of peak memory per
3 x 64 x 64 image (saliency, 200 draws; 16 images: 1.6 GB over the baseline, 0.2 GB now). The maps
are now reduced to per-input statistics chunk by chunk; each input's statistics come from its own
rows, so the numbers do not change (checked against the whole-batch reduction written here).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from tribute.methods import certified
from tribute.methods.certified import certified_attribution


class _Quadratic(torch.nn.Module):
    """``f(x) = sum c_i x_i^2 / 2``: saliency ``c * x`` changes with the noise."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.c = torch.nn.Parameter(torch.linspace(0.5, 1.5, d, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (0.5 * self.c * x**2).sum(-1, keepdim=True)


def test_peak_memory_is_one_chunk_of_maps_not_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    d, b, n = 400, 8, 100
    # blocks of 50 draws, one input per chunk
    monkeypatch.setattr(certified, "_BLOCK_BYTES", 50 * (d + d) * 8 * 4)
    x = torch.rand(b, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 0.5
    batch_maps = b * n * d * 8  # 2.6 MB: the old code held it and four copies (peak 6x that)
    # a first call imports what the call needs: its allocations are not the call's
    certified_attribution(_Quadratic(d), x[:1], "saliency", k=3, n_samples=4, target=0)
    tracemalloc.start()
    try:
        res = certified_attribution(_Quadratic(d), x, "saliency", k=3, n_samples=n, noise=0.2, target=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < batch_maps, (peak, batch_maps)  # 1.4 MB now, 13 MB before
    # the statistics are the whole-batch reduction of every draw's map (saliency = c * (x + noise z))
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(n, d, generator=gen, dtype=torch.float64)
    u = torch.rand(n, 1, generator=gen, dtype=torch.float64) ** (1.0 / d)
    z = (g / g.norm(dim=1, keepdim=True) * u).numpy()
    c = np.linspace(0.5, 1.5, d)
    maps = c * (x.numpy()[:, None, :] + 0.2 * z[None])
    np.testing.assert_allclose(res.smoothed, maps.mean(1), rtol=1e-12)
    s = np.abs(maps)
    hits = s > -np.partition(-s, 3, axis=2)[:, :, 3:4]
    np.testing.assert_array_equal(res.frequency, hits.mean(1))
    unit = maps / np.linalg.norm(maps, axis=2, keepdims=True)
    np.testing.assert_allclose(res.clipped, unit.mean(1), rtol=1e-12)
