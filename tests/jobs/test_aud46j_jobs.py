"""aud46j: dataset jobs -- a data file rewritten while the job runs, a manifest that cannot be
written, factories handed over as objects, models needing forward arguments, sklearn objects on
worker processes.

* A ``.npy`` is memory-mapped and read again by every shard: ``np.save`` over it after shard 0
  gave the later shards the new rows while ``manifest.json`` and ``result.npz`` carried the old
  rows' fingerprint (the job finished without a word; 0.62 off on an MLP). Each shard now checks
  its rows against a digest taken when the job started.
* A full disk while writing ``manifest.json`` gave the bare ``OSError: [Errno 28]``, where every
  other write of a job names its file and the fix.
* A factory handed over as the model object (``functools.partial(make, hidden=32)``, the way to
  give a factory keyword arguments) was called on each shard's rows and failed there naming
  the model's inputs; ``'mod:make(hidden=32)'`` said only that the module has no such attribute.
* A model that needs ``forward_args`` / ``forward_kwargs`` was not probed (its outputs on the
  first rows, kept in the manifest), so a resume after its code changed was accepted.
* A fitted scikit-learn forest or pipeline object was refused by every worker process: its
  pickle bytes (the fingerprint) change in a round trip.

Truths: ``f(x) = sum_j (j + 1) x_j`` has exact Shapley values ``(j + 1) x_j`` at baseline 0; one
:func:`tribute.explain` call on all rows; the local backend's bytes.
"""

from __future__ import annotations

import enum
import errno
import functools
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import tribute
import tribute.jobs.api
from tribute.errors import InputError, TributeError


class Weighted:
    """f(x) = sum_j (j + 1) x_j (picklable; Shapley values at baseline 0 are (j + 1) x_j)."""

    def __call__(self, x: Any) -> Any:
        x = np.asarray(x, dtype=np.float64)
        return (x * np.arange(1, x.shape[1] + 1)).sum(1, keepdims=True)


def _truth(X: np.ndarray) -> np.ndarray:
    return X.astype(np.float64) * np.arange(1, X.shape[1] + 1)


def _job(path: Path, out: Path, **kw: Any) -> tribute.Attribution:
    return tribute.explain_dataset(Weighted(), path, out=out, method="exact_shapley", baseline=0.0,
                                   shard_size=4, progress=False, **kw)


def _rewrite_after_first_shard(monkeypatch: pytest.MonkeyPatch, path: Path, new: np.ndarray) -> None:
    """``np.save(path, new)`` (in place: the memory map sees it) once shard 0 is on disk."""
    write = tribute.jobs.api.atomic_write  # type: ignore[attr-defined]

    def hooked(p: Path, payload: bytes) -> None:
        write(p, payload)
        if p.name == "shard-000000.npz":
            np.save(path, new)

    monkeypatch.setattr(tribute.jobs.api, "atomic_write", hooked)


