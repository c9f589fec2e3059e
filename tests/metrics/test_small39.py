"""small39: stability's seeds and param_grid, precision_at_k's k, a per-sample baseline held by
a forwarding explain callable, and constant re-explanations in the similarity metrics."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.metrics import evaluate
from tribute.metrics.robustness import perturb_inputs

pytestmark = pytest.mark.filterwarnings("ignore::tribute.StderrWarning")


def _mlp() -> torch.nn.Module:
    g = torch.Generator().manual_seed(5)
    net = torch.nn.Sequential(torch.nn.Linear(10, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return net


def _x(b: int = 4, d: int = 10) -> torch.Tensor:
    return torch.randn(b, d, generator=torch.Generator().manual_seed(6), dtype=torch.float64)


# ------------------------------------------------------------------ 1. seeds read once
@pytest.mark.parametrize("make", [lambda: iter([3, 4, 5]), lambda: (s for s in [3, 4, 5]),
                                  lambda: np.array([3, 4, 5])])
def test_stability_reads_an_iterator_of_seeds_as_the_list(make: Any) -> None:
    # an iterator was consumed by the int check, then read as empty: "needs at least two seeds"
    net, x = _mlp(), _x()
    attr = tribute.explain(net, x, method="kernel_shap", budget=40, seed=0)
    got = evaluate(net, x, attr, metric="stability", seeds=make())
    want = evaluate(net, x, attr, metric="stability", seeds=[3, 4, 5])
    assert got.params["seeds"] is not None
    np.testing.assert_array_equal(got.scores, want.scores)
    assert want.extra["configs"] == [{"seed": 3}, {"seed": 4}, {"seed": 5}]
    assert float(np.min(want.scores)) < 1.0  # a stochastic method: the seeds matter


@pytest.mark.parametrize("gen", [np.random.default_rng(0), torch.Generator()])
def test_stability_refuses_a_random_generator_as_seeds(gen: Any) -> None:
    net, x = _mlp(), _x()
    attr = tribute.explain(net, x, method="kernel_shap", budget=40, seed=0)
    with pytest.raises(InputError, match=r"seeds=.*random generator.*Draw them first"):
        evaluate(net, x, attr, metric="stability", seeds=gen)


# ------------------------------------------------------------------ 2. repeated configuration
def test_stability_refuses_a_param_grid_that_repeats_a_configuration() -> None:
    # two identical dicts compared an attribution with itself: 1.0 for a stochastic method
    net, x = _mlp(), _x()
    attr = tribute.explain(net, x, method="kernel_shap", budget=40, seed=0)
    with pytest.raises(InputError, match=r"param_grid lists the configuration \{'budget': 40\} twice "
                                         r"\(entries 0 and 2\)"):
        evaluate(net, x, attr, metric="stability",
                 param_grid=[{"budget": 40}, {"budget": 60}, {"budget": 40}])
    ok = evaluate(net, x, attr, metric="stability",
                  param_grid=[{"budget": 40, "seed": 0}, {"budget": 40, "seed": 1}])
    assert float(np.min(ok.scores)) < 1.0
    with pytest.raises(InputError, match="twice"):  # a generator of dicts is read once too
        evaluate(net, x, attr, metric="stability", param_grid=(p for p in [{"seed": 1}, {"seed": 1}]))


# ------------------------------------------------------------------ 3. precision_at_k's k
def test_precision_at_k_refuses_k_over_the_element_count() -> None:
    net, x = _mlp(), _x()
    attr = tribute.explain(net, x, method="saliency")
    truth = np.zeros((4, 10))
    truth[:, :3] = 1
    # before: k=25 was clipped to 10 and scored 0.3 (the true share of all elements)
    with pytest.raises(InputError, match=r"k=25 is larger than the 10 players/elements.*k <= 10"):
        evaluate(net, x, attr, metric="precision_at_k", ground_truth=truth, k=25)
    full = evaluate(net, x, attr, metric="precision_at_k", ground_truth=truth, k=10)
    np.testing.assert_allclose(full.scores, 0.3)  # k = all elements is still allowed


# ------------------------------------------------------------------ 4. forwarding callable
def test_sensitivity_of_a_forwarding_callable_with_a_per_sample_baseline_is_hand_computed() -> None:
    # lambda x, **kw: tribute.explain(model, x, baseline=B, **kw) got the k * b stacked rows and
    # the b-row baseline, which explain read as a background set: avg_sensitivity 0.82 where the
    # method's own callable gave 0.077 (a 10x wrong number, no warning)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 10, generator=g, dtype=torch.float64)
    lin = torch.nn.Linear(10, 3, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(w)
    x = _x()
    base = torch.randn(4, 10, generator=g, dtype=torch.float64)  # one baseline per sample
    attr = tribute.explain(lin, x, method="integrated_gradients", baseline=base, target=1)

    def fwd(xx: Any, **kw: Any) -> tribute.Attribution:
        return tribute.explain(lin, xx, method="integrated_gradients", baseline=base, **kw)

    stacked, sample = perturb_inputs(x, 0.2, 5, 0)
    noise = (stacked - x[torch.as_tensor(sample)]).reshape(5, 4, 10)
    # IG of a linear model is exact: phi = w_c * (x - b), so the change is w_c * noise
    want = (torch.linalg.norm(w[1] * noise, dim=-1) / torch.linalg.norm(w[1] * (x - base), dim=-1)).mean(0)
    got = evaluate(lin, x, attr, metric="avg_sensitivity", baseline=base, explain=fwd, n_samples=5)
    default = evaluate(lin, x, attr, metric="avg_sensitivity", baseline=base, n_samples=5)
    np.testing.assert_allclose(got.scores, want.numpy(), rtol=1e-9)
    np.testing.assert_allclose(default.scores, want.numpy(), rtol=1e-9)
    assert got.extra["explain_calls"] == 5 and default.extra["explain_calls"] == 1


@pytest.mark.parametrize("metric, params", [("stability", {"seeds": [1, 2]}), ("random_logit", {}),
                                            ("max_sensitivity", {"n_samples": 3})])
def test_forwarding_callable_and_method_string_agree(metric: str, params: dict[str, Any]) -> None:
    net, x = _mlp(), _x()
    base = torch.randn(4, 10, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    attr = tribute.explain(net, x, method="kernel_shap", budget=64, baseline=base, seed=0)

    def fwd(xx: Any, **kw: Any) -> tribute.Attribution:
        return tribute.explain(net, xx, method="kernel_shap", budget=64, baseline=base, **kw)

    a = evaluate(net, x, attr, metric=metric, baseline=base, explain=fwd, **params)
    b = evaluate(net, x, attr, metric=metric, baseline=base, **params)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ 5. constant re-explanations
def _flat_copy(attr: tribute.Attribution, value: float) -> tribute.Attribution:
    return dataclasses.replace(attr, values=np.full_like(np.asarray(attr.values), value))


def test_stability_counts_a_constant_re_explanation_instead_of_skipping_it() -> None:
    net, x = _mlp(), _x()
    attr = tribute.explain(net, x, method="saliency")
    flat = _flat_copy(attr, 0.0)

    def explain(xx: Any, seed: int = 0, **kw: Any) -> tribute.Attribution:
        return flat if seed == 1 else attr

    r = evaluate(net, x, attr, metric="stability", explain=explain, seeds=[0, 1, 2])
    # pairs (0, 1) and (1, 2) hold the flat explanation (0 each), (0, 2) are identical (1):
    # the mean is 1/3; it was 1.0 (the NaN pairs skipped)
    np.testing.assert_allclose(r.scores, 1 / 3)
    assert r.extra["n_constant"] == 2 * 4
    np.testing.assert_allclose(r.extra["pairwise"], np.tile([0.0, 1.0, 0.0], (4, 1)))
    both = evaluate(net, x, attr, metric="stability", explain=lambda xx, **kw: flat, seeds=[0, 1])
    np.testing.assert_allclose(both.scores, 1.0)  # two identical flat explanations agree


@pytest.mark.parametrize("similarity", ["spearman", "ssim"])
def test_model_randomisation_scores_a_flat_layer_as_changed(similarity: str) -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Tanh(), torch.nn.Flatten(),
                              torch.nn.Linear(2 * 36, 3)).double()
    x = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    attr = tribute.explain(net, x, method="saliency")
    calls = []

    def model_explain(m: Any, xx: Any, **kw: Any) -> tribute.Attribution:
        calls.append(1)
        new = tribute.explain(m, xx, method="saliency", **kw)
        return _flat_copy(new, 0.0) if len(calls) == 1 else new  # the top layer: a flat map

    r = evaluate(net, x, attr, metric="model_randomisation", explain=model_explain, similarity=similarity)
    per_layer = np.asarray(r.extra["per_layer"])  # layers x batch
    if similarity == "spearman":
        np.testing.assert_allclose(per_layer[0], 0.0)
    else:  # SSIM against a constant (second) map is defined and kept (rev39b): not forced to 0
        from tribute.metrics._similarity import ssim_maps
        orig = np.abs(np.asarray(attr.values)).reshape(3, 6, 6)
        np.testing.assert_allclose(per_layer[0], ssim_maps(orig, np.zeros_like(orig)), rtol=1e-12)
    assert np.isfinite(per_layer).all()
    np.testing.assert_allclose(r.scores, per_layer.mean(0))  # it was the mean of layer 2 only
    assert r.extra["n_constant"] == (3 if similarity == "spearman" else 0)
    assert r.extra["n_nan_similarity"] == 0
