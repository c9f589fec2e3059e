"""Audit (stop 35) of what the figures draw, read back against numbers computed here: a
tribute Attribution's batch and target axes in image maps, credits of any magnitude in bars
and waterfalls, one string as the text of a highlight."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from matplotlib.patches import Polygon, Rectangle

import tribute
from tribute import viz
from tribute.attribution import Attribution, Layout


def _drawn(fig: object) -> list[np.ndarray]:
    """The arrays of every heat map drawn (one per panel), in axes order."""
    return [np.asarray(ax.images[-1].get_array()) for ax in fig.axes if ax.images]  # type: ignore[attr-defined]


def _dense(values: np.ndarray, shape: tuple[int, ...], multi_target: bool = False) -> Attribution:
    return Attribution(values=values, method="m",
                       layout=Layout(input_shapes=(shape,), dense=True, multi_target=multi_target))


def test_image_of_an_attribution_never_sums_its_samples_or_targets() -> None:
    # three grayscale samples (3, H, W): the old code read the batch as 3 channels of one
    # image and drew their sum (1 - 1 + 0.5 = 0.5 at pixel (0, 0))
    v = np.zeros((3, 4, 4))
    v[:, 0, 0] = [1.0, -1.0, 0.5]
    with pytest.raises(ValueError, match=r"holds 3 samples.*attr.plot\(index=i\)"):
        viz.image(_dense(v, (4, 4)))
    # one sample, two targets (1, T, H, W): the old code summed the targets (1 + -3 = -2)
    v = np.zeros((1, 2, 4, 4))
    v[0, :, 0, 0] = [1.0, -3.0]
    with pytest.raises(ValueError, match=r"explains 2 targets.*target=t"):
        viz.image(_dense(v, (4, 4), multi_target=True))
    with pytest.raises(ValueError, match=r"maps\['m'\] explains 2 targets"):
        viz.image_grid({"m": _dense(np.repeat(v, 2, axis=0), (4, 4), multi_target=True)})
    # one sample, one target kept: drawn as it is
    assert _drawn(viz.image(_dense(v[:, :1], (4, 4), multi_target=True)))[0][0, 0] == 1.0
    # a batch of grayscale maps in a grid: one row per sample, each its own values
    v = np.zeros((3, 4, 4))
    v[:, 0, 0] = [1.0, -1.0, 0.5]
    drawn = _drawn(viz.image_grid({"m": _dense(v, (4, 4))}))
    assert [d[0, 0] for d in drawn] == [1.0, -1.0, 0.5]
    # a flat list of one-sample attributions
    drawn = _drawn(viz.image_grid([_dense(v[i : i + 1], (4, 4)) for i in range(3)]))
    assert [d[0, 0] for d in drawn] == [1.0, -1.0, 0.5]


def test_image_of_superpixel_credits_draws_each_group_on_its_pixels() -> None:
    # linear model, baseline 0, inputs of ones: feature ablation's credit of a group is the sum
    # of its weights (closed form), drawn on every pixel of the group
    w = torch.arange(16, dtype=torch.float64).reshape(1, 4, 4) - 7.5

    class Linear(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = (x * w).flatten(1).sum(1)
            return torch.stack([s, -s], 1)

    groups = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]).reshape(1, 4, 4)
    x = torch.ones(2, 1, 4, 4, dtype=torch.float64)
    attr = tribute.explain(Linear(), x, "feature_ablation", target=0, groups=groups, baseline=0.0)
    truth = np.array([w[0][groups[0] == g].sum().item() for g in range(4)])  # -20 -12 12 20
    expected = truth[groups[0].numpy()]
    # the old code drew the (samples x players) credit table as if it were an image
    with pytest.raises(ValueError, match="holds 2 samples"):
        viz.image(attr)
    one = tribute.explain(Linear(), x[:1], "feature_ablation", target=0, groups=groups, baseline=0.0)
    np.testing.assert_allclose(_drawn(viz.image(one))[0], expected)
    for d in _drawn(viz.image_grid({"feature_ablation": attr})):
        np.testing.assert_allclose(d, expected)
    # players that are not input elements are not pixels
    tab = Attribution(values=np.ones((1, 16)), method="m", layout=Layout(input_shapes=((16,),)))
    with pytest.raises(ValueError, match=r"not pixels.*bar"):
        viz.image(tab)


@pytest.mark.parametrize("scale", [1e-15, 1.0, 1e12])
def test_bars_and_waterfall_keep_the_credits_scale(scale: float) -> None:
    vals = np.array([3.0, -1.0, 2.0]) * scale
    ax = viz.bar(vals).axes[0]
    lo, hi = ax.get_xlim()
    widths = sorted(p.get_width() for p in ax.patches if isinstance(p, Rectangle))
    np.testing.assert_allclose(widths, sorted(vals))
    # the longest bar fills most of the axis (was 1.6% of it for credits of 1e-15: invisible)
    assert (3.0 * scale) / (hi - lo) > 0.5
    ax = viz.waterfall(vals, base_value=0.0).axes[0]
    lo, hi = ax.get_xlim()
    ends = [p.get_xy()[2, 0] for p in ax.patches if isinstance(p, Polygon)]
    # smallest first from the base 0: -1, then +2, then +3, ending at f(x) = 4
    np.testing.assert_allclose(ends, np.array([-1.0, 1.0, 4.0]) * scale)
    assert (5.0 * scale) / (hi - lo) > 0.5  # the walk spans -1 .. 4


@pytest.mark.parametrize("vals", [[0.0, 0.0], [-1.0, 0.0]])
def test_bar_labels_of_zero_credits_stay_inside_the_axes(vals: list[float]) -> None:
    fig = viz.bar(np.array(vals))
    ax = fig.axes[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the layout collapsed ("axes sizes collapsed to zero")
        viz.to_png_bytes(fig, close=False)
    lo, hi = ax.get_xlim()
    zero_label = next(t for t in ax.texts if t.get_text() == "+0")
    assert lo < zero_label.get_position()[0] < hi


def test_text_highlight_takes_one_string_as_the_text() -> None:
    # "the text": a string was iterated character by character (5 "texts") and refused
    html = str(viz.text_highlight("ab cd", [(0, 0, 2), (0, 3, 5)], np.array([1.0, -0.5])))
    assert ">ab</span> <span" in html and ">cd</span>" in html
    assert 'title="+1"' in html and 'title="-0.5"' in html


def test_report_gallery_colour_bar_reads_the_rescaled_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace


    # two 3-channel samples; channel 0 carries +4 at pixel (0, 0), channels 1 and 2 carry
    # +1 there too, so the drawn (channel-summed) map is 6 at (0, 0) and 1 elsewhere in row 0
    k, c, h, w = 2, 3, 8, 8
    maps = np.zeros((k, c, h, w))
    maps[:, :, 0, :] = 1.0 / 3.0
    maps[:, 0, 0, 0] = 4.0
    maps[:, 1:, 0, 0] = 1.0
    flat = maps.reshape(k, 1, -1)
    case = SimpleNamespace(name="img", modality="image", n_samples=k, groups=None,
                           inputs=np.zeros((k, c, h, w)))
    shown = _gallery_figures(monkeypatch, case, flat)
    fig = shown[0]
    summed = maps.sum(1)
    scale = np.percentile(np.abs(summed.reshape(k, -1)), 99.5, axis=1)
    heat = [d for d in _drawn(fig) if d.ndim == 2]  # not the RGB input column
    assert len(heat) == k
    for i, d in enumerate(heat):
        # each drawn map is its channel sum over its own 99.5th percentile, within [-1, 1]
        # (the old code clipped each channel first and drew their sum: up to 3 at (0, 0))
        np.testing.assert_allclose(d, np.clip(summed[i] / scale[i], -1, 1))
        assert np.abs(d).max() <= 1.0
    labels = [ax.get_ylabel() for ax in fig.axes if not ax.images and ax.get_ylabel()]
    # the colour bar says its ticks are rescaled credits, not credits
    assert labels and all("99.5th percentile" in s for s in labels), labels


def test_underlay_of_three_channels_of_4x4_is_read_channels_first() -> None:
    # (3, 4, 4) is either 3 channels of 4x4 or a 3x4 image with 4 channels; the map is 4x4, so
    # it is the former (was: read as 3x4 RGBA and refused, "spatial shape (3, 4)")
    rgb = np.zeros((3, 4, 4))
    rgb[0] = 1.0  # pure red
    m = np.eye(4)
    fig = viz.image(m, rgb)
    under = np.asarray(fig.axes[0].images[0].get_array())
    np.testing.assert_allclose(under, np.full((4, 4), 0.299))  # red's luma, every pixel
    fig = viz.image_grid({"m": m[None]}, images=rgb[None])
    shown = np.asarray(fig.axes[0].images[0].get_array())  # the input column, in colour
    np.testing.assert_allclose(shown[..., 0], 1.0)
    np.testing.assert_allclose(shown[..., 1:], 0.0)


def test_report_tabular_gallery_without_feature_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace


    # a data set without names gives feature_names=[] (suites: list(ds.feature_names or []));
    # the gallery refused it ("names has 0 entries") and the whole report failed
    flat = np.array([[[1.0, -2.0, 0.5]], [[3.0, 2.0, -0.5]]])
    case = SimpleNamespace(name="tab", modality="tabular", n_samples=2, n_players=3, groups=None,
                           feature_names=[], ground_truth=None, tokens=None)
    shown = _gallery_figures(monkeypatch, case, flat)
    ax = shown[0].axes[0]
    name_at = {round(t.get_position()[1]): t.get_text() for t in ax.get_yticklabels()}
    bars = {name_at[round(p.get_y() + p.get_height() / 2)]: p.get_width()
            for p in ax.patches if isinstance(p, Rectangle)}
    assert bars == {"feature 0": 2.0, "feature 1": 2.0, "feature 2": 0.5}  # mean |credit|


def test_attribution_plot_names_the_target_it_draws() -> None:
    # stop 35: plot() of a multi-target attribution drew target 0 by default without saying which
    import torch

    import tribute

    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    attr = tribute.explain(net, torch.randn(2, 4), method="saliency", target=[0, 2])
    assert attr.plot(1, kind="bar", target=1).axes[0].get_title() == "saliency, target column 1 (class 2)"
    assert attr.plot(0).axes[0].get_title() == "saliency, target column 0 (class 0)"
    assert attr.plot(0, title="mine").axes[0].get_title() == "mine"
    one = tribute.explain(net, torch.randn(2, 4), method="saliency", target=1)
    assert "target" not in one.plot(0).axes[0].get_title()


def test_bar_of_a_multi_target_attribution_names_sample_and_target() -> None:
    # stop 35 (aud35v): the message suggested values[i], which bar then averaged over targets as samples
    import pytest
    import torch

    import tribute

    attr = tribute.explain(torch.nn.Sequential(torch.nn.Linear(4, 3)), torch.randn(1, 4), method="saliency",
                           target=[0, 2])
    with pytest.raises(ValueError, match=r"values\[i, t\], or attr.plot\(i, target=t\)"):
        tribute.viz.bar(attr)


def _gallery_figures(monkeypatch: pytest.MonkeyPatch, case: Any, flat: np.ndarray) -> list[Any]:
    """The figures the bench report's gallery draws for one method's ``flat`` credits on ``case``."""
    from types import SimpleNamespace

    from tribute.bench import report

    run = SimpleNamespace(status="ok", flat=flat, method="m", reference=False)
    result = SimpleNamespace(all_methods=lambda: ["m"], run_of=lambda case_name, meth: run)
    shown: list[Any] = []

    def keep(fig: Any, alt: str, caption: str = "", cls: str = "") -> dict[str, str]:
        shown.append(fig)
        return {}

    monkeypatch.setattr(report, "_img", keep)
    report._gallery(result, case)  # type: ignore[arg-type]
    return shown
