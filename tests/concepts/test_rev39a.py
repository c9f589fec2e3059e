"""Review rev39a (stop 39) of aud39s: TCAV's refusal of a layer that runs twice per forward pass.

Activation checkpointing (``torch.utils.checkpoint``, non-reentrant; timm's ``set_grad_checkpointing``)
re-runs the checkpointed layers while the gradient of a chunk is computed. The hook saw that
recomputation as a second call of the next chunk's forward pass and refused a layer that runs
once (it worked before the refusal was added, with the same numbers as without checkpointing).
"""

from __future__ import annotations

import torch
import torch.utils.checkpoint as cp
from torch import nn

import tribute


class _Net(nn.Module):
    def __init__(self, checkpointed: bool) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)
        self.checkpointed = checkpointed

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(self.act(self.stem(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = cp.checkpoint(self._body, x, use_reentrant=False) if self.checkpointed else self._body(x)
        out: torch.Tensor = self.fc(h.mean((2, 3)))
        return out


def test_tcav_accepts_a_layer_inside_activation_checkpointing_over_several_chunks() -> None:
    torch.manual_seed(0)
    ref = _Net(False).double()
    ck = _Net(True).double()
    ck.load_state_dict(ref.state_dict())
    g = torch.Generator().manual_seed(1)
    x = torch.randn(10, 1, 6, 6, dtype=torch.float64, generator=g)
    c = torch.randn(9, 1, 6, 6, dtype=torch.float64, generator=g) + 0.7
    r = torch.randn(12, 1, 6, 6, dtype=torch.float64, generator=g)
    kw = dict(layer="stem", target=1, n_random=4, n_permutations=20)
    want = tribute.tcav(ref, x, c, r, batch_size=64, **kw)  # type: ignore[arg-type]
    got = tribute.tcav(ck, x, c, r, batch_size=3, **kw)  # type: ignore[arg-type]
    assert got.scores.tolist() == want.scores.tolist()
    assert torch.allclose(torch.from_numpy(got.sensitivities), torch.from_numpy(want.sensitivities),
                          rtol=1e-12, atol=1e-14)
    assert sum(len(m._forward_hooks) for m in ck.modules()) == 0
