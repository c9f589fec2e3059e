"""aud43g: gradient, LRP, DeepLIFT and CAM methods against truths computed outside tribute.

Regression (failed before the fix): ``output="logit"`` of a model declared to return
probabilities (``model_output="probability"``) is ``log(p / (1 - p))`` computed *outside* the
model, which propagation rules cannot see. LRP and AttnLRP accepted it and returned credits 4x
(LRP, through a final ``nn.Sigmoid``) or of another sign (AttnLRP) than the logit's, with no
warning; DeepLIFT ran with a warning that blamed functional nonlinearities in the model. They
now refuse it with :class:`InputError`, and explaining the logit itself (``output="raw"`` of
the model without its final sigmoid) is unchanged.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError


def _nets() -> tuple[nn.Module, nn.Module, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    core = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 1)).double()
    with torch.no_grad():
        for p in core.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    x = torch.randn(4, 5, generator=g, dtype=torch.float64)
    return core, nn.Sequential(core, nn.Sigmoid()), x


@pytest.mark.parametrize(("method", "kw"), [("lrp", {"composite": "epsilon_plus"}),
                                            ("attnlrp", {}), ("deeplift", {})])
def test_propagation_refuses_a_logit_computed_outside_the_model(method: str, kw: dict[str, Any]) -> None:
    _, model, x = _nets()
    with pytest.raises(InputError, match=r"output='logit'.*model_output='probability'"):
        tribute.explain(model, x, method=method, target=0, output="logit",
                        model_output="probability", progress=False, **kw)


@pytest.mark.parametrize(("method", "kw"), [("lrp", {"composite": "epsilon_plus"}),
                                            ("attnlrp", {}), ("deeplift", {})])
def test_propagation_of_the_logit_itself_still_runs(method: str, kw: dict[str, Any]) -> None:
    """``output="logit"`` of a model returning logits is the output itself: accepted, and the
    same credits as ``output="raw"``; for DeepLIFT (baseline 0) they sum to
    ``f(x) - f(0)`` computed directly from the model."""
    core, _, x = _nets()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = tribute.explain(core, x, method=method, target=0, output="logit", progress=False, **kw)
        b = tribute.explain(core, x, method=method, target=0, output="raw", progress=False, **kw)
    torch.testing.assert_close(a.values, b.values, rtol=0, atol=0)
    if method == "deeplift":
        with torch.no_grad():
            delta = (core(x) - core(torch.zeros(1, 5, dtype=torch.float64)))[:, 0]
        torch.testing.assert_close(a.values.sum(1), delta, rtol=1e-12, atol=1e-12)
