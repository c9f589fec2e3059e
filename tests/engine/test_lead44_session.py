"""Stop 44 (lead): hooks a model's forward registers in the two state-dict hook dicts the session
did not list (``_state_dict_pre_hooks``, ``_load_state_dict_post_hooks``; rev44e §3) stayed on the
model after ``explain``: every later ``state_dict()`` / ``load_state_dict()`` ran them."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

import tribute


class _Registers(nn.Module):
    """A linear model whose forward registers a state-dict pre-hook and a load post-hook."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 1).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.lin.register_state_dict_pre_hook(lambda *a, **k: None)
        self.lin.register_load_state_dict_post_hook(lambda *a, **k: None)
        out: torch.Tensor = self.lin(x)
        return out


def _hooks(m: nn.Module) -> dict[str, Any]:
    return {f"{name}.{d}": dict(getattr(mod, d)) for name, mod in m.named_modules()
            for d in ("_state_dict_pre_hooks", "_load_state_dict_post_hooks")}


def test_state_dict_hooks_registered_in_forward_are_removed_after_explain() -> None:
    m = _Registers()
    before = _hooks(m)
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    attr = tribute.explain(m, x, method="feature_ablation", baseline=0.0)
    # feature ablation of a linear model is w_j x_j
    w = m.lin.weight.detach().numpy()[0]
    np.testing.assert_allclose(np.asarray(attr.values).reshape(4, 3), x.numpy() * w, atol=1e-12)
    assert _hooks(m) == before  # before the fix: one hook per forward call left in each dict
