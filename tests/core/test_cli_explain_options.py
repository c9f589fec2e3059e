"""`tribute explain` single runs (audit aud32c): each option gives what `tribute.explain` gives,
and bad option values exit 2 with one line naming the option (no traceback)."""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import tribute
from tribute.cli import main
from tribute.models import load_weights
from tribute_testing import factory_module

FACTORY = textwrap.dedent(
    """
    import numpy as np
    import torch

    def make_mlp():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))

    def make_forest():
        from sklearn.ensemble import RandomForestRegressor

        rng = np.random.default_rng(0)
        x = rng.normal(size=(60, 6))
        y = 2 * x[:, 0] + x[:, 1] * x[:, 2]
        return RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0).fit(x, y)

    def make_numpy():
        w = np.arange(18, dtype=float).reshape(6, 3) / 10 - 0.8
        return lambda x: np.tanh(x @ w)
    """
)


@pytest.fixture
def proj(tmp_path: Path) -> Iterator[Path]:
    with factory_module(tmp_path, "aud32c_factory", FACTORY) as aud32c_factory:
        model = aud32c_factory.make_mlp()
        torch.manual_seed(1)
        for p in model.parameters():
            p.data.normal_()
        save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
        rng = np.random.default_rng(0)
        np.save(tmp_path / "x.npy", rng.normal(size=(5, 6)).astype(np.float32))
        np.save(tmp_path / "t.npy", np.array([0, 1, 2, 1, 0]))
        yield tmp_path


def _run(proj: Path, *extra: str, out: str = "out") -> int:
    return main(["explain", "--model", "aud32c_factory:make_mlp", "--weights",
                 str(proj / "w.safetensors"), "--data", str(proj / "x.npy"), "--no-progress",
                 "--out", str(proj / out), *extra])


def _api(proj: Path, limit: int | None = None, **kw: Any) -> tribute.Attribution:
    import aud32c_factory

    model = aud32c_factory.make_mlp()
    load_weights(model, str(proj / "w.safetensors"))
    model.eval()
    x = torch.from_numpy(np.load(proj / "x.npy"))[:limit]
    return tribute.explain(model, x, progress=False, **kw)


def test_target_file_is_one_class_per_sample_sliced_by_limit(proj):
    # before: --target t.npy crashed with "invalid literal for int()" (a traceback, exit 1)
    assert _run(proj, "--method", "exact_shapley", "--target", str(proj / "t.npy"),
                "--limit", "3") == 0
    got = tribute.Attribution.load(proj / "out" / "attribution.npz")
    want = _api(proj, limit=3, method="exact_shapley", target=np.array([0, 1, 2]))
    assert got.targets is not None and np.array_equal(got.targets, [0, 1, 2])
    assert np.array_equal(got.flat(), want.flat())


@pytest.mark.parametrize(("flag", "value", "words"), [
    ("--target", "cat", "target='cat' is not understood"),
    ("--target", "", "--target '' holds an empty entry"),
    ("--target", "1,,2", "holds an empty entry"),
    ("--groups", "patch:abc", "--groups 'patch:abc': the patch size must be a positive int"),
    ("--groups", "patch:0", "the patch size must be a positive int"),
    ("--param", "budget=10", "budget has its own option; use --budget"),
    ("--param", "seed=3", "use --seed"),
])
def test_bad_option_values_exit_2_with_one_line(proj, capsys, flag, value, words):
    # before: ValueError / IndexError / TypeError tracebacks (exit 1)
    assert _run(proj, "--method", "exact_shapley", flag, value) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


@pytest.mark.parametrize(("flag", "value"), [("--limit", "0"), ("--limit", "-2"), ("--seed", "-1")])
def test_limit_and_seed_out_of_range_are_refused(proj, capsys, flag, value):
    # before: --limit 0 explained every row, --limit -2 every row but the last two (silently);
    # --seed -1 crashed inside numpy's SeedSequence for a stochastic method
    with pytest.raises(SystemExit) as e:
        _run(proj, "--method", "kernel_shap", "--budget", "16", flag, value)
    assert e.value.code == 2
    assert f"argument {flag}: {value}" in capsys.readouterr().err


def test_target_class_labels_reach_explain(proj):
    from tribute.cli import _parse_target

    assert _parse_target("cat") == "cat"
    assert _parse_target("cat,dog") == ["cat", "dog"]
    assert _parse_target("0, 2") == [0, 2]
    assert _parse_target(" 3") == 3
    np.testing.assert_array_equal(_parse_target(str(proj / "t.npy"), 2), [0, 1])


