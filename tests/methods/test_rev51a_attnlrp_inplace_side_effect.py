"""AttnLRP runs in-place activation modules out of place (aud51a); a caller that reads the
module's *input* afterwards ('self.act(h); return self.fc(h)') must still see the activation,
as the in-place module gives it (review rev51a)."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

import tribute


class _SideEffect(nn.Module):
    """fc1 -> act (in place, its result read through h, or h = act(h)) -> a gated fc2."""

    def __init__(self, act: nn.Module, side: bool) -> None:
        super().__init__()
        self.fc1, self.fc3, self.fc2, self.act, self.side = nn.Linear(4, 6), nn.Linear(4, 6), nn.Linear(6, 3), act, side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        if self.side:
            self.act(h)  # in place: h holds the activation now
        else:
            h = self.act(h)
        out: torch.Tensor = self.fc2(h * self.fc3(x) + h).sum(1)
        return out


ACTS = {
    "ELU": nn.ELU(inplace=True),
    "Threshold": nn.Threshold(0.1, 0.5, inplace=True),
    "SiLU": nn.SiLU(inplace=True),
    "ReLU6": nn.ReLU6(inplace=True),
}


@pytest.mark.parametrize("variant", ["attnlrp", "cp"])
@pytest.mark.parametrize("act", list(ACTS))
def test_inplace_module_read_through_its_input(act: str, variant: str) -> None:
    """Before rev51a the switched-off flag left h at its pre-activation value: the block
    explained another function, silently (ELU: explained f(x) 0.66 off the model's output,
    relevance 0.39 off the out-of-place twin; Threshold(0.1, 0.5): 2.45 / 1.18)."""
    mod = copy.deepcopy(ACTS[act])
    torch.manual_seed(1)
    m = _SideEffect(mod, side=True).double()
    twin = copy.deepcopy(m)
    twin_act = copy.deepcopy(mod)
    vars(twin_act)["inplace"] = False
    twin.act, twin.side = twin_act, False
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    with torch.no_grad():
        fx = m(x)[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = tribute.explain(m, x, method="attnlrp", variant=variant, target=0, progress=False)
        want = tribute.explain(twin, x, method="attnlrp", variant=variant, target=0, progress=False)
    torch.testing.assert_close(torch.as_tensor(got.values), torch.as_tensor(want.values), rtol=0, atol=1e-12)
    explained = torch.as_tensor(got.values).reshape(3, -1).sum(1) - torch.as_tensor(got.gap).reshape(-1)
    torch.testing.assert_close(explained, fx, rtol=0, atol=1e-12)
    assert vars(mod)["inplace"] is True
