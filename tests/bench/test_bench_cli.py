"""`tribute bench` and `tribute evaluate` end to end (small slices, no report unless needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tribute.cli import main

MODEL_PY = '''
import torch

def make_mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

def make_sklearn():
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 6))
    y = (X[:, 0] + 2 * X[:, 2] > 0).astype(int)
    return LogisticRegression().fit(X, y)
'''


def test_bench_cli_writes_leaderboard_files(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    rc = main(["bench", "--suite", "tiny", "--cases", "wine,symbolic", "--methods",
               "feature_ablation,saliency,not_a_method", "--metrics", "deletion,insertion,auroc",
               "--out", str(out), "--no-report", "--quiet", "--seed", "3"])
    assert rc == 0
    printed = capsys.readouterr()
    assert "== wine" in printed.out and "== symbolic" in printed.out
    assert "sanity checks" in printed.out
    assert "not_a_method" in printed.err  # the skip is reported, not fatal
    for name in ("leaderboard.csv", "results.json", "leaderboard.txt"):
        assert (out / name).is_file(), name
    assert not (out / "report.html").exists()
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert data["seed"] == 3 and data["methods"] == ["feature_ablation", "saliency"]
    assert data["metrics"] == ["deletion", "insertion", "auroc"]


def test_bench_cli_rejects_unknown_suite(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["bench", "--suite", "quik", "--out", "unused"])
    assert rc == 2
    assert "quick" in capsys.readouterr().err  # did-you-mean


def test_evaluate_torch_model_recommends(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mymodel.py").write_text(MODEL_PY, encoding="utf-8")
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()},
              str(tmp_path / "w.safetensors"))
    X = np.random.default_rng(0).standard_normal((40, 6)).astype(np.float32)
    np.savez(tmp_path / "data.npz", X_test=X, other=X[:2])
    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", f"{tmp_path / 'mymodel.py'}:make_mlp",
               "--weights", str(tmp_path / "w.safetensors"), "--data", str(tmp_path / "data.npz"),
               "--data-key", "X_test", "--limit", "12",
               "--methods", "saliency,input_x_gradient,feature_ablation,lime",
               "--metrics", "deletion,insertion", "--budget", "64", "--out", str(out),
               "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if ln.startswith("recommended: "))
    best = line.split()[1]
    assert best in {"saliency", "input_x_gradient", "feature_ablation", "lime"}
    assert "deletion" in text and "insertion" in text and "cost:" in text
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert data["cases"][0]["n_samples"] == 12
    assert {r["method"] for r in data["runs"]} >= {"random", "wrong_class", "lime"}
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "tribute evaluate" in html and "data:image/png;base64," in html


def test_evaluate_numpy_model_skips_gradient_methods(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mymodel.py").write_text(MODEL_PY, encoding="utf-8")
    X = np.random.default_rng(2).standard_normal((10, 6))
    np.save(tmp_path / "x.npy", X)
    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", f"{tmp_path / 'mymodel.py'}:make_sklearn",
               "--data", str(tmp_path / "x.npy"), "--methods", "saliency,feature_ablation",
               "--metrics", "deletion,faithfulness_correlation", "--out", str(out),
               "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "recommended: feature_ablation" in text
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    sal = next(r for r in data["runs"] if r["method"] == "saliency")
    assert sal["status"] == "n/a" and "gradient" in sal["message"]
