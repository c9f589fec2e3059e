"""Audit aud43x: the explorer on images held channels last (``N x H x W x C``, as PIL and numpy
hold pictures) by a model that reads them so.

The page's map summed the credits over the FIRST axis of each input (the image's rows), so a
6 x 5 RGB image was drawn as a 5 x 3 "image" (width x channels) of column sums; the preview
averaged the rows likewise, and a picture upload was resized to (W, C) and refused. Truth: the
credits of ``tribute.explain`` on the same model and input, summed over the channel axis by
numpy, and the input's own pixels.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

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


class ChannelsLast(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 6 * 5, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):  # x: N x H x W x C
        return self.fc(torch.relu(self.conv(x.permute(0, 3, 1, 2))).flatten(1))


def make():
    return ChannelsLast()
'''

X = np.random.default_rng(0).uniform(size=(4, 6, 5, 3)).astype(np.float32)




def _setup(folder: Path) -> tuple[Any, torch.nn.Module]:
    (folder / "aud43x_explorer_factory.py").write_text(_FACTORY, encoding="utf-8")
    np.save(folder / "pictures.npy", X)
    spec = file_spec(f"{folder}/aud43x_explorer_factory.py:make", data=str(folder / "pictures.npy"),
                     name="cl")
    import importlib.util

    mspec = importlib.util.spec_from_file_location("aud43x_factory", folder / "aud43x_explorer_factory.py")
    assert mspec is not None and mspec.loader is not None
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    client = TestClient(create_app(ExplorerConfig(subjects=[spec])), base_url="http://127.0.0.1")
    return client, mod.make().eval()


def test_channels_last_images_are_drawn_height_by_width(tmp_path: Path) -> None:
    client, model = _setup(tmp_path)
    with client as c:
        summary = c.get("/api/subjects/cl").json()
        preview = c.get("/api/subjects/cl/inputs/1").json()["image"]
        job = wait_for_job(c, c.post("/api/jobs", json={"subject": "cl", "kind": "explain", "index": 1,
                                                 "method": "integrated_gradients"}).json())
    assert job["status"] == "done", job
    shown = np.asarray(job["result"]["values"], dtype=np.float64)
    py = tribute.explain(model, torch.from_numpy(X[1:2]), method="integrated_gradients",
                         target="predicted", baseline=0.0, progress=False)
    truth = np.asarray(py.values, dtype=np.float64)[0].sum(-1)  # H x W: the channels summed
    assert shown.shape == (6, 5)  # was (5, 3): width x channels, summed over the rows
    np.testing.assert_allclose(shown, truth, rtol=1e-5, atol=1e-6)
    gray = X[1].astype(np.float64).mean(-1)
    np.testing.assert_allclose(preview, (gray - gray.min()) / (gray.max() - gray.min()), atol=1e-4)
    assert summary["kind"] == "image" and summary.get("image_size") == [6, 5]  # the page's upload hint


def test_a_picture_uploaded_to_a_channels_last_subject_keeps_its_layout(tmp_path: Path) -> None:
    from PIL import Image

    pixels = (X[2] * 255).round().astype(np.uint8)  # 6 x 5 x 3, the subject's own size
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    client, _ = _setup(tmp_path)
    with client as c:
        r = c.post("/api/subjects/cl/inputs?filename=photo.png", content=buf.getvalue(),
                   headers={"content-type": "application/octet-stream"})
        assert r.status_code == 200, r.text  # was refused: resized to 5 x 3 (W x C), shape [1, 1, 5, 3]
        (i,) = r.json()["indices"]
        added = c.app.state.config.subjects[0].get().inputs[i]
    np.testing.assert_allclose(added.numpy(), pixels / 255.0, atol=1e-6)


_BINARY = '''
import numpy as np
from sklearn.svm import LinearSVC


def model():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(100, 4))
    y = X @ [1.0, -2.0, 0.5, 0.0] + 0.3 * X[:, 0] * X[:, 1]
    return LinearSVC().fit(X, np.where(y > 0, 3, 7))
'''


def _shapley(f: Any, x: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Exact Shapley values of ``f`` (features absent: at ``base``) by enumeration."""
    import itertools
    import math

    d = len(x)
    phi = np.zeros(d)
    for i in range(d):
        others = [j for j in range(d) if j != i]
        for r in range(d):
            for S in itertools.combinations(others, r):
                z = base.copy()
                z[list(S)] = x[list(S)]
                with_i = z.copy()
                with_i[i] = x[i]
                phi[i] += math.factorial(r) * math.factorial(d - r - 1) / math.factorial(d) * (f(with_i) - f(z))
    return phi


