"""Dataset jobs checked row by row against ``tribute.explain`` on each shard (audit of stop 31)."""

from __future__ import annotations

import jobs_fixtures
import numpy as np
import torch

import tribute
from tribute.jobs import shard_seed


def _shard_truth(model, X, method, seed, shard, **kw):
    """``tribute.explain`` on every shard with its documented seed, as one list of results."""
    return [tribute.explain(model, torch.from_numpy(X[lo:lo + shard]), method=method, progress=False,
                            seed=shard_seed(seed, k), batch_size=256, **kw)
            for k, lo in enumerate(range(0, len(X), shard))]


def test_lime_job_merges_shards_of_which_only_some_sampled_the_empty_coalition(mlp, tmp_path):
    # LIME's Bernoulli coalitions include the empty one only by chance, so only some shards
    # report base_values; the merge used to refuse them as a hand-mixed folder.
    X = jobs_fixtures.data(23, seed=3)
    parts = _shard_truth(mlp, X, "lime", 7, 5, budget=64, target=1)
    assert len({p.base_values is None for p in parts}) == 2  # the case under test
    attr = tribute.explain_dataset(mlp, X, tmp_path / "o", "lime", seed=7, shard_size=5, budget=64,
                                   target=1, progress=False)
    np.testing.assert_array_equal(attr.values, np.concatenate([p.values.numpy() for p in parts]))
    assert attr.base_values is None  # not every row has it
    np.testing.assert_array_equal(attr.full_values, np.concatenate([p.full_values for p in parts]))


def test_csv_without_header_keeps_its_first_row(mlp, tmp_path):
    # pandas read the first data row as column names: one row lost, features named by numbers
    import pandas as pd

    X = jobs_fixtures.data(23, seed=3).astype(np.float64)
    np.savetxt(tmp_path / "plain.csv", X, delimiter=",")
    pd.DataFrame(X).to_csv(tmp_path / "range.csv", index=False)  # header 0,1,...,5
    ref = tribute.explain_dataset(mlp, X, tmp_path / "ref", "exact_shapley", target=1, progress=False)
    for name in ("plain.csv", "range.csv"):
        attr = tribute.explain_dataset(mlp, str(tmp_path / name), tmp_path / name[:-4], "exact_shapley",
                                       target=1, progress=False)
        assert attr.values.shape == (23, 6)
        np.testing.assert_array_equal(attr.values, ref.values)
    assert attr.player_names == [str(j) for j in range(6)]


def test_nan_rows_are_refused_before_anything_is_written_naming_the_data_row(mlp, tmp_path):
    # explain refused them only when their shard ran: earlier shards and the manifest were
    # already written, and the message named the row's position within its shard ([2])
    import pytest

    X = jobs_fixtures.data(40)
    X[32, 2] = np.nan
    np.save(tmp_path / "x.npy", X)
    for data in (X, str(tmp_path / "x.npy")):
        out = tmp_path / "o"
        with pytest.raises(tribute.InputError, match=r"NaN values in row\(s\) \[32\]"):
            tribute.explain_dataset(mlp, data, out, "kernel_shap", budget=64, shard_size=5, progress=False)
        assert not out.exists()


def test_an_error_inside_a_shard_names_the_shard_and_its_data_rows(mlp, tmp_path):
    import pytest

    labels = np.zeros(40, dtype=int)
    labels[33] = 5  # no such class
    with pytest.raises(tribute.InputError, match=r"shard 6 \(rows 30..34 of the data.*class index 5"):
        tribute.explain_dataset(mlp, jobs_fixtures.data(40), tmp_path / "o", "kernel_shap", budget=64,
                                shard_size=5, target=labels, progress=False)


def test_a_csv_with_only_a_header_says_it_has_no_rows(mlp, tmp_path):
    import pytest

    (tmp_path / "h.csv").write_text("a,b,c,d,e,f\n")
    with pytest.raises(tribute.InputError, match="has no rows"):  # was: "non-numeric column(s)"
        tribute.explain_dataset(mlp, str(tmp_path / "h.csv"), tmp_path / "o", progress=False)


def _worker_pids(parent: int) -> set[int]:
    """Pids of the multiprocessing workers ``parent`` spawned (Linux /proc)."""
    from pathlib import Path

    pids = set()
    for d in Path("/proc").iterdir():
        try:
            if not d.name.isdigit():
                continue
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == parent and b"spawn_main" in cmd:
            pids.add(int(d.name))
    return pids


