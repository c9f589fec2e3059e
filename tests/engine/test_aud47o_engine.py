"""aud47o: the engine's check that a model evaluates its rows independently of its batch.

The check ran only on a pass of 2 to 16 rows. With a fixed ``batch_size`` over 16 and more than
16 rows in every pass (17+ inputs), no pass was checked: 174 of 216 calls on three batch-mixing
models (batch mean, cumulative sum, BatchNorm without running statistics) x 9 methods x 2 input
counts x batch sizes 17/20/64/1000 returned credits with no error, and those credits changed with
the batch size (kernel_shap on 40 inputs of the batch-mean MLP: -0.1765 at ``batch_size=64``,
-0.1561 at 1000). Gradient passes are now checked at any size, plain passes up to what a gradient
chunk may hold under ``max_memory``."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import tribute
from tribute.engine import clear_tuners
from tribute.errors import ModelOutputError
from tribute_testing import batch_mixer

pytestmark = pytest.mark.filterwarnings("ignore::tribute.engine.SlowRunWarning")


def _kw(method: str, batch_size: int) -> dict[str, Any]:
    kw: dict[str, Any] = {"method": method, "target": 0, "batch_size": batch_size}
    if method in ("kernel_shap", "lime"):
        kw["seed"] = 0
    if method == "integrated_gradients":
        kw["budget"] = 12
    return kw


@pytest.mark.parametrize("kind", ["mean", "cumsum", "bn_batch_stats"])
@pytest.mark.parametrize("method", ["kernel_shap", "feature_ablation", "lime", "saliency",
                                    "integrated_gradients"])
@pytest.mark.parametrize(("n_inputs", "batch_size"), [(17, 17), (40, 64), (40, 1000)])
def test_a_batch_mixing_model_is_refused_at_a_fixed_batch_size_over_16(
        kind: str, method: str, n_inputs: int, batch_size: int) -> None:
    model = batch_mixer(kind, 3, 8)
    x = torch.randn(n_inputs, 3, generator=torch.Generator().manual_seed(1))
    clear_tuners()
    with pytest.raises(ModelOutputError, match="changes with the other rows of its batch"):
        tribute.explain(model, x, **_kw(method, batch_size))


class _Rowwise(torch.nn.Module):
    """A model with its own forward (so it is checked on a pass) that evaluates rows alone."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(3, 8, dtype=torch.float64)
        self.b = torch.nn.Linear(8, 2, dtype=torch.float64)

        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(int(x.shape[0]))
        return self.b(torch.tanh(self.a(x)))


@pytest.mark.parametrize("method", ["kernel_shap", "feature_ablation", "lime", "saliency",
                                    "integrated_gradients"])
@pytest.mark.parametrize("batch_size", [17, 64, 1000])
def test_a_rowwise_model_passes_with_the_rows_it_would_see_unchecked(method: str,
                                                                      batch_size: int) -> None:
    """No false refusal, no extra row, and the credits of a row-wise float64 model equal those
    of batch_size=1 (each row alone: the independent truth) to rounding."""
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    clear_tuners()
    model = _Rowwise()
    got = tribute.explain(model, x, **_kw(method, batch_size))
    assert sum(model.sizes) == got.n_rows
    assert max(model.sizes) <= batch_size
    alone = tribute.explain(_Rowwise(), x, **_kw(method, 1))
    torch.testing.assert_close(torch.as_tensor(got.values), torch.as_tensor(alone.values),
                               rtol=0, atol=1e-12)