def test_a_binary_decision_function_is_labelled_with_the_class_its_credits_are_for(tmp_path: Path) -> None:
    """LinearSVC on classes 3 / 7 has one score column. Its credits are explained toward the
    predicted class (as tribute.explain does); the page called them credits of the "output"
    and showed that output (-0.90), though for a class-3 input they are credits of minus it:
    their sum +1.57 beside an output that falls by 1.57 from the baseline."""
    pytest.importorskip("sklearn")
    pd = pytest.importorskip("pandas")
    (tmp_path / "aud43x_binary_factory.py").write_text(_BINARY, encoding="utf-8")
    rows = np.random.default_rng(0).normal(size=(7, 4))
    pd.DataFrame(rows, columns=list("abcd")).to_csv(tmp_path / "rows.csv", index=False)
    rows = pd.read_csv(tmp_path / "rows.csv").to_numpy()
    spec = file_spec(f"{tmp_path}/aud43x_binary_factory.py:model", data=str(tmp_path / "rows.csv"), name="svm")
    import importlib.util

    mspec = importlib.util.spec_from_file_location("aud43x_binary", tmp_path / "aud43x_binary_factory.py")
    assert mspec is not None and mspec.loader is not None
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    svm = mod.model()
    assert {int(v) for v in svm.predict(rows[[0, 3]])} == {3, 7}  # one input of each class
    with TestClient(create_app(ExplorerConfig(subjects=[spec])), base_url="http://127.0.0.1") as c:
        for i in (0, 3):
            label = int(svm.predict(rows[i:i + 1])[0])
            sign = 1.0 if label == 7 else -1.0  # the score rises toward class 7
            shown = c.get(f"/api/subjects/svm/inputs/{i}").json()["prediction"]
            job = wait_for_job(c, c.post("/api/jobs", json={"subject": "svm", "kind": "explain", "index": i,
                                                     "method": "exact_shapley"}).json())
            res = job["result"]
            truth = _shapley(lambda z, s=sign: s * float(svm.decision_function(z[None])[0]), rows[i], rows.mean(0))
            np.testing.assert_allclose(res["values"], truth, rtol=1e-6, atol=1e-9)
            assert res["target"] == f"class {label}", (i, res["target"])
            assert shown["name"] == str(label), (i, shown)


_TOKENS = '''
import torch


class Bag(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.emb = torch.nn.Embedding(20, 4)
        self.out = torch.nn.Linear(4, 2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, ids):
        return self.out(torch.tanh(self.emb(ids)).mean(1))


def model():
    return Bag()
'''


def test_token_id_uploads_are_checked_and_shown(tmp_path: Path) -> None:
    """A subject of token ids (``--data`` of integers, a torch model): an uploaded id 1.7 was
    cast to 1 silently (its credits those of token 1), an id past the vocabulary was added and
    then every preview and job of it failed with an internal error, and an uploaded row's tokens
    were an empty list (the page's token view, and the credits drawn on it, blank)."""
    (tmp_path / "aud43x_tokens_factory.py").write_text(_TOKENS, encoding="utf-8")
    np.save(tmp_path / "ids.npy", np.random.default_rng(0).integers(1, 20, size=(5, 6)))
    spec = file_spec(f"{tmp_path}/aud43x_tokens_factory.py:model", data=str(tmp_path / "ids.npy"), name="t")
    import importlib.util

    mspec = importlib.util.spec_from_file_location("aud43x_tokens", tmp_path / "aud43x_tokens_factory.py")
    assert mspec is not None and mspec.loader is not None
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    net = mod.model().eval()

    def upload(c: TestClient, arr: np.ndarray) -> Any:
        buf = io.BytesIO()
        np.save(buf, arr)
        return c.post("/api/subjects/t/inputs?filename=ids.npy", content=buf.getvalue(),
                      headers={"content-type": "application/octet-stream"})

    with TestClient(create_app(ExplorerConfig(subjects=[spec])), base_url="http://127.0.0.1") as c:
        assert c.get("/api/subjects/t").json()["kind"] == "text"
        r = upload(c, np.array([[1.7, 2, 3, 4, 5, 6]]))
        assert r.status_code == 400 and "1.7" in r.json()["error"], r.text
        r = upload(c, np.array([[1, 2, 3, 4, 5, 99]]))
        assert r.status_code == 400 and "cannot take" in r.json()["error"], r.text
        ids = np.array([[3, 2, 7, 4, 11, 6]])
        r = upload(c, ids)
        assert r.status_code == 200, r.text
        (i,) = r.json()["indices"]
        assert c.get("/api/subjects/t/inputs/5").status_code == 200  # nothing bad was added
        preview = c.get(f"/api/subjects/t/inputs/{i}").json()
        job = wait_for_job(c, c.post("/api/jobs", json={"subject": "t", "kind": "explain", "index": i,
                                                 "method": "occlusion"}).json())
    assert preview["tokens"] == [str(t) for t in ids[0]]
    x = torch.from_numpy(ids)
    with torch.no_grad():
        full = net(x)[0]
        cls = int(full.argmax())
        truth = []
        for j in range(6):  # occlusion: the output falls by this much when token j is the pad id 0
            z = x.clone()
            z[0, j] = 0
            truth.append(float(full[cls] - net(z)[0, cls]))
    np.testing.assert_allclose(job["result"]["values"], truth, rtol=1e-5, atol=1e-6)