def test_worker_processes_end_when_the_driver_is_killed(tmp_path):
    # kill -9 of the driver left its spawned workers waiting for work forever
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import pytest

    if not Path("/proc/self/stat").exists():
        pytest.skip("needs Linux /proc")
    here = Path(__file__).parent
    # this checkout's tribute (an installed one may be another checkout's)
    src = str(Path(tribute.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), src, os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, str(here / "run_job.py"), str(out), "4000", "5", "processes", "2"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("shards/shard-*.npz")) and time.monotonic() < deadline:
            assert proc.poll() is None, "the job ended before a shard was written"
            time.sleep(0.05)
        workers = _worker_pids(proc.pid)
        assert workers, "no worker processes found"
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, as a crash would
        proc.wait()
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{p}").exists() for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        alive = [p for p in workers if Path(f"/proc/{p}").exists()]
    finally:
        if proc.poll() is None:
            proc.kill()
    for p in alive:  # do not leave them behind when the test fails
        os.kill(p, signal.SIGKILL)
    assert not alive, f"worker processes {alive} outlived the killed driver"


class _TwoInputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 3), torch.nn.Linear(2, 3)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.a(x)) * self.b(y)


def test_per_sample_baselines_of_a_multi_input_model_are_sliced_per_shard(tmp_path):
    # a tuple of per-sample baselines reached every shard whole, where explain took its 13
    # rows as a background set: silently other numbers; a background tuple as long as the
    # last shard (3 rows) was read as per-sample there
    torch.manual_seed(0)
    model = _TwoInputs()
    rng = np.random.default_rng(0)
    A, B, BA, BB = (rng.normal(size=(13, d)).astype(np.float32) for d in (4, 2, 4, 2))

    def truth(baseline_of):
        return np.concatenate([
            tribute.explain(model, (torch.from_numpy(A[lo:lo + 5]), torch.from_numpy(B[lo:lo + 5])),
                            method="feature_ablation", target=1, baseline=baseline_of(lo, lo + 5),
                            progress=False).flat()
            for lo in range(0, 13, 5)])

    got = tribute.explain_dataset(model, (A, B), tmp_path / "o", "feature_ablation", target=1,
                                  baseline=(BA, BB), shard_size=5, progress=False)
    np.testing.assert_allclose(got.flat(), truth(lambda lo, hi: (BA[lo:hi], BB[lo:hi])), rtol=1e-6)
    bg = (BA[:3], BB[:3])
    got = tribute.explain_dataset(model, (A, B), tmp_path / "bg", "feature_ablation", target=1,
                                  baseline=bg, shard_size=5, progress=False)
    np.testing.assert_allclose(got.flat(), truth(lambda lo, hi: tribute.Background(bg)), rtol=1e-6)


def test_big_endian_data_is_explained_like_native_data(mlp, tmp_path):
    # torch refused to wrap '>f4' rows: a ValueError from inside the first shard
    X = jobs_fixtures.data(12)
    np.save(tmp_path / "be.npy", X.astype(">f4"))
    ref = tribute.explain_dataset(mlp, X, tmp_path / "ref", "exact_shapley", target=1, shard_size=5, progress=False)
    for data in (X.astype(">f4"), str(tmp_path / "be.npy")):
        got = tribute.explain_dataset(mlp, data, tmp_path / f"o{len(str(data))}", "exact_shapley", target=1,
                                      shard_size=5, progress=False)
        np.testing.assert_array_equal(got.values, ref.values)


