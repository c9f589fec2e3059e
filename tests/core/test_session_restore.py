"""``TorchModel.session`` leaves the model exactly as it was (issue #9's cheaper snapshot)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tribute.models.adapters import TorchModel


def _state(m: nn.Module) -> list[tuple[bool, list[bool], list[tuple[int, ...]]]]:
    return [
        (mod.training, [p.requires_grad for p in mod._parameters.values() if p is not None],
         [tuple(getattr(mod, name)) for name in ("_forward_hooks", "_forward_pre_hooks",
                                                  "_forward_hooks_with_kwargs")])
        for mod in m.modules()
    ]


def test_session_restores_flags_grads_and_hooks_even_after_an_exception() -> None:
    shared = nn.Linear(3, 3)
    m = nn.Sequential(shared, nn.ReLU(), shared, nn.Dropout(0.1))  # a parameter seen twice
    m.train()
    m[1].eval()  # mixed flags
    shared.bias.requires_grad_(False)
    kept = m[3].register_forward_hook(lambda *a: None)  # a hook from before stays
    before = _state(m)
    with pytest.raises(RuntimeError, match="boom"):
        with TorchModel(m).session():
            assert not m.training and not shared.weight.requires_grad
            m[0].register_forward_hook(lambda *a: None)  # into an empty dict
            m[3].register_forward_hook(lambda *a: None, with_kwargs=True)  # next to `kept`
            m.register_forward_pre_hook(lambda *a: None)
            raise RuntimeError("boom")
    assert _state(m) == before
    assert list(m[3]._forward_hooks) == [kept.id]
    m(torch.zeros(2, 3))  # still runs
