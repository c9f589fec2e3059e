"""small46: the shared channels-first/last reading of images (``tribute.models.layout``).

- A model whose first registered ``Conv2d`` is a fuse convolution (registered before the two
  branches whose concatenated 4 + 4 channels it reads) reads 8 channels, the width of a plain
  channels-first ``(3, 8, 8)`` image. ``channels_last_by_model`` called it channels-last: XRAI,
  extremal perturbation and submodular regions refused the call ("channels-last (H, W, C) ...
  pass channel_axis=-1", advice that would then segment 3 x 8 images of 8 channels) and ROAD
  warned that the images look channels-last. Grad-CAM had its own fix (rev45g: an (H, W, C)
  image holds fewer channels than rows and columns); the rule now lives in layout.py, once.

Truth: the same model with its branch convolutions registered first (identical weights and
function; its first Conv2d reads the 3 input channels, so its reading is channels-first without
the rule) and the explicit ``channel_axis=1``.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.models.layout import channels_last_by_model, looks_channels_last
from tribute_testing import grad_cam_weights, output_and_activation


class _Fuse(nn.Module):
    """``fuse_first``: the 1x1 fuse Conv2d(8, 4) is registered before the branches it reads."""

    def __init__(self, cin: int, half: int, fuse_first: bool) -> None:
        super().__init__()
        if fuse_first:
            self.fuse = nn.Conv2d(2 * half, 4, 1)
        self.a = nn.Conv2d(cin, half, 3, padding=1)
        self.b = nn.Conv2d(cin, half, 5, padding=2)
        if not fuse_first:
            self.fuse = nn.Conv2d(2 * half, 4, 1)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.fuse(torch.cat([self.a(x), self.b(x)], 1)))
        return self.head(y.mean((2, 3)))


def _twins(cin: int = 3, half: int = 4) -> tuple[nn.Module, nn.Module]:
    g = torch.Generator().manual_seed(3)
    first = _Fuse(cin, half, True)
    with torch.no_grad():
        for p in first.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    first = first.double().eval()
    twin = _Fuse(cin, half, False).double().eval()
    twin.load_state_dict(first.state_dict())
    assert isinstance(list(first.modules())[1], nn.Conv2d) and list(first.modules())[1].in_channels == 2 * half
    return first, twin


def _x(n: int = 2, c: int = 3, h: int = 8, w: int = 8) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@pytest.mark.parametrize(("method", "kw"), [
    ("xrai", {}),
    ("submodular_regions", {"min_size": 0.1}),
    ("extremal_perturbation", {"steps": 2, "areas": (0.2,)}),
])
def test_region_methods_read_a_plain_image_channels_first_when_a_fuse_conv_is_registered_first(
        method: str, kw: dict[str, Any]) -> None:
    fuse_first, twin = _twins()
    x = _x()
    truth = tribute.explain(twin, x, method, target=0, progress=False, **kw)
    explicit = tribute.explain(fuse_first, x, method, target=0, progress=False, channel_axis=1, **kw)
    got = tribute.explain(fuse_first, x, method, target=0, progress=False, **kw)
    assert np.asarray(got.values).shape == tuple(x.shape)
    np.testing.assert_array_equal(np.asarray(got.values), np.asarray(truth.values))
    np.testing.assert_array_equal(np.asarray(got.values), np.asarray(explicit.values))


def test_road_does_not_warn_channels_last_on_a_plain_image_of_a_fuse_first_model() -> None:
    fuse_first, twin = _twins()
    x = _x()
    attr = tribute.explain(twin, x, "saliency", target=0, progress=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        got = tribute.evaluate(fuse_first, x, attr, "road", target=0, progress=False)
    assert not [w for w in seen if "channels-last" in str(w.message)]
    truth = tribute.evaluate(twin, x, attr, "road", target=0, progress=False)
    np.testing.assert_array_equal(np.asarray(got.scores), np.asarray(truth.scores))


@pytest.mark.parametrize(("shape", "half", "want"), [
    ((3, 8, 8), 4, None), ((1, 6, 8), 4, None), ((3, 12, 16), 8, None), ((3, 5, 10), 5, None),
    ((4, 6, 6), 3, None),
    # an ordinary (H, W, C) image (last axis the short one) stays channels-last
    ((16, 16, 8), 4, True), ((9, 7, 6), 3, True),
])
def test_channels_last_by_model_on_fuse_first_models(shape: tuple[int, int, int], half: int,
                                                     want: bool | None) -> None:
    model, twin = _twins(shape[0] if want is None else 3, half)
    assert channels_last_by_model(shape, model) is want
    # the twin's first Conv2d is a branch: never channels-last here
    assert channels_last_by_model(shape, twin) is not True


@pytest.mark.parametrize(("shape", "cin", "want"), [
    # one convolution: what it reads settles the layout, also for many bands (unchanged)
    ((3, 8, 8), 8, True), ((6, 3, 8), 8, True), ((5, 5, 20), 20, True), ((8, 8, 3), 3, True),
    ((32, 32, 4), 4, True), ((28, 28, 1), 1, True), ((9, 7, 6), 6, True),
    ((8, 32, 4), 8, False), ((3, 8, 8), 3, False), ((16, 4, 4), 16, False), ((8, 6, 3), 8, False),
    ((8, 8, 8), 8, None), ((8, 6, 3), 5, None),
])
def test_channels_last_by_model_with_one_convolution(shape: tuple[int, int, int], cin: int,
                                                     want: bool | None) -> None:
    model = nn.Sequential(nn.Conv2d(cin, 2, 1), nn.Conv2d(2, 2, 1), nn.Flatten())
    assert channels_last_by_model(shape, model) is want
    fallback = shape[-1] in (1, 3, 4) and min(shape[0], shape[1]) > 4
    assert looks_channels_last(shape, model) is (fallback if want is None else want)


class _Bands(nn.Module):
    """A model for channels-last (h, w, bands) patches: it permutes them for its Conv2d."""

    def __init__(self, bands: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(bands, 6, 3, padding=1)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x.permute(0, 3, 1, 2))).mean((2, 3)))


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_pp"])
@pytest.mark.parametrize(("h", "w", "bands"), [(5, 5, 20), (7, 7, 30), (6, 3, 8), (9, 9, 12)])
def test_grad_cam_maps_channels_last_patches_with_many_bands_to_h_by_w(
        method: str, h: int, w: int, bands: int) -> None:
    torch.manual_seed(0)
    model = _Bands(bands).double().eval()
    x = torch.rand(2, h, w, bands, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    out, act = output_and_activation(model, "conv", x)
    (g,) = torch.autograd.grad(out[:, 0].sum(), act)
    a, g = act.detach(), g.detach()
    cam = (grad_cam_weights(a, g, pp=method == "grad_cam_pp") * a).sum(1)  # the layer's map is h x w already: no upsampling
    truth = cam[..., None].expand(-1, h, w, bands)
    got = torch.as_tensor(tribute.explain(model, x, method, target=0, layer="conv", relu=False,
                                          progress=False).values)
    assert truth.abs().max() > 1e-4
    assert torch.allclose(got, truth, rtol=0, atol=1e-12)


# --- the tabular codec: True, 1 and 1.0 in one object column ----------------------------------


def _mixed_frame(n: int = 60) -> Any:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    pool = np.array([True, 1, 1.0, "a", False, 0], dtype=object)
    return pd.DataFrame({"x": rng.normal(size=n),
                         "c": pd.Series(pool[rng.integers(0, len(pool), n)], dtype=object),
                         "z": rng.normal(size=n)})


_EFFECT = {"True": 1.0, "1": 2.0, "1.0": -1.5, "a": 0.5, "False": 0.0, "0": 3.0}


def _as_text(d: Any) -> Any:
    return d.astype(str)


def _str_onehot_pipeline(df: Any) -> Any:
    """A pipeline that reads the column as text (str(True) != str(1)) before one-hot coding."""
    pytest.importorskip("sklearn")
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    y = df.x + df.c.map(lambda v: _EFFECT[str(v)]) + 0.5 * df.z
    ct = ColumnTransformer([("c", make_pipeline(FunctionTransformer(_as_text),
                                                OneHotEncoder(handle_unknown="ignore")), ["c"])],
                           remainder="passthrough")
    return make_pipeline(ct, LinearRegression()).fit(df, y)


def _brute(predict: Any, x: Any, base: Any) -> np.ndarray:
    """Shapley values by enumerating the 2^3 coalitions through the pipeline itself."""
    from tribute_testing import shapley_from_table

    out = np.zeros((len(x), x.shape[1]))
    for r in range(len(x)):
        table: dict[tuple[int, ...], np.ndarray] = {}
        for b in itertools.product([0, 1], repeat=x.shape[1]):
            row = x.iloc[[r]].copy()
            for j, col in enumerate(x.columns):
                if not b[j]:
                    row[col] = base[col].to_numpy()
            table[b] = np.asarray(predict(row)[0])
        out[r] = shapley_from_table(table, x.shape[1])
    return out


@pytest.mark.parametrize("base_row", [10, 0, 3])
def test_codec_keeps_true_one_and_one_point_zero_apart(base_row: int) -> None:
    df = _mixed_frame()
    model = _str_onehot_pipeline(df)
    x = df.iloc[:8].reset_index(drop=True)
    base = df.iloc[[base_row]].reset_index(drop=True)
    kinds = {str(v) for v in x.c}
    assert {"True", "1"} <= kinds or {"1", "1.0"} <= kinds or {"True", "1.0"} <= kinds
    attr = tribute.explain(model.predict, x, "exact_shapley", baseline=base, progress=False)
    got = np.asarray(attr.values).reshape(len(x), -1)
    truth = _brute(model.predict, x, base)
    assert np.abs(truth[:, 1]).max() > 0.4
    np.testing.assert_allclose(got, truth, rtol=0, atol=1e-9)


def test_codec_round_trips_mixed_object_values_exactly() -> None:
    pd = pytest.importorskip("pandas")
    from tribute.models.tabular import CategoricalCodec

    col = pd.Series([True, 1, 1.0, "a", False, 0, 0.0, np.int64(1), "1", np.float64(2.5)], dtype=object)
    df = pd.DataFrame({"c": col, "x": np.arange(10.0)})
    codec = CategoricalCodec([df], list(df.columns))
    back = codec.decode(codec.encode(df, "inputs"))
    assert [str(v) for v in back.c] == [str(v) for v in col]
    assert [type(v) for v in back.c][:7] == [type(v) for v in col][:7]
    # np.int64(1) and 1 read alike as text: one category
    assert codec.encode(df, "inputs").c.nunique() == 9