def test_a_factory_returning_none_is_named(tmp_path):
    import pytest

    (tmp_path / "fac.py").write_text("def build():\n    model = 1\n")
    with pytest.raises(tribute.InputError, match=r"factory .*fac.py:build' returned None"):
        tribute.explain_dataset(f"{tmp_path / 'fac.py'}:build", jobs_fixtures.data(4), tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


class _Biased(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(6, 3)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        return self.lin(x) + (0 if bias is None else bias)


def test_arguments_a_shard_would_read_per_row_are_refused_before_anything_is_written(tmp_path):
    # a shared forward kwarg of 3 values was indexed per row in the last shard (3 rows of 13):
    # a crash (or other numbers) after the first shards were written
    import pytest

    X = jobs_fixtures.data(13)
    out = tmp_path / "o"
    with pytest.raises(tribute.InputError, match=r"forward_kwargs\['bias'\] has shape \(3,\).*shard_size=5"):
        tribute.explain_dataset(_Biased(), X, out, "feature_ablation", target=1, shard_size=5, progress=False,
                                forward_kwargs={"bias": torch.tensor([0.1, 0.2, 0.3])})
    assert not out.exists()
    with pytest.raises(tribute.InputError, match=r"target has shape \(3,\).*13 rows"):
        tribute.explain_dataset(_Biased(), X, out, "feature_ablation", target=np.array([0, 1, 2]), shard_size=5,
                                progress=False)
    assert not out.exists()
    per_row = torch.arange(13, dtype=torch.float32)[:, None]  # one bias per row: sliced, fine
    tribute.explain_dataset(_Biased(), X, out, "feature_ablation", target=1, shard_size=5, progress=False,
                            forward_kwargs={"bias": per_row})


class _Scaled(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def test_a_resume_whose_model_code_changed_is_refused(tmp_path, monkeypatch):
    # The fingerprint hashes the class name and state_dict: a resumed job whose forward code
    # changed in between (same weights) mixed shards of two models. The manifest's probe (the
    # outputs on the first data rows) sees it.
    import pytest

    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    out = tmp_path / "job"
    tribute.explain_dataset(_Scaled(), x, out=out, method="feature_ablation", shard_size=4,
                            progress=False, target=0)
    tribute.explain_dataset(_Scaled(), x, out=out, method="feature_ablation", shard_size=4,
                            progress=False, target=0, resume=True)  # same code: resumes
    monkeypatch.setattr(_Scaled, "forward", lambda self, z: torch.tanh(self.lin(z)))
    with pytest.raises(tribute.InputError, match="outputs on the first 4 data rows changed"):
        tribute.explain_dataset(_Scaled(), x, out=out, method="feature_ablation", shard_size=4,
                                progress=False, target=0, resume=True)


class _Noisy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # Monte-Carlo dropout: random in eval
        return self.lin(torch.nn.functional.dropout(x, 0.5, training=True))


def test_a_model_random_in_eval_mode_still_resumes(tmp_path):
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    out = tmp_path / "job"
    tribute.explain_dataset(_Noisy(), x, out=out, method="feature_ablation", shard_size=4,
                            progress=False, target=0)
    tribute.explain_dataset(_Noisy(), x, out=out, method="feature_ablation", shard_size=4,
                            progress=False, target=0, resume=True)


def test_a_seeded_random_model_resumes_byte_identically(tmp_path):
    # torch's global generator is seeded per shard: a model random in eval mode gives a resumed
    # job the bytes of an uninterrupted one
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    full, cut = tmp_path / "full", tmp_path / "cut"
    for out in (full, cut):
        tribute.explain_dataset(_Noisy(), x, out=out, method="feature_ablation", shard_size=4,
                                progress=False, target=0)
    (cut / "result.npz").unlink()
    sorted((cut / "shards").glob("shard-*.npz"))[-1].unlink()
    tribute.explain_dataset(_Noisy(), x, out=cut, method="feature_ablation", shard_size=4,
                            progress=False, target=0, resume=True)
    assert (cut / "result.npz").read_bytes() == (full / "result.npz").read_bytes()


def test_probe_tolerance_follows_the_output_dtype_and_each_value():
    from tribute.jobs.model import probes_agree

    old = {"values": [1e4, 1.0], "rtol": 1e-5}
    assert not probes_agree(old, {"values": [1e4, 1.01], "rtol": 1e-5})  # a large value hides nothing
    assert not probes_agree({"values": [float("inf"), 1.0], "rtol": 1e-5},
                            {"values": [float("inf"), 2.0], "rtol": 1e-5})
    half = {"values": [1.0, 2.0], "rtol": 50 * 2.0**-10}
    assert probes_agree(half, {"values": [1.01, 2.02], "rtol": half["rtol"]})  # float16 noise
    assert probes_agree([1.0, 2.0], {"values": [1.0, 2.0], "rtol": 1e-5})  # an older manifest's list
