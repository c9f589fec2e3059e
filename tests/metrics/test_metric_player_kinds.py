"""Metrics on every player kind against the model called directly (audit aud33e, stop 33).

Truths are computed here from the papers' definitions with our own masking: categorical
DataFrame columns, texts (word players; special tokens never removed), component players.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.metrics._util import random_subsets

pd = pytest.importorskip("pandas")


def _pipeline() -> tuple[Any, Any]:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    n = 200
    df = pd.DataFrame({"income": rng.normal(50, 15, n),
                       "city": rng.choice(["paris", "lyon", "nice"], n)})
    y = ((df.city == "lyon") ^ (df.income > 50)).astype(int)
    pre = ColumnTransformer([("cat", OneHotEncoder(), ["city"]), ("num", StandardScaler(), ["income"])])
    return df, make_pipeline(pre, LogisticRegression(max_iter=500)).fit(df, y)


def test_fractional_perturbations_are_refused_on_categorical_columns() -> None:
    # infidelity's gaussian perturbation removes a fraction u of each player: on a coded
    # category the blend b + m (x - b) was rounded to a THIRD category (paris + 0.5 (nice -
    # paris) = lyon), silently: the "output change" came from a category neither the input
    # nor the baseline holds
    df, pipe = _pipeline()
    x = df[df.city == "paris"][:3].reset_index(drop=True)
    ref = df[df.city == "nice"].iloc[0]
    attr = tribute.explain(pipe, x, method="exact_shapley", baseline=ref, target=1)
    with pytest.raises(InputError, match=r"perturbation='gaussian'.*categorical column.*'city'.*"
                                         r"perturbation='subset'"):
        tribute.evaluate(pipe, x, attr, metric="infidelity", baseline=ref)
    # binary removals stay: subset infidelity equals its definition on the pipeline
    res = tribute.evaluate(pipe, x, attr, metric="infidelity", baseline=ref,
                           perturbation="subset", noise=0.5, n_perturbations=20, seed=0)
    g = torch.Generator().manual_seed(0)
    u = random_subsets(2, 1, 20, g).numpy()  # the draws: one of the two columns removed each
    phi = np.asarray(attr.values)
    full = pipe.predict_proba(x)[:, 1]
    want = []
    for i in range(3):
        errs = []
        for k in range(20):
            row = x.iloc[[i]].copy()
            for j, col in enumerate(x.columns):
                if u[k, j]:
                    row[col] = ref[col]
            drop = full[i] - pipe.predict_proba(row)[0, 1]
            errs.append((u[k] @ phi[i] - drop) ** 2)
        want.append(np.mean(errs))
    np.testing.assert_allclose(res.scores, want, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------- texts
def _text_case() -> tuple[torch.nn.Module, Any]:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "text"))
    from _text_models import BagOfEmbeddings

    from tribute.models.text import WordTokenizer

    tok = WordTokenizer(["the", "cat", "sat", "on", "mat", "a", "dog", "barked", "loudly",
                         "very"], bos=True)
    return BagOfEmbeddings(tok.vocab_size, out=3), tok


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    import scipy.stats

    return float(scipy.stats.spearmanr(a, b).statistic)


def test_re_explaining_metrics_rebuild_the_word_game() -> None:
    # the default explain callable read inputs.shape: a list of texts crashed with
    # AttributeError ('str' object has no attribute 'shape') in stability, random_logit and
    # model_randomisation, and the tokenizer/removal were never handed to the re-explanation
    model, tok = _text_case()
    texts = ["the cat sat on the mat", "a dog barked very loudly on"]
    kw: dict[str, Any] = {"tokenizer": tok, "removal": "unk", "progress": False}
    attr = tribute.explain(model, texts, method="lime", budget=12, target=2,
                           seed=0, **kw)
    res = tribute.evaluate(model, texts, attr, metric="stability", seeds=(0, 1, 2),
                           tokenizer=tok, removal="unk")
    runs = [np.asarray(tribute.explain(model, texts, method="lime", budget=12,
                                       target=2, seed=s, **kw).values) for s in (0, 1, 2)]
    want = [np.mean([_spearman(runs[a][i], runs[b][i]) for a, b in ((0, 1), (0, 2), (1, 2))])
            for i in range(2)]
    np.testing.assert_allclose(res.scores, want, rtol=1e-12)
    assert not np.allclose(want, 1.0)  # the seeds do change the credits
    g = torch.Generator().manual_seed(0)
    other = (2 + int(torch.randint(1, 3, (1,), generator=g))) % 3
    with pytest.warns(tribute.StderrWarning):
        res = tribute.evaluate(model, texts, attr, metric="random_logit", tokenizer=tok,
                               removal="unk")
    again = np.asarray(tribute.explain(model, texts, method="lime", budget=12,
                                       target=other, seed=0, **kw).values)
    np.testing.assert_allclose(
        res.scores, [_spearman(np.abs(np.asarray(attr.values)[i]), np.abs(again[i]))
                     for i in range(2)], rtol=1e-12)
    # sensitivity perturbs real-valued inputs: texts are refused with the reason
    with pytest.raises(InputError, match="real-valued inputs"):
        tribute.evaluate(model, texts, attr, metric="avg_sensitivity", tokenizer=tok,
                         removal="unk")


def _deletion_truth(v: Any, phi: np.ndarray, steps: int, insert: bool = False) -> float:
    """Petsiuk et al. (2018): remove (insert) the top-k credits; mean height over k / n."""
    n = phi.size
    order = np.argsort(-phi, kind="stable")
    ks = np.round(np.arange(min(steps, n) + 1) * n / min(steps, n)).astype(int)
    ys = []
    for k in ks:
        keep = np.zeros(n, bool) if insert else np.ones(n, bool)
        keep[order[:k]] = insert
        ys.append(v(keep))
    return float(np.trapezoid(ys, ks / n))


def test_texts_of_different_word_counts_are_scored_over_their_own_words() -> None:
    # players are padded to the longest text with NaN credits: every metric scored the
    # shorter texts NaN ("hold NaN values"), i.e. only the longest texts of a batch counted
    model, tok = _text_case()
    texts = ["the cat sat on the mat", "a dog barked", "the dog sat", "cat"]
    kw: dict[str, Any] = {"tokenizer": tok, "removal": "unk"}
    attr = tribute.explain(model, texts, method="exact_shapley", target=1, progress=False, **kw)
    phi = np.asarray(attr.values)

    def value(i: int) -> Any:
        words = texts[i].split()
        ids = [tok.bos_token_id] + [tok.vocab[w] for w in words]  # bos is never removed

        def v(keep: np.ndarray) -> float:
            row = [ids[0]] + [t if k else tok.unk_token_id for t, k in zip(ids[1:], keep)]
            with torch.no_grad():
                return float(model(torch.tensor([row]))[0, 1])
        return v

    sizes = [len(t.split()) for t in texts]
    for metric, insert in (("deletion", False), ("insertion", True)):
        res = tribute.evaluate(model, texts, attr, metric=metric, steps=4, **kw)
        want = [_deletion_truth(value(i), phi[i, :n], 4, insert) for i, n in enumerate(sizes)]
        np.testing.assert_allclose(res.scores, want, rtol=1e-10, atol=1e-12)
        assert res.n == 4 and res.extra["auc"].shape == (4,)
        assert [g["n_players"] for g in res.extra["by_word_count"]] == [1, 3, 6]
    # credits only: over each text's own words (Gini index, Chalasani et al. 2020)
    res = tribute.evaluate(model, texts, attr, metric="sparseness", **kw)
    for i, n in enumerate(sizes):
        a = np.sort(np.abs(phi[i, :n]))
        k = np.arange(1, n + 1)
        gini = ((2 * k - n - 1) * a).sum() / (n * a.sum())
        assert res.scores[i] == pytest.approx(gini, abs=1e-12)
    # ground truth per text (padded columns ignored), exact Shapley is exact on each text
    truth = np.zeros((4, 6))
    truth[:, 0] = 1
    truth[0, 1] = 1
    truth[1, 2] = 1
    truth[2, 1] = 1
    res = tribute.evaluate(model, texts, attr, metric="relevance_mass", ground_truth=truth,
                           absolute=True, **kw)
    want = [(np.abs(phi[i, :n]) * truth[i, :n]).sum() / np.abs(phi[i, :n]).sum()
            for i, n in enumerate(sizes)]
    np.testing.assert_allclose(res.scores, want, rtol=1e-12)
    res = tribute.evaluate(model, texts, attr, metric="shapley_error", **kw)
    np.testing.assert_allclose(res.scores, 0.0, atol=1e-10)
    # a group's error says which texts its sample numbers are
    with pytest.raises(InputError, match=r"texts \[1, 2\] of the batch"):
        tribute.evaluate(model, texts, attr, metric="deletion", target=np.array([1, 1, 0, 1]), **kw)


# -------------------------------------------------------------------- components
def _import_from(folder: str, name: str) -> Any:
    import importlib
    import sys
    from pathlib import Path

    path = str(Path(__file__).resolve().parents[1] / folder)
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module(name)


def test_linear_score_ties_equal_values_that_differ_by_rounding() -> None:
    # mean ablation of a ReLU network: two coalitions that differ only in a dead neuron have
    # the same value, computed in another order in the batch (5.6e-17 apart): the rank
    # correlation split the tie and scored exact Shapley values 0.99922 instead of 1
    models = _import_from("components", "component_models")
    torch.manual_seed(0)
    net = models.MLP().double().eval()
    x = torch.randn(5, 6, dtype=torch.float64)
    with torch.no_grad():
        mean = net.act(net.fc1(x)).mean(0)
    comps = tribute.components(net, "act", ablation="mean")
    attr = tribute.explain(net, x, method="exact_shapley", players=comps, target=2)
    phi = np.asarray(attr.values)
    res = tribute.evaluate(net, x, attr, metric="linear_score", players=comps, n_subsets=20,
                           seed=1)
    g = torch.Generator().manual_seed(1)
    subsets = random_subsets(5, 2, 20, g).numpy().astype(bool)  # the metric's coalitions
    want = []
    for i in range(5):
        vals = []
        for s in subsets:  # the network called directly, the other neurons at their mean
            with torch.no_grad():
                h = torch.where(torch.as_tensor(s), net.act(net.fc1(x[i])), mean)
                vals.append(float(net.out(torch.relu(net.fc2(h)))[2]))
        want.append(_spearman(subsets @ phi[i], np.asarray(vals)))
    np.testing.assert_allclose(res.scores, want, rtol=1e-12)


def test_texts_are_scored_with_the_removal_and_players_they_were_explained_with() -> None:
    # evaluate without removal= built the default text game ("mask") for credits computed
    # with removal="unk": exact Shapley values scored shapley_error 1.29, not 0
    model, tok = _text_case()
    texts = ["the cat sat on the mat", "a dog sat on a mat"]
    for removal in ("unk", "pad"):
        attr = tribute.explain(model, texts, method="exact_shapley", target=1, removal=removal,
                               tokenizer=tok, progress=False)
        res = tribute.evaluate(model, texts, attr, metric="shapley_error", tokenizer=tok)
        np.testing.assert_allclose(res.scores, 0.0, atol=1e-10)
        # another removal given on purpose is that game (as a baseline given on purpose)
        other = tribute.evaluate(model, texts, attr, metric="shapley_error", tokenizer=tok,
                                 removal="mask")
        assert (other.scores > 0.1).all()
    attr = tribute.explain(model, texts[:1], method="exact_shapley", target=1, players="tokens",
                           tokenizer=tok, progress=False)
    res = tribute.evaluate(model, texts[:1], attr, metric="shapley_error", tokenizer=tok)
    np.testing.assert_allclose(res.scores, 0.0, atol=1e-10)


def _neurons(batch: int) -> tuple[torch.nn.Module, torch.Tensor, Any]:
    """A seeded tanh/ReLU MLP, inputs and its 5 hidden tanh neurons as players."""
    models = _import_from("components", "component_models")
    torch.manual_seed(0)
    net = models.MLP().double().eval()
    x = torch.randn(batch, 6, dtype=torch.float64)
    return net, x, tribute.components(net, "act")


def test_component_credits_under_another_ablation_are_refused() -> None:
    # explain(..., ablation="mean") was not recorded; evaluate without ablation= scored the
    # credits on zero ablation (shapley_error 0.28-0.78 for exact values, deletion to zero)
    net, x, comps = _neurons(5)
    attr = tribute.explain(net, x, method="exact_shapley", players=comps, target=2,
                           ablation="mean")
    assert attr.params["ablation"] == "mean"  # recorded: evaluate's default
    res = tribute.evaluate(net, x, attr, metric="shapley_error", players=comps)
    np.testing.assert_allclose(res.scores, 0.0, atol=1e-12)
    # a method without base_values (no check possible) is scored on the recorded ablation too
    abl = tribute.explain(net, x, method="feature_ablation", players=comps, target=2, ablation="mean")
    np.testing.assert_allclose(
        tribute.evaluate(net, x, abl, metric="deletion", players=comps).scores,
        tribute.evaluate(net, x, abl, metric="deletion", players=comps, ablation="mean").scores)
    assert not np.allclose(
        tribute.evaluate(net, x, abl, metric="deletion", players=comps).scores,
        tribute.evaluate(net, x, abl, metric="deletion", players=comps, ablation="zero").scores)
    # without the record (an attribution built by hand or by an older version): refused
    del attr.params["ablation"]
    for metric in ("shapley_error", "deletion"):
        with pytest.raises(InputError, match=r"another: its base_values .*Pass the ablation="):
            tribute.evaluate(net, x, attr, metric=metric, players=comps)
    res = tribute.evaluate(net, x, attr, metric="shapley_error", players=comps, ablation="mean")
    np.testing.assert_allclose(res.scores, 0.0, atol=1e-12)
    own = tribute.explain(net, x, method="exact_shapley", players=comps, target=2)
    res = tribute.evaluate(net, x, own, metric="shapley_error", players=comps)
    np.testing.assert_allclose(res.scores, 0.0, atol=1e-12)
    # the check's v(empty) is counted in the metric's evaluations
    plain = tribute.evaluate(net, x, own, metric="deletion", players=comps, ablation="zero")
    checked = tribute.evaluate(net, x, own, metric="deletion", players=comps)
    np.testing.assert_allclose(checked.scores, plain.scores)
    assert checked.n_evals >= plain.n_evals


def test_element_truth_for_component_players_names_the_shape_needed() -> None:
    # the error listed "the inputs' shape(s) []" for component players
    net, x, comps = _neurons(3)
    attr = tribute.explain(net, x, method="exact_shapley", players=comps, target=2)
    with pytest.raises(InputError, match=r"component players, which are not input elements.*"
                                         r"shape \(3, 5\)"):
        tribute.evaluate(net, x, attr, metric="auroc", players=comps, ground_truth=np.ones((3, 6)))
    truth = np.zeros((3, 5))
    truth[:, 1] = 1
    res = tribute.evaluate(net, x, attr, metric="auroc", players=comps, ground_truth=truth)
    a = np.abs(np.asarray(attr.values))
    want = [(a[i, [0, 2, 3, 4]] < a[i, 1]).mean() for i in range(3)]  # Mann-Whitney, no ties
    np.testing.assert_allclose(res.scores, want)


def test_component_credits_need_their_players_and_their_own_ablation() -> None:
    # rev33b: evaluate(players=None) scored component credits on the input-feature game
    # (shapley_error 3.03 for exact values); an Ablation carrying its own reference was
    # re-built as its kind on the set's own settings (deletion 0.244 for 0.231); one with a
    # counterfactual asked evaluate for a counterfactual the user never meant to give it
    net, x, comps = _neurons(5)
    attr = tribute.explain(net, x, method="exact_shapley", players=comps, target=2)
    with pytest.raises(InputError, match="credits component players; pass players="):
        tribute.evaluate(net, x, attr, metric="shapley_error")
    ref = torch.randn(7, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    own = tribute.Ablation("mean", reference=ref)
    abl = tribute.explain(net, x, method="feature_ablation", players=comps, target=2, ablation=own)
    assert abl.params["ablation_own_data"] is True
    with pytest.raises(InputError, match=r"pass the same ablation=tribute\.Ablation"):
        tribute.evaluate(net, x, abl, metric="deletion", players=comps)
    given = tribute.evaluate(net, x, abl, metric="deletion", players=comps, ablation=own)
    mean_comps = tribute.components(net, "act", ablation="mean", reference=ref)
    same_set = tribute.evaluate(net, x, tribute.explain(net, x, method="feature_ablation",
                                                         players=mean_comps, target=2),
                                metric="deletion", players=mean_comps)
    np.testing.assert_allclose(given.scores, same_set.scores)
    cf = x.flip(0)
    patch = tribute.explain(net, x, method="feature_ablation", players=comps, target=2,
                            ablation=tribute.Ablation("patch", counterfactual=cf))
    with pytest.raises(InputError, match=r"pass the same ablation=tribute\.Ablation"):
        tribute.evaluate(net, x, patch, metric="deletion", players=comps)
