"""aud51e: kernel_shap with ``target_precision`` splits a mixed-length text batch where a shorter
text's first round holds every coalition (its exact values alone), as it does without it
(rev50x). Before: a 9/3/5-word batch at budget 300 gave the 3- and 5-word texts sampled values
6.0e-4 / 2.9e-3 from their exact Shapley values (exact_shapley), alone exact."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from _text_models import BagOfEmbeddings

import tribute
from tribute.methods.base import get_method
from tribute.models.text import WordTokenizer

_VOCAB = "the cat sat on mat a quick brown fox jumps over lazy dog and ran far".split()
_TOK = WordTokenizer(_VOCAB, bos=True)
_W = "the cat sat on the mat and ran far over dog".split()
_MIX = [" ".join(_W[:9]), " ".join(_W[:3]), " ".join(_W[:5])]  # 9, 3 and 5 words


def _model() -> BagOfEmbeddings:
    torch.manual_seed(0)
    return BagOfEmbeddings(_TOK.vocab_size, out=3)


def _explain(model: BagOfEmbeddings, texts: list[str], method: str, budget: int | None,
             **kw: Any) -> tribute.Attribution:
    return tribute.explain(model, texts, tokenizer=_TOK, method=method, target=1, budget=budget,
                           removal="pad", progress=False, **kw)


def test_kernel_shap_target_precision_gives_short_texts_their_exact_values_in_a_mixed_batch() -> None:
    # budget 40 (covers 2^3 and 2^5, not 2^9): before, 6.1e-3 / 1.2e-2 off, 120 rows (now 80)
    model = _model()
    attr = _explain(model, _MIX, "kernel_shap", 40, target_precision=1e-3)
    vals = attr.flat()
    assert "by_word_count" in attr.extra
    for i, text in enumerate(_MIX):
        alone = _explain(model, [text], "kernel_shap", 40, target_precision=1e-3).flat()[0]
        n = alone.shape[-1]
        assert vals[i, :, :n].tobytes() == alone.tobytes()
        if i:
            exact = _explain(model, [text], "exact_shapley", None).flat()[0]
            np.testing.assert_allclose(vals[i, :, :n], exact, atol=1e-12)


def test_kernel_shap_target_precision_exact_at_follows_the_first_round() -> None:
    ks = get_method("kernel_shap")(target_precision=1e-3)
    assert ks.exact_at(3, 40) and ks.exact_at(5, 40) and ks.exact_at(5, 300)
    # 7 players at budget 128: the first round draws 78 of the 126 coalitions (sampled)
    assert not ks.exact_at(7, 128) and not ks.exact_at(9, 300)
    assert not ks.exact_at(5, 31)  # below 2^n
    assert get_method("kernel_shap")().exact_at(7, 128)  # without target_precision: every coalition


def test_kernel_shap_target_precision_keeps_one_game_where_no_text_is_exact() -> None:
    # 9 and 7 words at budget 128: the 7-word text's first round is partial, so no split
    model = _model()
    attr = _explain(model, [" ".join(_W[:9]), " ".join(_W[:7])], "kernel_shap", 128, target_precision=1e-3)
    assert "by_word_count" not in attr.extra
