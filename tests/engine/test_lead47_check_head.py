"""lead47: the batch-independence check on a fixed ``batch_size`` over 16 rows runs on the first
16 rows of the first pass, not on the whole pass.

aud47o extended the check from passes of at most 16 rows to the first pass of a fixed
``batch_size`` (a batch-mixing model was accepted silently at ``batch_size`` > 16), by running
that whole pass with autograd; rev47o measured what that costs: a deep CNN at ``batch_size=512``
peaked at 1,245 MB for 242 MB before, over its ``max_memory``, because the graph keeps every
layer's activations of every row. The check needs two rows of one pass, not all of them: the
pass now runs its first 16 rows with autograd (checked) and the rest in inference mode. The
model sees every row once, ``n_rows`` counts them once, and the values are the model's own."""

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


class _Recorder(torch.nn.Module):
    """Row-wise ``tanh(W x + b)`` with its own ``forward`` (so the engine checks it), recording
    each pass's rows and whether it ran with autograd; ``mix`` centres the batch (batch-mixing)."""

    def __init__(self, mix: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(6, 3).double()
        self.mix = mix
        self.passes: list[tuple[int, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.passes.append((int(x.shape[0]), bool(x.requires_grad)))
        if self.mix:
            x = x - x.mean(0, keepdim=True)
        return torch.tanh(self.lin(x))


@pytest.mark.parametrize("batch_size", [17, 64, 1000])
@pytest.mark.parametrize("method", ["feature_ablation", "occlusion"])
def test_the_check_pass_holds_16_rows_at_a_fixed_batch_size(method: str, batch_size: int) -> None:
    x = torch.randn(40, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    model = _Recorder()
    kw: dict[str, Any] = {"method": method, "target": 0, "batch_size": batch_size}
    if method == "occlusion":
        kw.update(window=(1,), stride=(1,))
    clear_tuners()
    got = tribute.explain(model, x, **kw)
    np.testing.assert_allclose(np.asarray(got.values), tanh_linear_ablation(model.lin, x.numpy()),
                               rtol=0, atol=1e-12)
    graded = [n for n, g in model.passes if g]
    assert graded == [16]  # one checked pass, of 16 rows: not the whole first pass
    assert max(n for n, _ in model.passes) <= batch_size
    assert sum(n for n, _ in model.passes) == 40 * 7 == got.n_rows


@pytest.mark.parametrize("batch_size", [17, 64, 1000])
@pytest.mark.parametrize("method", ["feature_ablation", "kernel_shap", "lime"])
def test_a_batch_mixing_model_is_still_refused_on_the_head_of_a_big_pass(method: str,
                                                                        batch_size: int) -> None:
    x = torch.randn(40, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    kw: dict[str, Any] = {"method": method, "target": 0, "batch_size": batch_size}
    if method != "feature_ablation":
        kw.update(budget=64, seed=0)
    clear_tuners()
    with pytest.raises(ModelOutputError, match="changes with the other rows of its batch"):
        tribute.explain(_Recorder(mix=True), x, **kw)


def test_a_fixed_pass_beyond_a_gradient_chunk_under_max_memory_is_checked_too() -> None:
    """aud47o left a fixed ``batch_size`` larger than a gradient chunk may be under
    ``max_memory`` unchecked (40 inputs, ``batch_size=64``, ``max_memory=20000``: accepted);
    its check now holds 16 rows whatever the pass's size."""
    x = torch.randn(40, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    clear_tuners()
    with pytest.raises(ModelOutputError, match="changes with the other rows of its batch"):
        tribute.explain(_Recorder(mix=True), x, method="feature_ablation", target=0,
                        batch_size=64, max_memory=20000)
    model = _Recorder()
    got = tribute.explain(model, x, method="feature_ablation", target=0, batch_size=64,
                          max_memory=20000)
    np.testing.assert_allclose(np.asarray(got.values), tanh_linear_ablation(model.lin, x.numpy()),
                               rtol=0, atol=1e-12)
    assert [n for n, g in model.passes if g] == [16]
