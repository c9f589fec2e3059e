"""A first pass that fails on a call error or an out-of-range token id says what to fix (aud51a):
a missing forward keyword was told to check the inputs' shape and dtype, an out-of-vocabulary id
raised a raw IndexError."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError


class _Scaled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(x) * scale
        return out


class _Emb(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.e = nn.Embedding(10, 4)
        self.fc = nn.Linear(4, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(self.e(ids).mean(1))
        return out


def _players(model: nn.Module, game: str) -> dict[str, Any]:
    return {"players": tribute.components(model, "fc")} if game == "components" else {}


@pytest.mark.parametrize("game", ["features", "components"])
def test_missing_forward_argument_names_forward_kwargs(game: str) -> None:
    m = _Scaled()
    with pytest.raises(InputError, match=r"missing 1 required positional argument: 'scale'.*forward_kwargs=") as info:
        tribute.explain(m, torch.randn(2, 4), method="feature_ablation", target=0, progress=False, **_players(m, game))
    assert "shape and dtype" not in str(info.value)
    # the fix it names works
    ok = tribute.explain(m, torch.randn(2, 4), method="feature_ablation", target=0, progress=False,
                         forward_kwargs={"scale": torch.tensor(2.0)}, **_players(m, game))
    assert ok.values.shape[0] == 2


def test_unexpected_forward_keyword_named() -> None:
    with pytest.raises(InputError, match=r"unexpected keyword argument 'scale'.*keyword arguments \['scale'\]"):
        tribute.explain(nn.Linear(4, 3), torch.randn(2, 4), method="occlusion", target=0, progress=False,
                        forward_kwargs={"scale": 2.0})


@pytest.mark.parametrize("game", ["features", "components"])
def test_out_of_vocabulary_id_names_range_and_table(game: str) -> None:
    m = _Emb()
    ids = torch.tensor([[1, 2, 12], [3, 4, 5]])
    with pytest.raises(InputError, match=r"ids from 1 to 12; the model's embeddings have 'e': 10 rows"):
        tribute.explain(m, ids, method="feature_ablation", target=0, progress=False, **_players(m, game))


def test_shape_error_keeps_shape_hint() -> None:
    """Negative case: a shape mismatch still gets the shape / dtype hint."""
    with pytest.raises(InputError, match="Check that the inputs have the shape and dtype the model expects"):
        tribute.explain(nn.Linear(4, 3), torch.randn(2, 5), method="occlusion", target=0, progress=False)
