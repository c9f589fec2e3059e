"""Review rev39c of eng39 (issue #9): ``Game.empty()`` -- one lerp per input, or the generic
``_evaluate`` where that route does not apply -- gives the bits of ``value(empty mask)`` with the
same evaluations and rows, on settings eng39's own tests did not use: per-sample groups, integer
and bool inputs, a ``1 x F`` baseline tensor, a one-row and a weighted ``Background``, a float64
model fed float32 inputs, a batch of one. Truth: the model called on the baseline rows by hand."""

from __future__ import annotations

import pytest
import torch

import tribute
from tribute.games.build import build_game
from tribute.models.adapters import as_model
from tribute_testing import RowCounter


class _Ids(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.e = torch.nn.Embedding(10, 4, dtype=torch.float64)
        self.lin = torch.nn.Linear(4, 2, dtype=torch.float64)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lin(self.e(ids).mean(1))


class _Bools(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(6, 2, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.double())


def _cases() -> list[tuple[str, torch.nn.Module, torch.Tensor, dict[str, object], torch.Tensor]]:
    g = torch.Generator().manual_seed(39)
    torch.manual_seed(39)
    mlp = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(),
                              torch.nn.Linear(5, 3)).double()
    x = torch.randn(5, 6, generator=g, dtype=torch.float64)
    row = torch.randn(1, 6, generator=g, dtype=torch.float64)
    one = torch.randn(1, 6, generator=g, dtype=torch.float64)
    bg = torch.randn(3, 6, generator=g, dtype=torch.float64)
    w = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    groups = torch.stack([torch.randperm(6, generator=g) % 3 for _ in range(5)])
    ids = torch.randint(1, 10, (4, 5), generator=g)
    xb = torch.rand(4, 6, generator=g) > 0.5
    ones = torch.ones(5, 6, dtype=torch.float64)
    return [  # (name, model, inputs, settings, the rows v(empty) must see)
        ("1 x F baseline", mlp, x, {"baseline": row}, row.expand(5, 6)),
        ("one-row background", mlp, x, {"baseline": tribute.Background(one)}, one.expand(5, 6)),
        ("weighted background", mlp, x, {"baseline": tribute.Background(bg, weights=w)}, bg),
        ("per-sample groups", mlp, x, {"baseline": 0.25, "groups": groups}, 0.25 * ones),
        ("float32 inputs, float64 model", mlp, x.float(), {"baseline": 0.5}, 0.5 * ones),
        ("batch of one", mlp, x[:1], {"baseline": row}, row),
        ("token ids", _Ids(), ids, {"baseline": 0}, torch.zeros(4, 5, dtype=torch.long)),
        ("bools", _Bools(), xb, {"baseline": False}, torch.zeros(4, 6, dtype=torch.bool)),
    ]


@pytest.mark.parametrize("case", range(8))
def test_empty_is_the_empty_coalition_and_the_model_on_the_baseline_rows(case: int) -> None:
    name, inner, x, settings, base_rows = _cases()[case]
    model = RowCounter(inner)
    adapter = as_model(model, "torch", None)
    with adapter.session():
        a = build_game(adapter, x, target=[0, 1], batch_size=3, **settings)  # type: ignore[arg-type]
        b = build_game(adapter, x, target=[0, 1], batch_size=3, **settings)  # type: ignore[arg-type]
        before = model.rows
        got = a.empty()
        rows_empty = model.rows - before
        before = model.rows
        generic = b.value(torch.zeros(1, b.n_players))[:, 0]
        rows_value = model.rows - before
    assert got.numpy().tobytes() == generic.numpy().tobytes(), name
    assert (a.n_evals, rows_empty) == (b.n_evals, rows_value), name
    with torch.no_grad():
        if "background" in name and base_rows.shape[0] == 3:  # the weighted mean over rows
            w = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
            want = (w[:, None] * inner(base_rows)[:, :2]).sum(0).expand(x.shape[0], 2)
        else:
            want = inner(base_rows)[:, :2].double()
    torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-14, msg=name)
