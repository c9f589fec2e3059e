"""Review rev38b: csv uploads of a frame with unnamed columns, as pandas writes them, read as
``--data`` reads the same file (header ``0,1,2,3``; with the index ``,0,1,2,3``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
pd = pytest.importorskip("pandas")
from starlette.testclient import TestClient  # noqa: E402

from tribute.explorer import ExplorerConfig, create_app  # noqa: E402
from tribute.explorer.subjects import file_spec  # noqa: E402

_FACTORY = '''
import torch

def make():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
'''


@pytest.mark.parametrize("index", [False, True])
def test_upload_of_unnamed_columns_reads_the_header_as_pandas_wrote_it(tmp_path: Path, index: bool) -> None:
    """``pd.DataFrame(X).to_csv(index=False)`` starts ``0,1,2,3``: that line was added as an
    input (the column numbers), silently; with the index (``,0,1,2,3``) the upload was refused
    ("could not convert string '' to float64")."""
    (tmp_path / "rev38b_explorer_factory.py").write_text(_FACTORY, encoding="utf-8")
    X = np.random.default_rng(4).normal(size=(6, 4))
    np.save(tmp_path / "rows.npy", X)
    spec = file_spec(f"{tmp_path}/rev38b_explorer_factory.py:make", data=f"{tmp_path}/rows.npy")
    body = pd.DataFrame(X[[4, 1]]).to_csv(index=index).encode()
    assert body.startswith(b",0,1,2,3" if index else b"0,1,2,3")
    app = create_app(ExplorerConfig(subjects=[spec], results_dir=None, data_dir=None))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        r = c.post("/api/subjects/model/inputs?filename=two.csv", content=body,
                   headers={"content-type": "application/octet-stream"})
        assert r.status_code == 200, r.text
        new = r.json()["indices"]
        assert len(new) == 2
        for i, row in zip(new, (4, 1)):  # the added inputs are the file's rows 4 and 1
            got = c.get(f"/api/subjects/model/inputs/{i}").json()
            want = c.get(f"/api/subjects/model/inputs/{row}").json()
            assert got["features"] == want["features"] and got["prediction"] == want["prediction"]
