"""Review rev36d of aud36d: frozen parameters read through nested sessions of different adapters,
DataLoaders with a batch sampler, and the reduction-mismatch warning on models trained with a
summed objective that have not converged (checked against closed forms outside tribute)."""

from __future__ import annotations

import warnings

import numpy as np
import torch

import tribute
from tribute.models import TorchModel

from test_aud36d import L2, _frozen_case


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
