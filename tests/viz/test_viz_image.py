from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from viz_helpers import FakeAttribution, FakeTensor, assert_readable_fonts, render

from tribute import viz


def _heat(fig: Figure):
    """The heat-map image of the first axes (the last image drawn on it)."""
    return fig.axes[0].images[-1]


def test_signed_map_is_symmetric_around_zero(blob_map):
    fig = viz.image(blob_map)
    vmin, vmax = _heat(fig).get_clim()
    assert vmin == pytest.approx(-vmax)
    summed = blob_map.sum(axis=0)
    assert vmax == pytest.approx(np.percentile(np.abs(summed), 99.5))
    np.testing.assert_allclose(_heat(fig).get_array(), summed)  # channels summed
    assert len(fig.axes) == 2  # map + colour bar
    assert "raises output" in fig.axes[1].get_ylabel()
    assert_readable_fonts(fig)


def test_percentile_clips_outliers(blob_map):
    m = blob_map.sum(axis=0)
    m[0, 0] = 1000.0
    vmin, vmax = _heat(viz.image(m, percentile=99)).get_clim()
    assert vmax < 10.0 and vmin == pytest.approx(-vmax)
    vmin, vmax = _heat(viz.image(m, percentile=100)).get_clim()
    assert vmax == pytest.approx(1000.0)


def test_unsigned_starts_at_zero_with_sequential_map(blob_map):
    fig = viz.image(blob_map, signed=False)
    vmin, vmax = _heat(fig).get_clim()
    assert vmin == 0.0 and vmax > 0
    assert _heat(fig).get_cmap().name == "Reds"
    assert np.all(np.asarray(_heat(fig).get_array()) >= 0)


def test_overlay_on_rgb_and_gray_images(blob_map):
    rgb = np.random.default_rng(0).random((16, 16, 3))
    for underlay in (rgb, np.moveaxis(rgb, -1, 0), rgb[..., 0], (rgb * 255).astype(np.uint8)):
        fig = viz.image(blob_map, image=underlay, alpha=0.4)
        ax = fig.axes[0]
        assert len(ax.images) == 2
        assert ax.images[0].get_cmap().name == "gray"
        assert ax.images[1].get_alpha() == 0.4


def test_underlay_scaling_handles_normalised_and_constant_images(blob_map):
    for img in (np.full((16, 16), 300.0), np.full((16, 16), -2.0), np.linspace(-2, 2, 256)):
        fig = viz.image(blob_map, image=img.reshape(16, 16))
        under = np.asarray(fig.axes[0].images[0].get_array())
        assert np.isfinite(under).all() and under.min() >= 0 and under.max() <= 1


def test_low_resolution_map_is_stretched_over_image(blob_map):
    img = np.zeros((64, 64))
    fig = viz.image(blob_map[:, ::4, ::4], image=img)
    assert fig.axes[0].images[1].get_extent() == pytest.approx((-0.5, 63.5, 63.5, -0.5))
    with pytest.raises(ValueError, match=r"image has spatial shape \(64, 32\)"):
        viz.image(blob_map, image=np.zeros((64, 32)))


def test_all_zero_map_is_flat_and_finite():
    fig = viz.image(np.zeros((8, 8)))
    vmin, vmax = _heat(fig).get_clim()
    assert np.isfinite([vmin, vmax]).all() and vmin == -vmax and vmax > 0
    px = render(fig)
    assert px.std() > 0  # the colour bar still draws


def test_attribution_like_and_tensor_inputs(blob_map):
    fig = viz.image(FakeAttribution(blob_map[None], method="saliency"))  # batch of 1
    assert fig.axes[0].get_title() == "saliency"
    t = FakeTensor(blob_map)
    fig = viz.image(t, title="t")
    assert t.calls == ["detach", "cpu"]
    np.testing.assert_allclose(_heat(fig).get_array(), blob_map.sum(0))


def test_real_torch_tensor(blob_map):
    torch = pytest.importorskip("torch")
    x = torch.tensor(blob_map, requires_grad=True) * 2
    fig = viz.image(x.to(torch.bfloat16))
    assert _heat(fig).get_array().shape == (16, 16)


