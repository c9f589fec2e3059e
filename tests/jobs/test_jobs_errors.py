"""Bad input to dataset jobs: clear errors naming what is wrong, and nothing half-written."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import tribute
from tribute.errors import InputError, WeightsFormatError


def _run(model, X, out, **kw):
    kw.setdefault("method", "kernel_shap")
    kw.setdefault("budget", 32)
    kw.setdefault("shard_size", 8)
    kw.setdefault("progress", False)
    return tribute.explain_dataset(model, X, out=out, **kw)


def _refused(out: Path, exc: type[Exception], match: str, model, X, **kw) -> None:
    with pytest.raises(exc, match=match):
        _run(model, X, out, **kw)
    assert not out.exists(), "nothing may be written on bad input"


def test_npz_with_arrays_of_different_lengths(mlp, tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros((5, 6), np.float32), b=np.zeros((7, 6), np.float32))
    _refused(tmp_path / "o", InputError, r"different numbers of rows \{'a': 5, 'b': 7\}", mlp,
             str(tmp_path / "x.npz"), data_key="a,b")


def test_npz_with_several_arrays_needs_a_key(mlp, X, tmp_path):
    """A file holding the inputs and the labels (same rows) was once explained as a two-input
    model, and a single call silently took the first array: now the key is required."""
    np.savez(tmp_path / "x.npz", X=X, y=np.arange(len(X)))
    _refused(tmp_path / "o", InputError,
             r"holds 2 arrays \['X', 'y'\]; say which to explain: --data-key / data_key 'X' .*"
             r"'X,y' for the inputs of a multi-input model", mlp, tmp_path / "x.npz")
    _refused(tmp_path / "o", InputError, r"names an array twice", mlp, tmp_path / "x.npz",
             data_key="X,X")
    _refused(tmp_path / "o", InputError, r"names no array", mlp, tmp_path / "x.npz", data_key="X,")


def test_npz_key(mlp, X, tmp_path):
    np.savez(tmp_path / "x.npz", a=X, b=np.zeros(3))
    attr = _run(mlp, tmp_path / "x.npz", tmp_path / "o", data_key="a")
    assert attr.values.shape == (40, 6)
    _refused(tmp_path / "o2", InputError, r"data_key 'c': \['c'\] not in .*\['a', 'b'\]", mlp,
             tmp_path / "x.npz", data_key="c")


def test_csv_with_non_numeric_columns(mlp, tmp_path):
    pytest.importorskip("pandas")
    (tmp_path / "x.csv").write_text("a,b,colour\n1,2,red\n3,4,blue\n")
    _refused(tmp_path / "o", InputError, r"non-numeric column\(s\) \['colour'\]", mlp, str(tmp_path / "x.csv"))


def test_unreadable_and_pickled_files(mlp, tmp_path):
    (tmp_path / "x.npy").write_bytes(b"not a numpy file at all")
    _refused(tmp_path / "o", InputError, r"x\.npy' is not a numpy \.npy/\.npz file: it starts with b'not a nu'",
             mlp, str(tmp_path / "x.npy"))
    with open(tmp_path / "p.npy", "wb") as fh:
        pickle.dump([1, 2], fh)
    _refused(tmp_path / "o", InputError, "is a Python pickle", mlp, str(tmp_path / "p.npy"))
    # torch.save writes a zip, which numpy opens as an .npz whose members are raw bytes
    torch.save(torch.ones(2, 6), tmp_path / "t.npy")
    _refused(tmp_path / "o", InputError, r"not a \.npy/\.npz array file \(its member", mlp,
             str(tmp_path / "t.npy"))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    _refused(tmp_path / "o", InputError, "pickled objects", mlp, str(tmp_path / "obj.npy"))
    _refused(tmp_path / "o", InputError, "does not exist", mlp, str(tmp_path / "missing.npy"))
    _refused(tmp_path / "o", InputError, r"suffix '\.txt'", mlp, str(tmp_path / "x.txt"))
    # strings are texts: refused with the tokenising fix (test_jobs_tables); other objects by dtype
    _refused(tmp_path / "o", InputError, "got texts", mlp, np.array(["a", "b"]))
    _refused(tmp_path / "o", InputError, "dtype", mlp, np.array([b"a", b"b"]))


def test_factory_typos_name_the_module_or_attribute(X, tmp_path):
    _refused(tmp_path / "o", InputError, r"cannot import module 'jobs_fixturez'", "jobs_fixturez:make_mlp", X)
    _refused(tmp_path / "o", InputError, r"module 'jobs_fixtures' has no attribute 'make_mpl'.*make_mlp",
             "jobs_fixtures:make_mpl", X)
    _refused(tmp_path / "o", InputError, "must look like", "jobs_fixtures.make_mlp", X)
    _refused(tmp_path / "o", InputError, r"file .*nope\.py", str(tmp_path / "nope.py") + ":f", X)


def test_weights_that_do_not_fit_name_tensor_and_shapes(X, weights, tmp_path):
    _refused(tmp_path / "o", WeightsFormatError,
             r"shape mismatch \['0\.bias: file \[16\] vs model \[8\]'", "jobs_fixtures:make_other", X,
             weights=weights)
    torch_pickle = tmp_path / "w.pt"
    torch_pickle.write_bytes(b"\x80" + pickle.dumps({"a": 1})[1:])
    _refused(tmp_path / "o", WeightsFormatError, "not safetensors", "jobs_fixtures:make_mlp", X,
             weights=torch_pickle)
    extra = tmp_path / "extra.safetensors"
    state = _mlp_state()
    state["head.weight"] = torch.zeros(2)
    save_file(state, str(extra))
    _refused(tmp_path / "o", WeightsFormatError, r"not in the model \['head.weight'\]", "jobs_fixtures:make_mlp",
             X, weights=extra)


def _mlp_state() -> dict[str, torch.Tensor]:
    import jobs_fixtures

    return {k: v.contiguous() for k, v in jobs_fixtures.make_mlp().state_dict().items()}


def test_out_folder_not_empty_or_holding_another_job(mlp, X, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"not empty \(\['notes.txt'\]\)"):
        _run(mlp, X, busy)
    with pytest.raises(InputError, match="holds no tribute job"):
        _run(mlp, X, busy, resume=True)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]

    out = tmp_path / "o"
    _run(mlp, X, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(InputError, match=r"already holds a job.*resume"):
        _run(mlp, X, out)
    with pytest.raises(InputError, match=r"settings\.explain\.budget: 32 -> 64"):
        _run(mlp, X, out, resume=True, budget=64)
    with pytest.raises(InputError, match=r"data\.sha256"):
        _run(mlp, X[:-1], out, resume=True)
    with pytest.raises(InputError, match=r"settings\.seed: 0 -> 1"):
        _run(mlp, X, out, resume=True, seed=1)
    other = tribute.jobs.model.ModelSource.of("jobs_fixtures:make_other").build()
    with pytest.raises(InputError, match=r"model\.sha256"):
        _run(other, X, out, resume=True)
    with pytest.raises(InputError, match=r"settings\.method"):
        _run(mlp, X, out, resume=True, method="exact_shapley", budget=None)
    assert before == {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_bad_options(mlp, X, tmp_path):
    out = tmp_path / "o"
    _refused(out, InputError, r"backend='spark'", mlp, X, backend="spark")
    _refused(out, InputError, r"workers=2 needs backend", mlp, X, workers=2)
    _refused(out, InputError, r"address='auto' is a Ray cluster address", mlp, X, address="auto",
             backend="processes")
    _refused(out, InputError, r"shard_size=0", mlp, X, shard_size=0)
    _refused(out, InputError, r"unknown parameter\(s\) \['stepz'\]", mlp, X, stepz=3)
    _refused(out, InputError, "is not a registered method", mlp, X, method="nope")


def test_ray_missing_gives_install_hint(mlp, X, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    _refused(tmp_path / "o", InputError, r"tribute\[ray\]", mlp, X, backend="ray")


@pytest.mark.parametrize("key", [5, np.array(["a", "b"]), b"a", ["a", 1], 1.5])
def test_data_key_of_an_odd_type_is_refused_with_the_fix(tmp_path, key):
    """Review finding 10: these raised a raw TypeError/ValueError (or an array's truth value)."""
    from tribute.jobs.data import load_dataset

    np.savez(tmp_path / "three.npz", a=np.zeros((4, 2)), b=np.zeros((4, 3)), c=np.zeros((4, 1)))
    with pytest.raises(InputError, match=r"data_key must be a str \(an array name, or comma-separated "
                                         r"names\) or a list of str; got .* of type \w+\. .*data_key='a'"):
        load_dataset(tmp_path / "three.npz", key)
    ds = load_dataset(tmp_path / "three.npz", ("c", "a"))
    assert [a.shape for a in ds.arrays] == [(4, 1), (4, 2)] and ds.source.endswith("three.npz[c,a]")


def test_damaged_npz_files_are_refused_naming_the_argument(tmp_path):
    """A truncated or corrupted .npz raised a raw zipfile.BadZipFile (review)."""
    from tribute.jobs.cli import _baseline
    from tribute.jobs.data import load_array, load_dataset

    good = tmp_path / "good.npz"
    np.savez(good, a=np.arange(4000.0).reshape(1000, 4))
    raw = good.read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])  # no central directory
    flipped = bytearray(raw)
    flipped[200] ^= 0xFF  # inside the member's data: a CRC error on reading it
    (tmp_path / "crc.npz").write_bytes(bytes(flipped))
    for name in ("cut.npz", "crc.npz"):
        path = tmp_path / name
        with pytest.raises(InputError, match=r"--baseline: cannot read .* as a numpy"):
            load_array(path, arg="--baseline")
        with pytest.raises(InputError, match=r"data: cannot read .* as a numpy"):
            load_dataset(path).arrays[0].sum()
    # an upper-case suffix is still a numpy file for a job's --baseline (it was read as a number)
    (tmp_path / "B.NPZ").write_bytes(raw)
    assert _baseline(str(tmp_path / "B.NPZ"), load_dataset(good)).shape == (1000, 4)


