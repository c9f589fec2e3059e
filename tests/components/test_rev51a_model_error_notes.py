"""aud51a's first-pass notes name the call (forward_args= / forward_kwargs=) and the token ids
only where that is what failed: a TypeError of a helper inside the model's code, or an
IndexError of integer inputs that index no table, keep a note about the model's code / the
inputs' shape (review rev51a)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError


def _helper(a: torch.Tensor) -> torch.Tensor:
    return a * 2


class _HelperBug(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(_helper(x, 2))  # type: ignore[call-arg]
        return out


class _ChannelPick(nn.Module):
    """uint8 images; the model picks a channel that does not exist (no embedding, no ids)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(x.float()[:, [0, 1, 5]].mean((2, 3)))
        return out


def _players(model: nn.Module, game: str) -> dict[str, Any]:
    return {"players": tribute.components(model, "fc")} if game == "components" else {}


@pytest.mark.parametrize("game", ["features", "components"])
def test_type_error_inside_the_model_is_not_a_call_error(game: str) -> None:
    """Before rev51a: "The model's forward does not accept the call made ... forward_kwargs=" for
    '_helper() takes 1 positional argument but 2 were given', raised by the model's own code."""
    m = _HelperBug()
    with pytest.raises(InputError, match=r"_helper\(\) takes 1 positional.*inside the model's own code") as info:
        tribute.explain(m, torch.randn(2, 4), method="feature_ablation", target=0, progress=False,
                        **_players(m, game))
    assert "forward_kwargs" not in str(info.value)


@pytest.mark.parametrize("game", ["features", "components"])
def test_index_error_without_a_table_is_not_a_token_id(game: str) -> None:
    """Before rev51a: uint8 images were told "ids from 0 to 254 ... an out-of-vocabulary token id"."""
    m = _ChannelPick()
    x = torch.randint(0, 255, (2, 3, 4, 4), dtype=torch.uint8)
    with pytest.raises(InputError, match=r"out of bounds.*An index in the model's forward is out of range") as info:
        tribute.explain(m, x, method="feature_ablation", target=0, progress=False, **_players(m, game))
    assert "token" not in str(info.value)


def test_call_errors_of_the_model_itself_keep_the_call_note() -> None:
    """Positive cases: a plain function, a nested one, a lambda, a module's forward."""
    def outer() -> object:
        def g(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
            return x * scale
        return g

    class _NoKw(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    cases: list[tuple[object, dict[str, torch.Tensor] | None]] = [
        (outer(), None), (lambda x, s: x * s, None), (_NoKw(), {"mask": torch.ones(2)})]
    for model, kwargs in cases:
        with pytest.raises(InputError, match=r"does not accept the call made.*forward_kwargs="):
            tribute.explain(model, torch.randn(2, 4), method="feature_ablation", target=0, progress=False,
                            forward_kwargs=kwargs)


def test_missing_forward_argument_on_a_1d_input_keeps_the_call_note() -> None:
    """Before rev51a (the merge of aud51a's call note with aud51g's 1-D hint) a function missing
    its 'scale' argument, given a 1-D input, was told to add a batch axis (X[None]), which does
    not mend a missing argument."""
    def f(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return x[:, None] * scale

    with pytest.raises(InputError, match=r"missing 1 required positional argument: 'scale'.*forward_kwargs=") as info:
        tribute.explain(f, torch.randn(5), method="occlusion", progress=False)
    assert "X[None]" not in str(info.value)
    # negative case: a 1-D input the model cannot read still gets the 1-D hint
    with pytest.raises(InputError, match=r"The input is 1-D.*X\[None\]"):
        tribute.explain(nn.Linear(3, 2), torch.randn(5), method="occlusion", target=0, progress=False)
