"""Review rev41d of aud41a/aud41t: certified top-k with tied credits; the probability refusal
of a scaled-sigmoid tree model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.ensemble import GradientBoostingClassifier

import tribute
from tribute.errors import UnsupportedModelError


class _OnlyFirst(torch.nn.Module):
    """``tanh(2 x0)``: players 1.. are never read, so their saliency is exactly 0 in every draw."""

    def __init__(self, first: int) -> None:
        super().__init__()
        self.first = first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(2.0 * x[:, self.first:self.first + 1])


def test_certified_does_not_certify_a_player_by_tie_order() -> None:
    """Three players with credit exactly 0 under every draw are indistinguishable: none of them
    may be certified into the top-2 by its position (tie order certified x1, frequency
    [1, 1, 0, 0], radius 0.058, and a different player once the columns are reordered)."""
    x = torch.tensor([[0.3, -0.2, 0.5, 0.1]], dtype=torch.float64)
    for first in (0, 3):
        net = _OnlyFirst(first).double()
        r2 = tribute.certified_attribution(net, x, "saliency", noise=0.5, k=2, n_samples=200)
        zero = [j for j in range(4) if j != first]
        # truth: only the read player is ever strictly in the top-2; the others tie at 0
        np.testing.assert_array_equal(r2.frequency[0, zero], 0.0)
        assert r2.frequency[0, first] == 1.0
        assert not bool(r2.certified[0]) and r2.radius[0] == 0.0 and r2.gap[0] <= 0.0
        # k=1: the read player is strictly first in every draw and stays certified
        r1 = tribute.certified_attribution(net, x, "saliency", noise=0.5, k=1, n_samples=200)
        assert r1.topk[0, 0] == first and bool(r1.certified[0]) and r1.radius[0] > 0.0


def test_certified_counts_ties_above_the_kth_place() -> None:
    """Players tied above the k-th place are all in the top-k (only a tie AT the boundary is left
    out): a model reading x0 and x1 with equal weight, k=2, certifies {x0, x1}."""

    class Two(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x[:, 0:1] + x[:, 1:2]) * 2.0

    x = torch.tensor([[0.3, -0.2, 0.5, 0.1]], dtype=torch.float64)
    r = tribute.certified_attribution(Two().double(), x, "saliency", noise=0.5, k=2, n_samples=200)
    np.testing.assert_array_equal(r.frequency[0], [1.0, 1.0, 0.0, 0.0])
    assert sorted(r.topk[0].tolist()) == [0, 1] and bool(r.certified[0])


def test_probability_refusal_of_a_scaled_sigmoid_names_what_is_explained() -> None:
    """p = sigmoid(2 margin) (exponential loss): the refusal of output='prob' called the margin
    "margin (log-odds)" although it is half the log-odds; it now says so and names output='logit'
    (which explains 2 x the margin; checked against sklearn's decision_function)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    m = GradientBoostingClassifier(loss="exponential", n_estimators=5, random_state=0).fit(X, y)
    with pytest.raises(UnsupportedModelError) as err:
        tribute.explain(m, X[:3], method="tree_shap", target=1, output="prob")
    msg = str(err.value)
    assert "log-odds / 2" in msg and "output='logit'" in msg and "margin (log-odds)" not in msg
    a = tribute.explain(m, X[:3], method="tree_shap", target=1, output="logit")
    np.testing.assert_allclose(np.asarray(a.full_values), 2.0 * m.decision_function(X[:3]),
                               rtol=0, atol=1e-12)
