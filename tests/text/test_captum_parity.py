"""Parity with Captum (test-only dependency) on a tiny float64 BERT where definitions agree.

* FeatureAblation on input ids, one feature group per word, removed words replaced by [MASK]:
  ``f(x) - f(x with the word masked)`` — tribute's ``feature_ablation`` with ``removal="mask"``.
* LayerIntegratedGradients on the word-embedding layer with [MASK] ids as the baseline at the
  word positions (special tokens kept): integrated gradients on the embeddings, summed over
  each word's tokens and embedding dimensions — tribute's ``integrated_gradients`` with
  ``removal="mask"`` (the same Gauss-Legendre rule and number of steps).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _text_models import minilm_tokenizer, tiny_bert

import tribute
from tribute.models.text import segment

captum_attr = pytest.importorskip("captum.attr")

TEXT = "Unbelievably, the weather's great today"
TARGET = 1


@pytest.fixture(scope="module")
def setup() -> tuple:
    tok = minilm_tokenizer()
    model = tiny_bert(tok.vocab_size, seed=3)
    enc = segment(TEXT, tok, "words")
    base = torch.where(enc.token_player >= 0, torch.full_like(enc.input_ids, tok.mask_token_id),
                       enc.input_ids)
    return model, tok, enc, base


def _forward(model: torch.nn.Module) -> object:
    def f(ids: torch.Tensor) -> torch.Tensor:
        return model(input_ids=ids).logits[:, TARGET]

    return f


def test_feature_ablation_matches_captum(setup: tuple) -> None:
    model, tok, enc, base = setup
    n = enc.n_players[0]
    groups = torch.where(enc.token_player >= 0, enc.token_player, torch.full_like(enc.token_player, n))
    theirs = captum_attr.FeatureAblation(_forward(model)).attribute(
        enc.input_ids, baselines=base, feature_mask=groups)
    per_word = [float(theirs[0][groups[0] == p][0]) for p in range(n)]
    ours = tribute.explain(model, TEXT, tokenizer=tok, method="feature_ablation", removal="mask",
                           target=TARGET, progress=False)
    np.testing.assert_allclose(ours.values[0], per_word, rtol=1e-6, atol=1e-10)


def test_layer_integrated_gradients_matches_captum(setup: tuple) -> None:
    model, tok, enc, base = setup
    n = enc.n_players[0]
    lig = captum_attr.LayerIntegratedGradients(_forward(model), model.get_input_embeddings())
    theirs = lig.attribute(enc.input_ids, baselines=base, n_steps=50, method="gausslegendre")
    per_token = theirs.sum(-1)[0]
    per_word = [float(per_token[enc.token_player[0] == p].sum()) for p in range(n)]
    ours = tribute.explain(model, TEXT, tokenizer=tok, method="integrated_gradients",
                           removal="mask", steps=50, rule="gauss_legendre", target=TARGET,
                           progress=False)
    np.testing.assert_allclose(ours.values[0], per_word, rtol=1e-6, atol=1e-10)
