"""The engine on models tribute's other tests do not use (aud40e): a model that cannot take
more than some rows per forward pass (a fixed-size buffer, an assertion on the batch) gets an
answer from the self-tuned engine whatever size the timing-driven search reached; the values
equal a fixed batch size's and every row the model completed is counted."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.engine import clear_tuners
from tribute_testing import quick_kw

pytestmark = pytest.mark.filterwarnings("ignore::tribute.engine.SlowRunWarning")

LIMIT = 8


class _Limited(torch.nn.Module):
    """A float64 MLP that raises ``exc`` on a batch of more than ``limit`` rows."""

    def __init__(self, exc: Exception, limit: int = LIMIT) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(11)
        self.w1 = torch.nn.Parameter(torch.randn(6, 12, generator=g, dtype=torch.float64))
        self.w2 = torch.nn.Parameter(torch.randn(12, 3, generator=g, dtype=torch.float64))
        self.exc, self.limit = exc, limit
        self.seen: list[int] = []  # rows of every call, completed or not

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(int(x.shape[0]))
        if x.shape[0] > self.limit:
            raise self.exc
        return torch.tanh(x @ self.w1) @ self.w2


def _kw(method: str) -> dict[str, Any]:
    return quick_kw(method, seed=0)


X = torch.randn(30, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
ERRORS = [ValueError("buffer holds 8 rows"), AssertionError("batch <= 8"),
          RuntimeError("shape '[8, 12]' is invalid for input of size 384")]


@pytest.mark.parametrize("exc", ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("method", ["kernel_shap", "feature_ablation", "integrated_gradients",
                                    "lime", "occlusion"])
def test_a_model_limited_to_8_rows_per_pass_gets_the_fixed_batch_answer(method, exc):
    """Before: the model's own error, raised at the tuner's first chunk over 8 rows (which
    one depended on timings: the same call passed or failed from run to run)."""
    clear_tuners()
    ref_model = _Limited(exc)
    want = tribute.explain(ref_model, X, batch_size=LIMIT, **_kw(method))
    model = _Limited(exc)
    with pytest.warns(RuntimeWarning, match=r"self-tuned forward pass of \d+ rows"):
        got = tribute.explain(model, X, **_kw(method))
    np.testing.assert_allclose(got.values.numpy(), want.values.numpy(), rtol=1e-12, atol=1e-14)
    assert got.n_evals == want.n_evals
    # the passes the model completed are the fixed run's rows; the refused self-tuned passes
    # are counted on top (not the batch-dependence check's autograd pass: it is run again)
    completed = sum(n for n in model.seen if n <= LIMIT)
    assert completed == want.n_rows == sum(ref_model.seen)
    refused = [n for n in model.seen if n > LIMIT]
    assert got.n_rows - completed in (sum(refused), sum(refused[1:]))
    # a second call keeps below the limit: no refused pass, no warning
    model.seen.clear()
    again = tribute.explain(model, X, **_kw(method))
    assert max(model.seen) <= LIMIT
    np.testing.assert_allclose(again.values.numpy(), want.values.numpy(), rtol=1e-12, atol=1e-14)


def test_explicit_batch_size_wins_and_the_model_error_is_raised_as_is():
    clear_tuners()
    model = _Limited(ValueError("buffer holds 8 rows"))
    with pytest.raises(ValueError, match="buffer holds 8 rows"):
        tribute.explain(model, X, batch_size=9, **_kw("feature_ablation"))
    assert model.seen and set(model.seen) == {9}


def test_a_model_that_raises_at_every_size_raises_its_own_error():
    clear_tuners()
    model = _Limited(ValueError("broken model"), limit=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no warning: the call did not recover
        with pytest.raises(ValueError, match="broken model"):
            tribute.explain(model, X, **_kw("feature_ablation"))
    assert min(model.seen) == 1  # halved down to one row, then its own error
    # the next call starts a fresh search (the refusals did not bound it for good)
    model.limit = 10**9
    model.seen.clear()
    tribute.explain(model, X, **_kw("feature_ablation"))
    assert max(model.seen) > 16


def test_an_error_at_a_size_that_worked_is_raised_at_once():
    """A data-dependent error (here: on one input's rows) is not taken for a batch limit when
    a pass of that many rows already worked: raised at once, no retries."""
    clear_tuners()

    class _BadRow(_Limited):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.seen.append(int(x.shape[0]))
            if bool((x[:, 0] == 123.0).any()):
                raise ValueError("bad value")
            return torch.tanh(x @ self.w1) @ self.w2

    model = _BadRow(ValueError("unused"))
    x = X.clone()
    tribute.explain(model, x, **_kw("feature_ablation"))  # the tuner learns its sizes
    x[29, 0] = 123.0
    model.seen.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(ValueError, match="bad value"):
            tribute.explain(model, x, **_kw("feature_ablation"))
    assert sum(model.seen) <= len(x)  # the reference pass's rows, none sent again
