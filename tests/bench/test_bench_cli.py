"""`tribute bench` and `tribute evaluate` end to end (small slices, no report unless needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

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
    import os

    out = tmp_path / "out"
    old = os.umask(0o027)
    try:
        rc = main(["bench", "--suite", "tiny", "--cases", "wine,symbolic", "--methods",
                   "feature_ablation,saliency", "--metrics",
                   "deletion,insertion,auroc", "--out", str(out), "--no-report", "--quiet",
                   "--seed", "3"])
    finally:
        os.umask(old)
    assert rc == 0
    # written atomically with the umask's permissions (not mkstemp's 0600), no temp files left
    for p in out.iterdir():
        assert not p.name.startswith("."), p
        assert p.stat().st_mode & 0o777 == 0o640, (p.name, oct(p.stat().st_mode))
    printed = capsys.readouterr()
    assert "== wine" in printed.out and "== symbolic" in printed.out
    assert "sanity checks" in printed.out
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
               "--feature-names", "a,b,c,d,e,f", "--device", "cpu", "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "recommended: feature_ablation" in text
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert data["cases"][0]["feature_names"] == list("abcdef")
    sal = next(r for r in data["runs"] if r["method"] == "saliency")
    assert sal["status"] == "n/a" and "gradient" in sal["message"]


CNN_PY = '''
import torch

def make_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(2 * 8 * 8, 3))
'''


def test_evaluate_checks_feature_names(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mymodel.py").write_text(MODEL_PY, encoding="utf-8")
    np.save(tmp_path / "x.npy", np.random.default_rng(2).standard_normal((10, 6)))
    rc = main(["evaluate", "--model", f"{tmp_path / 'mymodel.py'}:make_sklearn",
               "--data", str(tmp_path / "x.npy"), "--feature-names", "a,b",
               "--out", str(tmp_path / "e"), "--no-progress"])
    assert rc == 2
    assert "2 names, but there are 6 players" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()  # refused before any method ran


def test_evaluate_with_a_group_map_leaves_out_methods_that_cannot_group(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cnn.py").write_text(CNN_PY, encoding="utf-8")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((4, 1, 8, 8)).astype(np.float32))
    g = np.zeros((1, 8, 8), dtype=np.int64)
    g[:, 4:, :] += 1
    g[:, :, 4:] += 2
    np.save(tmp_path / "g.npy", g)
    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", f"{tmp_path / 'cnn.py'}:make_cnn",
               "--data", str(tmp_path / "x.npy"), "--groups", str(tmp_path / "g.npy"),
               "--metrics", "deletion", "--budget", "16", "--grad-budget", "4",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "method 'occlusion' defines its own players" in captured.err
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert "occlusion" not in data["methods"]
    assert {"saliency", "kernel_shap", "feature_ablation"} <= set(data["methods"])
    # every default method that was kept ran on the groups
    for run in data["runs"]:
        if run["method"] in data["methods"]:
            assert run["status"] == "ok", run


# --------------------------------------------------------------------------- recommend
def _tie_result(gap: float) -> Any:
    """Methods 'pricey' (1000 evals) and 'cheap' (10 evals) on one case and two metrics;
    'pricey' is ahead by ``gap`` on every sample, plus independent noise; 'poor' trails."""
    from tribute.bench.runner import BenchResult, MethodRun, Score

    rng = np.random.default_rng(0)
    base = rng.standard_normal(30)
    per = {"pricey": base + gap + 0.05 * rng.standard_normal(30),
           "cheap": base + 0.05 * rng.standard_normal(30),
           "poor": base - 2.0}
    cost = {"pricey": (1000, 2.0), "cheap": (10, 0.1), "poor": (10, 0.1)}
    runs = [MethodRun("c", m, False, "ok", seconds=cost[m][1], n_evals=cost[m][0])
            for m in per]
    scores = []
    for metric, sign in (("up", 1.0), ("down", -1.0)):
        for m, v in per.items():
            s = sign * v
            scores.append(Score("c", m, metric, "ok", mean=float(s.mean()),
                                stderr=float(s.std(ddof=1) / np.sqrt(s.size)), n=s.size,
                                higher_is_better=sign > 0, scores=s))
    info = {"up": {"higher_is_better": True}, "down": {"higher_is_better": False}}
    return BenchResult("t", 0, list(per), ["up", "down"], [], runs, scores, info, {})


def test_recommend_prefers_the_cheaper_of_tied_methods() -> None:
    from tribute.bench.leaderboard import paired_tie, recommend

    res = _tie_result(gap=0.005)
    assert all(paired_tie(res, "c", "pricey", "cheap", m) for m in ("up", "down"))
    best, why = recommend(res, "c")
    assert best == "cheap", why
    text = "\n".join(why)
    assert "cheaper among ties" in text and "pricey has the best mean rank" in text
    assert "10 evaluations per input" in text and "1000 evaluations per input" in text


def test_recommend_keeps_the_better_method_when_not_tied() -> None:
    from tribute.bench.leaderboard import paired_tie, recommend

    res = _tie_result(gap=0.5)
    assert not paired_tie(res, "c", "pricey", "cheap", "up")
    best, why = recommend(res, "c")
    assert best == "pricey", why
    assert "cheaper among ties" not in "\n".join(why)


def test_paired_tie_uses_students_t_for_the_few_samples_of_a_case() -> None:
    # 8 paired differences with mean / stderr = 2.1: above the normal 1.96, inside Student's
    # t with 7 degrees of freedom (2.36); 1.96 called such a gap real
    from tribute.bench.leaderboard import paired_tie
    from tribute.bench.runner import BenchResult, Score

    d = np.array([-1.0, 1, -1, 1, -1, 1, -1, 1])
    d = d / (d.std(ddof=1) / np.sqrt(d.size))  # stderr of the mean: 1
    base = np.linspace(0.0, 1.0, 8)
    for gap, tied in ((2.1, True), (2.5, False)):
        a, b = base + d + gap, base
        scores = [Score("c", m, "up", "ok", mean=float(v.mean()), stderr=0.0, n=8,
                        higher_is_better=True, scores=v) for m, v in (("a", a), ("b", b))]
        res = BenchResult("t", 0, ["a", "b"], ["up"], [], [], scores,
                          {"up": {"higher_is_better": True}}, {})
        assert paired_tie(res, "c", "a", "b", "up") is tied, gap


LABELLED_PY = '''
import numpy as np

class Labelled:
    """classes_ = [1, 2, 3] (labels, not columns), linear logits."""
    classes_ = np.array([1, 2, 3])
    w = np.array([[1.0, 2, 3, 4], [4, 3, -2, 1], [-1, 1, 2, -2]])

    def decision_function(self, x):
        return np.asarray(x, dtype=np.float64) @ self.w.T

    def predict(self, x):
        return self.classes_[self.decision_function(x).argmax(1)]

def make():
    return Labelled()
'''


def test_evaluate_scores_the_class_the_methods_explained_on_a_labelled_classifier(
        tmp_path: Path) -> None:
    # the case's targets are output columns; the runner used to hand them to explain, which
    # reads integer targets of this classifier as labels (column 1 -> label 1 -> column 0),
    # while the metrics scored column 1: exact Shapley values got shapley_error 2.5, not 0
    (tmp_path / "labelled.py").write_text(LABELLED_PY, encoding="utf-8")
    x = np.array([[2.0, 1.0, -1.0, 0.5], [1.5, 2.0, -0.5, 0.2], [0.0, 0.0, 3.0, 0.0],
                  [3.0, 0.5, -1.0, 1.0]])  # predicted columns 1, 1, 0, 1 (labels 2, 2, 1, 2)
    np.save(tmp_path / "x.npy", x)
    w = np.array([[1.0, 2, 3, 4], [4, 3, -2, 1], [-1, 1, 2, -2]])
    for target, cols in (("predicted", (x @ w.T).argmax(1)), ("3", np.full(4, 2))):
        out = tmp_path / f"eval-{target}"
        rc = main(["evaluate", "--model", f"{tmp_path / 'labelled.py'}:make", "--data",
                   str(tmp_path / "x.npy"), "--methods", "exact_shapley", "--metrics",
                   "shapley_error,deletion", "--target", target, "--out", str(out),
                   "--no-progress"])
        assert rc == 0
        data = json.loads((out / "results.json").read_text(encoding="utf-8"))
        err = next(s for s in data["scores"]
                   if s["method"] == "exact_shapley" and s["metric"] == "shapley_error")
        np.testing.assert_allclose(err["scores"], 0.0, atol=1e-12)  # exact is exact
        dele = next(s for s in data["scores"]
                    if s["method"] == "exact_shapley" and s["metric"] == "deletion")
        # the deletion curve starts at v(all players) = w_c . x of the scored column c:
        # --target 3 is label 3 = column 2, as in tribute explain
        curve0 = (x @ w.T)[np.arange(4), cols]
        assert dele["curve_mean"][0] == pytest.approx(curve0.mean(), abs=1e-12)
        wrong = next(r for r in data["runs"] if r["method"] == "wrong_class")
        assert wrong["status"] == "ok", wrong["message"]


def test_bench_cli_lists_every_suite_and_refuses_options_a_suite_ignores(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Before: an unknown suite listed 4 of 16 suites; --methods was ignored silently by sae and
    rashomon (sae ran its four methods for --methods nonexistent), --metrics by data/generation."""
    assert main(["bench", "--suite", "nonsense"]) == 2
    err = capsys.readouterr().err
    for name in ("data-tiny", "generation", "sae-tiny", "rashomon", "decision", "concepts"):
        assert name in err, err
    for argv in (["--suite", "rashomon-tiny", "--methods", "x"], ["--suite", "generation", "--metrics", "auroc"],
                 ["--suite", "data-tiny", "--metrics", "lds"], ["--suite", "sae", "--cases", "a"],
                 ["--suite", "sae-tiny", "--methods", "nonexistent"]):
        assert main(["bench", *argv, "--quiet"]) == 2, argv
        err = capsys.readouterr().err
        assert "not used by" in err or "not a registered method" in err, (argv, err)


