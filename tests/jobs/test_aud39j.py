"""Audit aud39j: dataset jobs on today's data formats (csv with header or pandas index,
parquet), with per-row targets, baselines and background sets given as tables."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from jobs_fixtures import WEIGHTED_FACTORY

import tribute
from tribute.errors import InputError

pd = pytest.importorskip("pandas")

_MODULE = "aud39j_factory"


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``f(x) = sum_j (j + 1) x_j`` as a factory spec (its Shapley values against a background
    set B are ``(j + 1) (x_j - mean(B)_j)``)."""
    (tmp_path / f"{_MODULE}.py").write_text(WEIGHTED_FACTORY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield f"{tmp_path / f'{_MODULE}.py'}:make"
    sys.modules.pop(_MODULE, None)


def _tables(tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(39)
    x = rng.normal(size=(5, 4))
    bg = rng.normal(size=(3, 4)) + np.array([3.0, -5.0, 7.0, 11.0])  # column means far apart
    pd.DataFrame(x, columns=list("abcd")).to_csv(tmp_path / "x.csv", index=False)
    pd.DataFrame(bg, columns=list("abcd")).to_csv(tmp_path / "bg.csv", index=False)
    pd.DataFrame(bg[:, ::-1], columns=list("dcba")).to_csv(tmp_path / "bg_reordered.csv", index=False)
    pd.DataFrame(bg, columns=["w", "x", "y", "z"]).to_csv(tmp_path / "bg_renamed.csv", index=False)
    return x, bg


@pytest.mark.parametrize("name", ["bg_reordered.csv", "bg_renamed.csv"])
def test_cli_background_table_with_other_columns_is_refused(
        tmp_path: Path, factory: str, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``--baseline background:ROWS.csv`` whose columns are the data's in another order (or
    other columns): its rows were read by position, so column 'a' was removed to column 'd''s
    values (credit of 'a' on row 0: -106.7 for -0.32 in the audit); a single call on the
    DataFrame refuses such a background. Now the job refuses it too, naming both column lists,
    before anything is written."""
    from tribute.cli import main

    _tables(tmp_path)
    out = tmp_path / "out"
    code = main(["explain", "--model", factory, "--data", str(tmp_path / "x.csv"), "--method",
                 "exact_shapley", "--baseline", f"background:{tmp_path / name}", "--out", str(out),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0
    assert "baseline has columns" in err and "['a', 'b', 'c', 'd']" in err, err
    assert not out.exists() or not any(out.iterdir())


def test_cli_background_table_with_the_same_columns_gives_the_closed_form(
        tmp_path: Path, factory: str, capsys: pytest.CaptureFixture[str]) -> None:
    from tribute.cli import main

    x, bg = _tables(tmp_path)
    out = tmp_path / "out"
    code = main(["explain", "--model", factory, "--data", str(tmp_path / "x.csv"), "--method",
                 "exact_shapley", "--baseline", f"background:{tmp_path / 'bg.csv'}", "--out", str(out),
                 "--shard-size", "2", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    values = np.load(out / "result.npz")["values"].reshape(5, -1)
    np.testing.assert_allclose(values, (x - bg.mean(0)) * np.arange(1, 5), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("how", ["background", "row", "series"])
def test_api_table_baseline_with_other_columns_is_refused(tmp_path: Path, factory: str, how: str) -> None:
    """explain_dataset on a numeric csv with a DataFrame/Series baseline whose columns are in
    another order: read by position (silently wrong credits); refused now, as a single call on
    the DataFrame refuses it."""
    _, bg = _tables(tmp_path)
    frame = pd.DataFrame(bg[:, ::-1], columns=list("dcba"))
    baseline = {"background": tribute.Background(frame), "row": frame.iloc[:1],
                "series": frame.iloc[0]}[how]
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"baseline has columns \['d', 'c', 'b', 'a'\] but .*\['a', 'b', 'c', 'd'\]"):
        tribute.explain_dataset(factory, str(tmp_path / "x.csv"), out=str(out), method="exact_shapley",
                                baseline=baseline, progress=False)
    assert not out.exists() or not any(out.iterdir())
    # the same columns in the same order: the closed form
    same = tribute.Background(pd.DataFrame(bg, columns=list("abcd")))
    job = tribute.explain_dataset(factory, str(tmp_path / "x.csv"), out=str(tmp_path / "ok"),
                                  method="exact_shapley", baseline=same, shard_size=2, progress=False)
    x = pd.read_csv(tmp_path / "x.csv").to_numpy()
    np.testing.assert_allclose(job.flat()[:, 0], (x - bg.mean(0)) * np.arange(1, 5), rtol=1e-12, atol=1e-12)


_SLOW_FACTORY = WEIGHTED_FACTORY + '''

import time


class Slow(Weighted):
    def __call__(self, x):
        time.sleep(0.02)
        return super().__call__(x)


def make_slow():
    return Slow()
'''


@pytest.mark.slow
@pytest.mark.parametrize("suffix, workers", [(".csv", "1"), (".parquet", "2")])
def test_kill_and_resume_a_table_job_with_an_index_and_per_row_targets(
        tmp_path: Path, suffix: str, workers: str) -> None:
    """kill -9 (driver and workers) after some shards of a csv/parquet job with a pandas index,
    two outputs' per-row targets and a background file landed, then --resume: result.npz and
    result.parquet are the uninterrupted run's bytes (the audit matrix ran every format x
    local/--workers 2/Ray; this keeps the table formats in the suite)."""
    import os
    import signal
    import subprocess
    import time

    pytest.importorskip("pyarrow")
    (tmp_path / "aud39j_slow.py").write_text(_SLOW_FACTORY, encoding="utf-8")
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(13, 4)), columns=list("abcd"), index=np.arange(100, 113))
    data = tmp_path / f"x{suffix}"
    frame.to_csv(data) if suffix == ".csv" else frame.to_parquet(data)
    frame.iloc[:3].to_csv(tmp_path / "bg.csv", index=False)
    np.save(tmp_path / "t.npy", np.zeros(13, dtype=np.int64))
    src = str(Path(tribute.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}

    def start(out: Path, resume: bool) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-c", "import sys; from tribute.cli import main; sys.exit(main(sys.argv[1:]))",
               "explain", "--model", f"{tmp_path / 'aud39j_slow.py'}:make_slow", "--data", str(data),
               "--out", str(out), "--method", "kernel_shap", "--budget", "32", "--batch-size", "8",
               "--baseline", f"background:{tmp_path / 'bg.csv'}", "--target", str(tmp_path / "t.npy"),
               "--shard-size", "3", "--workers", workers, "--no-progress"] + (["--resume"] if resume else [])
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)

    ref = start(tmp_path / "ref", False)
    assert ref.wait() == 0, ref.communicate()[1].decode()[-2000:]
    out = tmp_path / "job"
    for attempt, goal in enumerate((1, 3)):  # 5 shards: kill after 1, then after 3 landed
        proc = start(out, attempt > 0)
        deadline = time.monotonic() + 120
        while (len(list((out / "shards").glob("shard-*.npz"))) if (out / "shards").is_dir() else 0) < goal \
                and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    last = start(out, True)
    assert last.wait() == 0, last.communicate()[1].decode()[-2000:]
    for name in ("result.npz", "result.parquet"):
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
