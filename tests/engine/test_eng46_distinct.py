"""eng46 (issue #9): a coalition that shared masks hold several times reaches the model once.

Sampling estimators draw coalitions with replacement, and permutation walks repeat prefixes: on
main, mlp13 (13 players, the bench's 178 wine rows) sent 30% of permutation_shapley's rows, 61%
of COAR's, 10% of sampled Banzhaf's and 6% of LIME's and RISE's to the model a second time for
the same sample. :meth:`Game.value` now evaluates each distinct coalition once and gives every
copy its values; ``n_evals`` counts the evaluations the model made (``n_rows = samples *
n_evals`` without a background set).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.games.base import Game, distinct_coalitions
from tribute.games.features import FeatureGame
from tribute.models import as_model
from tribute_testing import make_mlp

SAMPLERS = ["lime", "coar", "rise", "reagent", "permutation_shapley", "banzhaf"]


def _first_occurrences(masks: torch.Tensor) -> tuple[list[int], list[int]]:
    """By hand: the index of each distinct row's first occurrence, and each row's position
    among them (a dict over the rows' values)."""
    seen: dict[tuple[float, ...], int] = {}
    keep: list[int] = []
    inverse: list[int] = []
    for i, row in enumerate(masks.tolist()):
        key = tuple(row)
        if key not in seen:
            seen[key] = len(keep)
            keep.append(i)
        inverse.append(seen[key])
    return keep, inverse


def _mask_cases() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    binary = (torch.rand(60, 5, generator=g) < 0.5).double()  # 32 possible rows: repeats
    frac = torch.rand(8, 4, generator=g, dtype=torch.float64)
    frac_rep = frac[torch.tensor([0, 3, 0, 7, 3, 3, 1])]
    wide = (torch.rand(40, 300, generator=g) < 0.5).double()
    wide_rep = torch.cat([wide, wide[::3], wide[:1]])
    close = torch.tensor([[0.1, 0.2], [0.1, 0.2 + 1e-16], [0.1, 0.2], [0.2, 0.1]], dtype=torch.float64)
    return [binary, frac_rep, wide_rep, close, torch.ones(9, 3), torch.zeros(2, 7),
            binary.float(), (torch.rand(50, 3, generator=g) < 0.5)]


@pytest.mark.parametrize("case", range(len(_mask_cases())))
def test_distinct_coalitions_match_a_dict_of_rows(case: int) -> None:
    masks = _mask_cases()[case]
    keep_true, inverse_true = _first_occurrences(masks)
    out = distinct_coalitions(masks)
    assert len(keep_true) < masks.shape[0]  # every case holds a repeat
    assert out is not None
    keep, inverse = out
    assert keep.tolist() == keep_true
    assert inverse.tolist() == inverse_true
    assert torch.equal(masks[keep][inverse], masks)


def test_distinct_masks_give_none() -> None:
    g = torch.Generator().manual_seed(1)
    eye = torch.eye(13, dtype=torch.float64)  # feature ablation's leave-one-out rows, as ones
    cases = [1 - eye, eye, torch.rand(30, 4, generator=g, dtype=torch.float64),
             torch.ones(1, 5), torch.zeros(0, 5), torch.zeros(3, 0),
             torch.tensor([[float("nan"), 1.0], [float("nan"), 1.0]])]
    for masks in cases:
        assert distinct_coalitions(masks) is None, masks


def _linear_game(samples: int = 3, n: int = 5, background: Any = None) -> tuple[FeatureGame, Any, torch.Tensor, torch.Tensor, list[int]]:
    """A feature game on ``f(x) = x @ w + c`` (float64) and the model rows it sends."""
    torch.manual_seed(4)
    lin = torch.nn.Linear(n, 2).double().eval()
    x = torch.randn(samples, n, dtype=torch.float64)
    base = torch.randn(samples, n, dtype=torch.float64)
    seen = [0]

    def pre(_mod: Any, args: tuple[Any, ...]) -> None:
        seen[0] += int(args[0].shape[0])

    lin.register_forward_pre_hook(pre)
    game = tribute.build_game(lin, x, target=1,
                              baseline=tribute.PerSample(base) if background is None else background)
    assert isinstance(game, FeatureGame)
    return game, lin, x, base, seen


def test_value_of_repeated_coalitions_is_the_closed_form_for_every_copy() -> None:
    game, lin, x, base, seen = _linear_game()
    masks = torch.tensor([[1, 0, 1, 0, 0], [0, 0, 0, 0, 0], [1, 0, 1, 0, 0], [1, 1, 1, 1, 1],
                          [0, 0, 0, 0, 0], [1, 0, 1, 0, 0], [0, 1, 0, 1, 1]], dtype=torch.float64)
    w, c = lin.weight.detach()[1], float(lin.bias.detach()[1])
    game.full()  # the reference pass first: the rows counted below are the coalitions'
    before_rows, before_evals = seen[0], game.n_evals
    vals = game.value(masks)
    truth = (masks[None] * x[:, None] + (1 - masks[None]) * base[:, None]) @ w + c  # samples x K
    torch.testing.assert_close(vals[:, :, 0], truth, rtol=0, atol=1e-12)
    # copies carry the same bits as their first occurrence
    assert torch.equal(vals[:, 0], vals[:, 2]) and torch.equal(vals[:, 0], vals[:, 5])
    assert torch.equal(vals[:, 1], vals[:, 4])
    assert game.n_evals - before_evals == 4  # 4 distinct coalitions of 7
    assert seen[0] - before_rows == 4 * x.shape[0]
    assert game.engine.n_rows == seen[0]


def test_per_sample_masks_and_other_games_evaluate_every_copy() -> None:
    game, _lin, x, _base, seen = _linear_game()
    game.full()
    rows0, evals0 = seen[0], game.n_evals
    per_sample = torch.ones(x.shape[0], 4, 5, dtype=torch.float64)  # 4 equal coalitions per sample
    game.value(per_sample)
    assert game.n_evals - evals0 == 4 and seen[0] - rows0 == 4 * x.shape[0]
    assert Game.distinct_coalitions is False  # component, data and generation games: as before


def test_value_with_a_background_set_counts_background_rows_once_per_distinct_coalition() -> None:
    bg = tribute.Background(torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(9)))
    game, lin, x, _base, seen = _linear_game(background=bg)
    game.full()
    rows0, evals0 = seen[0], game.n_evals
    masks = torch.tensor([[1, 0, 0, 1, 0]] * 4 + [[0, 1, 1, 0, 0]] * 3, dtype=torch.float64)
    vals = game.value(masks)
    w, c = lin.weight.detach()[1], float(lin.bias.detach()[1])
    data = bg.data
    truth = ((masks[None, :, None] * x[:, None, None] + (1 - masks[None, :, None]) * data[None, None])
             @ w + c).mean(-1)
    torch.testing.assert_close(vals[:, :, 0], truth, rtol=0, atol=1e-12)
    assert game.n_evals - evals0 == 2 and seen[0] - rows0 == 2 * 4 * x.shape[0]


