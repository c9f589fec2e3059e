"""A target callable's own error on a text game passes unchanged (aud52x): it was wrapped as
"the text model ... failed ... make its forward take any batch x length of token ids"."""

from __future__ import annotations

import pytest
import torch
from _text_models import BagOfEmbeddings
from torch import nn

import tribute
from tribute.errors import InputError
from tribute.models.text import WordTokenizer

_TOK = WordTokenizer(["the", "cat", "sat"])


def _state(model: nn.Module) -> tuple[bool, int, list[torch.Tensor]]:
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    return model.training, hooks, [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion", "integrated_hessians", "kernel_shap"])
def test_target_callable_error_is_not_called_a_model_failure(method: str) -> None:
    model = BagOfEmbeddings(_TOK.vocab_size).train()
    before = _state(model)

    def target(out: torch.Tensor) -> torch.Tensor:
        if out.shape[0] > 1:  # the reference pass (one row per text) passes, coalitions fail
            raise KeyError("my target's own bug")
        return out[:, 0]

    with pytest.raises(KeyError, match="my target's own bug"):
        tribute.explain(model, ["the cat sat"], tokenizer=_TOK, method=method, target=target, progress=False)
    after = _state(model)
    assert after[:2] == before[:2] and all(torch.equal(a, b) for a, b in zip(after[2], before[2]))


def test_model_error_is_still_wrapped() -> None:
    """Negative case: an error of the model itself (here under autograd) keeps the text game's
    context, with a target callable given too."""
    class _Fails(BagOfEmbeddings):  # type: ignore[misc]  # a tests-dir helper: Any to mypy
        def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
            if torch.is_grad_enabled():
                raise RuntimeError("model's own bug")
            return super().forward(ids, attention_mask)

    with pytest.raises(InputError, match=r"text model \(_Fails\) failed while tribute computed") as info:
        tribute.explain(_Fails(_TOK.vocab_size), ["the cat sat"], tokenizer=_TOK, method="integrated_gradients",
                        target=lambda out: out[:, 0], progress=False)
    assert isinstance(info.value.__cause__, RuntimeError)
