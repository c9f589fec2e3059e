"""rev44z: the explorer explains a channels-last image subject with xrai."""

from __future__ import annotations

import warnings

import torch

import tribute
from tribute.explorer.compute import _explain
from tribute.explorer.subjects import Subject


class _Last(torch.nn.Module):
    """A channels-first network read through channels-last inputs."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.permute(0, 3, 1, 2))


def test_xrai_on_a_channels_last_subject_reads_its_layout() -> None:
    # before: every xrai click on a channels-last subject was refused ("pass channel_axis=-1")
    # though the subject knows its layout (and before small44 it was segmented as 12x3 images)
    torch.manual_seed(0)
    inner = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 2)).eval()
    x = torch.rand(3, 12, 12, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        subject = Subject(name="cl", title="cl", kind="image", model=_Last(inner).eval(), inputs=x,
                          baseline=0.0, target="predicted", output="raw", channels_last=True)
        attr = _explain(subject, 0, "xrai", {"channel_axis": None}, 20, 0)
        # truth: the same images channels-first through the inner network, moved to H x W x C
        ref = tribute.explain(inner, x[:1].permute(0, 3, 1, 2).contiguous(), method="xrai",
                              target="predicted", baseline=0.0, budget=20, progress=False)
    assert tuple(attr.values.shape) == (1, 12, 12, 3)
    torch.testing.assert_close(torch.as_tensor(attr.values), ref.values.permute(0, 2, 3, 1),
                               rtol=1e-6, atol=1e-8)
