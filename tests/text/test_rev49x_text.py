"""rev49x: a baseline equal to 0 on texts was dropped; token ids rounded a float64 model's credits.

1. Texts remove words with ``removal=`` and refuse a baseline, but ``baseline=0`` (``0.0``,
   ``False``) passed the text game's check and was ignored: a user meaning "[PAD], id 0 on
   BERT" got the [MASK] credits. :func:`tribute.explain` and :func:`tribute.evaluate` now
   refuse a given baseline equal to 0 on texts and name ``removal='pad'``; tribute's own
   re-explanations (metrics) pass none.
2. Token-id inputs without a tokenizer reported float32 credits for a float64 model (the
   layout dtype was float32 for integer inputs): feature ablation 2.3e-8 off the credits computed
   by hand in float64. They now come in the model's dtype (float32 stays float32; half precision
   models keep float32 credits).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from _text_models import BagOfEmbeddings

import tribute
from tribute.models.text import WordTokenizer

pytestmark = pytest.mark.text

_TOK = WordTokenizer(["the", "movie", "was", "great", "fun", "bad", "film", "so", "good"])
_TEXTS = ["bad film", "the movie was great", "so good"]


def _ablation_by_hand(model: torch.nn.Module, text: str, fill: int, target: int) -> list[float]:
    """``f(text) - f(text with word j replaced by token ``fill``)``, calling the model by hand."""
    ids = torch.tensor([[_TOK.vocab[w] for w in text.split()]])
    one = torch.ones_like(ids)
    with torch.no_grad():
        full = float(model(ids, attention_mask=one)[0, target])
        out = []
        for j in range(ids.shape[1]):
            x = ids.clone()
            x[0, j] = fill
            out.append(full - float(model(x, attention_mask=one)[0, target]))
    return out


@pytest.mark.parametrize("baseline", [0, 0.0, False, np.float64(0.0), -0.0])
def test_text_baseline_zero_is_refused(baseline: Any) -> None:
    model = BagOfEmbeddings(_TOK.vocab_size, seed=1)
    seen = [0]
    model.register_forward_pre_hook(lambda _m, args: seen.__setitem__(0, seen[0] + args[0].shape[0]))
    with pytest.raises(tribute.errors.InputError, match=r"removal='pad'") as err:
        tribute.explain(model, _TEXTS, tokenizer=_TOK, method="feature_ablation", target=0,
                        baseline=baseline, progress=False)
    assert f"baseline={baseline!r}" in str(err.value)
    assert seen[0] == 0  # refused before any model row
    # what the user meant: [PAD] (id 0), checked against the model called by hand
    pad = tribute.explain(model, _TEXTS, tokenizer=_TOK, method="feature_ablation", target=0,
                          removal="pad", progress=False)
    np.testing.assert_allclose(np.asarray(pad.values)[0, :2],
                               _ablation_by_hand(model, _TEXTS[0], _TOK.pad_token_id, 0), rtol=0, atol=1e-12)


@pytest.mark.filterwarnings("ignore::tribute.StderrWarning")  # model_randomisation: one draw
def test_text_baseline_zero_is_refused_by_evaluate_and_metrics_still_run() -> None:
    model = BagOfEmbeddings(_TOK.vocab_size, seed=1)
    attr = tribute.explain(model, _TEXTS, tokenizer=_TOK, method="feature_ablation", target=0,
                           progress=False)
    # no baseline: the mask token, as by hand
    np.testing.assert_allclose(np.asarray(attr.values)[1, :4],
                               _ablation_by_hand(model, _TEXTS[1], _TOK.mask_token_id, 0), rtol=0, atol=1e-12)
    with pytest.raises(tribute.errors.InputError, match=r"baseline=0 does not apply to texts"):
        tribute.evaluate(model, _TEXTS, attr, metric="deletion", tokenizer=_TOK, baseline=0)
    # tribute's own re-explanations (metrics that call explain) pass no baseline: they still run
    for metric in ("deletion", "random_logit", "model_randomisation"):
        res = tribute.evaluate(model, _TEXTS, attr, metric=metric, tokenizer=_TOK, progress=False)
        assert np.isfinite(np.asarray(res.scores, dtype=np.float64)).any()


@pytest.mark.parametrize(("dtype", "credit_dtype"), [(torch.float64, torch.float64),
                                                     (torch.float32, torch.float32),
                                                     (torch.bfloat16, torch.float32)])
def test_token_id_credits_in_the_models_dtype(dtype: torch.dtype, credit_dtype: torch.dtype) -> None:
    model = BagOfEmbeddings(12, seed=1).to(dtype)
    ids = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 10, 11, 3]])
    attr = tribute.explain(model, ids, method="feature_ablation", target=0, progress=False)
    values = attr.values
    assert isinstance(values, torch.Tensor) and values.dtype == credit_dtype
    if dtype == torch.float64:
        # by hand in float64: id 0 (the default baseline of token ids) in place of each token
        with torch.no_grad():
            full = model(ids)[:, 0]
            truth = torch.stack([full - model(ids.index_fill(1, torch.tensor([j]), 0))[:, 0]
                                 for j in range(5)], 1)
        # float32 credits were 2.3e-8 off
        assert float((values - truth).abs().max()) < 1e-14


def test_integrated_hessians_steps_given_with_budget_is_one_game() -> None:
    """``steps=5, budget=48`` on a 1-word and an 8-word text: the given steps are the same for
    every text, so nothing follows the player count. The per-word-count split (aud49x) refused
    the 1-word group ("budget=48 runs steps=46") after the 8-word group had run 43 model rows;
    before it, and now, one game runs 5 steps for both texts, as each text alone with steps=5."""
    batch = ["bad", "the movie was great fun so good film"]
    model = BagOfEmbeddings(_TOK.vocab_size, seed=1)
    seen = [0]
    model.register_forward_pre_hook(lambda _m, args: seen.__setitem__(0, seen[0] + args[0].shape[0]))
    attr = tribute.explain(model, batch, tokenizer=_TOK, method="integrated_hessians", target=0,
                           steps=5, budget=48, progress=False)
    assert seen[0] == attr.n_rows == 2 * (5 * 8 + 2)
    values = np.asarray(attr.values)
    for i, text in enumerate(batch):
        alone = tribute.explain(model, [text], tokenizer=_TOK, method="integrated_hessians",
                                target=0, steps=5, progress=False)
        n = len(text.split())
        np.testing.assert_allclose(values[i, :n], np.asarray(alone.values)[0], rtol=0, atol=1e-12)
    with pytest.raises(tribute.errors.InputError, match="disagree"):  # still refused as before
        tribute.explain(model, batch, tokenizer=_TOK, method="integrated_hessians", target=0,
                        steps=46, budget=48, progress=False)
