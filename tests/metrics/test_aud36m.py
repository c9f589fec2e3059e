"""Metrics on component, SAE-latent, training-data and text credits against hand references
(audit aud36m, stop 36).

Every truth is computed here without tribute's metric code: plain numpy forwards of the
models with the documented ablation, ridge regression retrained in closed form on every
subset, the metrics' definitions written out (deletion's order with ties by index, the
trapezoid over the fraction removed; infidelity and faithfulness correlation on the same
seeded draws; Spearman with average ranks from scipy). Weights are float64 draws of numpy's
generator, so the numbers do not depend on the CPU's torch kernels.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats
import torch

import tribute
from tribute.errors import InputError
from tribute.games.data_fits import RidgeFit
from tribute.metrics import deletion, shapley_error
from tribute.metrics._util import random_subsets

Values = Callable[[np.ndarray], np.ndarray]  # masks K x n -> K values of one sample and target


# ------------------------------------------------------------------ references
def _deletion(phi: np.ndarray, v: Values, steps: int = 20, insert: bool = False) -> float:
    n = phi.size
    s = min(steps, n)
    counts = np.round(np.arange(s + 1) * n / s).astype(int)
    order = sorted(range(n), key=lambda i: (-phi[i], i))  # ties: player index
    masks = np.zeros((s + 1, n)) if insert else np.ones((s + 1, n))
    for row, c in enumerate(counts):
        masks[row, order[:c]] = 1.0 if insert else 0.0
    y, x = v(masks), counts / n
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)))


def _infidelity(phi: np.ndarray, v: Values, k: int = 50, noise: float = 0.2) -> float:
    g = torch.Generator().manual_seed(0)
    u = (torch.randn(k, phi.size, generator=g, dtype=torch.float64) * noise).numpy()
    drop = v(np.ones((1, phi.size)))[0] - v(1 - u)
    return float(np.mean((u @ phi - drop) ** 2))


def _faithfulness_correlation(phi: np.ndarray, v: Values, k: int = 100) -> float:
    n = phi.size
    g = torch.Generator().manual_seed(0)
    s = random_subsets(n, max(1, min(2, n - 1), round(0.1 * n)), k, g).numpy().astype(np.float64)
    drop = v(np.ones((1, n)))[0] - v(1 - s)
    return float(scipy.stats.pearsonr(s @ phi, drop).statistic)


def _linear_score(phi: np.ndarray, v: Values, k: int = 100) -> float:
    n = phi.size
    g = torch.Generator().manual_seed(0)
    m = random_subsets(n, min(max(1, round(0.5 * n)), n), k, g).numpy().astype(np.float64)
    return float(scipy.stats.spearmanr(m @ phi, v(m)).statistic)


def _shapley(v: Values, n: int) -> np.ndarray:
    table = np.array(list(itertools.product([0, 1], repeat=n)), dtype=np.float64)
    val = dict(zip(map(tuple, table.astype(int)), v(table)))
    phi = np.zeros(n)
    for m, without in val.items():
        s = sum(m)
        for i in range(n):
            if not m[i]:
                w = math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n)
                phi[i] += w * (val[tuple(1 if j == i else m[j] for j in range(n))] - without)
    return phi


def _shapley_error(phi: np.ndarray, v: Values) -> float:
    exact = _shapley(v, phi.size)
    return float(np.linalg.norm(phi - exact) / np.linalg.norm(exact))


REFERENCES: dict[str, Callable[[np.ndarray, Values], float]] = {
    "deletion": _deletion,
    "insertion": lambda p, v: _deletion(p, v, insert=True),
    "infidelity": _infidelity,
    "faithfulness_correlation": _faithfulness_correlation,
    "linear_score": _linear_score,
    "shapley_error": _shapley_error,
}


def _assign(layer: Any, rng: np.random.Generator, scale: float = 1.0) -> None:
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(rng.normal(size=tuple(layer.weight.shape))))
        layer.bias.copy_(torch.from_numpy(scale * rng.normal(size=tuple(layer.bias.shape))))


# ------------------------------------------------------------------ components
def _tanh_net(seed: int = 5) -> tuple[Any, torch.Tensor]:
    rng = np.random.default_rng(seed)
    net: Any = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).double()
    _assign(net[0], rng, 0.3)
    _assign(net[2], rng, 0.1)
    return net, torch.from_numpy(rng.normal(size=(5, 4)))


@pytest.mark.parametrize("ablation", ["zero", "mean"])
def test_value_metrics_on_neurons_with_several_targets_match_a_numpy_forward(ablation: str) -> None:
    net, x = _tanh_net()
    w1, b1 = net[0].weight.detach().numpy(), net[0].bias.detach().numpy()
    w2, b2 = net[2].weight.detach().numpy(), net[2].bias.detach().numpy()
    xs = x.numpy()
    ref = (xs @ w1.T + b1).mean(0) if ablation == "mean" else np.zeros(6)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    comps = tribute.components(net, "0", ablation=ablation)
    targets = [0, 2]  # two targets explained for every sample
    attr = tribute.explain(net, x, method="kernel_shap", players=comps, target=targets, budget=40,
                           seed=1, progress=False)
    flat = attr.flat()
    assert flat.shape == (5, 2, 6)

    def v(i: int, t: int) -> Values:
        def run(masks: np.ndarray) -> np.ndarray:
            z = xs[i] @ w1.T + b1
            return np.array([(w2 @ np.tanh(m * z + (1 - m) * ref) + b2)[t] for m in masks])
        return run

    for name, reference in REFERENCES.items():
        with np.errstate(all="ignore"):
            res = tribute.evaluate(net, x, attr, metric=name, players=comps, progress=False)
        want = np.array([[reference(flat[i, j], v(i, targets[j])) for j in range(2)] for i in range(5)])
        np.testing.assert_allclose(res.scores, want, rtol=1e-9, atol=1e-12, err_msg=name)
        # several targets: a sample's targets are averaged first, then the samples
        assert res.mean == pytest.approx(want.mean(1).mean(), rel=1e-9, abs=1e-12)
        assert res.stderr >= 0 or math.isnan(res.stderr)
    assert all(torch.equal(v_, before[k]) for k, v_ in net.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())


def test_metric_rows_are_counted_on_component_games() -> None:
    # rows the model saw = (n_evals + 1) x batch: the +1 is the game's reference pass
    net, x = _tanh_net()
    rows = [0]
    handle = net.register_forward_pre_hook(lambda m, i: rows.__setitem__(0, rows[0] + i[0].shape[0]))
    try:
        comps = tribute.components(net, "0")
        attr = tribute.explain(net, x, method="exact_shapley", players=comps, target=[0, 2],
                               progress=False)
        cases: list[tuple[str, dict[str, Any]]] = [("deletion", {}), ("infidelity", {"n_perturbations": 20}),
                                                   ("linear_score", {"n_subsets": 30}), ("shapley_error", {})]
        for name, params in cases:
            rows[0] = 0
            with np.errstate(all="ignore"):
                res = tribute.evaluate(net, x, attr, metric=name, players=comps, progress=False,
                                       **params)
            assert rows[0] == (res.n_evals + 1) * 5, name
    finally:
        handle.remove()


def test_sae_latents_and_error_player_match_a_numpy_splice() -> None:
    rng = np.random.default_rng(7)
    net: Any = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 5),
                              torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    enc: Any = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.ReLU()).double()
    dec = torch.nn.Linear(3, 5).double()
    for layer in (net[0], net[2], net[4], enc[0], dec):
        _assign(layer, rng, 0.5)
    x = torch.from_numpy(rng.normal(size=(4, 4)))
    layers: list[tuple[str, Any]] = [("1", net[0]), ("2", net[2]), ("3", net[4]), ("e", enc[0]), ("d", dec)]
    p = {k: (lay.weight.detach().numpy(), lay.bias.detach().numpy()) for k, lay in layers}

    def v(i: int) -> Values:
        h = np.maximum(p["1"][0] @ x.numpy()[i] + p["1"][1], 0)
        z = np.maximum(p["e"][0] @ h + p["e"][1], 0)
        e = h - (p["d"][0] @ z + p["d"][1])

        def run(masks: np.ndarray) -> np.ndarray:
            out = []
            for m in masks:  # zero ablation of latents (first 3 players) and of the error
                h2 = p["d"][0] @ (m[:3] * z) + p["d"][1] + m[3] * e
                out.append((p["3"][0] @ np.tanh(p["2"][0] @ h2 + p["2"][1]) + p["3"][1])[1])
            return np.array(out)
        return run

    comps = tribute.components(net, sae=tribute.SAE(enc, dec, at="1"))
    attr = tribute.explain(net, x, method="feature_ablation", players=comps, target=1, progress=False)
    flat = attr.flat()
    for name, reference in REFERENCES.items():
        with np.errstate(all="ignore"):
            res = tribute.evaluate(net, x, attr, metric=name, players=comps, progress=False)
        want = [reference(flat[i, 0], v(i)) for i in range(4)]
        np.testing.assert_allclose(res.scores, want, rtol=1e-9, atol=1e-12, err_msg=name)


# --------------------------------------------------------------- training data
def test_lds_and_removal_metrics_on_ridge_retrained_in_closed_form() -> None:
    rng = np.random.default_rng(11)
    n, d, l2 = 7, 3, 0.7
    xtr = rng.normal(size=(n, d))
    ytr = xtr @ rng.normal(size=d) + 0.5 * rng.normal(size=n)
    xte = rng.normal(size=(3, d))
    fit = RidgeFit(l2=l2, reduction="sum")
    model = fit(torch.from_numpy(xtr), torch.from_numpy(ytr), seed=0)
    data = tribute.TrainingData(xtr, ytr, fit=fit)

    def v(i: int) -> Values:
        a = np.c_[xtr, np.ones(n)]

        def run(masks: np.ndarray) -> np.ndarray:  # weighted ridge, solved per subset
            out = []
            for w in masks:
                theta = np.linalg.solve(a.T @ (w[:, None] * a) + l2 * np.eye(d + 1), a.T @ (w * ytr))
                out.append(np.r_[xte[i], 1.0] @ theta)
            return np.array(out)
        return run

    for method in ("influence", "datamodels"):
        attr = tribute.explain(model, torch.from_numpy(xte), method=method, players=data,
                               budget=60 if method == "datamodels" else None, progress=False)
        phi = np.asarray(attr.values)
        for name, reference in REFERENCES.items():
            with np.errstate(all="ignore"):
                res = tribute.evaluate(model, torch.from_numpy(xte), attr, metric=name, players=data,
                                       progress=False)
            want = [reference(phi[i], v(i)) for i in range(3)]
            np.testing.assert_allclose(res.scores, want, rtol=1e-9, atol=1e-12, err_msg=f"{method} {name}")
        loo = np.array([[v(i)(np.ones((1, n)))[0] - v(i)(1 - np.eye(n)[[j]])[0] for j in range(n)]
                        for i in range(3)])
        res = tribute.evaluate(model, torch.from_numpy(xte), attr, metric="loo_correlation",
                               players=data, progress=False)
        np.testing.assert_allclose(res.scores, [np.corrcoef(phi[i], loo[i])[0, 1] for i in range(3)],
                                   rtol=1e-9)


# ------------------------------------------------------- credits of another kind
def test_a_metric_called_on_a_game_of_another_player_kind_is_refused() -> None:
    # metric(game, attr) checked only the number of players: exact Shapley values of 5 neurons
    # scored on the feature game of 5 inputs got shapley_error 2.1 (0 on their own game), and
    # input-feature credits on the component game ablated neurons for them, silently
    rng = np.random.default_rng(0)
    net: Any = torch.nn.Sequential(torch.nn.Linear(5, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    _assign(net[0], rng)
    _assign(net[2], rng)
    x = torch.from_numpy(rng.normal(size=(3, 5)))
    comps = tribute.components(net, "0")
    on_units = tribute.explain(net, x, method="exact_shapley", players=comps, target=1, progress=False)
    on_inputs = tribute.explain(net, x, method="feature_ablation", target=1, progress=False)
    feature_game = tribute.build_game(net, x, target=1)
    unit_game = tribute.build_game(net, x, target=1, players=comps)
    with pytest.raises(InputError, match=r"credits component players but the game's players are "
                                         r"features \(feature game\)"):
        shapley_error(feature_game, on_units)
    with pytest.raises(InputError, match=r"credits feature players but the game's players are "
                                         r"components \(component game\)"):
        deletion(unit_game, on_inputs)
    with pytest.raises(InputError, match=r"credits feature players"):
        tribute.evaluate(net, x, on_inputs, metric="deletion", players=comps, progress=False)
    # on their own games both are scored; credits built by hand (no player kind) on any game
    assert shapley_error(unit_game, on_units).mean == pytest.approx(0.0, abs=1e-12)
    assert np.isfinite(deletion(feature_game, on_inputs).mean)
    hand = tribute.Attribution(values=np.asarray(on_units.values), method="hand")
    assert shapley_error(unit_game, hand).mean == pytest.approx(0.0, abs=1e-12)


def test_training_example_credits_on_a_feature_game_are_refused() -> None:
    rng = np.random.default_rng(1)
    xtr, ytr = rng.normal(size=(4, 4)), rng.normal(size=4)
    model = RidgeFit()(torch.from_numpy(xtr), torch.from_numpy(ytr), seed=0)
    x = torch.from_numpy(rng.normal(size=(2, 4)))
    attr = tribute.explain(model, x, method="feature_ablation",
                           players=tribute.TrainingData(xtr, ytr, fit=RidgeFit()), progress=False)
    with pytest.raises(InputError, match=r"credits example players but the game's players are features"):
        deletion(tribute.build_game(model, x), attr)


# ----------------------------------------------------------------------- texts
def _bag_of_words() -> tuple[torch.nn.Module, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "text"))
    from _text_models import BagOfEmbeddings

    from tribute.models.text import WordTokenizer

    tok = WordTokenizer(["the", "cat", "sat", "on", "mat", "a", "dog", "barked", "loudly", "very"],
                        bos=True)
    return BagOfEmbeddings(tok.vocab_size, out=3), tok


def test_gaussian_infidelity_is_refused_where_text_removal_cannot_take_a_fraction() -> None:
    # removal="delete" keeps a token where its presence exceeds 0.5: v(1 - u) was the full
    # text in 48 of 50 gaussian draws and infidelity scored exact Shapley values by
    # E[(u . phi)^2] alone (0.19 and 0.52; 0.0003 and 0.003 where removal blends embeddings)
    model, tok = _bag_of_words()
    texts = ["the cat sat on the mat", "a dog barked very loudly on"]
    attr = tribute.explain(model, texts, method="exact_shapley", target=2, tokenizer=tok,
                           removal="delete", progress=False)
    with pytest.raises(InputError, match=r"perturbation='gaussian'.*removal='delete'.*"
                                         r"perturbation='subset'"):
        tribute.evaluate(model, texts, attr, metric="infidelity", tokenizer=tok, removal="delete")
    # whole words removed: the definition, with the model called on the texts left
    res = tribute.evaluate(model, texts, attr, metric="infidelity", tokenizer=tok, removal="delete",
                           perturbation="subset", noise=0.5, n_perturbations=20)
    g = torch.Generator().manual_seed(0)
    u = random_subsets(6, 3, 20, g).numpy()
    phi = np.asarray(attr.values)
    want = []
    for i, text in enumerate(texts):
        words = text.split()

        def out(kept: list[str]) -> float:
            ids = torch.tensor([tok.encode_offsets(" ".join(kept))[0]])
            return float(model(ids)[0, 2])

        full = out(words)
        want.append(np.mean([(u[k] @ phi[i] - (full - out([w for w, m in zip(words, u[k]) if m == 0]))) ** 2
                             for k in range(20)]))
    np.testing.assert_allclose(res.scores, want, rtol=1e-9)
    # a removal that blends embeddings takes fractions: gaussian infidelity stays
    blend = tribute.explain(model, texts, method="exact_shapley", target=2, tokenizer=tok,
                            removal="unk", progress=False)
    res = tribute.evaluate(model, texts, blend, metric="infidelity", tokenizer=tok, removal="unk")
    assert np.isfinite(res.scores).all()


def test_generation_attributions_get_a_clear_refusal() -> None:
    pytest.importorskip("transformers")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generation"))
    from gen_models import make_lm, make_tokenizer

    tok = make_tokenizer()
    lm = make_lm("gpt2", len(tok))
    res = tribute.explain_generation(lm, tok, "the cat sat", max_new_tokens=1,
                                     method="feature_ablation")
    attrs: list[Any] = [res, res.attribution]
    for attr in attrs:  # before: "pass the Attribution", then a ModelOutputError
        with pytest.raises(InputError, match=r"explain_generation.*\.matrix / \.total"):
            tribute.evaluate(lm, "the cat sat", attr, metric="deletion", tokenizer=tok)


# ------------------------------------------------------------ randomisation on SAE
def _snap(v: Any) -> np.ndarray:
    # |credits| with values a few ulps apart tied (a dead latent's 0 and 1e-17 are one value),
    # as the metric's ranks tie them (RANK_TIE_RTOL); scipy would split them
    a = np.abs(np.asarray(v, dtype=np.float64))
    return np.asarray(np.round(a / max(float(a.max()), 1e-300), 9))


def test_model_randomisation_on_sae_latents_randomises_the_model_not_the_wrapper() -> None:
    # the game runs a wrapper splicing the SAE into the model: model_randomisation copied and
    # randomised the wrapper (SAE encoder/decoder included) and re-explaining it crashed with
    # "module '1' is not a submodule of _Spliced"
    import copy

    from tribute.metrics.randomisation import parameter_layers, random_parameters

    rng = np.random.default_rng(3)
    net: Any = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 5),
                                   torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    enc: Any = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU()).double()
    dec = torch.nn.Linear(4, 5).double()
    for layer in (net[0], net[2], net[4], enc[0], dec):
        _assign(layer, rng, 0.5)
    sae = tribute.SAE(enc, dec, at="1")
    x = torch.from_numpy(rng.normal(size=(4, 4)))
    target = np.array([0, 2, 1, 1])
    comps = tribute.components(net, sae=sae)
    attr = tribute.explain(net, x, method="exact_shapley", players=comps, target=target, progress=False)
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in (net, enc, dec)]
    res = tribute.evaluate(net, x, attr, metric="model_randomisation", players=comps, progress=False)
    assert res.extra["layers"] == ["4", "2", "0"]  # the model's layers, top-down; not the SAE's
    # by hand: the same seeded weights, layer by layer on a copy of the model, SAE kept
    g = torch.Generator().manual_seed(0)
    mods = dict(net.named_modules())
    fresh = {n: random_parameters(mods[n], g) for n in parameter_layers(net)[::-1]}
    work = copy.deepcopy(net)
    sims = []
    for name, values in fresh.items():
        with torch.no_grad():
            for k, v in values.items():
                getattr(dict(work.named_modules())[name], k).copy_(v)
        again = tribute.explain(work, x, method="exact_shapley", target=target, progress=False,
                                players=tribute.components(work, sae=sae))
        sims.append([scipy.stats.spearmanr(_snap(attr.values[i]), _snap(again.values[i])).statistic
                     for i in range(4)])
    np.testing.assert_allclose(res.scores, np.mean(sims, axis=0), rtol=1e-12)
    for m, sd in zip((net, enc, dec), before):
        assert all(torch.equal(v, sd[k]) for k, v in m.state_dict().items())
