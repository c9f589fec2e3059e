from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle
from viz_helpers import FakeAttribution, assert_readable_fonts, render

from tribute import viz


def _bars(fig: Figure) -> list[Rectangle]:
    return [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]


def _ylabels(fig: Figure) -> list[str]:
    """Tick labels top to bottom."""
    ax = fig.axes[0]
    pairs = sorted(zip(ax.get_yticks(), [t.get_text() for t in ax.get_yticklabels()]))
    return [lab for _, lab in pairs[::-1]]


# ---------------------------------------------------------------------------- bar


def test_bar_sorted_by_magnitude_with_sign_colours():
    vals = np.array([0.1, -3.0, 2.0, 0.0])
    fig = viz.bar(vals, ["a", "b", "c", "d"])
    bars = _bars(fig)
    assert len(bars) == 4
    assert _ylabels(fig) == ["b", "c", "a", "d"]
    by_y = sorted(bars, key=lambda r: -r.get_y())  # top first
    assert [r.get_width() for r in by_y] == pytest.approx([-3.0, 2.0, 0.1, 0.0])
    red, blue = to_rgba(by_y[1].get_facecolor()), to_rgba(by_y[0].get_facecolor())
    assert red[0] > red[2] and blue[2] > blue[0]
    assert_readable_fonts(fig)


def test_bar_truncates_into_sum_of_others_row():
    vals = np.arange(1.0, 31.0)  # 30 features
    fig = viz.bar(vals, max_display=20)
    bars = _bars(fig)
    assert len(bars) == 20
    labels = _ylabels(fig)
    assert labels[0] == "feature 29" and labels[-1] == "sum of 11 other features"
    bottom = min(bars, key=lambda r: r.get_y())
    assert bottom.get_width() == pytest.approx(vals[:11].sum())


def test_bar_error_bars_from_attribution_stderr():
    attr = FakeAttribution(
        np.array([[1.0, -2.0, 0.5]]), stderr=np.array([[0.1, 0.2, 0.3]]), player_names=list("xyz")
    )
    fig = viz.bar(attr)
    assert fig.axes[0].get_title() == "fake_method"
    assert _ylabels(fig) == ["y", "x", "z"]
    (errbar,) = [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]
    segs = errbar.lines[2][0].get_segments()
    half = sorted(float(np.ptp(np.asarray(s)[:, 0]) / 2) for s in segs)
    assert half == pytest.approx([0.1, 0.2, 0.3])


def test_bar_matrix_plots_mean_abs_with_standard_errors():
    v = np.array([[1.0, -4.0], [3.0, 0.0]])
    fig = viz.bar(v, ["p", "q"])
    widths = sorted(r.get_width() for r in _bars(fig))
    assert widths == pytest.approx([2.0, 2.0])
    assert "mean |credit| over 2 samples" in fig.axes[0].get_xlabel()


def test_bar_single_feature_and_errors():
    assert len(_bars(viz.bar([0.7]))) == 1
    with pytest.raises(ValueError, match="names has 2 entries but values has 3 features"):
        viz.bar([1.0, 2.0, 3.0], ["a", "b"])
    with pytest.raises(ValueError, match=r"values contains 1 NaN value\(s\) at index 2"):
        viz.bar([1.0, 2.0, np.nan])
    with pytest.raises(ValueError, match=r"stderr has shape \(2,\) but values has shape \(3,\)"):
        viz.bar([1.0, 2.0, 3.0], stderr=[0.1, 0.1])
    with pytest.raises(ValueError, match="max_display"):
        viz.bar([1.0], max_display=0)


# ---------------------------------------------------------------------------- waterfall


def _arrow_ends(fig: Figure) -> list[tuple[float, float]]:
    """(y, end x) of each waterfall arrow: the tip vertex (index 2)."""
    arrows = [p for p in fig.axes[0].patches if isinstance(p, Polygon)]
    return sorted((float(p.get_xy()[2][1]), float(p.get_xy()[2][0])) for p in arrows)


def test_waterfall_ends_at_base_plus_sum():
    rng = np.random.default_rng(1)
    vals = rng.normal(size=15)
    fig = viz.waterfall(vals, base_value=0.25, max_display=10)
    ends = _arrow_ends(fig)
    assert len(ends) == 10  # 9 features + "sum of 6 other features"
    assert ends[-1][1] == pytest.approx(0.25 + vals.sum())  # top arrow ends at f(x)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert f"f(x) = {0.25 + vals.sum():.4g}" in texts
    assert "E[f(X)] = 0.25" in texts
    assert _ylabels(fig)[-1] == "sum of 6 other features"
    assert_readable_fonts(fig)


