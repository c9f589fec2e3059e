"""rev43z: infidelity checks channel_axis for every perturbation, as the similarity metrics do."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.metrics import evaluate


@pytest.mark.parametrize(("perturbation", "bad"), [("gaussian", 7), ("subset", "last"), ("gaussian", True)])
def test_infidelity_refuses_a_bad_channel_axis_for_any_perturbation(perturbation: str, bad: Any) -> None:
    # before: only perturbation="square" read channel_axis; 7 / "last" / True passed silently
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 2)).double()
    x = torch.randn(3, 4, generator=g, dtype=torch.float64)
    a = tribute.explain(net, x, method="saliency", target=0)
    with pytest.raises(InputError, match="channel_axis="):
        evaluate(net, x, a, metric="infidelity", perturbation=perturbation, channel_axis=bad,
                 n_perturbations=5)
    # the documented values still run (no layout to read on a table)
    evaluate(net, x, a, metric="infidelity", perturbation=perturbation, channel_axis=1,
             n_perturbations=5)