def test_nan_stderr_still_writes_the_views(proj, capsys):
    # kernel_shap on 6 players with budget 32: one sample's standard errors are not estimable
    # (NaN, with a StderrWarning); before, the PNG/HTML step crashed with "stderr contains 6 NaN
    # value(s)" after attribution.npz was written (exit 1, a stale PNG/HTML left beside it)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["explain", "--model", "aud32c_factory:make_numpy", "--data",
                   str(proj / "x.npy"), "--method", "kernel_shap", "--budget", "32",
                   "--baseline", "0", "--no-progress", "--out", str(proj / "o")])
    assert rc == 0
    got = tribute.Attribution.load(proj / "o" / "attribution.npz")
    se = got.flat_stderr()
    assert se is not None and np.isnan(se).any()
    assert (proj / "o" / "attribution.png").is_file() and (proj / "o" / "attribution.html").is_file()


def test_negative_seed_is_refused_by_the_api_before_any_work():
    f = lambda x: x.sum(1)  # noqa: E731
    x = np.ones((2, 4))
    with pytest.raises(tribute.InputError, match="seed=-1 must be a non-negative int"):
        tribute.explain(f, x, method="kernel_shap", baseline=0.0, budget=16, seed=-1,
                        progress=False)
    seed: Any = np.int64(2)  # a numpy integer is an int seed too
    attr = tribute.explain(f, x, method="kernel_shap", baseline=0.0, budget=16, seed=seed,
                           progress=False)
    assert attr.params["seed"] == 2
    with pytest.raises(tribute.InputError, match="seed=-3 must be a non-negative int"):
        tribute.evaluate(f, x, attr, metric="deletion", seed=-3)


@pytest.mark.parametrize("option", ["--baseline", "--groups"])
def test_limit_slices_per_sample_baseline_and_groups(proj, option):
    # a baseline (or groups mask) with one row per --data row: `--limit 3` must explain what the
    # first 3 rows of the full run explain; before, the 5-row baseline met 3 inputs and was read
    # as a background set (credits off by up to 0.8), and the 5-row mask was refused
    rng = np.random.default_rng(5)
    per_sample = (rng.normal(size=(5, 6)).astype(np.float32) if option == "--baseline"
                  else np.array([[0, 0, 1, 1, 2, 2]] * 3 + [[0, 1, 1, 2, 2, 2]] * 2))
    np.save(proj / "per_sample.npy", per_sample)
    common = ("--method", "exact_shapley", "--target", "0", option, str(proj / "per_sample.npy"))
    assert _run(proj, *common, out="full") == 0
    assert _run(proj, *common, "--limit", "3", out="lim") == 0
    full = tribute.Attribution.load(proj / "full" / "attribution.npz")
    lim = tribute.Attribution.load(proj / "lim" / "attribution.npz")
    assert np.array_equal(lim.flat(), full.flat()[:3])


def test_limit_keeps_a_background_set_of_another_length(proj):
    from tribute.cli import limit_rows

    bg = np.zeros((10, 6))
    args = type("A", (), {"limit": 3, "n_data_rows": 5})()
    x = torch.zeros(3, 6)
    assert limit_rows(bg, args, x) is bg  # 10 rows != 5 data rows: a background set
    assert limit_rows(np.zeros(6), args, x).shape == (6,)  # one shared baseline
    assert limit_rows(np.zeros((5, 6)), args, x).shape == (3, 6)
    assert limit_rows(0.0, args, x) == 0.0


def test_feature_names_as_one_string_is_refused():
    # before: feature_names="abcd" named 4 players 'a', 'b', 'c', 'd' (a str is a sequence)
    f = lambda x: x.sum(1)  # noqa: E731
    with pytest.raises(tribute.InputError, match="feature_names='abcd' is one string"):
        tribute.explain(f, np.ones((2, 4)), method="exact_shapley", baseline=0.0,
                        feature_names="abcd", progress=False)
    with pytest.raises(tribute.InputError, match="seed=None must be a non-negative int"):
        tribute.explain(f, np.ones((2, 4)), method="exact_shapley", baseline=0.0,
                        seed=None, progress=False)  # type: ignore[arg-type]


def test_no_baseline_option_means_the_api_default(proj):
    # before: --baseline defaulted to the text "0", passed as baseline=0.0, so tree_shap (whose
    # "auto" mode is path-dependent unless a baseline is given) ran interventional against
    # zeros: credits off by up to 0.40 from tribute.explain(model, x, method="tree_shap")
    pytest.importorskip("sklearn")
    import aud32c_factory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["explain", "--model", "aud32c_factory:make_forest", "--data",
                     str(proj / "x.npy"), "--method", "tree_shap", "--no-progress",
                     "--out", str(proj / "t")]) == 0
        want = tribute.explain(aud32c_factory.make_forest(), np.load(proj / "x.npy"),
                               method="tree_shap", progress=False)
    got = tribute.Attribution.load(proj / "t" / "attribution.npz")
    assert np.array_equal(got.flat(), want.flat())
