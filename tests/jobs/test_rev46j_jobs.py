"""rev46j: review of aud46j's dataset-job checks.

* The new refusal of a factory handed over as the model object asked ``inspect.signature(model)
  .bind(None)``, so every plain-function model of two inputs (``def f(ids, mask)``) or with
  forward arguments (``def f(x, scale)`` with ``forward_args`` / ``forward_kwargs``) was refused
  as "takes no inputs, so it cannot be the model", though one :func:`tribute.explain` call and
  the jobs before aud46j took them. Now only a function without any positional parameter (a
  factory: ``make()``, ``functools.partial(make, hidden=32)``) is refused.
* Workers no longer re-fingerprint a model object that is not a torch module (its pickle bytes
  change in a round trip); the driver still fingerprints it, so a fitted model that changed
  between the start and the resume of a job is refused.

Truths: ``f(x) = scale * sum_j (j + 1) x_j`` has exact Shapley values ``scale * (j + 1) x_j`` at
baseline 0 (for two inputs, each input's features likewise).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tribute
from tribute.errors import InputError

X = np.random.default_rng(0).normal(size=(6, 3))
M = np.random.default_rng(1).normal(size=(6, 3))
W = np.arange(1.0, 4.0)


def _two_inputs(x: Any, m: Any) -> Any:
    return np.asarray(x, dtype=np.float64) @ W + np.asarray(m, dtype=np.float64) @ W


def _scaled(x: Any, scale: Any) -> Any:
    return (np.asarray(x, dtype=np.float64) @ W) * scale


def _scaled_kwonly(x: Any, *, scale: Any) -> Any:
    return (np.asarray(x, dtype=np.float64) @ W) * scale


def _positional_only(x: Any, scale: Any, /) -> Any:
    return (np.asarray(x, dtype=np.float64) @ W) * scale


@pytest.mark.parametrize("model, kw", [
    (_scaled, {"forward_args": (2.0,)}),
    (_scaled, {"forward_kwargs": {"scale": 2.0}}),
    (_scaled_kwonly, {"forward_kwargs": {"scale": 2.0}}),
    (_positional_only, {"forward_args": (2.0,)}),
    (functools.partial(_scaled), {"forward_kwargs": {"scale": 2.0}}),
])
def test_a_function_model_with_forward_arguments_still_runs(tmp_path: Path, model: Any,
                                                            kw: dict[str, Any]) -> None:
    """Before: InputError "model: _scaled(x, scale) takes no inputs, so it cannot be the model"."""
    attr = tribute.explain_dataset(model, X, out=tmp_path / "run", method="exact_shapley", baseline=0.0,
                                   shard_size=4, progress=False, **kw)
    np.testing.assert_allclose(np.asarray(attr.values).reshape(6, 3), 2.0 * X * W, rtol=0, atol=1e-12)


def test_a_function_model_of_two_inputs_still_runs(tmp_path: Path) -> None:
    """Before: InputError "model: _two_inputs(x, m) takes no inputs, so it cannot be the model"."""
    attr = tribute.explain_dataset(_two_inputs, (X, M), out=tmp_path / "run", method="exact_shapley",
                                   baseline=0.0, shard_size=4, progress=False)
    values = attr.values if isinstance(attr.values, tuple) else (attr.values,)
    got = np.concatenate([np.asarray(v).reshape(6, -1) for v in values], axis=1)
    np.testing.assert_allclose(got, np.concatenate([X * W, M * W], axis=1), rtol=0, atol=1e-12)


def make_two(hidden: int = 3) -> Any:
    return _two_inputs


@pytest.mark.parametrize("factory", [make_two, functools.partial(make_two, hidden=4), lambda: _two_inputs])
def test_a_factory_object_without_positional_parameters_is_still_refused(tmp_path: Path, factory: Any) -> None:
    """The neighbours of the fix: a factory that can take a positional argument (``make_two``)
    is not told apart from a model and fails in the shard as before; keyword-only or
    no parameters are refused before anything is written."""
    if factory is make_two:  # binds one positional: left to the shard (as before aud46j)
        with pytest.raises(Exception, match="shard 0"):
            tribute.explain_dataset(factory, X, out=tmp_path / "run", method="exact_shapley",
                                    baseline=0.0, progress=False)
        return
    with pytest.raises(InputError, match=r"takes no inputs, so it cannot be the model"):
        tribute.explain_dataset(factory, X, out=tmp_path / "run", method="exact_shapley", baseline=0.0,
                                progress=False)
    assert not (tmp_path / "run").exists()


def test_a_fitted_model_changed_between_start_and_resume_is_refused(tmp_path: Path) -> None:
    """Workers no longer fingerprint model objects; the driver does, so the resume is refused."""
    from sklearn.ensemble import RandomForestRegressor

    y = X @ W
    rf0 = RandomForestRegressor(n_estimators=4, random_state=0).fit(X, y)
    rf1 = RandomForestRegressor(n_estimators=4, random_state=1).fit(X, y)
    kw: dict[str, Any] = {"method": "exact_shapley", "baseline": 0.0, "shard_size": 2, "progress": False}
    full = tribute.explain_dataset(rf0, X, out=tmp_path / "full", **kw)
    out = tmp_path / "run"
    tribute.explain_dataset(rf0, X, out=out, **kw)
    os.remove(out / "shards" / "shard-000002.npz")
    os.remove(out / "result.npz")
    with pytest.raises(InputError, match=r"cannot be resumed.*model\.sha256"):
        tribute.explain_dataset(rf1, X, out=out, resume=True, **kw)
    assert not (out / "shards" / "shard-000002.npz").exists()
    again = tribute.explain_dataset(rf0, X, out=out, resume=True, **kw)  # the same model resumes
    np.testing.assert_array_equal(np.asarray(again.values), np.asarray(full.values))
    assert (out / "result.npz").read_bytes() == (tmp_path / "full" / "result.npz").read_bytes()
