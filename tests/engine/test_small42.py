"""small42: the engine's retry keeps the first failure; the id-keyed cache of completed passes.

2. A self-tuned pass the model refused is sent again in smaller passes; when those fail too,
   only the last error surfaced (a pass of 2 rows) and the first one (often the real cause, on
   the big pass) was lost. It is now the raised error's ``__cause__`` and named in a note.
3. ``_OK_ROWS_BY_ID`` (the largest pass a model that cannot be weakly referenced completed) was
   keyed by ``id(model)`` and never cleared: a new model that took a freed model's id inherited
   its count, so its own batch-size limit was taken for a real error and raised (no retry).
"""

from __future__ import annotations

import gc
import warnings
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.engine.tuning import clear_tuners
from tribute_testing import CappedNumpyLinear, object_at_freed_id

X = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
W = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)


class _Fails(torch.nn.Module):
    """A linear model: the reference pass works; later passes of more than ``big`` rows raise
    ``RuntimeError`` (a fixed buffer), smaller ones ``other`` (None: they work)."""

    def __init__(self, big: int, other: type[Exception] | None) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(W.clone())
        self.big, self.other = big, other
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(int(x.shape[0]))
        if len(self.seen) > 1 and x.shape[0] > self.big:
            raise RuntimeError(f"fixed buffer of {self.big} rows exceeded ({x.shape[0]} rows)")
        if len(self.seen) > 1 and self.other is not None:
            raise self.other(f"failed on {x.shape[0]} rows")
        return (x @ self.w)[:, None]


def _explain(model: Any, x: Any = X) -> tribute.Attribution:
    return tribute.explain(model, x, method="kernel_shap", budget=200, target=0, baseline=0.0,
                           progress=False)


def test_a_model_that_fails_on_big_passes_only_gets_the_exact_answer() -> None:
    clear_tuners()
    model = _Fails(big=8, other=None)
    with pytest.warns(RuntimeWarning, match=r"fixed buffer of 8 rows exceeded"):
        attr = _explain(model)
    assert max(model.seen) > 8  # a big pass was refused, then the rows were sent again
    # a linear model's Shapley values with baseline 0: w_i x_i (closed form)
    np.testing.assert_allclose(attr.values.numpy(), (X * W).numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("other", [KeyError, RuntimeError], ids=["other_error", "always_fails"])
def test_when_the_smaller_passes_fail_too_the_first_failure_is_kept(
        other: type[Exception]) -> None:
    clear_tuners()
    model = _Fails(big=8, other=other)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the call did not recover: no warning
        with pytest.raises(other) as info:
            _explain(model)
    first = max(model.seen)
    assert first > 8 and min(model.seen[1:]) < first  # a big pass, then smaller ones
    err = info.value
    assert f"failed on {min(model.seen[1:])} rows" in str(err)  # the last, smallest pass's error
    cause = err.__cause__
    assert isinstance(cause, RuntimeError) and cause is not err
    assert str(cause) == f"fixed buffer of 8 rows exceeded ({first} rows)"
    notes = " ".join(getattr(err, "__notes__", []))
    assert f"a forward pass of {first} rows raised RuntimeError" in notes
    assert "fixed buffer of 8 rows exceeded" in notes




def test_a_new_model_at_a_freed_models_id_gets_no_inherited_pass_count() -> None:
    clear_tuners()
    w = W.numpy().copy()
    x = np.random.default_rng(0).normal(size=(40, 4))
    kw: dict[str, Any] = dict(method="kernel_shap", budget=200, baseline=0.0, progress=False)
    old = CappedNumpyLinear(w)
    tribute.explain(old, x, **kw)  # passes of 100s of rows completed on this model
    old_id = id(old)
    del old
    gc.collect()
    # before: the freed model's id passed to a new object within a few hundred allocations,
    # and the new model's refused big pass was "no bigger than one that worked": raised
    new = object_at_freed_id(old_id, lambda: CappedNumpyLinear(w, cap=64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the refused pass is announced
        attr = tribute.explain(new, x, **kw)
    np.testing.assert_allclose(np.asarray(attr.values), x * w, rtol=1e-9, atol=1e-12)
