"""``tribute explain`` in dataset mode (--shard-size/--resume/--workers/--backend)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tribute
from tribute.cli import main


@pytest.fixture
def files(tmp_path: Path, X, weights) -> dict[str, str]:
    np.save(tmp_path / "X.npy", X)
    return {"data": str(tmp_path / "X.npy"), "weights": str(weights), "out": str(tmp_path / "out")}


def _argv(files: dict[str, str], *extra: str) -> list[str]:
    return ["explain", "--model", "jobs_fixtures:make_mlp", "--weights", files["weights"], "--data",
            files["data"], "--out", files["out"], "--budget", "32", "--no-progress", *extra]


def test_cli_job_matches_python_api(files, capsys, mlp, X, tmp_path):
    assert main(_argv(files, "--shard-size", "16", "--target", "2", "--baseline", "mean")) == 0
    printed = capsys.readouterr().out
    assert "result.npz" in printed and "summary.json" in printed
    api = tribute.explain_dataset(mlp, X, out=tmp_path / "api", budget=32, shard_size=16, target=2,
                                  baseline=X.mean(0), progress=False)
    cli = tribute.Attribution.load(Path(files["out"]) / "result.npz")
    np.testing.assert_array_equal(np.asarray(cli.values), api.values)
    summary = json.loads((Path(files["out"]) / "summary.json").read_text())
    assert summary["rows"] == 40 and summary["settings"]["shard_size"] == 16


def test_cli_resume_and_refusals(files, capsys):
    assert main(_argv(files, "--shard-size", "16")) == 0
    first = (Path(files["out"]) / "result.npz").read_bytes()
    assert main(_argv(files, "--shard-size", "16")) == 2
    assert "already holds a job" in capsys.readouterr().err
    assert main(_argv(files, "--shard-size", "8", "--resume")) == 2
    assert "settings.shard_size: 16 -> 8" in capsys.readouterr().err
    (Path(files["out"]) / "shards" / "shard-000001.npz").unlink()
    assert main(_argv(files, "--shard-size", "16", "--resume")) == 0
    assert (Path(files["out"]) / "result.npz").read_bytes() == first


def test_cli_factory_typo(files, capsys):
    argv = _argv(files, "--shard-size", "16")
    argv[argv.index("jobs_fixtures:make_mlp")] = "jobs_fixtures:make_mpl"
    assert main(argv) == 2
    assert "no attribute 'make_mpl'" in capsys.readouterr().err
    assert not Path(files["out"]).exists()


def test_cli_csv_runs_as_a_job(tmp_path, X, weights, capsys):
    pd = pytest.importorskip("pandas")
    pd.DataFrame(X, columns=[f"c{j}" for j in range(6)]).to_csv(tmp_path / "X.csv", index=False)
    argv = ["explain", "--model", "jobs_fixtures:make_mlp", "--weights", str(weights), "--data",
            str(tmp_path / "X.csv"), "--out", str(tmp_path / "o"), "--method", "exact_shapley",
            "--no-progress"]
    assert main(argv) == 0
    attr = tribute.Attribution.load(tmp_path / "o" / "result.npz")
    assert attr.player_names == [f"c{j}" for j in range(6)]


def test_plain_explain_is_unchanged(files):
    argv = _argv(files)
    assert main(argv) == 0
    assert (Path(files["out"]) / "attribution.npz").is_file()
    assert not (Path(files["out"]) / "manifest.json").exists()


def test_cli_job_baseline_reads_npz_like_a_single_call(files, capsys, tmp_path, X):
    """Review finding 8: a dataset job's --baseline refused .npz and called a missing file
    'data:'; it now reads .npy/.npz as a single call does, naming --baseline."""
    base = X.mean(0)
    np.save(tmp_path / "base.npy", base)
    np.savez(tmp_path / "base.npz", base=base)
    outs = []
    for i, f in enumerate(("base.npy", "base.npz")):
        out = str(tmp_path / f"o{i}")
        argv = _argv({**files, "out": out}, "--shard-size", "16", "--baseline", str(tmp_path / f))
        assert main(argv) == 0, capsys.readouterr().err
        outs.append(tribute.Attribution.load(Path(out) / "result.npz").values)
    np.testing.assert_array_equal(np.asarray(outs[0]), np.asarray(outs[1]))
    assert main(_argv(files, "--shard-size", "16", "--baseline", str(tmp_path / "nope.npz"))) == 2
    err = capsys.readouterr().err
    assert "--baseline: file" in err and "nope.npz' does not exist" in err, err
    assert main(_argv(files, "--shard-size", "16", "--baseline", "zero")) == 2
    assert "give a number, 'mean', a .npy/.npz file or background:FILE" in capsys.readouterr().err


def test_cli_job_options_are_used_or_refused(files, capsys, tmp_path, X, weights):
    # --feature-names was accepted and ignored in dataset mode (the csv header, or x0..x5 for
    # .npy, named the credits); --max-memory was dropped; --device was ignored
    names = "a,b,c,d,e,f"
    assert main(_argv(files, "--shard-size", "16", "--feature-names", names)) == 0
    assert tribute.Attribution.load(Path(files["out"]) / "result.npz").player_names == list("abcdef")
    pd = pytest.importorskip("pandas")
    pd.DataFrame(X, columns=[f"c{j}" for j in range(6)]).to_csv(tmp_path / "X.csv", index=False)
    csv = {**files, "data": str(tmp_path / "X.csv"), "out": str(tmp_path / "o2")}
    assert main(_argv(csv, "--feature-names", names)) == 0
    assert tribute.Attribution.load(tmp_path / "o2" / "result.npz").player_names == list("abcdef")
    capsys.readouterr()
    assert main(_argv({**files, "out": str(tmp_path / "o3")}, "--shard-size", "16",
                      "--max-memory", "1")) == 2  # one byte: every shard is refused up front
    assert "memory" in capsys.readouterr().err.lower()
    assert main(_argv({**files, "out": str(tmp_path / "o4")}, "--shard-size", "16",
                      "--device", "cpu")) == 2
    assert "--device 'cpu' applies to a single call" in capsys.readouterr().err


def test_cli_job_per_row_baseline_is_cut_by_limit_and_no_baseline_is_the_apis_default(
        files, mlp, X, tmp_path):
    # a job read --baseline's one row per data row as a background set once --limit cut the
    # data (every credit averaged over all rows' baselines), and without --baseline it passed 0
    # where tribute.explain has its own default
    rows = np.random.default_rng(5).normal(size=X.shape).astype(X.dtype)
    np.save(tmp_path / "B.npy", rows)
    argv = _argv(files, "--shard-size", "4", "--limit", "10", "--method", "feature_ablation",
                 "--baseline", str(tmp_path / "B.npy"), "--target", "1")
    del argv[argv.index("--budget"):argv.index("--budget") + 2]
    assert main(argv) == 0
    cli = tribute.Attribution.load(Path(files["out"]) / "result.npz")
    api = tribute.explain(mlp, X[:10], method="feature_ablation", target=1,
                          baseline=tribute.PerSample(rows[:10]))
    np.testing.assert_allclose(np.asarray(cli.values), np.asarray(api.values), rtol=1e-5, atol=1e-6)
    out2 = tmp_path / "out2"
    argv = _argv({**files, "out": str(out2)}, "--shard-size", "16", "--method", "feature_ablation",
                 "--target", "1")
    del argv[argv.index("--budget"):argv.index("--budget") + 2]
    assert main(argv) == 0
    manifest = json.loads((out2 / "manifest.json").read_text())
    assert "baseline" not in manifest["settings"]["explain"]