def test_table_columns_in_another_order_than_the_model_was_fitted_on(tmp_path):
    # a model fitted on columns [a, b, c] (y = a + 10 b + 100 c) and a table holding them as
    # [c, a, b]: the rows reach the model by position, so c was read as a and the credits
    # were named after the table (c got 0.33 where its true credit is 100 c = 33.0). Refused.
    pd = pytest.importorskip("pandas")
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.normal(size=(30, 3)), columns=["a", "b", "c"])
    model = LinearRegression().fit(train, train["a"] + 10 * train["b"] + 100 * train["c"])
    rows = pd.DataFrame(rng.normal(size=(5, 3)), columns=["a", "b", "c"])
    rows[["c", "a", "b"]].to_csv(tmp_path / "cab.csv", index=False)
    _refused(tmp_path / "o", InputError, r"\['c', 'a', 'b'\].*\['a', 'b', 'c'\].*another order",
             model, str(tmp_path / "cab.csv"), method="exact_shapley")
    rows[["a", "b"]].to_csv(tmp_path / "ab.csv", index=False)
    _refused(tmp_path / "o", InputError, r"lacks \['c'\]", model, str(tmp_path / "ab.csv"),
             method="exact_shapley")
    _refused(tmp_path / "o", InputError, "another order", model, rows[["b", "a", "c"]],
             method="exact_shapley")  # a DataFrame in memory too
    # the model's own order works, and gives the closed form w_j x_j (baseline 0) by name
    rows.to_csv(tmp_path / "abc.csv", index=False)
    attr = _run(model, str(tmp_path / "abc.csv"), tmp_path / "ok", method="exact_shapley",
                baseline=0.0)
    assert attr.player_names == ["a", "b", "c"]
    np.testing.assert_allclose(np.asarray(attr.values), rows.to_numpy() * model.coef_, atol=1e-9)


