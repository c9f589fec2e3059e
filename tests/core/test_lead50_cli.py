"""lead50 (from rev50v): `tribute explain` on a torch CNN whose images are (3, 4, 4) or
(2, 4, 4) failed after the run and wrote nothing: aud50v made a map whose shape reads two ways
((C, H, W) or (H, W, C)) an error naming ``channel_axis=``, which the CLI cannot pass. The CLI
now takes the channel axis from the model (its first ``Conv2d``), as the explorer does.

Truth: the map drawn with the channel axis the model reads (``tribute.viz.image(...,
channel_axis=...)``), compared as PNG bytes.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

import tribute
from tribute.cli import main, plot_channel_axis, render_views
from tribute_testing import factory_module

FACTORY = textwrap.dedent(
    """
    import torch

    class Last(torch.nn.Module):  # reads (H, W, C) images
        def __init__(self, c):
            super().__init__()
            self.net = make(c)

        def forward(self, x):
            return self.net(x.permute(0, 3, 1, 2))

    def make(c=3):
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(c, 2, 3, padding=1), torch.nn.Tanh(),
                                   torch.nn.Flatten(), torch.nn.Linear(2 * 16, 2)).double()

    def make2():
        return make(2)

    def make_last():
        return Last(3)
    """
)


@pytest.mark.parametrize("factory,shape,axis", [("make", (3, 4, 4), 0), ("make2", (2, 4, 4), 0),
                                                 ("make_last", (4, 4, 3), -1)])
def test_explain_draws_a_cnns_ambiguous_map_the_way_the_model_reads_it(
        tmp_path: Path, factory: str, shape: tuple[int, ...], axis: int) -> None:
    x = np.random.default_rng(0).random((2, *shape))
    np.save(tmp_path / "x.npy", x)
    with factory_module(tmp_path, "lead50_cnn", FACTORY) as mod:
        out = tmp_path / "out"
        assert main(["explain", "--model", f"lead50_cnn:{factory}", "--data", str(tmp_path / "x.npy"),
                     "--method", "saliency", "--target", "0", "--out", str(out), "--no-progress"]) == 0
        assert (out / "attribution.npz").exists() and (out / "attribution.html").exists()
        model = getattr(mod, factory)()
        attr = tribute.explain(model, x, method="saliency", target=0, progress=False)
        assert plot_channel_axis(attr, model) == axis
        png, _ = render_views(attr, channel_axis=axis)
        drawn = (out / "attribution.png").read_bytes()
        assert drawn == png
        # the attribution records the layout its model reads (aud51v): drawn alike without it
        assert attr.layout.channel_axis == axis
        assert render_views(attr)[0] == png


def test_plot_channel_axis_stays_out_of_non_image_maps() -> None:
    import torch

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 2)).double()
    attr = tribute.explain(mlp, np.random.default_rng(1).random((2, 4)), method="saliency", target=0,
                           progress=False)
    assert plot_channel_axis(attr, mlp) is None
    assert render_views(attr)[0][:4] == b"\x89PNG"
