"""Dataset jobs: sharding, seeds, merge, resume and backends against plain ``tribute.explain``."""

from __future__ import annotations

import json

import jobs_fixtures
import numpy as np
import pytest
import torch

import tribute
from tribute.jobs import shard_seed


def _run(model, X, out, **kw):
    kw.setdefault("method", "kernel_shap")
    kw.setdefault("budget", 64)
    kw.setdefault("shard_size", 8)
    kw.setdefault("progress", False)
    return tribute.explain_dataset(model, X, out=out, **kw)


def test_deterministic_method_equals_one_explain_call(mlp, X, tmp_path):
    attr = _run(mlp, X, tmp_path / "o", method="exact_shapley", shard_size=7, target=1)
    ref = tribute.explain(mlp, torch.from_numpy(X), method="exact_shapley", target=1)
    np.testing.assert_allclose(attr.values, ref.values.numpy(), rtol=1e-5, atol=1e-6)
    assert attr.values.shape == (40, 6)
    assert attr.player_names == ref.player_names
    np.testing.assert_array_equal(attr.extra["row_index"], np.arange(40))
    np.testing.assert_array_equal(attr.targets, np.ones(40))
    # Efficiency of exact Shapley survives the merge: gap ~ 0 for every row.
    assert np.abs(attr.gap).max() < 1e-5
    for name in ("base_values", "full_values"):
        if getattr(ref, name) is not None:
            np.testing.assert_allclose(np.asarray(getattr(attr, name)), np.asarray(getattr(ref, name)),
                                       rtol=1e-5, atol=1e-6)
    loaded = tribute.Attribution.load(tmp_path / "o" / "result.npz")
    np.testing.assert_array_equal(np.asarray(loaded.values), attr.values)


def test_each_shard_is_explain_with_its_derived_seed(mlp, X, tmp_path):
    attr = _run(mlp, X, tmp_path / "o", seed=5)
    for k in range(5):
        rows = slice(8 * k, 8 * (k + 1))
        # jobs run with a fixed batch_size (256) for byte-identical resumes; the same chunking
        # here (a float32 matmul may round differently at another batch size)
        ref = tribute.explain(mlp, torch.from_numpy(X[rows]), method="kernel_shap", budget=64,
                              seed=shard_seed(5, k), batch_size=256)
        np.testing.assert_array_equal(attr.values[rows], ref.values.numpy())
        np.testing.assert_array_equal(attr.stderr[rows], ref.stderr.numpy())
    seeds = {shard_seed(5, k) for k in range(100)} | {shard_seed(6, k) for k in range(100)}
    assert len(seeds) == 200  # distinct streams per (seed, shard)
    assert shard_seed(5, 3) == int(np.random.SeedSequence([5, 3]).generate_state(1, np.uint32)[0])


