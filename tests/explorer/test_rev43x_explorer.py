"""Review rev43x of aud43x's explorer change: which axis of an ``N x A x B x C`` image batch
holds the channels.

aud43x read such a batch as channels last by shape alone (last axis 1-4 long, the second not),
so an ``N x C x H x W`` batch of more than four channels and a narrow width -- ``N x 8 x 6 x 3``,
or 1-D signals held as ``N x 12 x 20 x 1`` -- was drawn as a C x H map of the credits summed
over the width (before aud43x it was right: H x W, the channels summed). Truth: the credits of
``tribute.explain`` on the same model and input, summed over the model's channel axis by numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import tribute

pytest.importorskip("starlette")
from _explorer_live import wait_for_job
from starlette.testclient import TestClient

from tribute.explorer import ExplorerConfig, create_app
from tribute.explorer.subjects import file_spec

_FACTORY = '''
import torch


class Net(torch.nn.Module):
    def __init__(self, c, h, w, last):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.last = last
        self.conv = torch.nn.Conv2d(c, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * h * w, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        x = x.permute(0, 3, 1, 2) if self.last else x
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def first():  # N x 8 x 6 x 3: eight channels of 6 x 3 images
    return Net(8, 6, 3, False)


def signals():  # N x 12 x 20 x 1: 12-channel signals of length 20 (width 1)
    return Net(12, 20, 1, False)


def last():  # N x 4 x 6 x 3: 4 x 6 RGB images held channels last
    return Net(3, 4, 6, True)


class Stem(Net):
    """Channels last (N x 8 x 6 x 3); a per-pixel Linear 3 -> 8 before a Conv2d of 8 channels,
    as many as the second axis holds."""

    def __init__(self):
        super().__init__(8, 8, 6, False)
        self.stem = torch.nn.Linear(3, 8)
        with torch.no_grad():
            g = torch.Generator().manual_seed(1)
            for p in self.stem.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x):
        return super().forward(self.stem(x).permute(0, 3, 1, 2))


def stem():
    return Stem()
'''




@pytest.mark.parametrize(("make", "shape", "channel_axis"), [
    ("first", (3, 8, 6, 3), 0), ("signals", (3, 12, 20, 1), 0), ("last", (3, 4, 6, 3), -1),
    ("stem", (3, 8, 6, 3), -1)])
def test_the_models_convolution_says_where_the_channels_are(
        tmp_path: Path, make: str, shape: tuple[int, ...], channel_axis: int) -> None:
    import importlib.util

    (tmp_path / "rev43x_factory.py").write_text(_FACTORY, encoding="utf-8")
    X = np.random.default_rng(0).uniform(size=shape).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    spec = file_spec(f"{tmp_path}/rev43x_factory.py:{make}", data=str(tmp_path / "x.npy"), name="s")
    mspec = importlib.util.spec_from_file_location("rev43x_factory", tmp_path / "rev43x_factory.py")
    assert mspec is not None and mspec.loader is not None
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    model = getattr(mod, make)().eval()
    with TestClient(create_app(ExplorerConfig(subjects=[spec])), base_url="http://127.0.0.1") as c:
        preview = np.asarray(c.get("/api/subjects/s/inputs/1").json()["image"])
        job = wait_for_job(c, c.post("/api/jobs", json={"subject": "s", "kind": "explain", "index": 1,
                                                 "method": "saliency"}).json())
        served = c.app.state.config.subjects[0].get().model  # type: ignore[attr-defined]
    assert job["status"] == "done", job
    assert all(not m._forward_pre_hooks for m in served.modules())  # the look at its input left no hook
    py = tribute.explain(model, torch.from_numpy(X[1:2]), method="saliency", target="predicted",
                         baseline=0.0, progress=False)
    truth = np.asarray(py.values, dtype=np.float64)[0].sum(channel_axis)  # H x W
    shown = np.asarray(job["result"]["values"], dtype=np.float64)
    assert shown.shape == truth.shape, (shown.shape, truth.shape)  # first: (8, 6), not (6, 3)
    np.testing.assert_allclose(shown, truth, rtol=1e-5, atol=1e-6)
    gray = X[1].astype(np.float64).mean(channel_axis)
    np.testing.assert_allclose(preview, (gray - gray.min()) / (gray.max() - gray.min()), atol=1e-4)


_TWO_OUTPUTS = '''
import numpy as np
from sklearn.linear_model import Ridge


def model():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 3))
    return Ridge().fit(X, np.stack([X @ [1.0, -2.0, 0.5], X @ [0.0, 3.0, 1.0]], 1))
'''


def test_a_multi_output_regressor_names_the_output_its_credits_are_for(tmp_path: Path) -> None:
    """Ridge on two targets: output 0 is explained (the description says so); the job's
    target said only "output". Truth: occlusion by hand on ``predict(.)[:, 0]`` with the column
    means removed; the compare job's deletion curve starts at output 0 and ends at its value
    on the baseline."""
    import importlib.util

    pytest.importorskip("sklearn")
    (tmp_path / "rev43x_two.py").write_text(_TWO_OUTPUTS, encoding="utf-8")
    rows = np.random.default_rng(1).normal(size=(5, 3))
    np.save(tmp_path / "rows.npy", rows)
    spec = file_spec(f"{tmp_path}/rev43x_two.py:model", data=str(tmp_path / "rows.npy"), name="reg")
    mspec = importlib.util.spec_from_file_location("rev43x_two", tmp_path / "rev43x_two.py")
    assert mspec is not None and mspec.loader is not None
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    reg = mod.model()
    base = rows.mean(0)
    with TestClient(create_app(ExplorerConfig(subjects=[spec])), base_url="http://127.0.0.1") as c:
        desc = c.get("/api/subjects/reg").json()["description"]
        job = wait_for_job(c, c.post("/api/jobs", json={"subject": "reg", "kind": "explain", "index": 2,
                                                 "method": "occlusion"}).json())
        cmp = wait_for_job(c, c.post("/api/jobs", json={"subject": "reg", "kind": "compare", "index": 2,
                                                 "methods": ["occlusion", "exact_shapley"]}).json())
    f = reg.predict(rows[2:3])[0, 0]
    truth = [f - reg.predict(np.where(np.arange(3) == j, base, rows[2])[None])[0, 0] for j in range(3)]
    np.testing.assert_allclose(job["result"]["values"], truth, rtol=1e-6, atol=1e-9)
    assert "output 0 is explained" in desc
    assert job["result"]["target"] == "output 0" and cmp["result"]["target"] == "output 0"
    curve = cmp["result"]["panels"][0]["deletion"]["curve"]
    assert curve[0] == pytest.approx(f, abs=1e-6)
    assert curve[-1] == pytest.approx(reg.predict(base[None])[0, 0], abs=1e-6)
