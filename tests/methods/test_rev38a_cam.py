"""rev38a: Grad-CAM on a layer that is called but does not reach the output says so."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tribute


class _DeadBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(1, 2, 3, padding=1)
        self.spare = nn.Conv2d(1, 2, 3, padding=1)  # called, but its output is dropped
        self.fc = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.spare(x)
        out: torch.Tensor = self.fc(torch.relu(self.c(x)).mean((2, 3)))
        return out


def _hooks(m: nn.Module) -> int:
    return sum(len(getattr(mod, n)) for mod in m.modules()
               for n in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks"))


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_pp"])
def test_cam_on_a_layer_off_the_output_path_says_so(method: str) -> None:
    # rev38a: was torch's RuntimeError "element 0 of tensors does not require grad"
    model = _DeadBranch().double()
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(tribute.errors.UnsupportedModelError,
                       match=r"layer 'spare' \(Conv2d\) is called .* does not reach the model's output.*'c'"):
        tribute.explain(model, x, method=method, target=0, layer="spare")
    assert _hooks(model) == 0
    assert all(p.requires_grad for p in model.parameters())
    tribute.explain(model, x, method=method, target=0, layer="c")  # the used layer still runs