def test_draws_into_given_axes(blob_map):
    fig = viz.image_grid([blob_map, blob_map])  # any figure with axes
    ax = fig.axes[0]
    n_images = len(ax.images)
    out = viz.image(blob_map, ax=ax)
    assert out is fig and len(ax.images) == n_images + 1


def test_nan_error_names_argument_and_position(blob_map):
    blob_map[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"attr contains 1 NaN value\(s\) at index \(1, 2, 3\)"):
        viz.image(blob_map)
    with pytest.raises(ValueError, match=r"image contains .*NaN"):
        viz.image(np.ones((4, 4)), image=np.full((4, 4), np.nan))


def test_bad_shapes_and_params():
    with pytest.raises(ValueError, match=r"attr must have shape \(H, W\) or \(C, H, W\).*\(5,\)"):
        viz.image(np.ones(5))
    with pytest.raises(ValueError, match="image_grid"):
        viz.image(np.ones((2, 3, 4, 4)))
    with pytest.raises(ValueError, match="alpha"):
        viz.image(np.ones((4, 4)), alpha=2)
    with pytest.raises(ValueError, match="percentile"):
        viz.image(np.ones((4, 4)), percentile=0)
    with pytest.raises(TypeError, match="attr must be a numpy array"):
        viz.image(object())


# ---------------------------------------------------------------------------- grid


def test_grid_mapping_rows_are_samples_columns_are_methods(blob_map):
    batch = np.stack([blob_map, 3 * blob_map])  # (N=2, C, H, W)
    fig = viz.image_grid({"IG": batch, "saliency": FakeAttribution(batch)})
    heat_axes = [ax for ax in fig.axes if ax.images]
    assert len(heat_axes) == 4  # 2 samples x 2 methods
    assert [ax.get_title() for ax in heat_axes[:2]] == ["IG", "saliency"]
    # one colour scale per row, symmetric, and the rows differ by the factor 3
    row0 = {ax.images[-1].get_clim() for ax in heat_axes[:2]}
    row1 = {ax.images[-1].get_clim() for ax in heat_axes[2:]}
    assert len(row0) == 1 and len(row1) == 1
    (lo0, hi0), (lo1, hi1) = row0.pop(), row1.pop()
    assert lo0 == -hi0 and lo1 == -hi1 and hi1 == pytest.approx(3 * hi0)
    colorbars = [ax for ax in fig.axes if not ax.images]
    assert len(colorbars) == 2  # one per row
    assert_readable_fonts(fig)


def test_grid_with_images_adds_input_column(blob_map):
    imgs = np.random.default_rng(0).random((2, 16, 16, 3))
    fig = viz.image_grid({"a": np.stack([blob_map] * 2)}, images=imgs, titles=["method A"])
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles[:2] == ["input", "method A"]
    assert px_ok(fig)


def px_ok(fig: Figure) -> bool:
    return float(render(fig)[..., :3].std()) > 0.01


def test_grid_flat_list_wraps_into_ncols(blob_map):
    maps = [blob_map[0] * s for s in (1, 2, 3, 4, 5)]
    fig = viz.image_grid(maps, titles=list("abcde"), ncols=2)
    heat_axes = [ax for ax in fig.axes if ax.images]
    assert len(heat_axes) == 5
    assert [ax.get_title() for ax in heat_axes] == list("abcde")
    # flat lists share one scale by default
    assert len({ax.images[-1].get_clim() for ax in heat_axes}) == 1
    fig = viz.image_grid(np.stack(maps), share="none")
    assert len({ax.images[-1].get_clim() for ax in fig.axes if ax.images}) == 5


def test_grid_errors(blob_map):
    with pytest.raises(ValueError, match="same number of samples"):
        viz.image_grid({"a": np.stack([blob_map] * 2), "b": np.stack([blob_map] * 3)})
    with pytest.raises(ValueError, match="ncols applies to a flat list"):
        viz.image_grid({"a": blob_map[None]}, ncols=2)
    with pytest.raises(ValueError, match="titles has 1 entries but maps has 2"):
        viz.image_grid([blob_map, blob_map], titles=["x"])
    bad = blob_map.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"maps \(row 0, column 1\) contains"):
        viz.image_grid([[blob_map, bad]])
    with pytest.raises(ValueError, match="images has 3 entries but there are 2 rows"):
        viz.image_grid({"a": np.stack([blob_map] * 2)}, images=[np.zeros((16, 16))] * 3)