class _RowLog:
    """Hashes every row the model sees (a forward pre-hook, removed by :meth:`close`)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.rows: list[str] = []

        def pre(_mod: Any, args: tuple[Any, ...]) -> None:
            for r in args[0].detach().contiguous():
                self.rows.append(hashlib.sha1(r.numpy().tobytes()).hexdigest())

        self._h = model.register_forward_pre_hook(pre)

    def close(self) -> None:
        self._h.remove()


@pytest.mark.parametrize("method", SAMPLERS)
def test_sampling_methods_send_no_row_twice(method: str) -> None:
    model = make_mlp(6, 3)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 6, dtype=torch.float64, generator=g)
    base = tribute.PerSample(torch.randn(3, 6, dtype=torch.float64, generator=g))  # no row shared by two samples
    log = _RowLog(model)
    try:
        attr = tribute.explain(model, x, method=method, target=1, baseline=base, budget=60, seed=3,
                               progress=False)
    finally:
        log.close()
    coalitions = log.rows[x.shape[0]:]  # after the reference pass (v(N): one row per sample)
    assert len(coalitions) == len(set(coalitions)), \
        f"{len(coalitions) - len(set(coalitions))} rows sent twice"
    assert len(log.rows) == attr.n_rows == x.shape[0] * attr.n_evals
    assert attr.n_evals <= 60


@pytest.mark.parametrize("method", SAMPLERS)
def test_sampling_methods_give_the_values_of_evaluating_every_copy(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same credits as a game that evaluates every copy (float64 model, automatic batch size:
    one chunk per run, so the rows' outputs do not depend on where chunks start)."""
    model = make_mlp(6, 3)
    x = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    kw: dict[str, Any] = {"method": method, "target": 1, "budget": 40, "seed": 2, "progress": False}
    once = tribute.explain(model, x, **kw)
    monkeypatch.setattr(FeatureGame, "distinct_coalitions", False)
    every = tribute.explain(model, x, **kw)
    assert np.asarray(once.values).tobytes() == np.asarray(every.values).tobytes()
    if every.stderr is not None:
        assert once.stderr is not None
        assert np.asarray(once.stderr).tobytes() == np.asarray(every.stderr).tobytes()
    assert once.n_evals < every.n_evals <= 40  # these draws repeat coalitions at 6 players
    assert once.n_rows == x.shape[0] * once.n_evals


def test_model_is_left_as_it_was() -> None:
    model = make_mlp(6, 3).train()
    params = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    adapter = as_model(model, "torch")
    tribute.explain(model, x, method="coar", target=1, budget=40, progress=False)
    assert model.training and adapter is not None
    assert all(torch.equal(p, q) for p, q in zip(params, model.parameters(), strict=True))
    assert all(p.requires_grad for p in model.parameters())