def test_waterfall_steps_chain_and_colours():
    vals = np.array([2.0, -1.0, 0.5])
    fig = viz.waterfall(vals, ["a", "b", "c"], base_value=np.array([1.0]), feature_values=[3, 4, 5])
    arrows = sorted(
        (p for p in fig.axes[0].patches if isinstance(p, Polygon)), key=lambda p: p.get_xy()[2][1]
    )
    starts = [float(p.get_xy()[0][0]) for p in arrows]
    tips = [float(p.get_xy()[2][0]) for p in arrows]
    # bottom to top: c (+0.5), b (-1), a (+2)
    assert starts == pytest.approx([1.0, 1.5, 0.5])
    assert tips == pytest.approx([1.5, 0.5, 2.5])
    arrow_rgba = to_rgba(arrows[1].get_facecolor())
    assert arrow_rgba[2] > arrow_rgba[0]  # negative: blue
    assert _ylabels(fig) == ["a = 3", "b = 4", "c = 5"]


def test_waterfall_single_feature_zero_and_errors():
    assert _arrow_ends(viz.waterfall([0.0], base_value=2.0))[-1][1] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="names has 1 entries but values has 2 features"):
        viz.waterfall([1.0, 2.0], ["a"], base_value=0.0)
    with pytest.raises(ValueError, match="feature_values has 3 entries but values has 2"):
        viz.waterfall([1.0, 2.0], base_value=0.0, feature_values=[1, 2, 3])
    with pytest.raises(ValueError, match=r"values must have shape \(n_features,\)"):
        viz.waterfall(np.ones((2, 3)), base_value=0.0)
    with pytest.raises(ValueError, match="base_value contains"):
        viz.waterfall([1.0], base_value=float("nan"))
    with pytest.raises(TypeError):
        viz.waterfall([1.0])  # type: ignore[call-arg]


# ---------------------------------------------------------------------------- beeswarm


def _swarm_rows(fig: Figure) -> list[PathCollection]:
    return [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]


def test_beeswarm_one_point_per_sample_and_feature_rows_ordered():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    v = x * np.array([0.1, 3.0, 1.0, 0.5])
    fig = viz.beeswarm(v, x, ["a", "b", "c", "d"])
    rows = _swarm_rows(fig)
    assert len(rows) == 4
    assert all(len(np.asarray(r.get_offsets())) == 200 for r in rows)
    assert _ylabels(fig) == ["b", "c", "d", "a"]
    # points stay within their row band, centred on the row
    for r in rows:
        y = np.asarray(r.get_offsets())[:, 1]
        assert np.ptp(y) <= 0.8 + 1e-9
    # colour follows the feature value: the highest-value sample is the "high" colour
    top = rows[0]
    xs = np.asarray(top.get_offsets())[:, 0]
    colors = np.asarray(top.get_facecolor())
    hi_pt, lo_pt = colors[np.argmax(xs)], colors[np.argmin(xs)]
    assert not np.allclose(hi_pt, lo_pt)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "feature value"
    assert_readable_fonts(fig)


def test_beeswarm_truncates_and_handles_missing_feature_values():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 25))
    x = rng.normal(size=(50, 25))
    x[::5, :] = np.nan
    fig = viz.beeswarm(FakeAttribution(v), feature_values=x, max_display=20)
    rows = _swarm_rows(fig)
    assert len(rows) == 20
    assert _ylabels(fig)[-1] == "sum of 6 other features"
    gray = np.array([0.55, 0.55, 0.55, 0.8])
    nan_colors = np.asarray(rows[0].get_facecolor())[::5]
    assert np.allclose(nan_colors, gray)


def test_beeswarm_without_feature_values_and_errors():
    fig = viz.beeswarm(np.ones((3, 1)))  # single feature, identical values
    assert len(_swarm_rows(fig)) == 1 and len(fig.axes) == 1  # no colour bar
    assert float(render(fig)[..., :3].std()) > 0.01
    with pytest.raises(
        ValueError, match=r"feature_values has shape \(3, 2\) but values has \(3, 1\)"
    ):
        viz.beeswarm(np.ones((3, 1)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="names has 2 entries but values has 1 features"):
        viz.beeswarm(np.ones((3, 1)), names=["a", "b"])
    bad = np.ones((3, 2))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"values contains 1 NaN value\(s\) at index \(2, 1\)"):
        viz.beeswarm(bad)
