"""Robustness, randomisation, complexity and ground-truth metrics against hand references and
Quantus' definitions (audit aud38q, stop 38).

The audit (report: notes38/r_aud38q.md) compared every metric of these modules with a numpy
reference written from the paper's definition and with Quantus 0.6.0 where the definitions agree
(sparseness, complexity, AUC, relevance mass / rank accuracy, max / avg sensitivity on the same
noise draws); they agreed to 1e-15 (1e-7 for Quantus' epsilon-shifted Gini). The tests below are
the regressions of what it found, plus small hand references for the paths no earlier test
pinned. Weights are float64 draws of numpy's generator (no dependence on the CPU's kernels).
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import numpy as np
import pytest
import scipy.stats
import torch

import tribute
from tribute.errors import InputError
from tribute.metrics import evaluate
from tribute.metrics.randomisation import parameter_layers, random_parameters


def _mlp(n_in: int = 6, hidden: int = 8, n_out: int = 3, depth: int = 1,
         seed: int = 0) -> torch.nn.Sequential:
    rng = np.random.default_rng(seed)
    layers: list[torch.nn.Module] = [torch.nn.Linear(n_in, hidden), torch.nn.Tanh()]
    for _ in range(depth - 1):
        layers += [torch.nn.Linear(hidden, hidden), torch.nn.Tanh()]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(hidden, n_out)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.from_numpy(rng.normal(size=p.shape)))
    return net


def _x(b: int = 4, n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(b, n)))


# ------------------------------------------------------------------ found by the audit
def test_model_randomisation_reads_a_string_layers_as_one_name() -> None:
    # layers="10" was iterated character by character: layers '1' and '0' were randomised
    # instead of layer '10', silently (the score of another experiment)
    net = _mlp(n_in=3, hidden=3, depth=6)  # modules 0..12; 10 is a Linear
    assert "10" in parameter_layers(net) and "1" not in parameter_layers(net)
    x = _x(3, 3)
    attr = tribute.explain(net, x, method="saliency", target=np.array([0, 1, 2]))
    one = evaluate(net, x, attr, metric="model_randomisation", layers="10")
    listed = evaluate(net, x, attr, metric="model_randomisation", layers=["10"])
    assert one.extra["layers"] == ["10"]
    # two calls re-explaining: tuned chunk sizes may differ between them (last-bit differences)
    np.testing.assert_allclose(one.scores, listed.scores, rtol=1e-12, atol=1e-15)


def test_forwarding_explain_callable_is_not_handed_sample() -> None:
    # the pattern stability's own error message recommends,
    # explain=lambda x, **kw: tribute.explain(model, x, method=..., **kw), received sample=
    # through **kw and failed: "method 'smoothgrad' got unknown parameter(s) ['sample']"
    net, x, y = _mlp(), _x(), np.array([0, 1, 2, 1])
    attr = tribute.explain(net, x, method="smoothgrad", target=y, seed=0)

    def fwd(inputs, **kw):
        return tribute.explain(net, inputs, method="smoothgrad", **kw)

    for metric, kw in (("stability", {"seeds": (0, 1, 2)}), ("max_sensitivity", {"n_samples": 3}),
                       ("random_logit", {})):
        got = evaluate(net, x, attr, metric=metric, explain=fwd, **kw)
        want = evaluate(net, x, attr, metric=metric, **kw)  # the default explain callable
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-12, err_msg=metric)

    def fwd_model(model, inputs, **kw):
        return tribute.explain(model, inputs, method="smoothgrad", **kw)

    got = evaluate(net, x, attr, metric="model_randomisation", explain=fwd_model)
    want = evaluate(net, x, attr, metric="model_randomisation")
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-12)


def test_a_named_sample_parameter_still_receives_the_sample_index() -> None:
    net, x, y = _mlp(), _x(), np.array([0, 1, 2, 1])
    attr = tribute.explain(net, x, method="saliency", target=y)
    seen = []

    def explain(inputs, target=None, sample=None):
        seen.append(np.asarray(sample))
        return tribute.explain(net, inputs, method="saliency", target=target)

    evaluate(net, x, attr, metric="max_sensitivity", explain=explain, n_samples=2)
    np.testing.assert_array_equal(seen[0], np.tile(np.arange(4), 2))


def test_model_randomisation_names_a_one_argument_explain_callable() -> None:
    # evaluate(..., explain=lambda x: ...) for model_randomisation failed inside the first
    # re-explanation with "<lambda>() takes 1 positional argument but 2 were given"
    net, x = _mlp(), _x()
    attr = tribute.explain(net, x, method="saliency", target=np.array([0, 1, 2, 1]))
    with pytest.raises(InputError, match=r"model_explain\(model, inputs\)"):
        evaluate(net, x, attr, metric="model_randomisation",
                 explain=lambda inputs, **kw: tribute.explain(net, inputs, method="saliency", **kw))


@pytest.mark.parametrize("metric", ["auroc", "relevance_mass", "relevance_rank", "precision_at_k"])
def test_ground_truth_as_a_nested_list_is_one_mask(metric: str) -> None:
    # a batch x players mask written as a list of lists was read as one part per input:
    # "ground_truth has shape(s) [(6,), (6,), (6,), (6,)]; expected (4, 6)"
    net, x = _mlp(), _x()
    attr = tribute.explain(net, x, method="saliency", target=np.array([0, 1, 2, 1]))
    truth = [[1, 1, 0, 0, 0, 0], [0, 1, 0, 1, 0, 0], [1, 0, 0, 0, 0, 1], [0, 0, 1, 1, 1, 0]]
    got = evaluate(net, x, attr, metric=metric, ground_truth=truth)
    want = evaluate(net, x, attr, metric=metric, ground_truth=np.array(truth))
    np.testing.assert_array_equal(got.scores, want.scores)
    # one sample: [[flags]] is its mask too; a list with the one array still works
    one = evaluate(net, x[:1], tribute.explain(net, x[:1], method="saliency", target=np.array([0])),
                   metric=metric, ground_truth=[truth[0]])
    np.testing.assert_allclose(one.scores, want.scores[:1], rtol=1e-12)  # batch of 1: ulps
    again = evaluate(net, x, attr, metric=metric, ground_truth=[np.array(truth)])
    np.testing.assert_array_equal(again.scores, want.scores)


# ------------------------------------------------------------------ hand references
def _saliency(model: torch.nn.Module, x: torch.Tensor, target: np.ndarray) -> np.ndarray:
    xx = x.detach().clone().requires_grad_(True)
    out = model(xx)
    (g,) = torch.autograd.grad(out[torch.arange(len(target)), torch.as_tensor(target)].sum(), xx)
    return g.numpy()


def test_sensitivity_against_the_definition_with_per_sample_targets() -> None:
    # Yeh et al.: max / mean over draws of ||phi(x + e) - phi(x)|| / ||phi(x)||, e ~ U(-r, r)
    # per element; each draw shared by the samples (tribute's common random numbers)
    net, x, y = _mlp(seed=3), _x(5, seed=4), np.array([0, 1, 2, 1, 0])
    attr = tribute.explain(net, x, method="saliency", target=y)
    a = _saliency(net, x, y)
    k, r = 20, 0.3
    g = torch.Generator().manual_seed(3)
    noise = ((torch.rand(k, 1, 6, generator=g, dtype=torch.float64) * 2 - 1) * r).numpy()
    sens = np.stack([np.linalg.norm(_saliency(net, x + torch.from_numpy(noise[i]), y) - a, axis=1)
                     for i in range(k)], axis=1) / np.linalg.norm(a, axis=1)[:, None]
    mx = evaluate(net, x, attr, metric="max_sensitivity", radius=r, n_samples=k, seed=3)
    av = evaluate(net, x, attr, metric="avg_sensitivity", radius=r, n_samples=k, seed=3)
    np.testing.assert_allclose(mx.scores, sens.max(1), rtol=1e-12)
    np.testing.assert_allclose(av.scores, sens.mean(1), rtol=1e-12)


def test_random_logit_against_the_definition() -> None:
    net, x, y = _mlp(n_out=5, seed=5), _x(4, seed=6), np.array([0, 4, 2, 1])
    attr = tribute.explain(net, x, method="saliency", target=y)
    r = evaluate(net, x, attr, metric="random_logit", seed=5)
    off = int(torch.randint(1, 5, (1,), generator=torch.Generator().manual_seed(5)))
    other = (y + off) % 5
    a, b = _saliency(net, x, y), _saliency(net, x, other)
    want = [scipy.stats.spearmanr(np.abs(a[i]), np.abs(b[i])).statistic for i in range(4)]
    np.testing.assert_array_equal(r.extra["other_class"], other)
    np.testing.assert_allclose(r.scores, want, rtol=1e-12)


@pytest.mark.parametrize("mode", ["cascading", "independent"])
def test_model_randomisation_against_the_definition(mode: str) -> None:
    net, x, y = _mlp(depth=2, seed=7), _x(4, seed=8), np.array([0, 1, 2, 1])
    attr = tribute.explain(net, x, method="saliency", target=y)
    r = evaluate(net, x, attr, metric="model_randomisation", mode=mode, seed=2)
    g = torch.Generator().manual_seed(2)
    names = parameter_layers(net)[::-1]
    fresh = {n: random_parameters(dict(net.named_modules())[n], g) for n in names}
    work, sims = copy.deepcopy(net), []
    for n in names:
        if mode == "independent":
            work = copy.deepcopy(net)
        with torch.no_grad():
            for key, v in fresh[n].items():
                getattr(dict(work.named_modules())[n], key).copy_(v)
        b = _saliency(work, x, y)
        a = attr.values.numpy()
        sims.append([scipy.stats.spearmanr(np.abs(a[i]), np.abs(b[i])).statistic for i in range(4)])
    np.testing.assert_allclose(r.extra["per_layer"], sims, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(r.scores, np.mean(sims, 0), rtol=1e-12)


def test_stability_against_the_definition() -> None:
    net, x, y = _mlp(seed=9), _x(4, seed=10), np.array([0, 1, 2, 1])
    attr = tribute.explain(net, x, method="smoothgrad", target=y, seed=0)
    outs = [tribute.explain(net, x, method="smoothgrad", target=y, seed=s).flat()[:, 0]
            for s in (0, 1, 2)]
    for absolute in (False, True):
        f = np.abs if absolute else np.asarray
        want = np.mean([[scipy.stats.spearmanr(f(outs[i][b]), f(outs[j][b])).statistic
                         for b in range(4)] for i, j in itertools.combinations(range(3), 2)], 0)
        got = evaluate(net, x, attr, metric="stability", seeds=(0, 1, 2), absolute=absolute)
        np.testing.assert_allclose(got.scores, want, rtol=1e-12)


def test_complexity_and_sparseness_against_the_definitions() -> None:
    # Chalasani et al.'s Gini of |phi| (Quantus' Sparseness without its +1e-7 shift) and Bhatt
    # et al.'s entropy of |phi| / sum |phi| (Quantus' Complexity; tribute divides by log n)
    net, x, y = _mlp(seed=11), _x(4, seed=12), np.array([0, 1, 2, 1])
    attr = tribute.explain(net, x, method="saliency", target=y)
    a = np.abs(attr.values.numpy())
    s = np.sort(a, axis=1)
    i = np.arange(1, 7)
    gini = ((2 * i - 7) * s).sum(1) / (6 * s.sum(1))
    ent = scipy.stats.entropy(a / a.sum(1, keepdims=True), axis=1)
    np.testing.assert_allclose(evaluate(net, x, attr, metric="sparseness").scores, gini, rtol=1e-12)
    c = evaluate(net, x, attr, metric="complexity")
    np.testing.assert_allclose(c.extra["entropy"], ent, rtol=1e-12)
    np.testing.assert_allclose(c.scores, ent / np.log(6), rtol=1e-12)


def test_localisation_against_the_definitions_with_negative_credits() -> None:
    # Arras et al.: mass = positive relevance inside / all positive relevance; rank = share
    # of the |GT| largest (signed) credits inside; AUROC = Mann-Whitney of |phi|
    net, x, y = _mlp(seed=15), _x(4, seed=16), np.array([0, 1, 2, 1])
    attr = tribute.explain(net, x, method="saliency", target=y)
    a = attr.values.numpy()
    truth = np.array([[1, 1, 0, 0, 0, 0], [0, 1, 0, 1, 0, 0], [1, 0, 0, 0, 0, 1],
                      [0, 0, 1, 1, 1, 0]], dtype=bool)
    assert ((a < 0).sum(1) > 0).sum() >= 3  # negative credits in most samples
    pos = np.clip(a, 0, None)
    mass = (pos * truth).sum(1) / pos.sum(1)
    rank = [truth[b, np.argsort(-a[b])[: truth[b].sum()]].mean() for b in range(4)]
    auc = []
    for b in range(4):
        pairs = [(p > q) + 0.5 * (p == q) for p in np.abs(a[b][truth[b]])
                 for q in np.abs(a[b][~truth[b]])]
        auc.append(np.mean(pairs))
    kw: dict[str, Any] = {"ground_truth": truth}
    np.testing.assert_allclose(evaluate(net, x, attr, metric="relevance_mass", **kw).scores, mass,
                               rtol=1e-12)
    np.testing.assert_allclose(evaluate(net, x, attr, metric="relevance_rank", **kw).scores, rank,
                               rtol=1e-12)
    np.testing.assert_allclose(evaluate(net, x, attr, metric="auroc", **kw).scores, auc, rtol=1e-12)


def test_stability_and_sensitivity_argument_checks() -> None:
    # seeds=[0, 0] compared an attribution with itself and scored 1.0 (a stochastic method);
    # seeds=5 and param_grid={...} failed with TypeError / ValueError from inside; a numpy
    # float32 radius was refused as "not a positive number"
    net, x, y = _mlp(), _x(), np.array([0, 1, 2, 1])
    attr = tribute.explain(net, x, method="smoothgrad", target=y, seed=0)
    with pytest.raises(InputError, match="repeats a seed"):
        evaluate(net, x, attr, metric="stability", seeds=[0, 0])
    with pytest.raises(InputError, match="seeds=5"):
        evaluate(net, x, attr, metric="stability", seeds=5)
    with pytest.raises(InputError, match="param_grid="):
        evaluate(net, x, attr, metric="stability", param_grid={"n_samples": 5})
    r32 = evaluate(net, x, attr, metric="max_sensitivity", radius=np.float32(0.25), n_samples=3)
    r64 = evaluate(net, x, attr, metric="max_sensitivity", radius=0.25, n_samples=3)
    # the same radius (0.25 is exact in float32); the engine's tuned chunk sizes may differ
    # between the two calls, so the re-explanations may differ in the last bit (seen on CPUs
    # without AVX2: 1e-16)
    np.testing.assert_allclose(r32.scores, r64.scores, rtol=1e-12, atol=0)
    for bad in (True, float("nan"), -0.1):
        with pytest.raises(InputError, match="radius="):
            evaluate(net, x, attr, metric="max_sensitivity", radius=bad, n_samples=3)
