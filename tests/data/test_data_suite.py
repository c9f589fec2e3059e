"""The data bench suite (tiny scale): runs end to end and scores against retraining."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tribute.bench.data_suite import build_data_case, format_data_results, run_data_case
from tribute.cli import main


def test_tiny_ridge_case_scores_methods_against_retraining() -> None:
    case = build_data_case("ridge", seed=0, scale="tiny")
    res = run_data_case(case, methods=["influence", "influence_loo_step", "grad_dot", "trak"])
    rows = res["methods"]
    assert rows["influence_loo_step"]["loo_correlation"] == pytest.approx(1.0, abs=1e-9)
    assert rows["influence"]["loo_correlation"] > 0.99
    for row in rows.values():
        lo, hi = row["lds_ci95"]
        assert lo <= row["lds"] <= hi and row["seconds"] > 0
    assert "ridge" in format_data_results([res])


@pytest.mark.slow
def test_cli_data_tiny_suite(tmp_path: Path) -> None:
    rc = main(["bench", "--suite", "data-tiny", "--cases", "digits_mlp_flipped",
               "--methods", "grad_dot,influence", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    res = json.loads((tmp_path / "data_results.json").read_text())
    assert set(res[0]["mislabel_auc"]) == {"grad_dot", "influence"}
    assert any(tmp_path.glob("banks/*/manifest.json"))