def test_lightgbm_table_whose_column_names_hold_spaces(tmp_path):
    # LightGBM stores 'mean radius' as 'mean_radius': a job on the very table it was trained on
    # was refused as "do not match the columns the model was fitted on" (aud33u)
    pd = pytest.importorskip("pandas")
    lgb = pytest.importorskip("lightgbm")

    rng = np.random.default_rng(2)
    train = pd.DataFrame(rng.normal(size=(80, 2)), columns=["mean radius", "b"])
    model = lgb.LGBMRegressor(n_estimators=5, verbose=-1, n_jobs=1).fit(train, train["mean radius"] + train["b"])
    train.iloc[:4].to_csv(tmp_path / "t.csv", index=False)
    attr = _run(model, str(tmp_path / "t.csv"), tmp_path / "ok", method="feature_ablation", baseline=0.0)
    assert attr.player_names == ["mean radius", "b"]
    train.iloc[:4][["b", "mean radius"]].to_csv(tmp_path / "ba.csv", index=False)
    _refused(tmp_path / "o", InputError, "another order", model, str(tmp_path / "ba.csv"),
             method="feature_ablation")


def test_booster_table_columns_in_another_order(tmp_path):
    # the same check for a Booster trained on a DataFrame (its names live on the Booster)
    pd = pytest.importorskip("pandas")
    xgb = pytest.importorskip("xgboost")

    rng = np.random.default_rng(1)
    train = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    dtrain = xgb.DMatrix(train, label=train["a"] + 10 * train["b"])
    booster = xgb.train({"max_depth": 2, "verbosity": 0}, dtrain, num_boost_round=3)
    rows = pd.DataFrame(rng.normal(size=(4, 3)), columns=["a", "b", "c"])
    rows[["c", "a", "b"]].to_csv(tmp_path / "cab.csv", index=False)
    _refused(tmp_path / "o", InputError, r"\['c', 'a', 'b'\].*\['a', 'b', 'c'\].*another order",
             booster, str(tmp_path / "cab.csv"), method="feature_ablation")
    rows.to_csv(tmp_path / "abc.csv", index=False)
    attr = _run(booster, str(tmp_path / "abc.csv"), tmp_path / "ok", method="feature_ablation",
                baseline=0.0)
    assert attr.player_names == ["a", "b", "c"]
