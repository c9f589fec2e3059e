"""``evaluate`` scores an attribution on the game it was computed for (baseline, groups)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.games.components import ComponentSet
from tribute.metrics import BaselineMismatchWarning


def _net_and_inputs() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(),
                              torch.nn.Linear(4, 2)).double()
    return net, torch.randn(3, 5, dtype=torch.float64)


def test_default_baseline_is_refused_when_the_attribution_used_another() -> None:
    # exact Shapley values for baseline=1 scored shapley_error 1.28 under evaluate's default
    # zero baseline, and deletion removed to zeros, without a word
    net, x = _net_and_inputs()
    attr = tribute.explain(net, x, method="exact_shapley", baseline=1.0, target=1)
    for metric in ("shapley_error", "deletion", "linear_score"):
        with pytest.raises(InputError, match=r"base_values .*baseline=0\.0 to score removal"):
            tribute.evaluate(net, x, attr, metric=metric)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = tribute.evaluate(net, x, attr, metric="shapley_error", baseline=1.0)
        np.testing.assert_allclose(same.scores, 0.0, atol=1e-12)
        tribute.evaluate(net, x, attr, metric="deletion", baseline=0.0)  # on purpose: accepted
        tribute.evaluate(net, x, attr, metric="complexity")  # credits only: no baseline read
        zero = tribute.explain(net, x, method="exact_shapley", target=1)
        tribute.evaluate(net, x, zero, metric="deletion")
        # the same zeros in another form (a per-sample table): base_values agree, accepted
        # (the fingerprint alone refused it: rev30); the check's v(empty) is the one the curve
        # reuses, so both calls count the same evaluations
        table = tribute.explain(net, x, method="exact_shapley", target=1,
                                baseline=torch.zeros_like(x))
        res = tribute.evaluate(net, x, table, metric="deletion")
        plain = tribute.evaluate(net, x, table, metric="deletion", baseline=0.0)
        np.testing.assert_allclose(res.scores, plain.scores)
        assert res.n_evals == plain.n_evals
    # re-explaining metrics: the same zeros given in another form are the same baseline there
    # too (base_values agree); another baseline is still refused
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tribute.StderrWarning)
        tribute.evaluate(net, x, table, metric="avg_sensitivity", baseline=0.0, n_samples=3)
        with pytest.raises(InputError, match="base_values"):
            tribute.evaluate(net, x, table, metric="avg_sensitivity", baseline=0.5, n_samples=3)
    # no base_values to decide (leave-one-out credits): a differing fingerprint warns
    loo = tribute.explain(net, x, method="feature_ablation", baseline=1.0, target=1)
    assert loo.base_values is None
    with pytest.warns(BaselineMismatchWarning, match=r"baseline=0\.0 to score removal"):
        tribute.evaluate(net, x, loo, metric="deletion")


def test_groups_that_map_elements_otherwise_than_the_attributions_are_refused() -> None:
    # as many players, another grouping: deletion moved from 0.23 to 0.37, silently
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Tanh(),
                              torch.nn.Linear(4, 2)).double()
    x = torch.randn(3, 6, dtype=torch.float64)
    mine = np.array([0, 0, 1, 1, 2, 2])
    attr = tribute.explain(net, x, method="exact_shapley", groups=mine, target=1)
    ref = tribute.evaluate(net, x, attr, metric="deletion")
    again = tribute.evaluate(net, x, attr, metric="deletion", groups=mine.copy())
    np.testing.assert_allclose(again.scores, ref.scores)
    with pytest.raises(InputError, match=r"groups=\.\.\. maps the input elements to players "
                                         r"otherwise than the attribution's groups"):
        tribute.evaluate(net, x, attr, metric="deletion", groups=np.array([2, 1, 0, 2, 1, 0]))
    per_sample = np.stack([mine, mine[::-1], mine])
    attr2 = tribute.explain(net, x, method="exact_shapley", groups=per_sample, target=1)
    tribute.evaluate(net, x, attr2, metric="deletion", groups=per_sample)
    with pytest.raises(InputError, match="otherwise than the attribution's groups"):
        tribute.evaluate(net, x, attr2, metric="deletion", groups=mine)


def _component_case() -> tuple[torch.nn.Module, torch.Tensor, ComponentSet]:
    torch.manual_seed(2)  # as many input features as hidden neurons: shapes cannot tell them apart
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(),
                              torch.nn.Linear(4, 2)).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    return net, x, tribute.components(net, "1")


def test_default_re_explanations_keep_the_component_players() -> None:
    # the default explain callable re-explained the input features: model_randomisation
    # compared feature credits with component credits (0.4, 0.1, 0.6, -0.2, 0.5 here)
    net, x, comps = _component_case()
    attr = tribute.explain(net, x, method="exact_shapley", players=comps, target=1)
    kinds = []

    def by_hand(model, inputs, target=None):
        out = tribute.explain(model, inputs, method="exact_shapley", players=comps, target=target)
        kinds.append(out.player_kind)
        return out

    for metric in ("model_randomisation", "random_logit"):
        got = tribute.evaluate(net, x, attr, metric=metric, players=comps)
        if metric == "model_randomisation":
            want = tribute.evaluate(net, x, attr, metric=metric, players=comps, explain=by_hand)
        else:
            want = tribute.evaluate(net, x, attr, metric=metric, players=comps,
                                    explain=lambda inputs, target=None: by_hand(net, inputs, target))
        np.testing.assert_allclose(got.scores, want.scores, err_msg=metric)
    assert set(kinds) == {"component"}


def test_evaluate_takes_the_component_ablation_explain_was_given() -> None:
    # explain(..., ablation="mean") is not recorded; evaluate had no ablation= and scored the
    # credits on zero ablation: exact Shapley values got shapley_error 0.6-1.3
    net, x, comps = _component_case()
    attr = tribute.explain(net, x, method="exact_shapley", players=comps, target=1,
                           ablation="mean")
    res = tribute.evaluate(net, x, attr, metric="shapley_error", players=comps, ablation="mean")
    np.testing.assert_allclose(res.scores, 0.0, atol=1e-12)


@pytest.mark.parametrize("metric", ["deletion", "shapley_error", "complexity"])
def test_component_credits_of_another_layer_are_refused(metric: str) -> None:
    # credits of layer 1's neurons were scored by ablating layer 3's (as many neurons), silently
    from tribute.games.components import components

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 5), torch.nn.Tanh(),
                              torch.nn.Linear(5, 2)).double()
    x = torch.randn(3, 6, dtype=torch.float64)
    attr = tribute.explain(net, x, method="exact_shapley", players=components(net, "1", unit="neuron"),
                           target=1, progress=False)
    with pytest.raises(InputError, match=r"player 0 is component '1 neuron 0', but in the players= given "
                                         r"it is '3 neuron 0'"):
        tribute.evaluate(net, x, attr, metric=metric, players=components(net, "3", unit="neuron"), progress=False)
    same = tribute.evaluate(net, x, attr, metric=metric, players=components(net, "1", unit="neuron"), progress=False)
    if metric == "shapley_error":
        np.testing.assert_allclose(same.scores, 0.0, atol=1e-12)