def test_outputs_manifest_and_summary(mlp, X, tmp_path):
    out = tmp_path / "o"
    _run(mlp, X, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["method"] == "kernel_shap"
    assert manifest["settings"]["explain"] == {"budget": 64}
    assert manifest["data"]["sha256"] == tribute.jobs.data.fingerprint_arrays([X])
    assert manifest["model"]["sha256"] == tribute.jobs.model.fingerprint_model(mlp)
    assert manifest["tribute_version"] == tribute.__version__
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == 40 and summary["shards"] == 5 and summary["rows_per_second"] > 0
    # the rate of the shards (as the bar's), not of the whole call with its setup and merge
    assert 0 < summary["seconds_explaining"] < summary["seconds"]
    assert summary["rows_per_second"] == pytest.approx(40 / summary["seconds_explaining"], rel=1e-3)
    assert sorted(p.name for p in (out / "shards").iterdir()) == [f"shard-{k:06d}.npz" for k in range(5)]


def test_summary_lists_each_players_mean_credit(mlp, X, tmp_path):
    out = tmp_path / "o"
    attr = _run(mlp, X, out)
    flat = attr.flat()
    (slot,) = json.loads((out / "summary.json").read_text())["credits"]
    mean_abs = np.abs(flat[:, 0, :]).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")
    assert [p["player"] for p in slot["players"]] == [attr.player_names[j] for j in order[:20]]
    for p, j in zip(slot["players"], order):
        assert p["mean_abs"] == pytest.approx(mean_abs[j], rel=1e-6)
        assert p["mean"] == pytest.approx(flat[:, 0, j].mean(), rel=1e-6, abs=1e-9)
        assert p["n_rows"] == 40
    assert slot["targets"] == sorted({int(t) for t in np.asarray(attr.targets).ravel()})


def test_summary_ranks_players_per_class_when_rows_explain_different_classes():
    """Per-row targets (the predicted class): the slot's ranking mixes credits towards
    different classes, so each class also gets its own ranking over its rows."""
    from tribute.jobs.api import credit_summary

    vals = np.array([[1.0, -4.0], [3.0, 0.0], [-5.0, 1.0], [0.5, 2.0]])
    targets = np.array([0, 0, 2, 2])
    (slot,) = credit_summary(tribute.Attribution(values=vals, method="m", player_names=["a", "b"],
                                                 targets=targets))
    assert slot["targets"] == [0, 2]
    assert [p["player"] for p in slot["players"]] == ["a", "b"]  # 2.375 vs 1.75 over all rows
    by = {e["target"]: e for e in slot["by_target"]}
    assert by[0]["rows"] == 2 and by[0]["players"] == [
        {"player": "a", "mean_abs": 2.0, "mean": 2.0, "n_rows": 2},
        {"player": "b", "mean_abs": 2.0, "mean": -2.0, "n_rows": 2}]
    assert by[2]["players"][0] == {"player": "a", "mean_abs": 2.75, "mean": -2.25, "n_rows": 2}
    one = credit_summary(tribute.Attribution(values=vals, method="m", player_names=["a", "b"],
                                             targets=np.zeros(4, dtype=int)))
    assert "by_target" not in one[0]  # one class: the slot's ranking is the class's


def test_summary_leaves_a_nan_credit_out_of_the_means():
    from tribute.jobs.api import credit_summary

    vals = np.array([[1.0, -2.0], [np.nan, 4.0], [3.0, np.nan]])
    (slot,) = credit_summary(tribute.Attribution(values=vals, method="m", player_names=["a", "b"]))
    assert slot["players"] == [
        {"player": "b", "mean_abs": 3.0, "mean": 1.0, "n_rows": 2},
        {"player": "a", "mean_abs": 2.0, "mean": 2.0, "n_rows": 2},
    ]


def test_merged_file_has_no_clock_in_it(mlp, X, tmp_path):
    a = _run(mlp, X, tmp_path / "a")
    _run(mlp, X, tmp_path / "b")
    assert a.seconds == 0.0
    assert (tmp_path / "a" / "result.npz").read_bytes() == (tmp_path / "b" / "result.npz").read_bytes()


def test_resume_recomputes_only_missing_shards_and_ignores_temporaries(mlp, X, tmp_path):
    ref = tmp_path / "ref"
    _run(mlp, X, ref)
    out = tmp_path / "o"
    _run(mlp, X, out)
    (out / "shards" / "shard-000002.npz").unlink()
    (out / "result.npz").unlink()
    kept = (out / "shards" / "shard-000003.npz").stat().st_mtime_ns
    half = (ref / "shards" / "shard-000002.npz").read_bytes()[:100]
    (out / "shards" / ".shard-000002.npz.tmp-4242").write_bytes(half)  # a killed writer's temp file
    (out / ".result.npz.tmp-4243").write_bytes(b"garbage")
    _run(mlp, X, out, resume=True)
    assert (out / "result.npz").read_bytes() == (ref / "result.npz").read_bytes()
    assert (out / "shards" / "shard-000003.npz").stat().st_mtime_ns == kept
    assert not list(out.rglob(".*.tmp-*"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["shards_resumed"] == 4 and summary["rows_computed"] == 8


def test_resume_of_a_finished_job_reproduces_it(mlp, X, tmp_path):
    out = tmp_path / "o"
    _run(mlp, X, out)
    before = (out / "result.npz").read_bytes()
    _run(mlp, X, out, resume=True)
    assert (out / "result.npz").read_bytes() == before


def test_resume_into_empty_or_missing_folder_starts_the_job(mlp, X, tmp_path):
    out = tmp_path / "o"
    _run(mlp, X, out, resume=True)
    assert (out / "result.npz").is_file()


def test_per_row_target_and_baseline_are_sliced(mlp, X, tmp_path):
    target = np.arange(40) % 3
    base = X[::-1].copy()
    attr = _run(mlp, X, tmp_path / "o", method="exact_shapley", target=target, baseline=base)
    ref = tribute.explain(mlp, torch.from_numpy(X), method="exact_shapley", target=torch.from_numpy(target),
                          baseline=torch.from_numpy(base))
    np.testing.assert_allclose(attr.values, ref.values.numpy(), rtol=1e-5, atol=1e-6)


def test_background_set_is_never_taken_per_sample(mlp, X, tmp_path):
    bg = X[:8]  # as long as a shard: must stay a background set
    attr = _run(mlp, X, tmp_path / "o", method="exact_shapley", baseline=bg)
    ref = tribute.explain(mlp, torch.from_numpy(X), method="exact_shapley",
                          baseline=tribute.Background(torch.from_numpy(bg)))
    np.testing.assert_allclose(attr.values, ref.values.numpy(), rtol=1e-5, atol=1e-6)


def test_numpy_model_and_multi_target(X, tmp_path):
    w = np.arange(18, dtype=np.float64).reshape(6, 3) / 10

    attr = _run(_Linear(w), X.astype(np.float64), tmp_path / "o", method="exact_shapley", target=[0, 2],
                baseline=0.0)
    assert attr.values.shape == (40, 2, 6)
    # Closed form for a linear model with baseline 0: phi_ij = w_j,t * x_ij.
    expected = np.einsum("nj,jt->ntj", X.astype(np.float64), w[:, [0, 2]])
    np.testing.assert_allclose(attr.values, expected, atol=1e-10)


class _Linear:
    def __init__(self, w: np.ndarray) -> None:
        self.w = w

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x @ self.w


def test_model_left_unchanged_also_after_an_error(mlp, X, tmp_path):
    mlp.train()
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    _run(mlp, X, tmp_path / "o")
    with pytest.raises(tribute.InputError):
        _run(mlp, X, tmp_path / "bad", target=7)  # 3 outputs
    assert mlp.training
    assert all(torch.equal(before[k], v) for k, v in mlp.state_dict().items())
    assert all(p.requires_grad for p in mlp.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in mlp.modules())
    assert not (tmp_path / "bad").exists()  # nothing half-written


def test_threads_restored(mlp, X, tmp_path):
    before = torch.get_num_threads()
    _run(mlp, X, tmp_path / "o", threads=1)
    assert torch.get_num_threads() == before


def test_processes_backend_is_byte_identical_to_local(weights, X, tmp_path):
    spec = "jobs_fixtures:make_mlp"
    _run(spec, X, tmp_path / "local", weights=weights)
    np.save(tmp_path / "X.npy", X)  # memory-mapped; workers re-open the file
    _run(spec, tmp_path / "X.npy", tmp_path / "proc", weights=weights, backend="processes", workers=2)
    assert (tmp_path / "local" / "result.npz").read_bytes() == (tmp_path / "proc" / "result.npz").read_bytes()


@pytest.mark.slow
def test_processes_refuse_a_random_factory(X, tmp_path):
    with pytest.raises(tribute.InputError, match="not deterministic"):
        _run("jobs_fixtures:make_random_mlp", X, tmp_path / "o", backend="processes", workers=1)
    assert not (tmp_path / "o").exists()


def test_progress_line(capsys):
    import io

    from tribute.jobs.progress import JobProgress

    stream = io.StringIO()
    bar = JobProgress(100, done=20, enabled=True, stream=stream)
    bar.update(30)
    bar.close()
    text = stream.getvalue()
    assert "50/100 rows" in text and "rows/s" in text and "ETA" in text
    assert " 50%|" in text  # tqdm's bar (issue #14: no hand-written bars), starting at the resumed 20
    assert "20/100 rows" in text and text.endswith("\n")
    assert JobProgress(10, enabled=None, stream=io.StringIO()).enabled is False
    quiet = io.StringIO()
    off = JobProgress(10, enabled=False, stream=quiet)
    off.update(10)
    off.close()
    assert quiet.getvalue() == "" and off.done == 10


def test_parquet_output(mlp, X, tmp_path):
    pytest.importorskip("pyarrow")
    pd = pytest.importorskip("pandas")
    attr = _run(mlp, X, tmp_path / "o")
    frame = pd.read_parquet(tmp_path / "o" / "result.parquet")
    assert list(frame["row"]) == list(range(40))
    np.testing.assert_array_equal(frame[attr.player_names].to_numpy(), attr.values)
    assert all(f"stderr:{n}" in frame for n in attr.player_names)


def test_table_inputs_give_feature_names(mlp, X, tmp_path):
    pd = pytest.importorskip("pandas")
    cols = [f"f{j}" for j in range(6)]
    pd.DataFrame(X.astype(np.float64), columns=cols).to_csv(tmp_path / "x.csv", index=False)
    attr = _run(mlp, str(tmp_path / "x.csv"), tmp_path / "o", method="exact_shapley")
    assert attr.player_names == cols
    frame = pd.DataFrame(X.astype(np.float64), columns=cols)
    assert _run(mlp, frame, tmp_path / "df", method="exact_shapley").player_names == cols
    ref = tribute.explain(mlp, torch.from_numpy(X), method="exact_shapley")
    np.testing.assert_allclose(attr.values, ref.values.numpy(), rtol=1e-4, atol=1e-5)
    if pytest.importorskip("pyarrow"):
        pd.DataFrame(X, columns=cols).to_parquet(tmp_path / "x.parquet")
        attr2 = _run(mlp, tmp_path / "x.parquet", tmp_path / "o2", method="exact_shapley")
        np.testing.assert_allclose(attr2.values, attr.values, rtol=1e-5, atol=1e-6)


def test_npz_with_several_inputs(tmp_path):
    class TwoInputs(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return (a * 2).sum(1, keepdim=True) + (b * 3).sum(1, keepdim=True)

    a = jobs_fixtures.data(12)[:, :2]
    b = jobs_fixtures.data(12, seed=2)[:, :3]
    np.savez(tmp_path / "x.npz", b=b, a=a, labels=np.arange(12))
    # the key names the model's inputs in order (file order is b, a; a third array is ignored)
    attr = _run(TwoInputs(), tmp_path / "x.npz", tmp_path / "o", method="exact_shapley",
                shard_size=5, data_key="a, b")
    va, vb = attr.values
    np.testing.assert_allclose(va, 2 * a, rtol=1e-5)
    np.testing.assert_allclose(vb, 3 * b, rtol=1e-5)
    again = _run(TwoInputs(), tmp_path / "x.npz", tmp_path / "o2", method="exact_shapley",
                 shard_size=5, data_key=["a", "b"])
    np.testing.assert_array_equal(again.values[0], va)


def test_npy_is_memory_mapped_and_sent_to_workers_by_path(X, tmp_path):
    import pickle

    from tribute.jobs import load_dataset

    np.save(tmp_path / "X.npy", X)
    ds = load_dataset(tmp_path / "X.npy")
    assert isinstance(ds.arrays[0], np.memmap)
    assert ds.fingerprint()["sha256"] == tribute.jobs.data.fingerprint_arrays([np.asarray(X)])
    # block-wise hashing equals one pass over the bytes
    assert tribute.jobs.data.fingerprint_arrays([X], block_bytes=100) == tribute.jobs.data.fingerprint_arrays([X])
    head = ds.head(7)
    blob = pickle.dumps(head.shared())
    assert len(blob) < X[:7].nbytes + 300 and len(blob) < 400
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back.arrays[0], X[:7])
    assert back.fingerprint() == head.fingerprint()
    assert len(pickle.dumps(head)) > X[:7].nbytes  # default pickling carries the rows (Ray)


def test_shapley_path_in_a_job_never_depends_on_the_machines_speed(mlp, X, tmp_path, monkeypatch):
    # gp_shapley's cost rule reads the model's measured seconds; in a job that would make a
    # resumed shard's path (and values) depend on the machine's load. A tiny floor puts every
    # call above it, so only the (faked) timing could decide.
    from tribute.methods import gp_shapley as gp

    monkeypatch.setattr(gp, "_FLOOR_SECONDS", 1e-9)
    kw = dict(method="shapley", budget=30, shard_size=16)

    def timing(seconds: float) -> None:
        monkeypatch.setattr(gp, "_seconds_per_eval", lambda game, t_empty: seconds)

    # a single call reads it: a slow model keeps a GP, a fast one hands over to kernel_shap
    timing(1e3)
    slow = tribute.explain(mlp, torch.from_numpy(X[:16]), method="shapley", budget=30)
    timing(0.0)
    fast = tribute.explain(mlp, torch.from_numpy(X[:16]), method="shapley", budget=30)
    assert slow.params["path"].startswith("gp") and fast.params["path"] == "kernel_shap"
    # a job does not: the same bytes on a "slow" and a "fast" machine, on the timing-free path
    for name, seconds in (("slow", 1e3), ("fast", 0.0)):
        timing(seconds)
        _run(mlp, X, tmp_path / name, **kw)
    assert (tmp_path / "slow" / "result.npz").read_bytes() == (tmp_path / "fast" / "result.npz").read_bytes()
    shard = tribute.Attribution.load(next((tmp_path / "slow" / "shards").glob("*.npz")))
    assert shard.params["timed"] is False and shard.params["path"] == fast.params["path"]
    # a user who asks for the timed rule gets it (and the manifest records the choice)
    timing(1e3)
    timed = _run(mlp, X, tmp_path / "timed", timed=True, **kw)
    assert timed.params["timed"] is True
    assert json.loads((tmp_path / "timed" / "manifest.json").read_text())["settings"]["explain"]["timed"] is True


def test_resume_is_refused_when_the_methods_effective_settings_changed(mlp, X, tmp_path):
    # the manifest records every hyperparameter as the shards run it (the user's, the method's
    # job settings, the defaults), so a tribute whose defaults changed cannot mix shards
    out = tmp_path / "o"
    kw = dict(method="shapley", budget=30, shard_size=16)
    _run(mlp, X, out, **kw)
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    params = manifest["settings"]["method_params"]
    assert params["timed"] is False and params["nngp"] is None and params["lean"] is None
    (out / "shards" / "shard-000001.npz").unlink()
    params["nngp"] = False  # as an older default would have run it
    path.write_text(json.dumps(manifest))
    with pytest.raises(tribute.InputError, match=r"method_params\.nngp: false -> null"):
        _run(mlp, X, out, resume=True, **kw)
    del manifest["settings"]["method_params"]  # a manifest written before they were recorded
    path.write_text(json.dumps(manifest))
    with pytest.raises(tribute.InputError, match=r"earlier tribute .* Start the job anew"):
        _run(mlp, X, out, resume=True, **kw)
    assert not (out / "shards" / "shard-000001.npz").exists()


def test_merged_params_say_which_shards_ran_another_path(mlp, X, tmp_path):
    """A shard's path can depend on its size (shapley hands a batch over to kernel_shap above
    max_solve_flops): the merged params keep shard 0's values and list the ones that differ."""
    from tribute.methods.gp_shapley import GPShapley

    g = GPShapley(nngp=False)
    cap = (g.solve_flops(6, 40, 8) + g.solve_flops(6, 40, 16)) / 2  # 16 rows over, 8 under
    attr = _run(mlp, X, tmp_path / "o", method="gp_shapley", budget=40, shard_size=16,
                max_solve_flops=cap, nngp=False, target=0)
    paths = [tribute.Attribution.load(tmp_path / "o" / "shards" / f"shard-{k:06d}.npz").params["path"]
             for k in range(3)]
    assert paths[0] == paths[1] == "kernel_shap" and paths[2].startswith("gp")
    assert attr.params["path"] == "kernel_shap"  # shard 0's, as before
    assert attr.params["shard_params"]["path"] == paths
    same = _run(mlp, X, tmp_path / "p", shard_size=16)  # kernel_shap everywhere: nothing differs
    assert "shard_params" not in same.params, same.params["shard_params"]


def test_parquet_says_which_class_each_column_explains(mlp, X, tmp_path):
    # with --target 0,2 the class-2 credits sit in columns "t1:<name>" (position in the
    # target list); nothing in the file said so, nor which class 'predicted' picked per row
    pytest.importorskip("pyarrow")
    pd = pytest.importorskip("pandas")
    attr = _run(mlp, X, tmp_path / "o", target=[0, 2], method="exact_shapley")
    frame = pd.read_parquet(tmp_path / "o" / "result.parquet")
    assert list(frame["target:t0"]) == [0] * 40 and list(frame["target:t1"]) == [2] * 40
    cols = [f"t1:{n}" for n in attr.player_names]
    np.testing.assert_array_equal(frame[cols].to_numpy(), np.asarray(attr.values)[:, 1])
    attr = _run(mlp, X, tmp_path / "p", target="predicted", method="exact_shapley")
    frame = pd.read_parquet(tmp_path / "p" / "result.parquet")
    predicted = mlp(torch.as_tensor(X, dtype=torch.float32)).argmax(1).numpy()
    np.testing.assert_array_equal(frame["target"].to_numpy(), predicted)


def test_merged_params_keep_the_baseline_digest_only_when_shards_share_it():
    from tribute.jobs.merge import _merged_params

    f = lambda z: np.asarray(z, dtype=np.float64) @ np.array([1.0, 2.0, 3.0])  # noqa: E731
    x = np.arange(12.0).reshape(4, 3)
    shared = [tribute.explain(f, x[i : i + 2], method="feature_ablation", baseline=1.0)
              for i in (0, 2)]
    own = [tribute.explain(f, x[i : i + 2], method="feature_ablation", baseline=tribute.PerSample(x[i : i + 2] / 2))
           for i in (0, 2)]  # per-sample baselines: each shard its own fingerprint
    kept = _merged_params(shared, {"seed": 0})
    assert kept["baseline_digest"] == shared[0].params["baseline_digest"]
    assert "shard_params" not in kept
    dropped = _merged_params(own, {"seed": 0})
    assert "baseline_digest" not in dropped and "shard_params" not in dropped
    # a shared baseline keeps its fingerprint in a shorter last shard too
    short = [tribute.explain(f, x[i:j], method="feature_ablation", baseline=1.0)
             for i, j in ((0, 3), (3, 4))]
    assert _merged_params(short, {"seed": 0})["baseline_digest"] == shared[0].params["baseline_digest"]


def test_a_dataframe_background_or_baseline_row_is_a_job_setting(tmp_path):
    """``baseline=tribute.Background(df)`` (or a row ``df.iloc[k]``) of a table job: the manifest
    records the frame by content (it refused any DataFrame setting before), the result equals
    one explain call, a resume with the same frame reproduces it and another frame is refused."""
    pd = pytest.importorskip("pandas")
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    df = pd.DataFrame({"income": rng.normal(size=60), "member": rng.random(60) < 0.5,
                       "age": rng.integers(18, 80, 60)})
    model = LogisticRegression(max_iter=500).fit(df, (df.income + df.member > 0.5).astype(int))
    for k, base in enumerate((tribute.Background(df.iloc[40:50]), df.iloc[55])):
        out = tmp_path / f"o{k}"
        attr = _run(model, df.iloc[:9], out, method="exact_shapley", shard_size=4, target=1, baseline=base)
        ref = tribute.explain(model, df.iloc[:9], method="exact_shapley", target=1, baseline=base, progress=False)
        np.testing.assert_allclose(attr.values, np.asarray(ref.values), rtol=1e-12, atol=1e-14)
        assert attr.player_names == ["income", "member", "age"]
        again = _run(model, df.iloc[:9], out, method="exact_shapley", shard_size=4, target=1, baseline=base,
                     resume=True)
        np.testing.assert_array_equal(again.values, attr.values)
    with pytest.raises(tribute.errors.InputError, match="settings"):
        _run(model, df.iloc[:9], tmp_path / "o0", method="exact_shapley", shard_size=4, target=1,
             baseline=tribute.Background(df.iloc[41:51]), resume=True)


def test_credit_summary_keeps_small_credits():
    # rounded to 8 decimals, credits of about 1e-9 (probabilities, influence) came out as 0.0
    import dataclasses

    from tribute.jobs.api import credit_summary

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3)).double()
    x = torch.as_tensor(np.random.default_rng(0).normal(size=(12, 4)))
    a = tribute.explain(net, x, method="exact_shapley", target=1).numpy()
    small = dataclasses.replace(a, values=np.asarray(a.values) * 1e-9)
    got = {p["player"]: p["mean_abs"] for p in credit_summary(small)[0]["players"]}
    truth = np.abs(np.asarray(small.values)).mean(0)
    for j, name in enumerate(small.player_names):
        assert got[name] == float(f"{truth[j]:.8g}") != 0.0
