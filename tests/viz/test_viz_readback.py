"""What the figures SHOW, read back from matplotlib's artists and the HTML, against numbers
computed here from the arrays (audit of the plotting layer)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.text import Text

import tribute
from tribute import viz


def _shown(t: Text) -> str:
    """The string matplotlib draws for a text artist (after mathtext preprocessing)."""
    s, math = t._preprocess_math(t.get_text())  # private, but the one place that decides
    assert not math, f"{t.get_text()!r} is parsed as mathtext"
    return str(s)


def _interaction_attr(n_rows: int = 6) -> tuple[tribute.Attribution, np.ndarray]:
    torch = pytest.importorskip("torch")

    class Pair(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x[:, 0] * x[:, 1] + 0.5 * x[:, 2] + 0.2 * x[:, 0] * x[:, 2])[:, None]

    x = np.random.default_rng(0).normal(size=(n_rows, 3))
    attr = tribute.explain(Pair(), torch.tensor(x), method="shapley_interactions", baseline=0.0)
    return attr, x


def test_interaction_heatmap_of_shapley_interactions_shows_the_shap_convention_mean():
    attr, _ = _interaction_attr()
    assert attr.extra["interactions"].ndim == 4  # batch x targets x f x f
    fig = viz.interaction_heatmap(attr)
    shown = np.asarray(fig.axes[0].images[0].get_array())
    truth = attr.extra["shap_interaction_values"][:, 0].mean(0)  # diagonal = main effects
    order = np.argsort(-np.abs(truth).sum(1))
    np.testing.assert_allclose(shown, truth[np.ix_(order, order)])
    names = [_shown(t) for t in fig.axes[0].get_yticklabels()]
    assert names == [attr.player_names[i] for i in order]
    norm = fig.axes[0].images[0].norm
    assert norm.vmin == -norm.vmax == -np.abs(truth).max()  # symmetric around 0
    with pytest.raises(ValueError, match="out of range"):
        viz.interaction_heatmap(attr, target=1)


def test_dependence_reads_4d_interactions_and_colours_by_the_strongest_pair():
    attr, x = _interaction_attr(12)
    fig = viz.dependence(attr, x, 2)  # feature 2 interacts with feature 0 only
    assert fig.axes[1].get_ylabel() == attr.player_names[0]
    np.testing.assert_allclose(fig.axes[0].collections[0].get_offsets(),
                               np.c_[x[:, 2], attr.flat()[:, 0, 2]])


def test_dependence_draws_missing_colour_values_gray_not_low():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3))
    credit = x * [1.0, 0.5, 0.1]
    x[:5, 1] = np.nan  # the colour feature is missing on five rows
    fig = viz.dependence(credit, x, 0, color_by=1)
    coloured, gray = fig.axes[0].collections[:2]
    assert len(coloured.get_offsets()) == 25 and len(gray.get_offsets()) == 5
    np.testing.assert_allclose(np.asarray(gray.get_offsets()), np.c_[x[:5, 0], credit[:5, 0]])
    np.testing.assert_allclose(np.asarray(coloured.get_array()), x[5:, 1])


def test_generation_heatmap_refuses_non_finite_cells():
    html = viz.generation_heatmap(["a", "b"], ["x"], np.array([[1.0, -0.5]]))
    assert "rgba(202, 0, 32, 1.000)" in html and "rgba(5, 113, 176, 0.500)" in html
    with pytest.raises(ValueError, match="matrix contains 1 NaN"):
        viz.generation_heatmap(["a", "b"], ["x"], np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="total contains 1 infinite"):
        viz.generation_heatmap(["a", "b"], ["x"], np.array([[1.0, 2.0]]), total=[np.inf, 0.0])


def test_curves_refuse_unsorted_fractions_and_label_the_trapezoid_auc():
    fig = viz.curves({"m": (np.array([0.0, 0.25, 1.0]), np.array([1.0, 0.5, 0.0]))})
    (label,) = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert label == f"m (AUC {0.25 * 1.5 / 2 + 0.75 * 0.5 / 2:.3g})"
    with pytest.raises(ValueError, match="non-decreasing"):
        viz.curves({"m": (np.array([1.0, 0.5, 0.0]), np.array([0.0, 0.5, 1.0]))})


NAMES = ["cost $5 to $10", "$\\undefinedcommand$", "<b>x</b>"]


def test_names_with_dollar_signs_are_drawn_as_typed():
    vals = np.array([[3.0, -2.0, 1.0], [2.0, -1.0, 0.5]])
    figs = {
        "bar": viz.bar(vals[0], NAMES),
        "waterfall": viz.waterfall(vals[0], NAMES, base_value=0.0),
        "beeswarm": viz.beeswarm(vals, names=NAMES),
        "importance": viz.importance(vals, NAMES),
    }
    for kind, fig in figs.items():
        labels = [_shown(t) for t in fig.axes[0].get_yticklabels()]
        assert set(NAMES) <= set(labels), (kind, labels)
        assert viz.to_png_bytes(fig).startswith(b"\x89PNG"), kind
    board = viz.leaderboard({m: {"$r$": 1.0} for m in NAMES})
    assert [_shown(t) for t in board.axes[0].get_yticklabels()] == NAMES
    assert _shown(board.axes[0].title) == "$r$"
    legend = viz.curves({NAMES[1]: np.array([1.0, 0.0])}).axes[0].get_legend().get_texts()
    assert _shown(legend[0]).startswith(NAMES[1])
    assert viz.to_png_bytes(board).startswith(b"\x89PNG")
