"""Audit aud38x: the explorer's numbers equal the Python call's, for a model and tables the
other explorer tests do not use (a torch MLP, a csv written by pandas with its index)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import tribute

pytest.importorskip("starlette")
pd = pytest.importorskip("pandas")
from _explorer_live import wait_for_job  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from tribute.explorer import ExplorerConfig, create_app  # noqa: E402
from tribute.explorer.subjects import file_spec  # noqa: E402

_FACTORY = '''
import torch

def make():
    g = torch.Generator().manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype))
    return m
'''




@pytest.fixture
def table(tmp_path: Path) -> tuple[str, Any]:
    (tmp_path / "aud38x_explorer_factory.py").write_text(_FACTORY, encoding="utf-8")
    df = pd.DataFrame(np.random.default_rng(2).normal(size=(6, 4)), columns=["p", "q", "r", "s"])
    df.to_csv(tmp_path / "rows.csv")  # pandas' default: with the index as a first, unnamed column
    return str(tmp_path), df


def _client(root: str) -> Any:
    spec = file_spec(f"{root}/aud38x_explorer_factory.py:make", data=f"{root}/rows.csv")
    return TestClient(create_app(ExplorerConfig(subjects=[spec], results_dir=None, data_dir=None)),
                      base_url="http://127.0.0.1")


def test_explorer_explain_equals_python_on_a_csv_with_index(table: tuple[str, Any]) -> None:
    root, df = table
    import importlib.util

    spec = importlib.util.spec_from_file_location("f38", f"{root}/aud38x_explorer_factory.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.make().eval()
    X = torch.tensor(df.to_numpy(), dtype=torch.float32)
    with _client(root) as c:
        job = wait_for_job(c, c.post("/api/jobs", json={"subject": "model", "kind": "explain", "index": 2,
                                                 "method": "exact_shapley", "seed": 0}).json())
    res = job["result"]
    # the subject's baseline is the column means (its description says so)
    py = tribute.explain(model, X[2:3], method="exact_shapley", target="predicted",
                         baseline=X.double().mean(0).float(), progress=False)
    assert res["features"] == ["p", "q", "r", "s"]
    assert res["target"] == f"class {int(np.asarray(py.targets).ravel()[0])}"
    # the page shows 4 significant digits
    np.testing.assert_allclose(res["values"], py.flat()[0, 0], rtol=1e-3, atol=1e-6)


def test_upload_of_a_csv_with_index_reads_the_index_as_such(table: tuple[str, Any]) -> None:
    """A csv upload written by ``df.to_csv()`` (header ``,p,q,r,s``) was refused ("its columns
    ['', 'p', ...] are not the subject's features"), though ``--data`` reads the same file."""
    root, df = table
    body = df.iloc[[4, 1]].to_csv().encode()
    assert body.startswith(b",p,q,r,s")
    with _client(root) as c:
        r = c.post("/api/subjects/model/inputs?filename=two.csv", content=body,
                   headers={"content-type": "application/octet-stream"})
        assert r.status_code == 200, r.text
        new = r.json()["indices"]
        assert len(new) == 2
        for i, row in zip(new, (4, 1)):
            job_new = wait_for_job(c, c.post("/api/jobs", json={"subject": "model", "kind": "explain",
                                                         "index": i, "method": "exact_shapley"}).json())
            job_old = wait_for_job(c, c.post("/api/jobs", json={"subject": "model", "kind": "explain",
                                                         "index": row, "method": "exact_shapley"}).json())
            assert job_new["result"]["values"] == job_old["result"]["values"]


def test_the_tabular_baseline_is_the_whole_files_column_means(tmp_path: Path) -> None:
    """A file over 512 rows: the explorer shows its first 512, and its baseline, described as
    "the column means", is the whole file's (before: the first 512 rows' means; here the rows
    after 512 are shifted by +3, so the two differ by ~1.4 per column)."""
    from tribute.explorer.subjects import _column_means

    (tmp_path / "aud38x_explorer_factory.py").write_text(_FACTORY, encoding="utf-8")
    X = np.random.default_rng(5).normal(size=(900, 4)).astype(np.float32)
    X[512:] += 3.0
    np.save(tmp_path / "big.npy", X)
    spec = file_spec(f"{tmp_path}/aud38x_explorer_factory.py:make", data=f"{tmp_path}/big.npy")
    subject = spec.build()
    base = np.asarray(subject.baseline, dtype=np.float64)
    np.testing.assert_allclose(base, X.astype(np.float64).mean(0), rtol=1e-6)
    assert np.abs(base - X[:512].astype(np.float64).mean(0)).min() > 1.0
    assert "of the whole file" in subject.description and "(first 512 rows)" in subject.description
    np.testing.assert_allclose(_column_means(X, block=7), X.astype(np.float64).mean(0), rtol=1e-12)
