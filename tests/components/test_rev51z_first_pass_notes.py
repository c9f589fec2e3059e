"""A first pass that fails gives the same notes on the feature and the component game, and
names what the error itself shows before a batch norm (rev51z, reading the merge of aud51a's
call-error / out-of-range-id notes with aud51g's and rev51g's 1-D hint).

Before: the component game never gave the 1-D hint (``X[0]`` of a table was told to build its
modules with ``batch_first=True``; 1-D ids out of a vocabulary got the id note alone), and a
model with a batch norm without running statistics was told about the batch norm for a missing
forward argument or an out-of-vocabulary id.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError, UnsupportedModelError


class _NeedsMask(nn.Module):
    def __init__(self, bn: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(1, 2)
        self.bn = nn.BatchNorm1d(2, track_running_stats=False) if bn else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.act(self.bn(self.fc(x.reshape(x.shape[0], -1)[:, :1] * mask[:, None])))
        return out


class _Emb(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.e = nn.Embedding(10, 4)
        self.fc = nn.Linear(4, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(self.e(ids))
        return out


def _kw(model: nn.Module, game: str, site: str) -> dict[str, Any]:
    kw: dict[str, Any] = {"method": "feature_ablation", "target": 0, "progress": False}
    if game == "components":
        kw["players"] = tribute.components(model, [site])
    return kw


_CALL = "does not accept the call made"
_ONE_D = "give it a batch axis: X[None]"


@pytest.mark.parametrize("game", ["features", "components"])
def test_a_call_error_on_a_one_dimensional_input_gets_the_call_note_alone(game: str) -> None:
    # (rev51a's rule for the feature game: a missing argument is not mended by a batch axis)
    torch.manual_seed(0)
    model = _NeedsMask().eval()
    for x in (torch.randn(6), torch.randn(6, 1)):
        with pytest.raises(InputError) as err:
            tribute.explain(model, x, **_kw(model, game, "act"))
        assert _CALL in str(err.value) and _ONE_D not in str(err.value), str(err.value)


@pytest.mark.parametrize("game", ["features", "components"])
def test_an_out_of_range_id_on_one_dimensional_ids_keeps_its_note(game: str) -> None:
    torch.manual_seed(0)
    model = _Emb().eval()
    with pytest.raises(InputError) as err:
        tribute.explain(model, torch.tensor([1, 2, 30, 4]), **_kw(model, game, "e"))
    msg = str(err.value)
    assert "ids from 1 to 30" in msg and "'e': 10 rows" in msg and _ONE_D in msg, msg


@pytest.mark.parametrize("game", ["features", "components"])
def test_a_call_error_is_not_blamed_on_a_batch_norm(game: str) -> None:
    torch.manual_seed(0)
    model = _NeedsMask(bn=True).eval()
    with pytest.raises(InputError) as err:
        tribute.explain(model, torch.randn(6, 1), **_kw(model, game, "act"))
    assert _CALL in str(err.value) and "track_running_stats" not in str(err.value)
    # negative: the batch norm's own one-row failure still names it
    with pytest.raises(InputError, match="track_running_stats=False"):
        tribute.explain(model, torch.randn(1, 1), **_kw(model, game, "act"),
                        forward_kwargs={"mask": torch.ones(1)})


def test_a_component_game_on_x0_of_a_table_hints_a_batch_axis() -> None:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    x = torch.randn(4, 5)
    with pytest.raises(UnsupportedModelError, match="keep the batch axis first") as err:
        tribute.explain(mlp, x[0], **_kw(mlp, "components", "1"))
    assert type(err.value) is UnsupportedModelError  # (no new class name in the explorer)
    assert "The input is 1-D, read as 5 samples" in str(err.value) and _ONE_D in str(err.value)
    # the same row with its batch axis runs
    a = tribute.explain(mlp, x[0][None], **_kw(mlp, "components", "1"))
    assert a.values.shape == (1, 8)
