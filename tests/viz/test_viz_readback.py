"""What the figures SHOW, read back from matplotlib's artists and the HTML, against numbers
computed here from the arrays (audit of the plotting layer)."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any, cast

import numpy as np
import pytest
import torch
from matplotlib.legend import Legend
from matplotlib.patches import Rectangle
from matplotlib.text import Text

import tribute
from tribute import viz


def _shown(t: Text) -> str:
    """The string matplotlib draws for a text artist (after mathtext preprocessing)."""
    s, math = t._preprocess_math(t.get_text())  # type: ignore[attr-defined]  # private, but decides
    assert not math, f"{t.get_text()!r} is parsed as mathtext"
    return str(s)


def _legend(leg: Legend | None) -> Legend:
    assert leg is not None, "the figure has no legend"
    return leg


def _rows(offsets: Any) -> np.ndarray:
    return np.asarray(offsets)


def _interaction_attr(n_rows: int = 6) -> tuple[tribute.Attribution, np.ndarray]:
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
    vmin, vmax = cast(float, norm.vmin), cast(float, norm.vmax)
    assert vmin == -vmax == -np.abs(truth).max()  # symmetric around 0
    with pytest.raises(ValueError, match="out of range"):
        viz.interaction_heatmap(attr, target=1)


def test_dependence_reads_4d_interactions_and_colours_by_the_strongest_pair():
    attr, x = _interaction_attr(12)
    fig = viz.dependence(attr, x, 2)  # feature 2 interacts with feature 0 only
    assert fig.axes[1].get_ylabel() == attr.player_names[0]
    np.testing.assert_allclose(_rows(fig.axes[0].collections[0].get_offsets()),
                               np.c_[x[:, 2], attr.flat()[:, 0, 2]])


def test_dependence_draws_missing_colour_values_gray_not_low():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3))
    credit = x * [1.0, 0.5, 0.1]
    x[:5, 1] = np.nan  # the colour feature is missing on five rows
    fig = viz.dependence(credit, x, 0, color_by=1)
    coloured, gray = fig.axes[0].collections[:2]
    assert len(_rows(coloured.get_offsets())) == 25 and len(_rows(gray.get_offsets())) == 5
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
    (label,) = [t.get_text() for t in _legend(fig.axes[0].get_legend()).get_texts()]
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
    legend = _legend(viz.curves({NAMES[1]: np.array([1.0, 0.0])}).axes[0].get_legend()).get_texts()
    assert _shown(legend[0]).startswith(NAMES[1])
    assert viz.to_png_bytes(board).startswith(b"\x89PNG")


class _Table(HTMLParser):
    """Every ``<tr>`` of a page as a list of its cells' text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(self.cell)
            self.cell = None


def test_attribution_page_shows_every_target_with_its_class_and_the_array_values(tmp_path):
    from tribute.cli import write_views

    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(3, 4)), rng.normal(size=(4, 3))
    attr = tribute.explain(lambda a: a @ w, x, method="feature_ablation", baseline=0.0, target=[2, 0])
    flat = attr.flat()
    _, page = write_views(attr, tmp_path, max_samples=2)
    parser = _Table()
    parser.feed(page.read_text())
    heads = [r for r in parser.rows if r[0] == "player"]
    assert heads == [["player", "sample 0 (target 2)", "sample 1 (target 2)"],
                     ["player", "sample 0 (target 0)", "sample 1 (target 0)"]]
    body = [r for r in parser.rows if r[0] != "player"]
    for t in range(2):  # one table per target, players by mean |credit| over all 3 samples
        rows = body[4 * t : 4 * (t + 1)]
        order = np.argsort(-np.abs(flat[:, t]).mean(0), kind="stable")
        assert [r[0] for r in rows] == [attr.player_names[j] for j in order]
        for r, j in zip(rows, order):
            np.testing.assert_allclose([float(c) for c in r[1:]], flat[:2, t, j], rtol=5e-4)


