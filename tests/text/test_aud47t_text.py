"""aud47t: fractional masks on a text game whose tokens can only be kept or removed.

A text game blends a fractional presence ``z`` into the input embeddings (``b + z (e - b)``),
except with ``removal="delete"``, with a model that has no ``nn.Embedding`` input module, and
with a model that has one but never calls it (``F.embedding`` on its weight): there a token was
kept where its presence exceeded 0.5 and removed otherwise, silently. ``method="sobol"`` (the
one method drawing fractional masks) then returned Sobol indices of another game, and
``infidelity`` with gaussian perturbations scored exact Shapley values 0.0153 on the
``F.embedding`` model against 0.000214 on the same function reading its embedding module (its
refusal covered "no module found", not "module never run": the reference pass, all ones, is
where the game learns that the module does not run, and only a fractional *first* call was
refused). Now every fractional presence on those paths is refused, on every call.

Truths: the model called by hand on ids with the removed words replaced by the mask id (or
dropped), Shapley values by enumerating every coalition (binary methods still run there).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from _text_models import all_masks, shapley_by_enumeration

import tribute
from tribute.errors import InputError
from tribute.models.text import WordTokenizer

pytestmark = pytest.mark.text

_TOK = WordTokenizer(["the", "movie", "was", "great", "fun", "bad", "film"])
_TEXT = "the movie was great fun"


class _Calls(torch.nn.Module):
    """Masked mean of token embeddings -> tanh -> linear (float64), reading its nn.Embedding."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.emb = torch.nn.Embedding(_TOK.vocab_size, 6).double()
        self.lin = torch.nn.Linear(6, 2).double()
        with torch.no_grad():
            self.emb.weight.copy_(torch.randn(_TOK.vocab_size, 6, generator=g, dtype=torch.float64))
            self.lin.weight.copy_(torch.randn(2, 6, generator=g, dtype=torch.float64))
            self.lin.bias.zero_()

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.emb(ids)
        return out

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        e = self.embed(ids)
        m = (torch.ones_like(ids) if attention_mask is None else attention_mask).unsqueeze(-1).to(e.dtype)
        out: torch.Tensor = self.lin(torch.tanh((e * m).sum(1) / m.sum(1).clamp(min=1.0)))
        return out


class _Functional(_Calls):
    """The same function, but ``F.embedding`` on the module's weight: the module never runs."""

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.embedding(ids, self.emb.weight)


class _NoModule(_Calls):
    """The same function with the table as a bare parameter: no nn.Embedding at all."""

    def __init__(self) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(self.emb.weight.detach().clone())
        del self.emb

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table[ids]


def _hand_values(model: torch.nn.Module, removal: str) -> dict[tuple[int, ...], float]:
    """v(S) for every coalition of the text's 5 words, target 0: removed words' ids replaced by
    the mask id (or dropped for ``delete``), the model called by hand."""
    ids, _ = _TOK.encode_offsets(_TEXT)
    v = {}
    with torch.no_grad():
        for s in all_masks(len(ids)):
            if removal == "delete":
                kept = [t for t, k in zip(ids, s) if k]
                row = torch.tensor([kept or [_TOK.pad_token_id]])
                attn = torch.tensor([[1] * len(kept) or [0]])
            else:
                row = torch.tensor([[t if k else _TOK.mask_token_id for t, k in zip(ids, s)]])
                attn = torch.ones_like(row)
            v[s] = float(model(row, attention_mask=attn)[0, 0])
    return v


_CASES = [(_Calls, "delete"), (_NoModule, "mask"), (_Functional, "mask")]


@pytest.mark.parametrize(("cls", "removal"), _CASES, ids=["delete", "no-embedding-module", "module-never-run"])
def test_fractional_masks_are_refused_where_tokens_cannot_blend(cls: type[_Calls], removal: str) -> None:
    """sobol draws fractional masks: refused (it returned indices of presences rounded at 0.5)."""
    model = cls().eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(InputError, match=r"fractional masks \(e\.g\. presence 0\.\d+: .*binary-mask method"):
        tribute.explain(model, [_TEXT], tokenizer=_TOK, method="sobol", removal=removal, target=0,
                        progress=False)
    assert not model.training
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize(("cls", "removal"), _CASES, ids=["delete", "no-embedding-module", "module-never-run"])
def test_binary_methods_still_run_there(cls: type[_Calls], removal: str) -> None:
    """The refusal leaves 0/1 masks alone: exact Shapley equals the hand enumeration."""
    model = cls().eval()
    attr = tribute.explain(model, [_TEXT], tokenizer=_TOK, method="exact_shapley", removal=removal,
                           target=0, progress=False)
    truth = shapley_by_enumeration(_hand_values(model, removal), 5)
    np.testing.assert_allclose(np.asarray(attr.values).reshape(-1), truth, rtol=1e-10, atol=1e-13)


def test_infidelity_refused_when_the_embedding_module_never_runs() -> None:
    """infidelity (gaussian) on the F.embedding model: refused; the same function reading its
    embedding module is scored (its exact Shapley values are the same numbers)."""
    kw: dict[str, Any] = {"tokenizer": _TOK, "removal": "mask", "target": 0}
    calls, func = _Calls().eval(), _Functional().eval()
    a_calls = tribute.explain(calls, [_TEXT], method="exact_shapley", progress=False, **kw)
    a_func = tribute.explain(func, [_TEXT], method="exact_shapley", progress=False, **kw)
    np.testing.assert_allclose(a_func.values, a_calls.values, rtol=1e-12, atol=1e-14)
    score = tribute.evaluate(calls, [_TEXT], a_calls, "infidelity", **kw)
    assert np.isfinite(score.mean)
    with pytest.raises(InputError, match="fractional masks"):
        tribute.evaluate(func, [_TEXT], a_func, "infidelity", **kw)


def test_sobol_still_blends_embeddings() -> None:
    """sobol on the model reading its embedding module (mask, zero, mean) still runs, and a
    fractional presence there is the blend ``b + z (e - b)``: v at z = 0.5 everywhere by hand."""
    model = _Calls().eval()
    for removal in ("mask", "zero", "mean"):
        attr = tribute.explain(model, [_TEXT], tokenizer=_TOK, method="sobol", removal=removal,
                               target=0, progress=False)
        assert np.isfinite(attr.values).all()
    game = tribute.build_game(model, [_TEXT], tokenizer=_TOK, removal="mask", target=0, progress=False)
    got = float(game.value(torch.full((1, 5), 0.5, dtype=torch.float64))[0, 0, 0])
    ids = torch.tensor([_TOK.encode_offsets(_TEXT)[0]])
    with torch.no_grad():
        e = model.emb(ids)
        b = model.emb.weight[_TOK.mask_token_id]
        h = (b + 0.5 * (e - b)).mean(1)
        truth = float(model.lin(torch.tanh(h))[0, 0])
    assert got == pytest.approx(truth, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("method", ["saliency", "smoothgrad", "integrated_gradients"])
def test_gradient_methods_refused_when_the_embedding_module_never_runs(method: str) -> None:
    """Replaced ids carry no gradient: saliency and smoothgrad raised a bare RuntimeError
    ("element 0 of tensors does not require grad"); now a named refusal, model unchanged."""
    from tribute.errors import UnsupportedModelError

    model = _Functional().eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(UnsupportedModelError, match="never calls its input embedding module"):
        tribute.explain(model, [_TEXT], tokenizer=_TOK, method=method, removal="mask", target=0,
                        progress=False)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())
