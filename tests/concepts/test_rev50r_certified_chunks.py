"""rev50r (stop 50): certified attribution gives each input, whatever the chunk of inputs it is
reduced in, the numbers it gets alone.

aud50r reduces the base maps one chunk of inputs at a time; its test uses one input per chunk.
Here chunks of 1, 2 and 3 inputs of a batch of 5 (the last chunk shorter), a block of draws
shorter than ``n_samples`` (the last block shorter), and the whole batch in one chunk (the
``noisy_view`` path), on a model whose saliency is elementwise (no matrix product, whose float
rounding depends on the number of rows), so every field must be byte-identical to the call on
that input alone, in float64 and float32, with per-sample targets and groups.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from tribute.methods import certified
from tribute.methods.certified import certified_attribution

_FIELDS = ("smoothed", "frequency", "lower", "upper", "topk", "gap", "radius", "certified", "clipped",
           "norm_lower", "cosine_radius", "cosine_lower")


class _TwoQuadratics(torch.nn.Module):
    """``f_j(x) = sum_i c_ji x_i^2 / 2``: saliency of output ``j`` is ``c_j * x`` (elementwise)."""

    def __init__(self, d: int, dtype: torch.dtype) -> None:
        super().__init__()
        c = torch.stack([torch.linspace(0.5, 1.5, d), torch.linspace(1.5, 0.2, d)]).to(dtype)
        self.c = torch.nn.Parameter(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x[:, None, :] ** 2 * self.c[None]).sum(-1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("setting", ["chunk1", "chunk2", "chunk3", "block7", "one_chunk"])
def test_every_chunking_gives_each_input_its_numbers_alone(dtype: torch.dtype, setting: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    d, b, n = 6, 5, 30
    per_draw = (d + 3) * 8 * 4  # dim + players (3 groups)
    sizes = {"chunk1": n * per_draw, "chunk2": 2 * n * per_draw, "chunk3": 3 * n * per_draw,
             "block7": 7 * per_draw, "one_chunk": b * n * per_draw}
    x = torch.randn(b, d, generator=torch.Generator().manual_seed(4), dtype=torch.float64).to(dtype)
    target = torch.tensor([0, 1, 1, 0, 1])
    kw: dict[str, Any] = dict(method="saliency", k=1, n_samples=n, noise=0.3, seed=5, groups=[0, 0, 1, 2, 2, 2],
              eps=0.01, clip_norm=0.8)
    alone = [certified_attribution(_TwoQuadratics(d, dtype), x[i:i + 1], target=target[i:i + 1], **kw)
             for i in range(b)]
    monkeypatch.setattr(certified, "_BLOCK_BYTES", sizes[setting])
    res = certified_attribution(_TwoQuadratics(d, dtype), x, target=target, **kw)
    for f in _FIELDS:
        got = np.asarray(getattr(res, f))
        want = np.concatenate([np.asarray(getattr(a, f)) for a in alone])
        assert got.shape == want.shape and got.tobytes() == want.tobytes(), (f, got, want)
    assert res.n_evals == max(a.n_evals for a in alone)
    # not a trivial agreement: the inputs' maps and top-1 sets differ
    assert len({tuple(np.round(r, 6)) for r in res.smoothed}) == b and len(set(res.topk[:, 0])) > 1
