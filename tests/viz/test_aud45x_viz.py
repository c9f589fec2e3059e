"""Audit (stop 45) of the views, read back from the drawn artists against numbers computed
here: superpixel (grouped) credits on multi-channel images."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute import viz


def _drawn(fig: Any) -> list[np.ndarray]:
    """The array of every heat map drawn (one per panel), in axes order."""
    return [np.asarray(ax.images[-1].get_array()) for ax in fig.axes if ax.images]


class _Linear(torch.nn.Module):
    """Two outputs ``+-sum(w * x)``: feature ablation from a zero baseline credits a group
    with the sum of ``w * x`` over its elements (closed form)."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x * self.w).flatten(1).sum(1)
        return torch.stack([s, -s], 1)


def _truth(w: np.ndarray, x: np.ndarray, ids: np.ndarray, ch_axis: int, sign: float = 1.0) -> np.ndarray:
    """Per pixel: the sum of the credits of the distinct groups among the pixel's channels,
    with each group's credit the sum of ``w * x`` over its elements (by hand)."""
    contrib = sign * w * x
    credit = {int(g): float(contrib[ids == g].sum()) for g in np.unique(ids)}
    ids_c = np.moveaxis(ids, ch_axis, -1)
    h, wd = ids_c.shape[:2]
    out = np.zeros((h, wd))
    for r in range(h):
        for c in range(wd):
            out[r, c] = sum(credit[int(g)] for g in set(ids_c[r, c].tolist()))
    return out


