"""Review rev36d of aud36d: frozen parameters read through nested sessions of different adapters,
DataLoaders with a batch sampler, and the reduction-mismatch warning on models trained with a
summed objective that have not converged (checked against closed forms outside tribute)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from test_aud36d import L2, _frozen_case

import tribute
from tribute.errors import InputError
from tribute.models import TorchModel


def test_frozen_layer_inside_another_adapters_session() -> None:
    """evaluate() holds a session of its adapter and re-explains through explain(), which wraps
    the module in a new TorchModel: that inner session found every flag False (the outer one
    set them) and the game trained the frozen layer too (indefinite Hessian, refused with
    damping=0; 1.4 off the closed form with the default damping)."""
    model, X, y, Xt, truth = _frozen_case()
    data = tribute.TrainingData(X, y, loss="mse", l2=L2, reduction="sum")
    with TorchModel(model).session():
        attr = tribute.explain(model, Xt, method="influence", players=data, damping=0.0)
    got = torch.as_tensor(np.asarray(attr.values)).reshape(truth.shape)
    assert torch.allclose(got, truth, rtol=1e-7, atol=1e-9 * float(truth.abs().max()))
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]
    assert TorchModel(model).requires_grad_before is None


def test_stability_of_a_frozen_layer_attribution() -> None:
    """The stability metric re-explains inside evaluate's session (before: the frozen layer
    was trained there, and damping=0 recorded by explain was refused as indefinite)."""
    model, X, y, Xt, _ = _frozen_case()
    data = tribute.TrainingData(X, y, loss="mse", l2=L2, reduction="sum")
    attr = tribute.explain(model, Xt, method="influence", players=data, damping=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = tribute.evaluate(model, Xt, attr, metric="stability", players=data, seeds=(0, 1))
    assert res.mean > 1 - 1e-9
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]


def test_no_reduction_warning_on_an_unconverged_summed_objective() -> None:
    """A partly trained MLP, trained on the *summed* objective and declared so (n = 300,
    l2 = 1e-4, 5 SGD steps): the raw gradient of the mean objective is n times smaller than the
    sum's just by its scale, and check_reduction told the user to switch to reduction='mean'
    (which is the wrong objective). Each gradient is now measured against its own scale."""
    g = torch.Generator().manual_seed(0)
    n, l2 = 300, 1e-4
    X = torch.randn(n, 4, generator=g, dtype=torch.float64)
    y = torch.sin(X[:, 0])
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1 / n)
    for _ in range(5):
        opt.zero_grad()
        loss = ((model(X)[:, 0] - y) ** 2 / 2).sum() + l2 / 2 * sum((p**2).sum() for p in model.parameters())
        loss.backward()
        opt.step()
    data = tribute.TrainingData(X, y, loss="mse", l2=l2, reduction="sum")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*stationary point", category=RuntimeWarning)
        tribute.explain(model, X[:2], method="influence", players=data, solver="explicit")


class _FirstHalf(torch.utils.data.Sampler):
    def __iter__(self):
        return iter([[0, 1, 2], [3, 4, 5]])

    def __len__(self) -> int:
        return 2


def test_dataloader_batch_sampler_that_skips_rows_is_refused() -> None:
    """DataLoader(batch_sampler=...) keeps its default SequentialSampler and drop_last=False,
    so a batch sampler that drops the last rows (or a custom one that yields half the rows) was
    accepted and every row credited as trained on."""
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler, TensorDataset

    g = torch.Generator().manual_seed(2)
    ds = TensorDataset(torch.randn(12, 3, generator=g, dtype=torch.float64),
                       torch.randn(12, generator=g, dtype=torch.float64))
    drop = DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(range(12)), 5, drop_last=True))
    with pytest.raises(InputError, match=r"drop_last=True.*last 2 of its 12 rows"):
        tribute.TrainingData(drop, loss="mse")
    with pytest.raises(InputError, match=r"batch_sampler _FirstHalf"):
        tribute.TrainingData(DataLoader(ds, batch_sampler=_FirstHalf()), loss="mse")
    keep = DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(range(12)), 5, drop_last=False))
    assert tribute.TrainingData(keep, loss="mse").n_train == 12
