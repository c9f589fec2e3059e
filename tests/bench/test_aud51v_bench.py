"""aud51v: the bench report's gallery sums a channels-last image case's maps over its channels.

``_gallery`` summed axis 1 of every 4-D map batch: for a user case (``tribute bench --model
--data``) whose model reads ``(H, W, C)`` images, a ``(4, 6, 3)`` map was drawn as the 6x3 sum
over each image's rows, and an ``(8, 8, 3)`` one stopped the whole report (its 8x3 map against
the 8x8 underlay). Truth: input x gradient of ``sum(w * x)``, closed form ``w * x`` summed over
the channel axis the model reads, scaled by its 99.5th percentile of ``|credit|`` as the gallery
scales every map.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute
from tribute.bench import report as R
from tribute.bench.runner import BenchResult, MethodRun
from tribute.bench.suites import Case
from tribute_testing import IdentityConvSum, gallery_maps


@pytest.mark.parametrize("shape, last", [((4, 6, 3), True), ((8, 8, 3), True), ((3, 4, 4), False)])
def test_the_gallery_sums_the_channels_the_model_reads(
        shape: tuple[int, int, int], last: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    c = shape[-1] if last else shape[0]
    h, w = (shape[0], shape[1]) if last else (shape[1], shape[2])
    model = IdentityConvSum(c, h, w, last).double()
    x = torch.randn(2, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    seen, (gallery, attr) = gallery_maps(model, x, monkeypatch)
    assert gallery.get("figure") is not None
    truth = attr.values.detach().numpy().sum(-1 if last else 1)
    scale = np.percentile(np.abs(truth.reshape(2, -1)), 99.5, axis=1).reshape(2, 1, 1)
    np.testing.assert_allclose(seen["input_x_gradient"], np.clip(truth / scale, -1, 1), atol=1e-12)


def test_a_shape_nothing_decides_gets_no_gallery_rather_than_a_wrong_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = IdentityConvSum(3, 4, 6, last=True).double()

    def f(a: np.ndarray) -> np.ndarray:
        return model(torch.as_tensor(a)).detach().numpy()

    x = np.random.default_rng(0).random((2, 4, 6, 3))
    attr = tribute.explain(f, x, "feature_ablation", target=0, baseline=0.0, progress=False)
    case = Case(name="user", title="u", description="", modality="image", model=f, inputs=x, target=None)
    run = MethodRun("user", "feature_ablation", False, "ok", n_evals=1)
    run.flat = attr.flat()
    result = BenchResult("t", 0, ["feature_ablation"], [], [case], [run], [], {}, {})
    assert R._gallery(result, case) == {}  # a 6x3 map summed over the rows before
