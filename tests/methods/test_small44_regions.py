"""small44 (stop 44): XRAI on channels-last images (``channel_axis=-1``), checked against the
same images and model channels-first; images a model reads channels-last are refused without
it (they were segmented as (C=H, H=W, W=C) images, silently, from 4 channels on)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.models.layout import channels_last_by_model, looks_channels_last
from tribute_testing import ChannelsLast


def _net(c: int, h: int, w: int) -> Any:
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(c, 3, 3, padding=1), torch.nn.Tanh(),
                              torch.nn.Flatten(), torch.nn.Linear(3 * h * w, 2)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.3)
    return net


@pytest.mark.parametrize("c", [3, 4, 8])
def test_xrai_channels_last_equals_channels_first(c: int) -> None:
    """Before: (16, 16, 4) and (16, 16, 8) ran as 16x4 / 16x8 images of 16 channels (values
    up to 3.2 / 3.7 off the channels-first answer, other region ranks); (16, 16, 3) was refused
    as "16x3 pixels are smaller than the segmentation scale"."""
    net = _net(c, 16, 16)
    x = torch.rand(2, c, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    first = tribute.explain(net, x, method="xrai", target=0, baseline=0.0)
    xl = x.permute(0, 2, 3, 1).contiguous()
    with pytest.raises(InputError, match=r"channels-last \(H, W, C\).*Conv2d reads "
                                         rf"{c} channels.*channel_axis=-1"):
        tribute.explain(ChannelsLast(net), xl, method="xrai", target=0, baseline=0.0)
    last = tribute.explain(ChannelsLast(net), xl, method="xrai", target=0, baseline=0.0,
                           channel_axis=-1)
    np.testing.assert_allclose(np.asarray(last.values).transpose(0, 3, 1, 2),
                               np.asarray(first.values), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(last.extra["region_rank"], first.extra["region_rank"])
    # every channel of a pixel holds its region's gain
    v = np.asarray(last.values)
    np.testing.assert_array_equal(v, np.broadcast_to(v[..., :1], v.shape))


def test_xrai_channel_axis_checks() -> None:
    net = _net(3, 8, 8)
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with pytest.raises(InputError, match=r"channel_axis=2"):
        tribute.explain(net, x, method="xrai", target=0, baseline=0.0, channel_axis=2)
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2)).double()
    with pytest.raises(InputError, match=r"per-sample shape \(8, 8\) is not \(H, W, C\)"):
        tribute.explain(flat, x[:, 0], method="xrai", target=0, baseline=0.0, channel_axis=-1)
    # channels-first with channel_axis=1 is the default reading
    a = tribute.explain(net, x, method="xrai", target=0, baseline=0.0, channel_axis=1)
    b = tribute.explain(net, x, method="xrai", target=0, baseline=0.0)
    np.testing.assert_array_equal(np.asarray(a.values), np.asarray(b.values))


def test_layout_helper() -> None:
    conv8 = _net(8, 6, 3)
    assert channels_last_by_model((8, 6, 3), conv8) is False
    assert channels_last_by_model((6, 3, 8), conv8) is True
    assert channels_last_by_model((8, 6, 8), conv8) is None  # both axes match
    assert channels_last_by_model((8, 6, 3), torch.nn.Linear(3, 2)) is None
    assert channels_last_by_model((8, 6, 3), lambda a: a) is None
    assert not looks_channels_last((8, 6, 3), conv8) and looks_channels_last((8, 6, 3))
    assert looks_channels_last((28, 28, 1)) and not looks_channels_last((3, 28, 28))
    assert not looks_channels_last((4, 28, 3)) and not looks_channels_last((28, 28))


def test_xrai_channels_last_grouped_equals_channels_first() -> None:
    """4 x 4 patches as groups: the same regions and gains channels-last as channels-first."""
    net = _net(4, 16, 16)
    x = torch.rand(2, 4, 16, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ids = (np.arange(16)[:, None] // 4) * 4 + (np.arange(16)[None, :] // 4)
    first = tribute.explain(net, x, method="xrai", target=0, baseline=0.0,
                            groups=np.broadcast_to(ids, (4, 16, 16)).copy())
    last = tribute.explain(ChannelsLast(net), x.permute(0, 2, 3, 1).contiguous(), method="xrai",
                           target=0, baseline=0.0, channel_axis=-1,
                           groups=np.broadcast_to(ids[:, :, None], (16, 16, 4)).copy())
    np.testing.assert_allclose(np.asarray(last.values), np.asarray(first.values), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(last.extra["region_rank"], first.extra["region_rank"])
