"""aud49j: dataset jobs and ``tribute explain`` -- the dtype a model without floating parameters
computes in.

* A torch module whose weights are buffers (or that has no weights at all) was fed float32 rows
  by every dataset job and by ``tribute explain --data X.npy``, although the data were float64
  and :func:`tribute.explain` computes such a module in the buffers' dtype, else the inputs' own.
  Measured: exact Shapley of ``sum_j (j + 1) x_j`` came back float32, 1.3e-7 off the closed form
  (one call: 4.4e-16), and a float64 threshold that float32 rounding crosses gave a credit of
  1.0 where the truth is 0.0. Jobs and the command line now use the same dtype rule as one call.

Truths: ``f(x) = sum_j (j + 1) x_j`` has exact Shapley values ``(j + 1) x_j`` at baseline 0; a
one-feature step ``1[x_0 > t]`` credits feature 0 with ``f(x) - f(0)``; one
:func:`tribute.explain` call on all rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.cli import main

WEIGHTS = np.arange(1.0, 5.0)


class BufferLinear(torch.nn.Module):
    """``sum_j (j + 1) x_j`` with its weights as a float64 buffer (no parameters)."""

    w: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("w", torch.tensor(WEIGHTS, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).sum(-1, keepdim=True)


class NoWeights(torch.nn.Module):
    """The same function with no parameters and no buffers: computes in the inputs' dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * torch.arange(1, 5, dtype=x.dtype)).sum(-1, keepdim=True)


class Step(torch.nn.Module):
    """``1[x_0 > t]`` with a float64 threshold buffer (one per feature; only x_0 counts)."""

    t: torch.Tensor

    def __init__(self, t: float) -> None:
        super().__init__()
        self.register_buffer("t", torch.full((4,), t, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > self.t)[:, :1].to(torch.float64)


def make_buffer_linear() -> torch.nn.Module:
    return BufferLinear()


def make_no_weights() -> torch.nn.Module:
    return NoWeights()


def _rows() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(5, 4))


@pytest.mark.parametrize("make", [BufferLinear, NoWeights])
@pytest.mark.parametrize("shard_size", [1, 2, 64])
def test_a_model_without_floating_parameters_keeps_float64_rows_in_a_job(tmp_path: Path, make: Any,
                                                                        shard_size: int) -> None:
    X = _rows()
    attr = tribute.explain_dataset(make(), X, out=tmp_path / "o", method="exact_shapley", baseline=0.0,
                                   shard_size=shard_size, progress=False)
    values = np.asarray(attr.values)
    assert values.dtype == np.float64
    np.testing.assert_allclose(values, X * WEIGHTS, rtol=0, atol=1e-12)


def test_a_float64_threshold_is_not_crossed_by_a_float32_cast(tmp_path: Path) -> None:
    # t lies between x_0 and its float32 rounding: in float64 x_0 > t, in float32 it is not
    x0 = 0.0999999977
    t = 0.0999999976
    assert x0 > t and float(np.float32(x0)) < t
    X = np.array([[x0, 1.0, 2.0, 3.0]])
    attr = tribute.explain_dataset(Step(t), X, out=tmp_path / "o", method="exact_shapley",
                                   baseline=0.0, progress=False)
    np.testing.assert_array_equal(np.asarray(attr.values), [[1.0, 0.0, 0.0, 0.0]])


@pytest.mark.parametrize(("suffix", "job"), [(".npy", False), (".npy", True), (".csv", True)])
def test_the_command_line_keeps_float64_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             suffix: str, job: bool) -> None:
    X = _rows()
    data = tmp_path / f"X{suffix}"
    if suffix == ".npy":
        np.save(data, X)
    else:
        pd = pytest.importorskip("pandas")
        pd.DataFrame(X, columns=list("abcd")).to_csv(data, index=False)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    out = tmp_path / "o"
    argv = ["explain", "--model", "test_aud49j_jobs:make_buffer_linear", "--data", str(data), "--out",
            str(out), "--method", "exact_shapley", "--baseline", "0", "--no-progress"]
    assert main(argv + (["--shard-size", "2"] if job and suffix == ".npy" else [])) == 0
    attr = tribute.Attribution.load(out / ("result.npz" if job else "attribution.npz"))
    np.testing.assert_allclose(np.asarray(attr.values), X * WEIGHTS, rtol=0, atol=1e-12)