def _patch_ids(c: int, h: int, w: int, p: int, last: bool = False) -> np.ndarray:
    """Square p x p superpixels spanning every channel, numbered in reading order."""
    rows, cols = np.meshgrid(np.arange(h) // p, np.arange(w) // p, indexing="ij")
    hw = rows * (-(-w // p)) + cols
    return np.repeat(hw[..., None], c, -1) if last else np.repeat(hw[None], c, 0)


CASES: dict[str, tuple[tuple[int, ...], str, int]] = {
    # input shape per sample, grouping, channel axis
    "rgb patches": ((3, 8, 8), "patch", 0),
    "rgba patches": ((4, 6, 6), "patch", 0),
    "two-channel patches": ((2, 4, 6), "patch", 0),
    "gray patches (one channel)": ((1, 8, 8), "patch", 0),
    "channels-last rgb patches": ((8, 8, 3), "patch_last", 2),
    "one group per channel and patch": ((3, 8, 8), "per_channel", 0),
    "channels 0-1 together, 2 apart": ((3, 4, 4), "mixed", 0),
}


def _ids(shape: tuple[int, ...], kind: str) -> np.ndarray:
    if kind == "patch":
        return _patch_ids(shape[0], shape[1], shape[2], 2)
    if kind == "patch_last":
        return _patch_ids(shape[2], shape[0], shape[1], 2, last=True)
    base = _patch_ids(1, shape[1], shape[2], 2)[0]
    n = int(base.max()) + 1
    if kind == "per_channel":
        return np.stack([base + k * n for k in range(shape[0])])
    return np.stack([base, base, base + n])  # mixed


@pytest.mark.parametrize("case", list(CASES))
def test_superpixel_credit_is_drawn_once_per_pixel_not_once_per_channel(case: str) -> None:
    # the old code summed the channels of to_input_shape(), where every element carries its
    # group's whole credit: a 3-channel patch was drawn with 3x its credit (-25.27 for -8.42)
    shape, kind, ch = CASES[case]
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(shape, generator=gen, dtype=torch.float64)
    x = torch.rand((3, *shape), generator=gen, dtype=torch.float64) + 0.5
    ids = _ids(shape, kind)
    attr = tribute.explain(_Linear(w), x, "feature_ablation", target=0,
                           groups=torch.as_tensor(ids), baseline=0.0)
    for i in (0, 2, -1):
        truth = _truth(w.numpy(), x[i].numpy(), ids, ch)
        np.testing.assert_allclose(_drawn(attr.plot(i, channel_axis=ch))[0], truth, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(_drawn(attr.plot(i, kind="image", signed=False, channel_axis=ch))[0],
                                   _truth_abs(w.numpy(), x[i].numpy(), ids, ch), rtol=1e-10, atol=1e-12)
    grid = _drawn(viz.image_grid({"fa": attr}, channel_axis=ch))
    for i, d in enumerate(grid):
        np.testing.assert_allclose(d, _truth(w.numpy(), x[i].numpy(), ids, ch), rtol=1e-10, atol=1e-12)
    one = tribute.explain(_Linear(w), x[1:2], "feature_ablation", target=0,
                          groups=torch.as_tensor(ids), baseline=0.0)
    np.testing.assert_allclose(_drawn(viz.image(one, channel_axis=ch))[0], _truth(w.numpy(), x[1].numpy(), ids, ch),
                               rtol=1e-10, atol=1e-12)


def _truth_abs(w: np.ndarray, x: np.ndarray, ids: np.ndarray, ch_axis: int) -> np.ndarray:
    """The unsigned view: the sum of |credit| of the distinct groups at each pixel."""
    contrib = w * x
    credit = {int(g): abs(float(contrib[ids == g].sum())) for g in np.unique(ids)}
    ids_c = np.moveaxis(ids, ch_axis, -1)
    return np.array([[sum(credit[int(g)] for g in set(ids_c[r, c].tolist()))
                      for c in range(ids_c.shape[1])] for r in range(ids_c.shape[0])])


def test_superpixels_of_each_target_and_sample_own_groups() -> None:
    shape = (3, 4, 4)
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(shape, generator=gen, dtype=torch.float64)
    x = torch.rand((2, *shape), generator=gen, dtype=torch.float64) + 0.5
    ids = _ids(shape, "patch")
    # several targets: target 1 is -sum(w x), every credit negated
    attr = tribute.explain(_Linear(w), x, "feature_ablation", target=[0, 1],
                           groups=torch.as_tensor(ids), baseline=0.0)
    for t, sign in ((0, 1.0), (1, -1.0)):
        np.testing.assert_allclose(_drawn(attr.plot(1, target=t, channel_axis=0))[0],
                                   _truth(w.numpy(), x[1].numpy(), ids, 0, sign), rtol=1e-10)
    # one grouping per sample: sample 0 2x2 patches, sample 1 halves (left/right) of channels
    # 0-1 together and of channel 2 alone
    half = (np.arange(4) >= 2).astype(np.int64)[None, None, :] + np.zeros(shape, dtype=np.int64)
    half[2] += 2
    per = np.stack([ids, half])
    attr = tribute.explain(_Linear(w), x, "feature_ablation", target=0,
                           groups=torch.as_tensor(per), baseline=0.0)
    for i in (0, 1):
        np.testing.assert_allclose(_drawn(attr.plot(i, channel_axis=0))[0],
                                   _truth(w.numpy(), x[i].numpy(), per[i], 0), rtol=1e-10)


def test_dense_maps_still_sum_their_channels() -> None:
    # every element its own player: a pixel's credit is the sum of its channels' credits
    shape = (3, 4, 4)
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(shape, generator=gen, dtype=torch.float64)
    x = torch.rand((2, *shape), generator=gen, dtype=torch.float64)
    attr = tribute.explain(_Linear(w), x, "feature_ablation", target=0, baseline=0.0)
    np.testing.assert_allclose(_drawn(attr.plot(1, channel_axis=0))[0], (w * x[1]).sum(0).numpy(),
                               rtol=1e-10)


# ----------------------------------------------------------------------------- leaderboard


def _bars(ax: Any, named: Any = None) -> dict[str, float]:
    """Method name -> drawn bar width, matched by the bar's y and the tick at that y (the
    names are on the first column's axes ``named``, the methods in the same rows on each)."""
    from matplotlib.patches import Rectangle

    names = {round(float(t.get_position()[1]), 6): t.get_text()
             for t in (named or ax).get_yticklabels()}
    return {names[round(p.get_y() + p.get_height() / 2, 6)]: float(p.get_width())
            for p in ax.patches if isinstance(p, Rectangle)}


_CSV_HEAD = "suite,seed,case,method,reference,metric,higher_is_better,mean,stderr,n,status\n"


def test_leaderboard_refuses_two_rows_for_one_method_and_metric() -> None:
    # bench's leaderboard.csv has one row per (case, method, metric): the old code kept the
    # last case's row silently (ig drawn at 0.2 and random highlighted best, while the
    # digits case scored ig 0.9, random 0.1)
    import io

    pd = pytest.importorskip("pandas")
    df = pd.read_csv(io.StringIO(_CSV_HEAD + "s,0,digits,ig,False,faith,True,0.9,0.01,10,ok\n"
                                 "s,0,digits,random,True,faith,True,0.1,0.02,10,ok\n"
                                 "s,0,tabular,ig,False,faith,True,0.2,0.01,10,ok\n"
                                 "s,0,tabular,random,True,faith,True,0.3,,10,ok\n"))
    with pytest.raises(ValueError, match=r"rows 0 and 2 .*'ig'.*'faith'.*df\[df.case == 'tabular'\]"):
        viz.leaderboard(df)
    rows = [{"method": "a", "metric": "m", "mean": 1.0}, {"method": "a", "metric": "m", "mean": 2.0}]
    with pytest.raises(ValueError, match=r"rows 0 and 1 .*one row per method and metric"):
        viz.leaderboard(rows)
    # one case's rows draw that case's numbers
    for case, truth in (("digits", {"ig": 0.9, "random": 0.1}), ("tabular", {"ig": 0.2, "random": 0.3})):
        ax = viz.leaderboard(df[df.case == case]).axes[0]
        assert _bars(ax) == pytest.approx(truth)


def test_leaderboard_draws_each_row_of_legitimate_tables() -> None:
    from types import SimpleNamespace

    nan = float("nan")
    tables: list[tuple[Any, dict[str, dict[str, float]]]] = [
        # list of dicts: several metrics of one method, several methods of one metric
        ([{"method": "a", "metric": "m1", "mean": 0.5}, {"method": "a", "metric": "m2", "mean": -1.0},
          {"method": "b", "metric": "m1", "mean": 0.25}],
         {"m1": {"a": 0.5, "b": 0.25}, "m2": {"a": -1.0}}),
        # 'value' instead of 'mean', with stderr and direction
        ([{"method": "a", "metric": "m", "value": 2.0, "stderr": 0.1, "direction": "lower"},
          {"method": "b", "metric": "m", "value": 3.0, "stderr": nan, "direction": "lower"}],
         {"m": {"a": 2.0, "b": 3.0}}),
        # objects with attributes
        ([SimpleNamespace(method="x", metric="m", mean=1.5, stderr=None, higher_is_better=True),
          SimpleNamespace(method="y", metric="m", mean=0.5, stderr=0.2, higher_is_better=True)],
         {"m": {"x": 1.5, "y": 0.5}}),
        # a NaN mean is a missing result (no bar), not a duplicate
        ([{"method": "a", "metric": "m", "mean": nan}, {"method": "b", "metric": "m", "mean": 0.75}],
         {"m": {"b": 0.75}}),
        # the same method name under two metrics, and the same metric name for two methods
        ([{"method": "m", "metric": "a", "mean": 1.0}, {"method": "a", "metric": "m", "mean": 4.0}],
         {"a": {"m": 1.0}, "m": {"a": 4.0}}),
        # the mapping form {method: {metric: mean or (mean, stderr)}}
        ({"a": {"m1": 1.0, "m2": (2.0, 0.5)}, "b": {"m1": 3.0}},
         {"m1": {"a": 1.0, "b": 3.0}, "m2": {"a": 2.0}}),
        # one row only
        ([{"method": "a", "metric": "m", "mean": 0.0}], {"m": {"a": 0.0}}),
        # numbers given as numpy scalars / strings of digits in the name
        ([{"method": 1, "metric": 2, "mean": np.float32(0.5)}, {"method": "1.0", "metric": 2, "mean": 1}],
         {"2": {"1": 0.5, "1.0": 1.0}}),
    ]
    for scores, truth in tables:
        fig = viz.leaderboard(scores)
        for ax, metric in zip(fig.axes, truth):
            assert _bars(ax, fig.axes[0]) == pytest.approx(truth[metric]), (scores, metric)


# ----------------------------------------------------------------------------- TCAV bars


def _tcav(concept: str, layer: str, target: int, score: float, p: float) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(concept=concept, layer=layer, target=target, score=score,
                           scores=np.array([score - 0.01, score + 0.01]),
                           random_scores=np.array([0.5, 0.5]), p_value=p)


def _tcav_bars(fig: Any) -> list[tuple[float, float]]:
    from matplotlib.patches import Rectangle

    ax = fig.axes[0]
    return [(round(p.get_x() + p.get_width() / 2, 9), float(p.get_height())) for p in ax.patches
            if isinstance(p, Rectangle) and np.isfinite(p.get_height())]


@pytest.mark.parametrize("results", [
    # two classes of one concept at one layer: drawn on the same spot (0.2 over 0.9)
    [("stripes", "l1", 0, 0.9), ("stripes", "l1", 1, 0.2), ("dots", "l1", 0, 0.6)],
    [("stripes", "l1", 0, 0.9), ("stripes", "l1", 1, 0.2)],
    [("s", "l1", 0, 0.9), ("s", "l2", 0, 0.8), ("s", "l1", 3, 0.1), ("s", "l2", 3, 0.3)],
    # legitimate neighbours (one class): each bar on its own spot already
    [("s", "l1", 0, 0.7)],
    [("s", "l1", 0, 0.7), ("d", "l1", 0, 0.4)],
    [("s", "l1", 0, 0.7), ("s", "l2", 0, 0.4), ("s", "l3", 0, 0.55)],
    [("s", "l1", 2, 0.7), ("d", "l1", 2, 0.4), ("s", "l2", 2, 0.6), ("d", "l2", 2, 0.3)],
    [("s", "l1", 0, 0.7), ("d", "l2", 0, 0.4)],
    # several classes, each concept at its own layer
    [("s", "l1", 0, 0.7), ("d", "l2", 1, 0.4)],
])
def test_tcav_bars_draw_every_result_on_its_own_spot(results: list[tuple[str, str, int, float]]) -> None:
    rs = [_tcav(c, layer, t, score, 0.001) for c, layer, t, score in results]
    for bonferroni in (True, False):
        fig = viz.tcav_bars(rs, bonferroni=bonferroni)
        bars = _tcav_bars(fig)
        assert sorted(h for _, h in bars) == pytest.approx(sorted(r[3] for r in results))
        assert len({x for x, _ in bars}) == len(results)  # no bar hides another
        # a bar sits in its layer's group: x within 0.4 of the layer's tick
        layers = list(dict.fromkeys(r[1] for r in results))
        for (x, h), r in zip(bars, results):
            assert h == pytest.approx(r[3]) and abs(x - layers.index(r[1])) < 0.4
        legend = fig.axes[0].get_legend()
        assert legend is not None
        labels = [t.get_text() for t in legend.get_texts()]
        several = len({r[2] for r in results}) > 1
        for c, _, t, _ in results:
            assert (f"{c} (class {t})" if several else c) in labels


def test_tcav_bars_refuses_one_concept_layer_and_class_twice() -> None:
    rs = [_tcav("s", "l1", 0, 0.9, 0.001), _tcav("d", "l1", 0, 0.5, 0.2), _tcav("s", "l1", 0, 0.1, 0.3)]
    with pytest.raises(tribute.errors.InputError, match=r"results\[0\] and results\[2\] .*'s'.*'l1'"):
        viz.tcav_bars(rs)


# ----------------------------------------------------------------------------- certified map


@pytest.mark.parametrize("shape, channel", [
    ((6, 5, 3), 2),  # channels-last RGB: was summed over its 6 rows (a 5 x 3 map)
    ((8, 8, 1), 2),  # channels-last gray: was drawn as 64 bars
    ((7, 9, 4), 2),
    ((3, 6, 5), 0), ((1, 8, 8), 0), ((4, 6, 6), 0), ((2, 5, 7), 0),  # channels-first
    ((6, 5), None), ((8, 8), None),  # one channel
])
def test_certified_map_sums_the_channel_axis(shape: tuple[int, ...], channel: int | None) -> None:
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    size = int(np.prod(shape))
    smoothed = rng.normal(size=(2, size))
    topk = np.argsort(-np.abs(smoothed), axis=1)[:, :4]
    res = SimpleNamespace(smoothed=smoothed, topk=topk, input_shape=shape, radius=np.array([0.1, 0.0]),
                          norm="l2", k=4, confidence=0.95, method="ig", feature_names=[])
    for i in (0, 1):
        ax = viz.certified_map(res, i).axes[0]
        grid = smoothed[i].reshape(shape)
        truth = grid if channel is None else grid.sum(channel)
        np.testing.assert_allclose(np.asarray(ax.images[-1].get_array()), truth)
        # the outlined pixels are those holding a certified top-k element
        mask = np.zeros(size, dtype=bool)
        mask[topk[i]] = True
        m = mask.reshape(shape)
        m = m if channel is None else np.asarray(m.any(channel))
        offsets = np.asarray(ax.collections[0].get_offsets())
        xy = {(int(x), int(y)) for x, y in offsets.tolist()}
        assert xy == {(int(c), int(r)) for r, c in zip(*np.nonzero(m))}


def test_superpixels_of_the_first_of_several_inputs() -> None:
    # an image and a tabular input sharing one grouping: the plot draws the image's groups,
    # each row group's credit (sum of its 12 elements' values, closed form) once per pixel
    class TwoInputs(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            s = a.flatten(1).sum(1) + 2 * b.sum(1)
            return torch.stack([s, -s], 1)

    gen = torch.Generator().manual_seed(3)
    a = torch.rand(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    b = torch.rand(2, 5, generator=gen, dtype=torch.float64)
    rows = torch.arange(4).reshape(1, 4, 1).expand(3, 4, 4)  # one group per image row
    attr = tribute.explain(TwoInputs(), (a, b), "feature_ablation", target=0,
                           groups=(rows, torch.full((5,), 4)), baseline=0.0)
    for i in (0, 1):
        truth = np.repeat(a[i].sum(dim=(0, 2)).numpy()[:, None], 4, 1)
        np.testing.assert_allclose(_drawn(attr.plot(i, channel_axis=0))[0], truth, rtol=1e-10)
