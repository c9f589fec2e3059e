"""SHAP-KL (output="kl"): exact enumeration, efficiency, estimators, label-leakage diagnostic."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.methods.shap_kl import label_leakage, top_k_selection


def _softmax_model(seed: int = 0, d: int = 4, c: int = 3) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, 5), torch.nn.Tanh(), torch.nn.Linear(5, c)).double()


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum(p * (np.log(p) - np.log(q))))


def _exact_shapley_kl(model: torch.nn.Module, x: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Brute-force Shapley values of v(S) = -KL(p(x) || p(x_S)) from the closed-form formula."""
    d = x.shape[0]

    def probs(z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(model(torch.as_tensor(z[None])), -1)[0].numpy()

    p = probs(x)

    def v(s: tuple[int, ...]) -> float:
        z = base.copy()
        z[list(s)] = x[list(s)]
        return -_kl(p, probs(z))

    phi = np.zeros(d)
    for i in range(d):
        others = [j for j in range(d) if j != i]
        for r in range(d):
            for s in itertools.combinations(others, r):
                w = math.factorial(r) * math.factorial(d - r - 1) / math.factorial(d)
                phi[i] += w * (v(tuple(sorted((*s, i)))) - v(s))
    return phi


def test_exact_enumeration_matches_brute_force_and_efficiency() -> None:
    model = _softmax_model()
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    base = np.array([0.1, -0.2, 0.0, 0.3])
    attr = tribute.explain(model, x, method="exact_shapley", output="kl", baseline=base)
    for b in range(3):
        ref = _exact_shapley_kl(model, x[b].numpy(), base)
        np.testing.assert_allclose(attr.values[b].numpy(), ref, atol=1e-10)
        with torch.no_grad():
            p = torch.softmax(model(x[b:b + 1]), -1)[0].numpy()
            q = torch.softmax(model(torch.as_tensor(base[None])), -1)[0].numpy()
        # efficiency: credits sum to v(N) - v(empty) = 0 - (-KL(p || p_empty))
        assert float(attr.values[b].sum()) == pytest.approx(_kl(p, q), abs=1e-10)


def test_game_values_sign_and_binary_and_probability_models() -> None:
    model = _softmax_model(c=3)
    x = torch.randn(2, 4, dtype=torch.float64)
    game = tribute.build_game(model, x, output="kl", baseline=0.0)
    assert torch.allclose(game.full(), torch.zeros(2, 1, dtype=torch.float64), atol=1e-12)
    assert bool((game.empty() < 0).all())  # removing everything moves the distribution

    # one logit column: the label distribution is (1 - sigmoid, sigmoid)
    lin = torch.nn.Linear(4, 1).double()
    # (declared: an untrained layer's logits on two random rows often all lie in [0, 1], which
    # would warn that they look like probabilities)
    g1 = tribute.build_game(lin, x, output="kl", baseline=0.0, model_output="logit")
    with torch.no_grad():
        z, z0 = lin(x)[:, 0].numpy(), lin(torch.zeros(1, 4, dtype=torch.float64))[0, 0].item()
    s = 1 / (1 + np.exp(-z))
    s0 = 1 / (1 + np.exp(-z0))
    ref = [-_kl(np.array([1 - a, a]), np.array([1 - s0, s0])) for a in s]
    np.testing.assert_allclose(g1.empty()[:, 0].numpy(), ref, atol=1e-12)

    # a model returning probabilities gives the same game as its logits
    def proba(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(model(torch.as_tensor(a)), -1).numpy()

    gp = tribute.build_game(proba, x.numpy(), output="kl", baseline=0.0, model_output="probability")
    np.testing.assert_allclose(np.asarray(gp.empty()), game.empty().numpy(), atol=1e-9)


def test_every_shapley_estimator_runs_on_the_kl_game() -> None:
    model = _softmax_model(seed=3)
    x = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    exact = tribute.explain(model, x, method="exact_shapley", output="kl", baseline=0.0)
    for method in ("kernel_shap", "permutation_shapley"):
        est = tribute.explain(model, x, method=method, output="kl", baseline=0.0, budget=2000, seed=0)
        np.testing.assert_allclose(est.values.numpy(), exact.values.numpy(), atol=2e-2)


def test_kl_refuses_a_class_target_and_raw_models() -> None:
    model = _softmax_model()
    x = torch.randn(2, 4, dtype=torch.float64)
    with pytest.raises(InputError, match=r"target must be None.*target=1"):
        tribute.explain(model, x, method="exact_shapley", output="kl", target=1, baseline=0.0)
    with pytest.raises(InputError, match="output='kl' needs class scores"):
        tribute.explain(lambda a: a.sum(1), x.numpy(), method="exact_shapley", output="kl",
                        baseline=0.0, model_output="raw")


def test_planted_features_get_the_largest_kl_credits() -> None:
    rng = np.random.default_rng(0)
    w = torch.zeros(3, 6, dtype=torch.float64)
    w[0, 1], w[1, 4], w[2, 1], w[2, 4] = 3.0, 3.0, -2.0, -2.0  # planted: features 1 and 4
    model = torch.nn.Linear(6, 3, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w)
    x = torch.as_tensor(rng.normal(size=(10, 6)))
    attr = tribute.explain(model, x, method="exact_shapley", output="kl", baseline=0.0)
    v = attr.values.numpy()
    # a single credit can be negative (alone, a feature may move the distribution away), but
    # the planted features hold all of it: the others get exactly 0, the planted ones the
    # largest magnitudes and a positive mean
    top2 = np.argsort(-np.abs(v), axis=1)[:, :2]
    assert all(set(r) == {1, 4} for r in top2.tolist())
    assert np.allclose(v[:, [0, 2, 3, 5]], 0.0, atol=1e-12)
    assert (v[:, [1, 4]].mean(0) > 0).all()


def test_label_leakage_diagnostic() -> None:
    """Jethani et al. 2023: an explainer that picks features by the predicted label leaks it.

    The model's label depends on feature 0 only; features 1..3 are noise. The leaking
    explainer keeps feature 1 when the label is 1 and feature 2 when it is 0, so the label can
    be read from *which* feature was kept (leaky accuracy 1) although the kept feature carries
    no information about it. SHAP-KL sees no retained information; the honest selection
    (feature 0) keeps most of it while its pattern alone says nothing about the label.
    """
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(200, 4)))
    model = torch.nn.Linear(4, 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-2.0, 0, 0, 0], [2.0, 0, 0, 0]], dtype=torch.float64))
        model.bias.zero_()
    labels = (x[:, 0] > 0).numpy()
    game = tribute.build_game(model, x, output="kl", baseline=0.0)
    leaky_sel = np.zeros((200, 4), dtype=bool)
    leaky_sel[labels, 1] = True
    leaky_sel[~labels, 2] = True
    leak = label_leakage(game, leaky_sel)
    assert leak.leaky_accuracy == 1.0 and leak.chance_accuracy < 0.6
    assert abs(leak.kl_retained) < 1e-12 and leak.n_evals == 2  # the selection + v(empty)

    shap_kl = tribute.explain(model, x, method="exact_shapley", output="kl", baseline=0.0)
    honest = label_leakage(game, top_k_selection(shap_kl, 1))
    assert (top_k_selection(shap_kl, 1)[:, 0]).all()
    assert honest.leaky_accuracy == honest.chance_accuracy  # one pattern: nothing leaks
    assert honest.kl_retained == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(InputError, match=r"selection has shape \(3, 4\); expected \(batch, players\) = \(200, 4\)"):
        label_leakage(game, leaky_sel[:3])
    with pytest.raises(InputError, match="output='kl'"):
        label_leakage(tribute.build_game(model, x, output="prob", baseline=0.0), leaky_sel)


def test_gradient_and_noise_methods_on_the_kl_game() -> None:
    """The KL value is differentiable: IG's completeness gives the same total as Shapley's
    efficiency, and noisy views (SmoothGrad) carry each sample's reference distribution."""
    model = _softmax_model(seed=5)
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    shap = tribute.explain(model, x, method="exact_shapley", output="kl", baseline=0.0)
    ig = tribute.explain(model, x, method="integrated_gradients", output="kl", baseline=0.0, budget=128)
    np.testing.assert_allclose(ig.values.sum(1).numpy(), shap.values.sum(1).numpy(), rtol=5e-3)
    sg = tribute.explain(model, x, method="smoothgrad", output="kl", n_samples=4, noise=0.0)
    plain = tribute.explain(model, x, method="saliency", output="kl")
    np.testing.assert_allclose(sg.values.numpy(), plain.values.numpy(), atol=1e-12)
