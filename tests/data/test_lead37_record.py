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


def test_sessions_in_two_threads_run_one_after_the_other() -> None:
    """Two threads explaining one model (dropout in training mode, component hooks): each gets
    the credits it gets alone, and the model is left as it was."""
    import threading

    import numpy as np

    import tribute
    from tribute.models import adapters

    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                torch.nn.Linear(16, 2))
    model.train()
    x = torch.randn(4, 6)
    want_f = tribute.explain(model, x, method="feature_ablation", target=0).values
    want_c = tribute.explain(model, x, method="feature_ablation", target=0,
                             players=tribute.components(model, "1")).values
    got: dict[str, np.ndarray] = {}
    errors: list[BaseException] = []

    def run(name: str, players: str | None) -> None:
        try:
            for _ in range(5):
                comps = None if players is None else tribute.components(model, "1")
                got[name] = tribute.explain(model, x, method="feature_ablation", target=0,
                                            players=comps).values
        except BaseException as e:  # re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=("f", None)),
               threading.Thread(target=run, args=("c", "comp"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    np.testing.assert_array_equal(got["f"], want_f)
    np.testing.assert_array_equal(got["c"], want_c)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert not adapters._REQUIRES_GRAD_BEFORE and not adapters._REQUIRES_GRAD_OPEN
