"""rev46c: the refusal of a batch axis that is not first names stacked batches only when the
activation is not laid out (time, batch, ...): a sequence-first module with as many time steps as
a multiple of the rows (every batch of one sample) was told it ran on stacked batches."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import tribute
from tribute.errors import UnsupportedModelError


class _SeqFirst(nn.Module):
    """A linear layer run on a (time, batch, features) view of the inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.out = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.out(torch.tanh(self.fc(x.transpose(0, 1))).mean(0))
        return out


class _StackedSeq(nn.Module):
    """A siamese sequence encoder run once on both sides stacked along the batch axis."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(4, 3)
        self.out = nn.Linear(3, 2)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        za, zb = self.enc(torch.cat([a, b])).mean(1).chunk(2)
        out: torch.Tensor = self.out(za * zb)
        return out


@pytest.mark.parametrize(("batch", "steps"), [(1, 5), (1, 2), (2, 4), (3, 6)])
@pytest.mark.parametrize("method", ["feature_ablation", "atp"])
def test_a_sequence_first_activation_with_steps_a_multiple_of_rows_is_not_called_stacked(
        method: str, batch: int, steps: int) -> None:
    # rev46c: (5, 1, 3) on a pass of 1 row was told "Its 5 rows are 5 x the pass's 1: ... 5 batches
    # stacked along the batch axis"; its batch axis is second, the sequence-first layout
    torch.manual_seed(0)
    model = _SeqFirst().double()
    x = torch.randn(batch, steps, 4, dtype=torch.float64)
    with pytest.raises(UnsupportedModelError, match=r"sequence-first module") as info:
        tribute.explain(model, x, method=method, players=tribute.components(model, "fc"), target=0)
    assert f"shape ({steps}, {batch}, 3)" in str(info.value)
    assert "stacked" not in str(info.value)
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == 0


def test_stacked_sequence_batches_are_still_called_stacked() -> None:
    torch.manual_seed(0)
    model = _StackedSeq().double()
    a, b = torch.randn(2, 5, 4, dtype=torch.float64), torch.randn(2, 5, 4, dtype=torch.float64)
    with pytest.raises(UnsupportedModelError, match=r"shape \(4, 5, 3\).*4 rows are 2 x the pass's 2.*stacked"):
        tribute.explain(model, (a, b), method="atp", players=tribute.components(model, "enc"), target=0)
