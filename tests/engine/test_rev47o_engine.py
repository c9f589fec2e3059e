"""rev47o: a fixed ``batch_size`` whose first pass is now checked with autograd (aud47o).

aud47o runs the batch-independence check on the first pass of a fixed ``batch_size`` up to what
a gradient chunk may hold under ``max_memory`` (row bytes only: a layer's activations are not
counted). That pass keeps every layer's activations for the backward; where they do not fit
(a CUDA model whose inference pass of ``batch_size`` rows fits, its autograd pass not), the
check pass's out-of-memory error ended the call with "64 rows per forward pass ... do not fit",
a call that ran on main (simulated here: 12 of 12 calls, 4 methods x batch_size 17/64/256).
Now the plain pass runs and the call checks passes of up to 16 rows only, as before aud47o."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.engine import clear_tuners
from tribute.errors import ModelOutputError
from tribute_testing import tanh_linear_ablation

pytestmark = pytest.mark.filterwarnings("ignore::tribute.engine.SlowRunWarning")


class _GraphTooBig(torch.nn.Module):
    """Row-wise ``tanh(W x + b)``; a pass of over 16 rows run with autograd raises CUDA's
    out-of-memory error (its activations would not fit), an inference pass never does."""

    def __init__(self, mix: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(6, 3).double()
        self.mix = mix
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and int(x.shape[0]) > 16:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 30.00 GiB")
        self.rows += int(x.shape[0])
        if self.mix:
            x = x - x.mean(0, keepdim=True)
        return torch.tanh(self.lin(x))


@pytest.mark.parametrize("method", ["feature_ablation", "occlusion"])
@pytest.mark.parametrize("batch_size", [17, 64, 256])
def test_a_fixed_batch_whose_autograd_pass_does_not_fit_still_runs(method: str,
                                                                    batch_size: int) -> None:
    x = torch.randn(40, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    model = _GraphTooBig()
    kw: dict[str, Any] = {"method": method, "target": 0, "batch_size": batch_size}
    if method == "occlusion":
        kw.update(window=(1,), stride=(1,))
    clear_tuners()
    got = tribute.explain(model, x, **kw)
    np.testing.assert_allclose(np.asarray(got.values), tanh_linear_ablation(model.lin, x.numpy()),
                               rtol=0, atol=1e-12)
    assert model.rows == 40 * 7  # every value came from the plain passes the user sized


def test_a_batch_mixing_model_is_still_refused_on_a_small_pass_after_the_check_ran_out() -> None:
    """After the big pass's check ran out of memory, a later pass of <= 16 rows is checked (as
    on main): 40 inputs x 7 rows at batch_size 33 leave a tail of 16 rows."""
    x = torch.randn(40, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    clear_tuners()
    with pytest.raises(ModelOutputError, match="changes with the other rows of its batch"):
        tribute.explain(_GraphTooBig(mix=True), x, method="feature_ablation", target=0,
                        batch_size=33)


def test_an_out_of_memory_check_pass_of_16_rows_or_fewer_still_fails_the_call() -> None:
    """At a fixed batch_size of 16 rows or fewer the check's pass is as big as main's: its
    out-of-memory error still ends the call (rev35a: never an unchecked pass in its place)."""

    class _AlwaysFull(_GraphTooBig):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.requires_grad:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory.")
            return super().forward(x)

    x = torch.randn(10, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    clear_tuners()
    with pytest.raises(torch.cuda.OutOfMemoryError, match="8 rows per forward pass"):
        tribute.explain(_AlwaysFull(mix=True), x, method="feature_ablation", target=0,
                        batch_size=8)
