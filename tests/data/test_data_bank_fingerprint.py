"""``fit_fingerprint``: what a retrain bank's manifest keys its ``fit`` by.

A bank refuses to resume with a different ``fit``; the fingerprint must therefore change with
everything the fit's behaviour depends on (closures, defaults, plain globals, bound arguments)
and must not change between processes (no memory addresses)."""

from __future__ import annotations

import functools
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tribute.errors import InputError
from tribute.games.data_bank import RetrainBank, fit_fingerprint
from tribute.games.data_fits import RidgeFit

EPOCHS = 3


def _make_fit(l2: float) -> Any:
    def fit(X: torch.Tensor, y: torch.Tensor, *, seed: int, weights: torch.Tensor | None = None) -> torch.nn.Module:
        return RidgeFit(l2=l2)(X, y, seed=seed, weights=weights)
    return fit


def _fit_with_default(X: torch.Tensor, y: torch.Tensor, *, seed: int, weights: torch.Tensor | None = None,
                      l2: float = 1.0) -> torch.nn.Module:
    return RidgeFit(l2=l2 * EPOCHS)(X, y, seed=seed, weights=weights)


def test_closure_values_change_the_fingerprint() -> None:
    assert fit_fingerprint(_make_fit(1.0)) == fit_fingerprint(_make_fit(1.0))
    assert fit_fingerprint(_make_fit(1.0)) != fit_fingerprint(_make_fit(2.0))


def test_arrays_in_a_closure_are_digested_by_content() -> None:
    def make(w: np.ndarray) -> Any:
        def fit(X: torch.Tensor) -> torch.Tensor:
            return X * torch.as_tensor(w)
        return fit
    assert fit_fingerprint(make(np.ones(3))) == fit_fingerprint(make(np.ones(3)))
    assert fit_fingerprint(make(np.ones(3))) != fit_fingerprint(make(np.array([1.0, 1.0, 2.0])))
    t = torch.zeros(4)
    before = fit_fingerprint(make(t.numpy()))
    t[0] = 1.0
    assert fit_fingerprint(make(t.numpy())) != before


def test_defaults_and_plain_globals_change_the_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    base = fit_fingerprint(_fit_with_default)
    monkeypatch.setattr(_fit_with_default, "__kwdefaults__", {"l2": 2.0})
    assert fit_fingerprint(_fit_with_default) != base
    monkeypatch.undo()
    assert fit_fingerprint(_fit_with_default) == base
    monkeypatch.setitem(globals(), "EPOCHS", 4)
    assert fit_fingerprint(_fit_with_default) != base


def test_partials_and_bound_methods_carry_their_arguments() -> None:
    p1 = functools.partial(_fit_with_default, l2=1.0)
    assert fit_fingerprint(p1) == fit_fingerprint(functools.partial(_fit_with_default, l2=1.0))
    assert fit_fingerprint(p1) != fit_fingerprint(functools.partial(_fit_with_default, l2=3.0))

    @dataclass
    class Trainer:
        l2: float
        hook: Any = None  # a function field: its repr carries a memory address

        def fit(self, X: torch.Tensor, y: torch.Tensor, *, seed: int,
                weights: torch.Tensor | None = None) -> torch.nn.Module:
            return RidgeFit(l2=self.l2)(X, y, seed=seed, weights=weights)

    assert fit_fingerprint(Trainer(1.0, print).fit) == fit_fingerprint(Trainer(1.0, print).fit)
    assert fit_fingerprint(Trainer(1.0).fit) != fit_fingerprint(Trainer(2.0).fit)
    hooked = Trainer(1.0, hook=_make_fit(1.0))
    assert " at 0x" in repr(hooked)
    assert fit_fingerprint(hooked.fit) == fit_fingerprint(Trainer(1.0, hook=_make_fit(1.0)).fit)
    assert fit_fingerprint(hooked.fit) != fit_fingerprint(Trainer(1.0, hook=_make_fit(5.0)).fit)


def test_a_function_that_refers_to_itself_terminates() -> None:
    def outer() -> Any:
        def fit(n: int) -> int:
            return 0 if n == 0 else fit(n - 1)
        return fit
    assert fit_fingerprint(outer()) == fit_fingerprint(outer())


def test_the_fingerprint_is_the_same_in_another_process() -> None:
    here_dir = Path(__file__).resolve().parent
    code = (f"import functools, sys; sys.path.insert(0, {str(here_dir)!r}); "
            "from tribute.games.data_bank import fit_fingerprint; "
            f"import {__name__} as m; "
            "print(fit_fingerprint(m._make_fit(1.0)), fit_fingerprint(functools.partial(m._fit_with_default, l2=2.0)), "
            "fit_fingerprint(m.RidgeFit(l2=3.0)))")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    here = [fit_fingerprint(_make_fit(1.0)), fit_fingerprint(functools.partial(_fit_with_default, l2=2.0)),
            fit_fingerprint(RidgeFit(l2=3.0))]
    assert out.stdout.split() == here


def test_a_bank_refuses_a_fit_whose_closure_changed(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(12, 3, generator=g, dtype=torch.float64), torch.randn(12, generator=g, dtype=torch.float64)
    masks = (np.random.default_rng(0).random((2, 12)) < 0.5).astype(float)
    RetrainBank(_make_fit(1.0), X, y, path=tmp_path).params(masks)
    shards = sorted(tmp_path.glob("shard-*.npz"))
    assert RetrainBank(_make_fit(1.0), X, y, path=tmp_path).params(masks).shape[0] == 2  # resumes
    with pytest.raises(InputError, match="different fit"):
        RetrainBank(_make_fit(2.0), X, y, path=tmp_path)
    assert sorted(tmp_path.glob("shard-*.npz")) == shards
