"""Review rev40a of aud40x: a csv upload whose header has a space after each comma
(``t, a, b, c``, as typed by hand) matched the subject's features before the uploads went
through --data's reader (which keeps the spaces in the column names); it was then refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")
from starlette.testclient import TestClient  # noqa: E402

from tribute.explorer import ExplorerConfig, create_app  # noqa: E402
from tribute.explorer.subjects import file_spec  # noqa: E402

_FACTORY = '''
import numpy as np
from sklearn.linear_model import LogisticRegression


def model():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 4))
    return LogisticRegression(max_iter=2000).fit(X, (X @ [1.0, -2.0, 0.5, 0.0] > 0).astype(int))
'''

ROWS = np.round(np.random.default_rng(9).normal(size=(3, 4)), 4)


def _client(folder: Path, columns: list[str]) -> Any:
    (folder / "rev40a_factory.py").write_text(_FACTORY, encoding="utf-8")
    pd.DataFrame(ROWS, columns=columns).to_csv(folder / "named.csv", index=False)
    spec = file_spec(f"{folder}/rev40a_factory.py:model", data=str(folder / "named.csv"), name="m")
    return TestClient(create_app(ExplorerConfig(subjects=[spec])), base_url="http://127.0.0.1")


def _row(client: TestClient, index: int) -> list[float]:
    return [f["value"] for f in client.get(f"/api/subjects/m/inputs/{index}").json()["features"]]


@pytest.mark.parametrize("header, order", [
    ("t, a, b, c", [0, 1, 2, 3]),
    ("a , t , c , b", [1, 0, 3, 2]),  # spaces on both sides and another order: reordered
    (" c,b,a,t", [3, 2, 1, 0]),
])
def test_upload_header_with_spaces_after_commas_matches_the_features(
        tmp_path: Path, header: str, order: list[int]) -> None:
    text = header + "\n" + "\n".join(", ".join(repr(float(v)) for v in r) for r in ROWS[:, order]) + "\n"
    with _client(tmp_path, ["t", "a", "b", "c"]) as c:
        r = c.post("/api/subjects/m/inputs?filename=up.csv", content=text.encode(),
                   headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200, r.text
        new = r.json()["indices"]
        assert len(new) == len(ROWS)
        for k in range(len(ROWS)):
            assert _row(c, new[k]) == _row(c, k) == ROWS[k].tolist()


def test_upload_header_naming_other_columns_is_still_refused(tmp_path: Path) -> None:
    text = "t, a, b, d\n" + "\n".join(",".join(map(str, r)) for r in ROWS) + "\n"
    with _client(tmp_path, ["t", "a", "b", "c"]) as c:
        r = c.post("/api/subjects/m/inputs?filename=up.csv", content=text.encode(),
                   headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400
    assert "are not the subject's features" in r.json()["error"], r.text


def test_subject_whose_own_names_hold_spaces_takes_its_own_file(tmp_path: Path) -> None:
    # the subject's file says ``t, a, b, c`` too (names ' a', ...): the same file uploads
    with _client(tmp_path, ["t", " a", " b", " c"]) as c:
        text = (tmp_path / "named.csv").read_text(encoding="utf-8")
        r = c.post("/api/subjects/m/inputs?filename=named.csv", content=text.encode(),
                   headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200, r.text
        assert _row(c, r.json()["indices"][1]) == ROWS[1].tolist()