class _F32Params(torch.nn.Module):
    scale: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)
        self.register_buffer("scale", torch.tensor(2.0, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) * self.scale.to(x.dtype)


class _IntParamFloatBuffer(torch.nn.Module):
    b: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.k = torch.nn.Parameter(torch.tensor([1, 2, 3, 4]), requires_grad=False)
        self.register_buffer("b", torch.tensor(0.5, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.k + self.b).sum(-1, keepdim=True)


def numpy_linear(x: np.ndarray) -> np.ndarray:
    return x @ WEIGHTS[:, None].astype(x.dtype)


def _mlp(dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).to(dtype)


def _neighbours() -> list[tuple[str, Any, np.ndarray]]:
    X = _rows()
    return [
        ("f32 MLP, f64 rows", _mlp(torch.float32), X),
        ("f32 MLP, f32 rows", _mlp(torch.float32), X.astype(np.float32)),
        ("f64 MLP, f32 rows", _mlp(torch.float64), X.astype(np.float32)),
        ("f64 MLP, f64 rows", _mlp(torch.float64), X),
        ("f32 params + f64 buffer", _F32Params(), X),
        ("int params + f64 buffer, f32 rows", _IntParamFloatBuffer(), X.astype(np.float32)),
        ("no weights, f32 rows", NoWeights(), X.astype(np.float32)),
        ("buffers only, f32 rows", BufferLinear(), X.astype(np.float32)),
        ("no weights, int rows", NoWeights(), np.arange(20).reshape(5, 4)),
        ("a numpy function", numpy_linear, X),
        ("a numpy function, f32 rows", numpy_linear, X.astype(np.float32)),
    ]


@pytest.mark.parametrize("case", range(len(_neighbours())))
def test_jobs_equal_one_call_on_other_dtypes(tmp_path: Path, case: int) -> None:
    name, model, X = _neighbours()[case]
    kw: dict[str, Any] = {"method": "exact_shapley", "baseline": 0.0}
    if isinstance(model, torch.nn.Module) and any(p.numel() == 12 for p in model.parameters()):
        kw["target"] = 1
    one = tribute.explain(model, X if not isinstance(model, torch.nn.Module) else torch.from_numpy(X), **kw)
    job = tribute.explain_dataset(model, X, out=tmp_path / "o", shard_size=2, progress=False, **kw)
    want = one.values.numpy() if isinstance(one.values, torch.Tensor) else np.asarray(one.values)
    got = np.asarray(job.values)
    # one call returns the inputs' dtype, a job the dtype the model computed in; float32 sums of
    # other batch shapes may differ in the last bit (README: batch_size for bit-identical calls)
    eps = max(np.finfo(got.dtype).eps, np.finfo(want.dtype).eps)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=2 * eps,
                               atol=2 * eps * np.abs(want).max(), err_msg=name)


# -- resuming across tribute code changes under one version string -------------------------
def _job(out: Path, resume: bool = False) -> Any:
    return tribute.explain_dataset(BufferLinear(), _rows(), out=out, method="exact_shapley", baseline=0.0,
                                   shard_size=2, progress=False, resume=resume)


def _edit_manifest(out: Path, **changes: Any) -> None:
    import json

    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            manifest.pop(k, None)
        else:
            manifest[k] = v
    path.write_text(json.dumps(manifest))


def _drop_last_shard(out: Path) -> None:
    sorted((out / "shards").glob("shard-*.npz"))[-1].unlink()
    (out / "result.npz").unlink()


def test_a_resume_by_other_tribute_code_of_the_same_version_warns(tmp_path: Path) -> None:
    # stop 48 changed text sobol credits by 0.17-0.31 without a version change: a job started
    # before and resumed after would mix shards computed two ways, silently
    out = tmp_path / "o"
    first = _job(out)
    _drop_last_shard(out)
    _edit_manifest(out, tribute_code="0" * 64)
    with pytest.warns(UserWarning, match=r"other tribute code \(same version .*000000000000 -> .*"
                                         r"method 'exact_shapley'.*anew in another folder"):
        again = _job(out, resume=True)
    np.testing.assert_array_equal(np.asarray(again.values), np.asarray(first.values))


def test_a_resume_by_the_same_code_or_of_an_older_manifest_does_not_warn(tmp_path: Path) -> None:
    import warnings

    out = tmp_path / "o"
    first = _job(out)
    for older in (False, True):
        _drop_last_shard(out)
        if older:  # written before the code digest was recorded: nothing to compare
            _edit_manifest(out, tribute_code=None)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            again = _job(out, resume=True)
        np.testing.assert_array_equal(np.asarray(again.values), np.asarray(first.values))


def test_a_resume_by_another_tribute_version_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "o"
    _job(out)
    _drop_last_shard(out)
    _edit_manifest(out, tribute_version="0.0.9")
    with pytest.raises(tribute.InputError, match=r"tribute_version: \"0.0.9\" -> "):
        _job(out, resume=True)


# -- result.parquet of a table whose columns are named like the file's own columns ----------
@pytest.mark.parametrize("names", [["row", "b", "c"], ["a", "target", "c"], ["target", "row", "c"]])
def test_a_table_column_named_row_or_target_gets_its_parquet(tmp_path: Path, names: list[str]) -> None:
    # every shard ran, result.npz was written, then pandas refused the frame: "cannot insert
    # row, already exists" (a bare ValueError; no result.parquet, no summary.json)
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame(_rows()[:, :3], columns=names)
    coef = np.array([1.5, -2.0, 0.5])
    model = LinearRegression().fit(X, X.to_numpy() @ coef + 1.0)
    out = tmp_path / "o"
    tribute.explain_dataset(model, X, out=out, method="exact_shapley", baseline=0.0, shard_size=2,
                            progress=False)
    frame = pd.read_parquet(out / "result.parquet")
    players = [f"{j}:{nm}" for j, nm in enumerate(names)]  # position and name, as for repeated names
    assert list(frame.columns)[-3:] == players
    np.testing.assert_allclose(frame[players].to_numpy(), X.to_numpy() * model.coef_, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(frame["row"].to_numpy(), np.arange(5))
    assert (out / "summary.json").is_file()


def test_a_player_named_like_a_stderr_column_gets_its_parquet(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame(_rows()[:, :3], columns=["a", "stderr:a", "c"])
    model = LinearRegression().fit(X, X.to_numpy() @ np.array([1.0, 2.0, 3.0]))
    out = tmp_path / "o"
    attr = tribute.explain_dataset(model, X, out=out, method="kernel_shap", budget=16, shard_size=2,
                                   progress=False)
    frame = pd.read_parquet(out / "result.parquet")
    assert len(set(frame.columns)) == len(frame.columns)
    np.testing.assert_array_equal(frame[["0:a", "1:stderr:a", "2:c"]].to_numpy(), np.asarray(attr.values))
    assert attr.stderr is not None
    np.testing.assert_array_equal(frame[["stderr:0:a", "stderr:1:stderr:a", "stderr:2:c"]].to_numpy(),
                                  np.asarray(attr.stderr))


def test_ordinary_player_names_keep_their_parquet_columns(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame(_rows()[:, :3], columns=["rows", "targets", "index"])
    model = LinearRegression().fit(X, X.to_numpy() @ np.array([1.0, 2.0, 3.0]))
    out = tmp_path / "o"
    tribute.explain_dataset(model, X, out=out, method="exact_shapley", baseline=0.0, progress=False)
    assert list(pd.read_parquet(out / "result.parquet").columns)[-3:] == ["rows", "targets", "index"]


def test_shards_of_two_dtypes_are_refused_naming_the_cause(tmp_path: Path) -> None:
    # a job started before this fix (float32 shards of a buffer-only model) and resumed after it
    # (float64 shards) was refused as "the output folder was modified by hand"
    import shutil

    X = _rows()
    kw: dict[str, Any] = {"method": "exact_shapley", "baseline": 0.0, "shard_size": 2, "progress": False}
    tribute.explain_dataset(NoWeights(), X, out=tmp_path / "a", **kw)
    tribute.explain_dataset(NoWeights(), X.astype(np.float32), out=tmp_path / "b", **kw)
    shutil.copy(tmp_path / "b" / "shards" / "shard-000002.npz", tmp_path / "a" / "shards" / "shard-000002.npz")
    (tmp_path / "a" / "result.npz").unlink()
    with pytest.raises(tribute.InputError, match=r"shard 2 holds float32 credits and shard 0 float64: "
                                                 r"the shards were computed by different tribute code"):
        tribute.explain_dataset(NoWeights(), X, out=tmp_path / "a", resume=True, **kw)
