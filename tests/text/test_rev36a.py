"""Review rev36a of aud36x's text-game changes.

Truths are computed outside tribute: the model run by hand on ids with the removed words'
tokens replaced, and a text's component credits computed with that text alone (no padding).
Models are float64 and each check compares against the same model, so tolerances are float64
rounding whatever the CPU draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from _text_models import all_masks, shapley_by_enumeration

import tribute
from tribute.errors import ModelOutputError
from tribute.models.text import segment

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from test_aud36x import EOS, WORDS, gpt2_classifier, word_tokenizer


class FunctionalEmbedding(torch.nn.Module):
    """Reads its embedding table with ``F.embedding`` on the weight: the ``nn.Embedding``
    module itself never runs (weight tying / hand-written models do this)."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.emb = torch.nn.Embedding(vocab, 6)
        self.lin = torch.nn.Linear(6, 2)
        with torch.no_grad():
            self.emb.weight.copy_(torch.randn(vocab, 6, generator=g))
            self.lin.weight.copy_(torch.randn(2, 6, generator=g))
        self.double()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        e = torch.nn.functional.embedding(input_ids, self.emb.weight)
        m = attention_mask.unsqueeze(-1).to(e.dtype)
        return self.lin(torch.tanh((e * m).sum(1) / m.sum(1)))


def test_a_model_that_never_calls_its_embedding_module_is_explained_by_id_replacement() -> None:
    """main replaced ids on 0/1 masks, which is right for such a model; aud36x refused every
    method with "the input embedding module did not run". Perturbation methods must again give
    the values of the model on the ids with removed tokens replaced (hand enumeration), and an
    embedding removal that has no id must still be refused clearly."""
    tok = word_tokenizer(["[UNK]", "[MASK]", "[PAD]"], unk_token="[UNK]", mask_token="[MASK]",
                         pad_token="[PAD]")
    model = FunctionalEmbedding(len(tok)).eval()
    rid = tok.mask_token_id
    texts = ["the cat sat on", "a dog barked"]
    attr = tribute.explain(model, texts, tokenizer=tok, method="exact_shapley", target=0, progress=False)
    for i, text in enumerate(texts):
        enc = segment(text, tok, "words")
        ids, tp, n = enc.input_ids[0].tolist(), enc.token_player[0].tolist(), enc.n_players[0]

        def value(s: tuple[int, ...], ids: list[int] = ids, tp: list[int] = tp) -> float:
            row = [t if p < 0 or s[p] else rid for t, p in zip(ids, tp, strict=True)]
            with torch.no_grad():
                return float(model(torch.tensor([row]), torch.ones(1, len(row)))[0, 0])

        truth = shapley_by_enumeration({s: value(s) for s in all_masks(n)}, n)
        np.testing.assert_allclose(attr.values[i][:n], truth, rtol=0, atol=1e-12)
    with pytest.raises(ModelOutputError, match=r"did not run.*removal"):
        tribute.explain(model, texts, tokenizer=tok, method="feature_ablation", removal="zero",
                        target=0, progress=False)


def test_text_component_credits_do_not_depend_on_the_other_texts() -> None:
    """Component players of texts padded with the tokenizer's pad id (0 = "!" for a GPT-2
    style tokenizer without one), while the classifier pools at its last token that is not
    ``config.pad_token_id``: "a dog barked" next to a longer text got head credits off by 0.39
    from its credits alone."""
    tok = word_tokenizer([EOS], unk_token=EOS, eos_token=EOS)
    eos = tok.convert_tokens_to_ids(EOS)
    assert tok.pad_token_id is None and eos != 0
    model = gpt2_classifier(len(WORDS) + 1, pad_id=eos, seed=2)
    heads = [f"transformer.h.{i}.attn" for i in range(2)]

    def credits(texts: list[str]) -> Any:
        players = tribute.components(model, heads, unit="head")
        return np.asarray(tribute.explain(model, texts, tokenizer=tok, method="feature_ablation", target=1,
                                          players=players, progress=False).values, dtype=float)

    alone = credits(["a dog barked"])[0]
    both = credits(["the cat sat on the mat today", "a dog barked"])
    assert np.abs(alone).max() > 1e-3
    np.testing.assert_allclose(both[1], alone, rtol=0, atol=1e-12)
    np.testing.assert_allclose(both[0], credits(["the cat sat on the mat today"])[0], rtol=0, atol=1e-12)


def test_mean_pooling_over_a_hf_encoder_runs_one_padded_pass_per_chunk() -> None:
    """aud36x ran every non-Hugging-Face module by token length; MeanPooling over a Hugging Face
    encoder never reads padding (masked attention, masked mean), so that cost one encoder pass
    per distinct length (MiniLM pairs, feature_ablation: 1.34x CPU time). It keeps the padded
    batch now, and each text's credits still equal its credits alone."""
    from transformers import BertConfig, BertModel

    from tribute.models.text import MeanPooling

    tok = word_tokenizer(["[UNK]", "[MASK]", "[PAD]"], unk_token="[UNK]", mask_token="[MASK]",
                         pad_token="[PAD]")
    torch.manual_seed(0)
    cfg: Any = BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=32, max_position_embeddings=32, hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0)
    encoder = BertModel(cfg).double().eval()
    model = MeanPooling(encoder).eval()
    texts = ["the cat sat on the mat today", "a dog barked", "the dog sat"]
    passes: list[int] = []
    handle = encoder.register_forward_hook(lambda m, a, o: passes.append(1))
    try:
        both = tribute.explain(model, texts, tokenizer=tok, method="feature_ablation", target=0,
                               batch_size=64, progress=False)
        n_batched = len(passes)
        for i, text in enumerate(texts):
            alone = tribute.explain(model, text, tokenizer=tok, method="feature_ablation", target=0,
                                    progress=False)
            k = len(alone.values[0])
            np.testing.assert_allclose(both.values[i][:k], alone.values[0], rtol=0, atol=1e-12)
    finally:
        handle.remove()
    # rows of 3 lengths in one chunk: by length would be >= 3 passes for the chunk
    assert n_batched <= 2, n_batched
