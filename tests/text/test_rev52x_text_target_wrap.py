"""Which errors under ``Target.select`` keep the text game's wrapper (review rev52x of aud52x):
only the ``target=`` callable's own errors pass unchanged; an error of tribute's code reading the
model's output on perturbed rows (fewer classes, integer logits) names the model, as before aud52x."""

from __future__ import annotations

import operator

import pytest
import torch
from _text_models import BagOfEmbeddings
from torch import nn

import tribute
from tribute.errors import InputError
from tribute.models.text import WordTokenizer

_TOK = WordTokenizer(["the", "cat", "sat"])


class _FewerClasses(BagOfEmbeddings):  # type: ignore[misc]  # a tests-dir helper: Any to mypy
    """One class instead of two on batches of several rows (the reference pass is one row)."""

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        out: torch.Tensor = super().forward(ids, attention_mask)
        return out[:, :1] if out.shape[0] > 1 else out


class _IntegerLogits(BagOfEmbeddings):  # type: ignore[misc]
    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        out: torch.Tensor = super().forward(ids, attention_mask)
        return out.long() if out.shape[0] > 1 else out


@pytest.mark.parametrize("method", ["occlusion", "integrated_gradients"])
@pytest.mark.parametrize(("model", "output"), [(_FewerClasses, "logit"), (_FewerClasses, "prob"),
                                               (_IntegerLogits, "log_prob")],
                         ids=["fewer classes", "fewer classes prob", "integer logits"])
def test_model_output_error_inside_select_is_wrapped(model: type[nn.Module], output: str, method: str) -> None:
    """After aud52x these came out raw ("RuntimeError: INDICES element is out of DATA bounds,
    id=1 axis_dim=1"; "log_softmax_lastdim_kernel_impl not implemented for 'Long'")."""
    with pytest.raises(InputError, match=rf"text model \({model.__name__}\) failed while tribute computed") as info:
        tribute.explain(model(_TOK.vocab_size), ["the cat sat"], tokenizer=_TOK, method=method, target=1,
                        output=output, progress=False)
    assert info.value.__cause__ is not None


def test_builtin_target_callable_error_passes_unchanged() -> None:
    """A target callable without Python frames (``operator.methodcaller``) raising on the
    coalition rows: its own error, unchanged."""
    with pytest.raises(RuntimeError, match="invalid for input of size") as info:
        tribute.explain(BagOfEmbeddings(_TOK.vocab_size), ["the cat sat"], tokenizer=_TOK, method="occlusion",
                        target=operator.methodcaller("reshape", 1, 2), progress=False)
    assert not isinstance(info.value, InputError)


def test_model_called_by_the_target_callable_keeps_its_message() -> None:
    """A target callable that calls a module which fails: the module's error, unchanged (it is the
    callable's code), with its own message."""
    head = nn.Linear(3, 1).double()  # expects 3 features; the model gives 2

    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied") as info:
        tribute.explain(BagOfEmbeddings(_TOK.vocab_size), ["the cat sat"], tokenizer=_TOK, method="occlusion",
                        target=lambda out: head(out.double()) if out.shape[0] > 1 else out[:, 0], progress=False)
    assert not isinstance(info.value, InputError)
