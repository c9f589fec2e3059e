"""The planted-trigger word suite: word players from sub-word tokens, in ``tribute bench``."""

from __future__ import annotations

import numpy as np
import torch

import tribute
from tribute import bench
from tribute import datasets as D
from tribute.models.text import segment


def test_planted_words_dataset_maps_sub_tokens_to_words() -> None:
    ds = D.planted_words(n=40, seed=2)
    tok = D.planted_words_tokenizer()
    enc = segment(ds.meta["texts"], tok, "words")
    assert enc.input_ids.tolist() == ds.X.tolist()
    assert (enc.token_player == torch.from_numpy(ds.meta["word_of_token"])).all()
    for text, names in zip(ds.meta["texts"], enc.player_names):
        assert names == text.split()
    truth_words = [{w for w in t.split() if w in D._text.TRIGGER_WORDS} for t in ds.meta["texts"]]
    assert [bool(s) for s in truth_words] == ds.y.astype(bool).tolist()


def test_text_game_equals_grouped_token_game_and_bench_finds_triggers() -> None:
    suite = bench.build_suite("tiny", seed=0, cases=["planted_words"])
    case = suite.cases[0]
    assert case.tokens is not None
    texts = [" ".join(t) for t in case.tokens[:2]]
    tok = D.planted_words_tokenizer()
    words = tribute.explain(case.model, texts, tokenizer=tok, removal="mask",
                            method="exact_shapley", target=1, progress=False)
    grouped = tribute.explain(case.model, case.inputs[:2], groups=case.groups,
                              baseline=case.baseline, method="exact_shapley", target=1,
                              progress=False)
    np.testing.assert_allclose(words.values, grouped.values.numpy(), rtol=1e-5, atol=1e-6)
    res = bench.run(suite, methods=["feature_ablation", "integrated_gradients"],
                    metrics=["auroc"], log=None)
    for method in ("feature_ablation", "integrated_gradients"):
        run = res.run_of("planted_words", method)
        assert run is not None and run.status == "ok", run
        assert run.flat is not None and run.flat.shape == (case.n_samples, 1, 8)
        s = res.score("planted_words", method, "auroc")
        assert s is not None and s.mean > 0.8, (method, s)
