"""The method conformance contract on a text game (every registered feature method).

Shapes, finite values, model unchanged (parameters, training flags, requires_grad, hooks),
same seed same result, batch result equals per-text results concatenated, and the rows the
model actually sees equal ``n_rows`` with ``n_evals <= budget``. Methods that refuse a text
game by design (image-only CAMs, tree SHAP, ...) must say so with a clear error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from _text_models import BagOfEmbeddings

import tribute
from tribute.errors import BudgetError, InputError, UnsupportedModelError
from tribute.methods import registry
from tribute.models.text import WordTokenizer

VOCAB = ["the", "cat", "sat", "down", "a", "dog", "ran", "off", "my", "bird", "sang", "loud"]
TEXTS = ["the cat sat down", "a dog ran off", "my bird sang loud"]
BUDGET = 40
FEATURE_METHODS = sorted(m for m in registry() if "feature" in registry()[m].tags.games)


def _snapshot(model: torch.nn.Module) -> Any:
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
         for m in model.modules()],
    )


def _run(method: str, model: torch.nn.Module, texts: list[str], tok: WordTokenizer) -> tribute.Attribution:
    kw: dict[str, Any] = {"target": 1, "seed": 5, "progress": False}
    if registry()[method].tags.budgeted:
        kw["budget"] = BUDGET
    return tribute.explain(model, texts, tokenizer=tok, method=method, removal="mask", **kw)


@pytest.mark.parametrize("method", FEATURE_METHODS)
def test_text_game_conformance(method: str) -> None:
    tok = WordTokenizer(VOCAB, bos=True)
    model = BagOfEmbeddings(tok.vocab_size, out=3)
    model.train()
    before = _snapshot(model)
    rows = {"n": 0}

    def pre(_mod: Any, args: tuple[Any, ...]) -> None:
        rows["n"] += int(args[0].shape[0])

    handle = model.register_forward_pre_hook(pre)
    try:
        attr = _run(method, model, TEXTS, tok)
    except (UnsupportedModelError, BudgetError, InputError) as exc:
        handle.remove()
        assert str(exc)  # a clear refusal, and the model is untouched
        after = _snapshot(model)
        assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
        assert before[1:] == after[1:]
        pytest.skip(f"{method} refuses a text game: {exc}")
    handle.remove()
    tags = registry()[method].tags
    vals = np.asarray(attr.values)
    assert vals.shape == (3, 4) and np.isfinite(vals).all()
    assert attr.player_names == TEXTS[0].split() and attr.player_kind == "word"
    if tags.budgeted:
        assert 0 < attr.n_evals <= BUDGET
    if not tags.needs_gradients:
        assert rows["n"] == attr.n_rows
    after = _snapshot(model)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert before[1:] == after[1:]
    again = _run(method, model, TEXTS, tok)
    np.testing.assert_allclose(vals, np.asarray(again.values), rtol=1e-10, atol=1e-12)
    one_by_one = np.concatenate([np.asarray(_run(method, model, [t], tok).values) for t in TEXTS])
    np.testing.assert_allclose(vals, one_by_one, rtol=1e-6, atol=1e-8)
