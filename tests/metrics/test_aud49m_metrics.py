"""Audit aud49m (stop 49): metrics on ties across a batch, texts, per-sample multi-output
targets and component credits, against truths computed here without tribute's metric code.

Truths: a float64 numpy forward of a tanh MLP (``tribute_testing.tanh_net_with_numpy``), the
deletion curve written out (remove the top-k credits to the baseline, trapezoid over the
fraction removed), and, for tied credits, the expected area over every order of the tied
block (enumerated). Guards: these pass before and after the audit's docstring change.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

import tribute
from tribute.games.components import components
from tribute_testing import tanh_net_numpy_forward, tanh_net_with_numpy

_TEXT_DIR = str(Path(__file__).resolve().parents[1] / "text")


def _rows(a: tribute.Attribution, idx: Any) -> tribute.Attribution:
    def cut(v: Any) -> Any:
        return None if v is None else v[idx]

    return dataclasses.replace(a, values=a.values[idx], targets=cut(a.targets),
                               full_values=cut(a.full_values), base_values=cut(a.base_values))


def _tied_setup() -> tuple[Any, dict[str, np.ndarray], torch.Tensor, tribute.Attribution]:
    net, w = tanh_net_with_numpy(n_in=6, hidden=5, n_out=3, seed=21)
    x = torch.from_numpy(np.random.default_rng(4).normal(size=(5, 6)))
    a = tribute.explain(net, x, method="exact_shapley", target=0)
    vals = torch.ones(5, 6, dtype=torch.float64)  # player 0 first, then a tie of five
    vals[:, 0] = 2.0
    return net, w, x, dataclasses.replace(a, values=vals)


def _expected_tied_deletion(w: dict[str, np.ndarray], x: np.ndarray) -> float:
    """Deletion area (steps = n = 6, zero baseline, output 0) averaged over all 5! orders of
    the tied players 1..5 (player 0 is removed first)."""
    areas = []
    for perm in itertools.permutations(range(1, 6)):
        order = (0, *perm)
        ys = []
        for k in range(7):
            row = x.copy()
            row[list(order[:k])] = 0.0
            ys.append(tanh_net_numpy_forward(w, row[None])[0, 0])
        areas.append(np.trapezoid(ys, np.arange(7) / 6))
    return float(np.mean(areas))


def test_tied_deletion_alone_and_in_a_batch_both_estimate_the_enumerated_expectation() -> None:
    net, w, x, at = _tied_setup()
    batch = tribute.evaluate(net, x, at, metric="deletion", target=0, tie_orders=8)
    for i in range(5):
        truth = _expected_tied_deletion(w, x[i].numpy())
        one = tribute.evaluate(net, x[i : i + 1], _rows(at, slice(i, i + 1)), metric="deletion",
                               target=0, tie_orders=8)
        for got, se in ((batch.scores[i], batch.extra["stderr_ties"][i]),
                        (one.scores[0], one.extra["stderr_ties"][0])):
            assert se > 0
            assert abs(got - truth) < 4 * se + 1e-12, (i, got, truth, se)


def test_a_samples_tie_orders_depend_on_its_position_not_on_the_other_samples() -> None:
    # documented in deletion's "Ties": the same position gives the same bytes whatever the
    # other rows hold (their inputs and their own ties); the same call twice is identical
    net, _, x, at = _tied_setup()
    first = tribute.evaluate(net, x, at, metric="deletion", target=0)
    again = tribute.evaluate(net, x, at, metric="deletion", target=0)
    assert np.array_equal(first.scores, again.scores)
    x2 = x.clone()
    x2[[1, 3]] = torch.from_numpy(np.random.default_rng(9).normal(size=(2, 6)))
    vals2 = at.values.clone()
    vals2[1] = torch.arange(6, dtype=torch.float64)  # no ties in row 1 now
    a2 = tribute.explain(net, x2, method="exact_shapley", target=0)
    other = tribute.evaluate(net, x2, dataclasses.replace(a2, values=vals2), metric="deletion",
                             target=0)
    for i in (0, 2, 4):
        assert other.scores[i] == first.scores[i]
        assert other.extra["stderr_ties"][i] == first.extra["stderr_ties"][i]


def test_per_sample_pairs_of_regression_outputs_score_the_hand_deletion() -> None:
    net, w = tanh_net_with_numpy(n_in=5, hidden=7, n_out=4, seed=5)
    x = np.random.default_rng(6).normal(size=(6, 5))
    tg = np.array([[0, 1], [3, 2], [1, 0], [2, 3], [2, 1], [0, 3]])
    a = tribute.explain(net, torch.from_numpy(x), method="exact_shapley", target=tg)
    phi = a.flat()
    for metric in ("deletion", "insertion"):
        res = tribute.evaluate(net, torch.from_numpy(x), a, metric=metric)
        hand = np.empty((6, 2))
        for i, t in itertools.product(range(6), range(2)):
            order = np.argsort(-phi[i, t], kind="stable")
            ys = []
            for k in range(6):
                row = x[i].copy()
                row[order[:k] if metric == "deletion" else order[k:]] = 0.0
                ys.append(tanh_net_numpy_forward(w, row[None])[0, tg[i, t]])
            hand[i, t] = np.trapezoid(ys, np.arange(6) / 5)
        assert np.asarray(res.scores).shape == (6, 2)
        np.testing.assert_allclose(res.scores, hand, rtol=0, atol=1e-12)
        assert abs(res.mean - hand.mean()) < 1e-12  # targets averaged, then samples


def test_texts_of_several_lengths_score_the_hand_deletion_per_removal() -> None:
    sys.path.insert(0, _TEXT_DIR)
    from _text_models import BagOfEmbeddings

    from tribute.models.text import WordTokenizer

    vocab = "the cat sat on mat a quick brown fox jumps over lazy dog and ran far".split()
    texts = ["the cat sat on the mat and ran", "a quick fox", "the lazy dog", "a dog ran far"]
    tok = WordTokenizer(vocab, bos=True)
    model = BagOfEmbeddings(tok.vocab_size, out=3)
    tg = np.array([1, 0, 2, 1])
    for removal, rid in (("mask", tok.mask_token_id), ("unk", tok.unk_token_id)):
        attr = tribute.explain(model, texts, tokenizer=tok, method="exact_shapley", target=tg,
                               removal=removal, progress=False)
        res = tribute.evaluate(model, texts, attr, metric="deletion", tokenizer=tok,
                               progress=False)
        for i, text in enumerate(texts):
            ids, _ = tok.encode_offsets(text)
            n = len(ids) - 1  # the BOS token is no player
            phi = np.asarray(attr.values[i], dtype=np.float64)[:n]
            order = np.argsort(-phi, kind="stable")
            ys = []
            for k in range(n + 1):
                cur = list(ids)
                for j in order[:k]:
                    cur[1 + j] = rid
                with torch.no_grad():
                    ys.append(float(model(torch.tensor([cur]))[0, tg[i]]))
            assert abs(res.scores[i] - np.trapezoid(ys, np.arange(n + 1) / n)) < 1e-12


def test_component_credits_score_the_hand_deletion_under_zero_and_mean_ablation() -> None:
    net, w = tanh_net_with_numpy(n_in=5, hidden=6, n_out=3, seed=8)
    x = np.random.default_rng(3).normal(size=(5, 5))
    tg = np.array([0, 2, 1, 1, 0])
    hidden = np.tanh(x @ w["w1"] + w["b1"])
    for ablation, fill in (("zero", np.zeros(6)), ("mean", hidden.mean(0))):
        cs = components(net, "1", ablation=ablation)
        a = tribute.explain(net, torch.from_numpy(x), method="exact_shapley", players=cs,
                            target=tg)
        res = tribute.evaluate(net, torch.from_numpy(x), a, metric="deletion", players=cs)
        phi = a.flat()[:, 0]
        for i in range(5):
            order = np.argsort(-phi[i], kind="stable")
            ys = []
            for k in range(7):
                h = hidden[i].copy()
                h[order[:k]] = fill[order[:k]]
                ys.append((h @ w["w2"] + w["b2"])[tg[i]])
            assert abs(res.scores[i] - np.trapezoid(ys, np.arange(7) / 6)) < 1e-12


def test_two_copies_of_a_sample_get_independent_tie_orders() -> None:
    # documented in deletion's "Ties": orders are independent across samples, so the standard
    # error over samples holds their noise (shared orders would give two copies one score and
    # leave that noise out of MetricResult.stderr)
    net, w, x, at = _tied_setup()
    xx = x[[2, 2]]
    res = tribute.evaluate(net, xx, _rows(at, [2, 2]), metric="deletion", target=0)
    truth = _expected_tied_deletion(w, x[2].numpy())
    assert res.scores[0] != res.scores[1]
    for i in range(2):
        assert abs(res.scores[i] - truth) < 4 * res.extra["stderr_ties"][i]
