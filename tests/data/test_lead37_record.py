"""The caller's requires_grad record outlives the first of two overlapping sessions (lead, stop 37).

Two sessions over one module that close out of nesting order (two threads explaining the same
model) must keep the flags recorded until the last one closes: before, the first to close
removed the record the other still read, and its data game then saw every parameter frozen.
"""

from __future__ import annotations

import torch

from tribute.models.adapters import TorchModel


def test_record_kept_until_last_session_closes() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    model[0].weight.requires_grad_(False)
    a, b = TorchModel(model), TorchModel(model)
    first, second = a.session(), b.session()
    first.__enter__()
    second.__enter__()
    want = {id(p): p is not model[0].weight for p in model.parameters()}
    assert b.requires_grad_before == want
    first.__exit__(None, None, None)  # closes before the session opened after it
    assert b.requires_grad_before == want
    second.__exit__(None, None, None)
    assert a.requires_grad_before is None
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True]


def test_tied_parameter_counted_per_occurrence() -> None:
    emb = torch.nn.Embedding(5, 3)
    head = torch.nn.Linear(3, 5, bias=False)
    head.weight = emb.weight  # tied: the same parameter under two modules
    model = torch.nn.Sequential(emb, head)
    with TorchModel(model).session():
        assert TorchModel(model).requires_grad_before == {id(emb.weight): True}
    assert TorchModel(model).requires_grad_before is None
    assert emb.weight.requires_grad
