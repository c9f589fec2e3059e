"""rev51g: review of aud51g (1-D input hints, Captum names in the method registry's refusal).

* A 1-D input has two readings: one sample of features (``X[None]``) or samples of one feature
  (``X[:, None]``). aud51g's hint named only the first: ``Linear(1, 4)`` on 6 numbers, and a
  scikit-learn model fitted on one column given a 1-D column, were told ``X[None]``, which
  they refuse ("1x6 and 1x4"); ``X[:, None]`` runs. The reference pass's 1-D note also
  replaced the dtype advice (a float32 model on a float64 1-D input).
* The registry's unknown-name refusal quoted ``str(name)``: ``method=None`` read
  ``method='None'``, a string the user never passed (``method=None`` before aud51g).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError, ModelOutputError


def _column(n: int = 6) -> torch.Tensor:
    return torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def test_one_dimensional_input_hint_names_both_readings() -> None:
    x = _column()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        one_feature = torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.Tanh(),
                                          torch.nn.Linear(4, 2)).double().eval()
    with pytest.raises(ModelOutputError, match="returned shape") as err:
        tribute.explain(one_feature, x, method="saliency", target=0, progress=False)
    assert "X[:, None]" in str(err.value) and "X[None]" in str(err.value), str(err.value)
    a = tribute.explain(one_feature, x[:, None], method="saliency", target=0, progress=False)
    assert a.values.shape == (6, 1)  # the hint followed runs
    # scikit-learn fitted on one column, given the column 1-D: the reference pass's note
    from sklearn.linear_model import LinearRegression

    col = x.numpy()
    reg = LinearRegression().fit(col[:, None], np.arange(6.0))
    with pytest.raises(InputError, match="failed on the inputs") as ierr:
        tribute.explain(reg, col, method="kernel_shap", baseline=0.0, progress=False)
    assert "X[:, None]" in str(ierr.value) and "6 samples of one feature" in str(ierr.value)
    a = tribute.explain(reg, col[:, None], method="kernel_shap", baseline=0.0, progress=False)
    assert a.values.shape == (6, 1)

    # a model that fails on the dtype of a 1-D input keeps the dtype advice
    class Float32Only(torch.nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            if z.dtype != torch.float32:
                raise RuntimeError(f"expected Float but found {z.dtype}")
            return z * 2

    with pytest.raises(InputError, match="failed on the inputs") as ierr:
        tribute.explain(Float32Only(), x, method="saliency", progress=False)
    assert "dtype" in str(ierr.value).split("expected Float")[1], str(ierr.value)


@pytest.mark.parametrize("name,shown", [(None, "method=None is not"), (3, "method=3 is not"),
                                        (["saliency"], "method=['saliency'] is not")])
def test_unknown_method_is_quoted_as_given(name: Any, shown: str) -> None:
    model = torch.nn.Linear(3, 2).double()
    with pytest.raises(InputError) as err:
        tribute.explain(model, torch.zeros(2, 3, dtype=torch.float64), method=name,
                        progress=False)
    assert shown in str(err.value), str(err.value)


def test_weighted_grad_hessian_refuses_the_masks_before_the_weights() -> None:
    # a 1-D mask of 4 players was refused as "grad_weights has 1 entries but masks has 4
    # coalitions", per-sample masks 3 x 2 x 4 as "masks has 3 coalitions"; a NaN weight ran
    from tribute.games.features import FeatureGame
    from tribute.models import as_model

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double().eval()
    adapter = as_model(model, "torch")
    with adapter.session():
        game = FeatureGame(adapter, torch.randn(3, 4, dtype=torch.float64,
                                                generator=torch.Generator().manual_seed(1)), target=[0, 1])
        with pytest.raises(InputError, match=r"masks has shape \(4,\); expected \(coalitions, 4\)"):
            game.weighted_grad_hessian(torch.full((4,), 0.5, dtype=torch.float64), np.array([1.0]), np.array([1.0]))
        with pytest.raises(InputError, match=r"weighted_grad_hessian takes shared masks .* \(3, 2, 4\)"):
            game.weighted_grad_hessian(torch.full((3, 2, 4), 0.5, dtype=torch.float64), np.array([1.0, 1.0]), np.array([1.0, 1.0]))
        masks = torch.full((2, 4), 0.5, dtype=torch.float64)
        before = game.n_evals
        with pytest.raises(InputError, match="grad_weights must be finite"):
            game.weighted_grad_hessian(masks, np.array([1.0, np.nan]), np.array([1.0, 1.0]))
        assert game.n_evals == before  # refused before any row
        _, grad_sum, hess_sum = game.weighted_grad_hessian(masks, np.array([1.0, 2.0]), np.array([0.5, 0.5]))
        _, grads, hess = game.value_grad_hessian(masks)
    torch.testing.assert_close(grad_sum, grads[:, 0] * 3.0, atol=1e-15, rtol=0)
    torch.testing.assert_close(hess_sum, hess[:, 0], atol=1e-15, rtol=0)
