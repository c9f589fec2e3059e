from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.patches import Rectangle
from viz_helpers import assert_readable_fonts

from tribute import viz

FR = np.linspace(0.0, 1.0, 11)


def test_curves_lines_legend_auc_and_band():
    rng = np.random.default_rng(0)
    per_sample = np.exp(-3 * FR) + 0.05 * rng.normal(size=(8, 11))
    fig = viz.curves(
        {
            "linear": 1 - FR,  # AUC 0.5
            "samples": per_sample,
            "given": (FR, np.exp(-FR), 0.1 * np.ones(11)),
        },
        kind="deletion",
    )
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 3
    legend = ax.get_legend()
    assert legend is not None
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[0] == "linear (AUC 0.5)"
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    np.testing.assert_allclose(np.asarray(ax.get_lines()[1].get_ydata()), per_sample.mean(axis=0))
    assert "lower AUC is better" in ax.get_title()
    assert "removed" in ax.get_xlabel()
    assert_readable_fonts(fig)


def test_curves_insertion_and_given_auc():
    fig = viz.curves({"m": (FR, FR)}, kind="insertion", auc={"m": 0.123})
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert legend is not None and legend.get_texts()[0].get_text() == "m (AUC 0.123)"
    assert "higher AUC is better" in ax.get_title() and "inserted" in ax.get_xlabel()


def test_curves_errors():
    with pytest.raises(ValueError, match="kind must be"):
        viz.curves({"m": FR}, kind="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"fractions \(11,\) and scores \(5,\)"):
        viz.curves({"m": (FR, np.ones(5))})
    with pytest.raises(ValueError, match=r"curves\['m'\] scores contains 1 NaN"):
        viz.curves({"m": (FR, np.where(FR > 0.95, np.nan, FR))})
    with pytest.raises(ValueError, match="auc has no entry"):
        viz.curves({"m": FR, "n": FR}, auc={"m": 0.1})


def _bars_by_axes(fig):
    return [[p for p in ax.patches if isinstance(p, Rectangle)] for ax in fig.axes]


def test_leaderboard_from_dict_highlights_best_by_direction():
    scores = {
        "IG": {"deletion_auc": (0.2, 0.02), "lds": 0.4},
        "saliency": {"deletion_auc": (0.3, 0.05), "lds": 0.6},
        "random": {"deletion_auc": (0.5, 0.01), "lds": 0.0},
    }
    fig = viz.leaderboard(scores, directions={"deletion_auc": "lower", "lds": "higher"})
    axes = fig.axes
    assert len(axes) == 2
    assert axes[0].get_title() == "deletion_auc\n(lower is better)"
    assert axes[1].get_title() == "lds\n(higher is better)"
    bars = _bars_by_axes(fig)
    assert [len(b) for b in bars] == [3, 3]

    def best(ax_bars):
        colors = [tuple(b.get_facecolor()) for b in ax_bars]
        odd = [b for b, c in zip(ax_bars, colors) if colors.count(c) == 1]
        assert len(odd) == 1
        return odd[0].get_width()

    assert best(bars[0]) == pytest.approx(0.2)  # lowest deletion AUC
    assert best(bars[1]) == pytest.approx(0.6)  # highest LDS
    # error bars only where a stderr was given
    assert len(axes[0].containers) >= 1
    assert_readable_fonts(fig)


@dataclass
class Row:
    method: str
    metric: str
    mean: float
    stderr: float | None = None
    higher_is_better: bool | None = None


def test_leaderboard_from_rows_missing_and_unknown_direction():
    rows = [
        Row("a", "faith", 0.5, 0.1, True),
        Row("b", "faith", 0.7, 0.1, True),
        {"method": "a", "metric": "time", "value": 2.0},
        {"method": "b", "metric": "time", "value": float("nan")},
    ]
    fig = viz.leaderboard(rows, title="suite")
    bars = _bars_by_axes(fig)
    assert [len(b) for b in bars] == [2, 1]  # NaN = missing, drawn as n/a
    assert "n/a" in [t.get_text().strip() for t in fig.axes[1].texts]
    assert fig.axes[1].get_title() == "time"  # no direction: none claimed, no highlight
    assert len({tuple(b.get_facecolor()) for b in bars[0]}) == 2
    assert fig.get_suptitle() == "suite"


def test_leaderboard_errors():
    with pytest.raises(ValueError, match="row 0 needs 'method', 'metric' and 'mean'"):
        viz.leaderboard([{"method": "a"}])
    with pytest.raises(ValueError, match="must be 'higher' or 'lower'"):
        viz.leaderboard({"a": {"m": 1.0}}, directions={"m": "sideways"})
    with pytest.raises(ValueError, match="directions names metrics"):
        viz.leaderboard({"a": {"m": 1.0}}, directions={"typo": "higher"})
    with pytest.raises(ValueError, match="scores is empty"):
        viz.leaderboard({})
