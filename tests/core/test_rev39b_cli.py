"""rev39b: a --target label is shown as text in the PNG title, never parsed as matplotlib
mathtext (a label such as '$\\frac$' failed the whole `tribute explain` run)."""

from __future__ import annotations

import warnings

import torch

import tribute
from tribute.cli import render_views


def test_png_title_shows_a_dollar_label_as_text() -> None:
    net = torch.nn.Linear(4, 3).double()
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    attr = tribute.explain(net, x, method="saliency", target=[0, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        png, page = render_views(attr, target_names=["$\\frac$", "$5-$10"])
    assert png.startswith(b"\x89PNG")
    assert "target $\\frac$" in page and "target column 1 ($5-$10)" in page