def test_a_data_file_rewritten_while_the_job_runs_is_refused(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    X = np.random.default_rng(0).normal(size=(12, 5))
    path, out = tmp_path / "X.npy", tmp_path / "run"
    np.save(path, X)
    Y = X.copy()
    Y[9, 1] += 1.0  # one value of shard 2
    _rewrite_after_first_shard(monkeypatch, path, Y)
    with pytest.raises(InputError, match=r"rows 8\.\.11 of .*X\.npy \(shard 2\) are not the rows the job started"):
        _job(path, out)
    assert not (out / "result.npz").exists()
    assert not (out / "shards" / "shard-000002.npz").exists()
    monkeypatch.undo()
    np.save(path, X)  # the file restored: the job resumes, and every row explains X
    attr = _job(path, out, resume=True)
    np.testing.assert_allclose(np.asarray(attr.values).reshape(12, 5), _truth(X), rtol=0, atol=1e-12)


def test_a_rewrite_with_the_same_rows_or_of_rows_already_done_still_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neighbours the check must not refuse: the same rows written again, and a change to rows
    of shard 0 (already explained with the old values, which the manifest describes)."""
    X = np.random.default_rng(1).normal(size=(10, 3)).astype(np.float32)
    for k, new in enumerate([X.copy(), np.where(np.arange(10)[:, None] == 1, X + 1, X)]):
        path, out = tmp_path / f"X{k}.npy", tmp_path / f"run{k}"
        np.save(path, X)
        _rewrite_after_first_shard(monkeypatch, path, new.astype(np.float32))
        attr = _job(path, out)
        monkeypatch.undo()
        np.testing.assert_allclose(np.asarray(attr.values).reshape(10, 3), _truth(X), rtol=1e-6, atol=1e-6)


def test_a_full_disk_writing_the_manifest_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    X = np.random.default_rng(2).normal(size=(6, 3))
    path, out = tmp_path / "X.npy", tmp_path / "run"
    np.save(path, X)
    fsync = os.fsync

    def full(fd: int) -> None:
        import stat

        if stat.S_ISREG(os.fstat(fd).st_mode):  # the first file written is the manifest
            raise OSError(errno.ENOSPC, "No space left on device")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(TributeError, match=r"manifest\.json.*No space left.*nothing of the job was written"):
        _job(path, out)
    monkeypatch.undo()
    left = [q for q in out.rglob("*") if q.is_file()] if out.exists() else []
    assert left == []  # no manifest, shard or temporary file
    attr = _job(path, out)  # the same folder takes the job afterwards
    np.testing.assert_allclose(np.asarray(attr.values).reshape(6, 3), _truth(X), rtol=0, atol=1e-12)


def make_factory() -> Weighted:
    """A factory (no inputs): handed over as the object by mistake."""
    return Weighted()


def make_with_width(width: int = 3, *, scale: float = 1.0) -> Weighted:
    return Weighted()


@pytest.mark.parametrize("factory", [make_factory, functools.partial(make_with_width, width=4),
                                     functools.partial(make_with_width, 4, scale=2.0)])
def test_a_factory_passed_as_the_model_is_refused_naming_the_fix(tmp_path: Path, factory: Any) -> None:
    """Before: each shard called the factory on its rows ("the model failed on the inputs
    (shapes (4, 3)): make_with_width() got multiple values for argument 'width'")."""
    X = np.ones((5, 3))
    with pytest.raises(InputError, match=r"takes no inputs, so it cannot be the model.*'pkg\.module:factory'"):
        tribute.explain_dataset(factory, X, out=tmp_path / "run", method="exact_shapley", baseline=0.0,
                                progress=False)
    assert not (tmp_path / "run").exists()


def test_a_factory_spec_with_arguments_is_refused_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"takes no arguments.*def make_wide\(\): return make\(hidden=32\)"):
        tribute.explain_dataset("jobs_fixtures:make(hidden=32)", np.ones((5, 3)), out=tmp_path / "run",
                                method="exact_shapley", baseline=0.0, progress=False)


def _plain(x: Any) -> Any:
    return Weighted()(x)


def _with_weights(x: Any, w: Any = None) -> Any:
    return np.asarray(x, dtype=np.float64) @ (np.arange(1.0, 4.0) if w is None else w)[:, None]


def _weights_first(w: Any, x: Any) -> Any:
    return np.asarray(x, dtype=np.float64) @ np.asarray(w)[:, None]


def _several(*inputs: Any) -> Any:
    return Weighted()(inputs[0])


class _Module(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.double() * torch.arange(1.0, 4.0, dtype=torch.float64)).sum(1, keepdim=True)


def test_models_that_are_functions_still_run(tmp_path: Path) -> None:
    """Neighbours of the refusal: functions and partials that take the inputs are models."""
    from sklearn.linear_model import LinearRegression

    X = np.random.default_rng(3).normal(size=(5, 3))
    reg = LinearRegression().fit(X, X @ np.arange(1.0, 4.0))
    models: list[Any] = [
        Weighted(), _plain, Weighted().__call__, _with_weights,
        functools.partial(_with_weights, w=np.arange(1.0, 4.0)),
        functools.partial(_weights_first, np.arange(1.0, 4.0)), _several, _Module(), reg,
        reg.predict,
    ]
    for k, model in enumerate(models):
        attr = tribute.explain_dataset(model, X, out=tmp_path / f"run{k}", method="exact_shapley",
                                       baseline=0.0, progress=False)
        # every model is x @ [1, 2, 3] (+ an intercept for the regression): credits (j + 1) x_j
        np.testing.assert_allclose(np.asarray(attr.values).reshape(5, 3), _truth(X), rtol=1e-6, atol=1e-6,
                                   err_msg=f"model {k}")


class Act(enum.Enum):
    TANH = "tanh"
    RELU = "relu"


#: read by ScaledNet.forward only: a change is a change of the model's code, not of its weights
ACT = Act.TANH


class ScaledNet(torch.nn.Module):
    """``l2(act(l1(x) * scale + shift))``: needs ``scale`` (and optionally ``shift``) as forward
    arguments, so the job's probe of the model must pass them."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)
        rng = np.random.default_rng(0)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.from_numpy(rng.normal(0, 0.7, size=tuple(p.shape))))

    def forward(self, x: torch.Tensor, scale: torch.Tensor, shift: Any = 0.0) -> torch.Tensor:
        h = self.l1(x) * scale + shift
        out: torch.Tensor = self.l2(torch.tanh(h) if ACT is Act.TANH else torch.relu(h))
        return out


def _forward_job(out: Path, X: np.ndarray, how: str, resume: bool = False) -> tribute.Attribution:
    kw: dict[str, Any] = {}
    if how == "kwargs":
        kw["forward_kwargs"] = {"scale": torch.tensor(1.5)}
    elif how == "args":
        kw["forward_args"] = (torch.tensor(1.5),)
    else:  # a per-row shift, sliced per shard (and to the probe's rows)
        kw["forward_kwargs"] = {"scale": torch.tensor(1.5), "shift": torch.linspace(-1, 1, len(X))[:, None]}
    return tribute.explain_dataset(ScaledNet(), X, out=out, method="exact_shapley", baseline=0.0,
                                   target=0, shard_size=4, progress=False, resume=resume, **kw)


@pytest.mark.parametrize("how", ["kwargs", "args", "per_row"])
def test_a_model_needing_forward_arguments_is_probed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     how: str) -> None:
    """Before: no probe when forward_args/forward_kwargs were given, so a resume after a change of
    the model's code (an Enum read in forward, weights unchanged) was accepted and mixed shards
    of two models (1.15 off on rows 4..7, measured)."""
    X = np.random.default_rng(4).normal(size=(8, 4)).astype(np.float32)
    out = tmp_path / "run"
    _forward_job(out, X, how)
    (out / "shards" / "shard-000001.npz").unlink()
    (out / "result.npz").unlink()
    monkeypatch.setattr(sys.modules[__name__], "ACT", Act.RELU)
    with pytest.raises(InputError, match="the model's outputs on the first 4 data rows changed"):
        _forward_job(out, X, how, resume=True)
    monkeypatch.undo()
    attr = _forward_job(out, X, how, resume=True)  # the same code resumes
    # truth: one call on all rows, with the same forward arguments (per-row ones whole)
    net = ScaledNet()
    kw: dict[str, Any] = {"forward_kwargs": {"scale": torch.tensor(1.5)}}
    if how == "args":
        kw = {"forward_args": (torch.tensor(1.5),)}
    elif how == "per_row":
        kw["forward_kwargs"]["shift"] = torch.linspace(-1, 1, len(X))[:, None]
    one = tribute.explain(net, torch.from_numpy(X), method="exact_shapley", baseline=0.0, target=0, **kw)
    np.testing.assert_allclose(np.asarray(attr.values), np.asarray(one.values), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_fitted_forest_object_runs_on_worker_processes(tmp_path: Path) -> None:
    """A fitted RandomForestClassifier (and a Pipeline with a OneHotEncoder) pickles to other
    bytes after a round trip, so every worker refused it: "the model rebuilt in worker process
    ... has fingerprint c219cf13a0e1..., the driver's has 273d39ba5391...; the factory is not
    deterministic". Truth: one call on all rows (exact Shapley, deterministic) and the local
    backend's bytes."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    rf = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, (X[:, 0] > 0).astype(int))
    rows, base = X[:9], X.mean(0)
    outs = {}
    for backend, workers in (("local", 1), ("processes", 2)):
        outs[backend] = tmp_path / backend
        attr = tribute.explain_dataset(rf, rows, out=outs[backend], method="exact_shapley", baseline=base,
                                       target=1, shard_size=4, progress=False, backend=backend,
                                       workers=workers)
    one = tribute.explain(rf, rows, method="exact_shapley", baseline=base, target=1)
    np.testing.assert_allclose(np.asarray(attr.values), np.asarray(one.values), rtol=0, atol=1e-12)
    assert (outs["processes"] / "result.npz").read_bytes() == (outs["local"] / "result.npz").read_bytes()
