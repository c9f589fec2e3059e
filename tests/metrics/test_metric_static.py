"""Complexity and ground-truth metrics (no model evaluations) and the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from metric_toys import TableGame, table_attr

import tribute
from tribute.errors import InputError
from tribute.metrics import (
    auroc,
    complexity,
    evaluate,
    metrics,
    precision_at_k,
    relevance_mass,
    relevance_rank,
    shapley_error,
    sparseness,
)


def _game(b: int, n: int) -> TableGame:
    return TableGame(lambda m: m.sum(-1), n, b, kind="feature")


def test_sparseness_and_complexity_hand_values():
    n = 4
    phi = np.array([[1.0, 1, 1, 1], [0, 0, -3, 0], [1, -2, 3, 4], [0, 0, 0, 0]])
    game = _game(4, n)
    attr = table_attr(game, phi)
    sp = sparseness(game, attr)
    # Gini: constant -> 0; one-hot -> (n-1)/n; [1,2,3,4] -> (-3*1 - 2 + 3 + 3*4) / (4*10)
    np.testing.assert_allclose(sp.scores[:3], [0.0, 0.75, 0.25], atol=1e-15)
    assert math.isnan(sp.scores[3]) and sp.n == 3 and sp.extra["n_undefined"] == 1
    cx = complexity(game, attr)
    p = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(cx.scores[:3], [1.0, 0.0, -(p * np.log(p)).sum() / np.log(4)],
                               atol=1e-15)
    assert cx.n_evals == 0 and sp.higher_is_better and not cx.higher_is_better


def test_one_hot_sparseness_tends_to_one():
    n = 1000
    phi = np.zeros((1, n))
    phi[0, 17] = 2.5
    game = _game(1, n)
    assert sparseness(game, table_attr(game, phi)).scores[0] == pytest.approx(1 - 1 / n)


def test_ground_truth_hand_values():
    game = _game(1, 4)
    truth = np.array([[1, 0, 0, 1]])
    a = table_attr(game, np.array([[0.9, 0.1, 0.8, 0.3]]))
    assert auroc(game, a, ground_truth=truth).scores[0] == pytest.approx(0.75)
    assert precision_at_k(game, a, ground_truth=truth).scores[0] == pytest.approx(0.5)
    assert precision_at_k(game, a, ground_truth=truth, k=1).scores[0] == pytest.approx(1.0)
    ties = table_attr(game, np.ones((1, 4)))
    assert precision_at_k(game, ties, ground_truth=np.array([[1, 0, 0, 0]]),
                          k=1).scores[0] == pytest.approx(0.25)
    assert auroc(game, ties, ground_truth=truth).scores[0] == pytest.approx(0.5)
    r = table_attr(game, np.array([[2.0, -1, 1, 1]]))
    assert relevance_mass(game, r, ground_truth=truth).scores[0] == pytest.approx(0.75)
    assert relevance_mass(game, r, ground_truth=truth, absolute=True).scores[0] == pytest.approx(0.6)
    # top-2 by signed value: 2 (true), then a tie 1/1 between one true and one false
    assert relevance_rank(game, r, ground_truth=truth).scores[0] == pytest.approx(0.75)
    neg = table_attr(game, np.array([[0.9, -5, 0.8, 0.3]]))
    assert auroc(game, neg, ground_truth=truth).scores[0] == pytest.approx(0.25)
    assert auroc(game, neg, ground_truth=truth, absolute=False).scores[0] == pytest.approx(0.75)


def test_auroc_truth_is_one_random_is_half():
    rng = np.random.default_rng(0)
    b, n = 200, 50
    truth = rng.random((b, n)) < 0.3
    game = _game(b, n)
    assert np.all(auroc(game, table_attr(game, truth.astype(float)),
                        ground_truth=truth).scores == 1.0)
    rnd = auroc(game, table_attr(game, rng.normal(size=(b, n))), ground_truth=truth)
    assert abs(rnd.mean - 0.5) < 3 * rnd.stderr + 0.01
    allpos = auroc(game, table_attr(game, rng.normal(size=(b, n))),
                   ground_truth=np.ones((b, n)))
    assert np.isnan(allpos.scores).all() and math.isnan(allpos.mean)


def test_element_level_truth_with_groups_and_channels():
    x = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mask = torch.zeros(2, 4, 4)
    mask[:, :2, :2] = 1  # top-left patch, all channels

    def model(z):
        return (z * (1 + 4 * mask[:, None].mean(0))).sum(dim=(1, 2, 3))

    attr = tribute.explain(model, x, method="feature_ablation", groups=tribute.patches(2))
    res = evaluate(model, x, attr, metric="auroc", ground_truth=mask)  # broadcast over channels
    np.testing.assert_allclose(res.scores, 1.0)
    rm = evaluate(model, x, attr, metric="relevance_mass", ground_truth=mask.numpy())
    flat = attr.flat()[:, 0]
    np.testing.assert_allclose(rm.scores, flat[:, 0] / flat.sum(1), rtol=1e-12)
    player_truth = np.zeros((2, 4))
    player_truth[:, 0] = 1
    np.testing.assert_allclose(evaluate(model, x, attr, metric="relevance_mass",
                                        ground_truth=player_truth).scores, rm.scores)
    with pytest.raises(InputError, match="ground_truth"):
        evaluate(model, x, attr, metric="auroc", ground_truth=np.ones((2, 5)))
    with pytest.raises(InputError, match="ground_truth"):
        evaluate(model, x, attr, metric="auroc")


def test_shapley_error_exact_and_hand():
    coef = torch.tensor([[1.0, 2, 3]], dtype=torch.float64)

    def fn(m):  # v(S) = sum c_i m_i + 6 m0 m1 -> phi = (1+3, 2+3, 3)
        return (m * coef[:, None, :]).sum(-1) + 6 * m[..., 0] * m[..., 1]

    game = TableGame(fn, 3, 1, kind="feature")
    exact = np.array([[4.0, 5.0, 3.0]])
    r0 = shapley_error(game, table_attr(game, exact))
    assert r0.scores[0] == pytest.approx(0.0, abs=1e-14) and r0.n_evals == 8
    np.testing.assert_allclose(r0.extra["exact"], exact)
    r1 = shapley_error(game, table_attr(game, np.array([[4.0, 5.0, 0.0]])))
    assert r1.scores[0] == pytest.approx(3 / np.sqrt(50))
    with pytest.raises(InputError, match="2\\^3"):
        shapley_error(game, table_attr(game, exact), max_players=2)
    net = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    x = torch.randn(3, 6, dtype=torch.float64)
    attr = tribute.explain(net, x, method="exact_shapley")
    np.testing.assert_allclose(evaluate(net, x, attr, metric="shapley_error").scores, 0.0, atol=1e-10)


def test_registry_metadata():
    info = metrics()
    expected = {"deletion", "insertion", "road", "linear_score", "faithfulness_correlation",
                "infidelity", "max_sensitivity", "avg_sensitivity", "stability", "sparseness",
                "complexity", "model_randomisation", "random_logit", "auroc", "precision_at_k",
                "relevance_mass", "relevance_rank", "shapley_error"}
    assert expected <= set(info)
    for name, mi in info.items():
        assert mi.name == name and mi.paper and mi.summary and mi.category in (
            "faithfulness", "robustness", "complexity", "randomisation", "ground_truth")
        assert isinstance(mi.higher_is_better, bool)
        assert "seed" not in mi.needs and "explain" not in mi.defaults
        d = mi.as_dict()
        assert d["name"] == name
    assert info["deletion"].defaults == {"steps": 20, "normalise": False, "tie_orders": 8, "seed": 0}
    assert "ground_truth" in info["auroc"].needs and "explain" in info["max_sensitivity"].needs
    r = evaluate(lambda z: z.sum(1), np.ones((2, 3)),
                 tribute.explain(lambda z: z.sum(1), np.ones((2, 3)), method="feature_ablation"),
                 metric="sparseness")
    d = r.as_dict()
    assert d["metric"] == "sparseness" and d["scores"] == [0.0, 0.0]
    assert "sparseness" in repr(r) and r.ci95[0] <= r.mean <= r.ci95[1]


def test_public_metrics_is_a_plain_function():
    from tribute.metrics import deletion, get_metric

    assert callable(tribute.metrics) and not isinstance(tribute.metrics, type(tribute))
    assert tribute.metrics() == metrics() and deletion is get_metric("deletion")


def test_ci95_uses_students_t_for_few_samples():
    import scipy.stats

    from tribute.metrics.base import MetricResult

    r = MetricResult("deletion", np.array([0.1, 0.4, 0.2, 0.5, 0.3]), 0.3, 0.0707, 5, False)
    lo, hi = r.ci95
    q = scipy.stats.t.ppf(0.975, 4)  # 2.78: the normal 1.96 covered ~0.88 at 5 samples
    np.testing.assert_allclose([lo, hi], [0.3 - q * 0.0707, 0.3 + q * 0.0707])
    one = MetricResult("deletion", np.array([0.1]), 0.1, float("nan"), 1, False)
    assert all(np.isnan(one.ci95))


def test_ci95_of_skewed_scores_is_corrected_for_skewness():
    # per-sample scores near a bound (correlations near 1, a long tail below) are skewed: the
    # symmetric Student interval of their mean covered 0.72-0.81 of the time at 10 samples for
    # faithfulness_correlation on three models. Population here: 1 - 0.05 * lognormal(0, 1)
    # (skewness -6.2), 20 samples; the symmetric interval covers ~0.87 of 2,000 draws, Hall's
    # (1992) skewness-corrected one ~0.92 (0.95 on normal scores, as before). Fewer than 20
    # samples give no interval at all (MIN_SAMPLES)
    import warnings

    from tribute.metrics.base import Scores, finish, get_metric

    info = get_metric("sparseness").info
    rng = np.random.default_rng(0)
    truth = 1 - 0.05 * math.exp(0.5)
    hits, below = [], []
    for _ in range(2000):
        x = 1 - 0.05 * rng.lognormal(0.0, 1.0, size=20)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            r = finish(info, Scores(x), {}, 0, 0.0, multi_target=False)
        lo, hi = r.ci95
        hits.append(lo <= truth <= hi)
        below.append(r.mean - lo > hi - r.mean)  # the long tail is below: wider below
    assert np.mean(hits) >= 0.9 and np.mean(below) > 0.95
    normal = [finish(info, Scores(rng.normal(size=20)), {}, 0, 0.0, False) for _ in range(2000)]
    assert 0.935 <= np.mean([r.ci95[0] <= 0 <= r.ci95[1] for r in normal]) <= 0.965
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only reading ci95 warns
        few = finish(info, Scores(rng.normal(size=10)), {}, 0, 0.0, False)
    assert np.isfinite(few.stderr) and "at least 20 inputs" in few.extra["ci95_note"]
    with pytest.warns(tribute.StderrWarning, match="10 samples: too few.*at least 20 inputs"):
        assert all(np.isnan(few.ci95))
    same = finish(info, Scores(np.full(5, 0.5)), {}, 0, 0.0, False)  # no spread: no warning
    assert same.stderr == 0.0 and same.ci95 == (0.5, 0.5)