_TWO_OUTPUTS = '''
import numpy as np
from sklearn.linear_model import Ridge


def model():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(100, 4))
    y = X @ [1.0, -2.0, 0.5, 0.0] + 0.3 * X[:, 0] * X[:, 1]
    return Ridge().fit(X, np.stack([y, -2.0 * y + X[:, 3]], 1))
'''


def test_a_multi_output_regressor_explains_its_first_output(tmp_path: Path) -> None:
    """Ridge on two targets: the subject asked for the 'predicted' class of two raw outputs,
    so every explain job failed ("pass target=j", which the page cannot), and the page showed
    "model says: 0" as a class. The first output is explained now; truth: exact Shapley by
    enumeration of ``predict(.)[:, 0]`` with the column means removed."""
    pytest.importorskip("sklearn")
    pd = pytest.importorskip("pandas")
    (tmp_path / "aud43x_two_factory.py").write_text(_TWO_OUTPUTS, encoding="utf-8")
    rows = np.random.default_rng(1).normal(size=(6, 4))
    pd.DataFrame(rows, columns=list("abcd")).to_csv(tmp_path / "rows.csv", index=False)
    rows = pd.read_csv(tmp_path / "rows.csv").to_numpy()
    spec = file_spec(f"{tmp_path}/aud43x_two_factory.py:model", data=str(tmp_path / "rows.csv"), name="reg")
    import importlib.util

    mspec = importlib.util.spec_from_file_location("aud43x_two", tmp_path / "aud43x_two_factory.py")
    assert mspec is not None and mspec.loader is not None
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    reg = mod.model()
    with TestClient(create_app(ExplorerConfig(subjects=[spec])), base_url="http://127.0.0.1") as c:
        shown = c.get("/api/subjects/reg/inputs/2").json()["prediction"]
        job = wait_for_job(c, c.post("/api/jobs", json={"subject": "reg", "kind": "explain", "index": 2,
                                                 "method": "exact_shapley"}).json())
    assert job["status"] == "done", job
    truth = _shapley(lambda z: float(reg.predict(z[None])[0, 0]), rows[2], rows.mean(0))
    np.testing.assert_allclose(job["result"]["values"], truth, rtol=1e-6, atol=1e-9)
    assert shown["top"] is None and float(shown["name"]) == pytest.approx(reg.predict(rows[2:3])[0, 0], abs=1e-4)


def test_a_cached_result_for_an_uploaded_copy_names_the_index_asked(tmp_path: Path) -> None:
    """Results are cached by the input's content: explaining an uploaded copy of input 4 (index
    7) answered from the cache with ``"index": 4``."""
    client, _ = _setup(tmp_path)
    with client as c:
        first = wait_for_job(c, c.post("/api/jobs", json={"subject": "cl", "kind": "explain", "index": 3,
                                                   "method": "saliency"}).json())
        buf = io.BytesIO()
        np.save(buf, X[3])
        (i,) = c.post("/api/subjects/cl/inputs?filename=copy.npy", content=buf.getvalue(),
                      headers={"content-type": "application/octet-stream"}).json()["indices"]
        again = wait_for_job(c, c.post("/api/jobs", json={"subject": "cl", "kind": "explain", "index": i,
                                                   "method": "saliency"}).json())
    assert i == 4 and again["cached"]
    assert again["result"]["index"] == i and first["result"]["index"] == 3
    assert again["result"]["values"] == first["result"]["values"]