def test_bench_help_names_every_suite(capsys: pytest.CaptureFixture[str]) -> None:
    """`tribute bench --help` names every suite `--suite` accepts (before: not 'regions', which the
    README points to; aud33u)."""
    from tribute.bench.suites import PRESETS, SPECIAL_SUITES

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in (*PRESETS, *SPECIAL_SUITES):
        assert name in text.rsplit("--suite SUITE", 1)[1].split("--methods METHODS", 1)[0], name


def test_bench_cli_sae_runs_only_the_named_methods(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--suite", "sae-tiny", "--methods", "atp", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "\natp " in out and "feature_ablation" not in out and "coar" not in out, out


def test_suite_runners_refuse_bad_sizes_and_scales() -> None:
    """Before: scale='huge' ran the quick data case, n_prompts=0 returned NaN scores, n_inputs=0
    failed after training the SAE with a message about 'inputs'."""
    from tribute.bench.data_suite import build_data_case
    from tribute.bench.generation_suite import run_generation_suite
    from tribute.bench.sae_suite import run_sae_suite
    from tribute.errors import InputError

    with pytest.raises(InputError, match="scale='huge'"):
        build_data_case("ridge", 0, "huge")
    with pytest.raises(InputError, match="n_prompts=0"):
        run_generation_suite(n_prompts=0)
    with pytest.raises(InputError, match="n_inputs=0"):
        run_sae_suite(n_inputs=0)


@pytest.mark.parametrize(("args", "needle"), [
    (["--methods", "kernel_shapp"], "--methods: unknown method name(s) 'kernel_shapp' (did you "
                                    "mean 'kernel_shap'?)"),
    (["--methods", "saliency", "--metrics", "aurocc"], "--metrics: unknown metric name(s) "
                                                       "'aurocc' (did you mean 'auroc'?)"),
    (["--seed", "-1"], "--seed -1"),
])
def test_bench_cli_rejects_bad_names_and_seeds(args: list[str], needle: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # these used to run with 0 methods / 0 metrics and exit 0, or end in a traceback
    rc = main(["bench", "--suite", "tiny", "--cases", "wine", "--no-report",
               "--out", str(tmp_path / "o"), *args])
    assert rc == 2
    assert needle in capsys.readouterr().err



@pytest.mark.parametrize("argv", [
    ["--suite", "rashomon-tiny", "--out", "x"], ["--suite", "concepts-tiny", "--out", "x"],
    ["--suite", "decision-tiny", "--strict"], ["--suite", "sae-tiny", "--no-report"],
    ["--suite", "data-tiny", "--strict"],
])
def test_bench_cli_special_suites_refuse_options_they_ignore(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # these suites used to accept --out (writing nothing), --strict and --no-report silently
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert "is not used by" in err and argv[2] in err, err


def test_bench_cli_decision_suite_writes_its_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # it refused --out and, without it, crashed on Path(None) after running everything
    out = tmp_path / "d"
    assert main(["bench", "--suite", "decision-tiny", "--out", str(out)]) == 0
    assert f"wrote {out / 'decision.json'}" in capsys.readouterr().out
    assert json.loads((out / "decision.json").read_text())


def test_evaluate_limit_takes_each_rows_own_baseline(tmp_path: Path) -> None:
    # a baseline file with one row per --data row: `--limit 4` must evaluate what 4-row data with
    # its 4 baselines evaluates; before, the 10-row file met 4 inputs and was read as a
    # background set (every credit and score averaged over all 10 baselines)
    (tmp_path / "mymodel.py").write_text(MODEL_PY, encoding="utf-8")
    rng = np.random.default_rng(3)
    X = rng.standard_normal((10, 6)).astype(np.float32)
    B = rng.standard_normal((10, 6)).astype(np.float32)
    np.save(tmp_path / "x10.npy", X)
    np.save(tmp_path / "b10.npy", B)
    np.save(tmp_path / "x4.npy", X[:4])
    np.save(tmp_path / "b4.npy", B[:4])

    def scores(data: str, base: str, *extra: str) -> list[tuple[str, str, float]]:
        out = tmp_path / f"eval_{data}"
        rc = main(["evaluate", "--model", f"{tmp_path / 'mymodel.py'}:make_mlp",
                   "--data", str(tmp_path / data), "--baseline", str(tmp_path / base),
                   "--methods", "feature_ablation,exact_shapley", "--metrics", "deletion,insertion",
                   "--target", "0", "--out", str(out), "--no-progress", *extra])
        assert rc == 0
        rows = json.loads((out / "results.json").read_text(encoding="utf-8"))["scores"]
        return sorted((r["method"], r["metric"], float(v)) for r in rows if r["method"] in
                      ("feature_ablation", "exact_shapley") for v in r["scores"])

    limited = scores("x10.npy", "b10.npy", "--limit", "4")
    assert limited and limited == scores("x4.npy", "b4.npy")


def test_evaluate_ground_truth_one_shared_mask_or_one_per_row(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # one mask of the sample's shape was cut to its first --limit FEATURES: every method,
    # random included, scored precision_at_k 1.0 and relevance_mass 0.5 (rev34a)
    (tmp_path / "mymodel.py").write_text(MODEL_PY, encoding="utf-8")
    X = np.random.default_rng(4).standard_normal((10, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    mask = np.array([1, 0, 1, 0, 0, 0])
    np.save(tmp_path / "gt_one.npy", mask)
    np.save(tmp_path / "gt_rows.npy", np.tile(mask, (10, 1)))
    np.save(tmp_path / "gt_bad.npy", np.tile(mask, (5, 1)))

    def scores(gt: str) -> list[tuple[str, str, float]]:
        out = tmp_path / f"eval_{gt}"
        rc = main(["evaluate", "--model", f"{tmp_path / 'mymodel.py'}:make_mlp", "--data", str(tmp_path / "x.npy"),
                   "--ground-truth", str(tmp_path / gt), "--limit", "4", "--methods", "saliency,input_x_gradient",
                   "--metrics", "precision_at_k,relevance_mass", "--target", "0", "--out", str(out),
                   "--no-progress"])
        assert rc == 0
        rows = json.loads((out / "results.json").read_text(encoding="utf-8"))["scores"]
        return sorted((r["method"], r["metric"], float(v)) for r in rows if r["method"] in
                      ("saliency", "input_x_gradient", "oracle") for v in r["scores"])

    one = scores("gt_one.npy")
    assert one and one == scores("gt_rows.npy")
    assert any(m == "oracle" for m, _, _ in one)  # the oracle ran: the truth has the inputs' shape
    rc = main(["evaluate", "--model", f"{tmp_path / 'mymodel.py'}:make_mlp", "--data", str(tmp_path / "x.npy"),
               "--ground-truth", str(tmp_path / "gt_bad.npy"), "--limit", "4", "--methods", "saliency",
               "--out", str(tmp_path / "bad"), "--no-progress"])
    assert rc == 2 and not (tmp_path / "bad").exists()
    assert re.search(r"--ground-truth .*\(10, 6\)", capsys.readouterr().err)