class _Spans(HTMLParser):
    """``(text, title)`` of every ``<span>``."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[tuple[str, str | None]] = []
        self.title: str | None = None
        self.open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "span":
            self.open, self.title = True, dict(attrs).get("title")
            self.spans.append(("", self.title))

    def handle_data(self, data: str) -> None:
        if self.open:
            self.spans[-1] = (self.spans[-1][0] + data, self.title)

    def handle_endtag(self, tag: str) -> None:
        self.open = self.open and tag != "span"


def test_text_highlight_pairs_each_player_and_special_token_with_its_value():
    texts = ["hello <big> world", "second"]
    spans = [(-1, 0, 0), (0, 0, 5), (0, 6, 11), (1, 0, 6), (-1, 0, 0)]
    vals = np.array([0.125, 1.0, -0.5, 0.25, 2.0])
    names = ["[CLS]", "hello", "<big>", "second", "[SEP]"]
    parser = _Spans()
    parser.feed(str(viz.text_highlight(texts, spans, vals, names=names)))
    got = dict(parser.spans)
    assert got == {n: f"{v:+.4g}" for n, v in zip(names, vals)}
    with pytest.raises(ValueError, match="NaN"):  # a NaN player would look like a zero credit
        viz.text_highlight(texts, spans, np.r_[vals[:4], np.nan])


def test_leaderboard_bolds_the_best_by_direction_and_every_tied_best():
    rows = [{"method": "a", "metric": "err", "mean": 0.5, "stderr": 0.1, "direction": "lower"},
            {"method": "b", "metric": "err", "mean": 0.2, "direction": "lower"},
            {"method": "c", "metric": "err", "mean": float("nan")}]
    ax = viz.leaderboard(rows).axes[0]
    assert [(t.get_text(), t.get_fontweight()) for t in ax.texts] == [
        ("0.5 ± 0.1", "normal"), ("0.2", "bold"), ("n/a", "normal")]
    assert [cast(Rectangle, p).get_width() for p in ax.patches] == [0.5, 0.2]
    tie = viz.leaderboard({"a": {"m": 1.0}, "b": {"m": 1.0}, "c": {"m": 0.5}},
                          directions={"m": "higher"}).axes[0]
    assert [t.get_fontweight() for t in tie.texts] == ["bold", "bold", "normal"]


def test_concept_overlay_colours_follow_a_partial_order_deterministically():
    from matplotlib.colors import to_rgb

    from tribute.viz._common import PALETTE

    maps = np.zeros((3, 1, 3))
    maps[0, 0, 0] = maps[1, 0, 1] = maps[2, 0, 2] = 1.0  # pixel j belongs to concept j
    rgba = viz.concept_overlay(maps, order=np.array([2]))  # only the top concept ranked
    want = [to_rgb(PALETTE[r]) for r in (1, 2, 0)]  # concepts 0, 1 follow concept 2
    np.testing.assert_allclose(rgba[0, :, :3], want)
    with pytest.raises(ValueError, match="distinct concepts"):
        viz.concept_overlay(maps, order=np.array([0, 0]))


def test_text_highlight_refuses_players_it_could_not_show():
    with pytest.raises(ValueError, match=r"spans\[1\]"):  # no third text
        viz.text_highlight(["ab", "cd"], [(0, 0, 2), (2, 0, 1)], np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="overlap"):
        viz.text_highlight(["abcd"], [(0, 0, 3), (0, 2, 4)], np.array([1.0, 2.0]))


def test_bar_says_its_error_bars_are_one_standard_error():
    fig = viz.bar(np.array([0.5, -0.25]), ["a", "b"], stderr=np.array([0.1, 0.2]))
    assert fig.axes[0].get_xlabel().endswith("error bars ±1 standard error")
    assert "error bars" not in viz.bar(np.array([0.5, -0.25])).axes[0].get_xlabel()


def test_parliament_gives_every_party_its_own_colour_and_seat_count():
    from tribute.methods.dhondt import dhondt_seats

    votes = {f"f{i}": float(30 - i) for i in range(12)}
    r = dhondt_seats(votes, seats=100)
    ax = viz.parliament(r).axes[0]
    won = [(k, v) for k, v in sorted(r.seats.items(), key=lambda kv: -kv[1]) if v]
    assert [t.get_text() for t in _legend(ax.get_legend()).get_texts()] == [f"{k} ({v})" for k, v in won]
    assert [len(_rows(c.get_offsets())) for c in ax.collections] == [v for _, v in won]
    colours = {tuple(np.round(np.asarray(c.get_facecolor())[0], 4)) for c in ax.collections}
    assert len(colours) == len(won) == 12
