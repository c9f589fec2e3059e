"""aud51v: attributions record their torch model's image channel axis (``layout.channel_axis``).

A CNN job started before that (shards without it) and resumed after (shards with it) must still
merge: the layouts differ in that field only, and the merged result keeps the recorded axis.
Before, ``merge`` refused such shards as "modified by hand".
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import tribute


class _CNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 2, 1)
        self.head = torch.nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean((2, 3)))


def test_shards_with_and_without_a_recorded_channel_axis_merge(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((2, 3, 4, 4))
    kw: dict[str, Any] = {"method": "saliency", "shard_size": 1, "progress": False, "target": 0}
    out = tmp_path / "o"
    first = tribute.explain_dataset(_CNN().double(), x, out=out, **kw)
    assert first.layout.channel_axis == 0
    shard = sorted((out / "shards").glob("shard-*.npz"))[0]
    old = tribute.Attribution.load(shard)
    old.layout = replace(old.layout, channel_axis=None)  # as written before the field existed
    old.save(shard)
    (out / "result.npz").unlink()
    again = tribute.explain_dataset(_CNN().double(), x, out=out, resume=True, **kw)
    assert again.layout.channel_axis == 0
    np.testing.assert_array_equal(np.asarray(again.values), np.asarray(first.values))
