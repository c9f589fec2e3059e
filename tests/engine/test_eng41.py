"""Issue #9, round 5 (eng41): the reference pass folded into the first coalition run.

A feature game ran its reference pass (``v(N)`` on the unperturbed inputs, one model row per
input) when it was built, to resolve the target, and :meth:`Method.check` ran after it: every
refusal (too small a budget, the memory cap, too many players) had spent those rows, and
feature ablation and occlusion paid a run of its own for rows they could have sent with their
first block. A game whose target has one column whatever the model returns (None,
``"predicted"``, an int) now counts ``v(N)`` when built and runs its rows when the target,
``v(N)`` or a value is first asked for: the same rows, in the same passes, after the checks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import BudgetError, InputError, ModelOutputError
from tribute.games.build import build_game
from tribute.games.features import FeatureGame
from tribute_testing import RowCounter, make_mlp


class Passes(torch.nn.Module):
    """Records the rows of every forward pass (and the rows themselves)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.passes: list[int] = []
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.passes.append(int(x.shape[0]))
        self.seen.append(x.detach().clone())
        out: torch.Tensor = self.inner(x)
        return out


def _x(n: int = 7, d: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _warm(model: torch.nn.Module, x: torch.Tensor) -> None:
    """One call, so that the engine's row-independence check (run once per model, on the
    reference pass of a fresh custom module) is behind us."""
    tribute.explain(model, x, "saliency", target=0, progress=False)
    for attr in ("passes", "seen"):
        if hasattr(model, attr):
            getattr(model, attr).clear()
    if hasattr(model, "rows"):
        model.rows = 0  # type: ignore[assignment]


# ------------------------------------------------------------------ refusals spend no row
@pytest.mark.parametrize("target", [None, 1, "predicted", np.int64(2)])
def test_a_too_small_budget_is_refused_before_any_model_row(target: Any) -> None:
    model = RowCounter(make_mlp())
    with pytest.raises(BudgetError, match="needs at least 8 evaluations"):
        tribute.explain(model, _x(5), "kernel_shap", target=target, budget=2, progress=False)
    assert model.rows == 0  # main: 5 (the reference pass ran when the game was built)


def test_the_memory_cap_and_max_players_refusals_spend_no_row() -> None:
    model = RowCounter(make_mlp(n_in=20))
    x = _x(4, 20)
    with pytest.raises(BudgetError, match="max_memory"):
        tribute.explain(model, x, "kernel_shap", target=0, budget=100_000, max_memory=10_000,
                        progress=False)
    assert model.rows == 0  # main: 4
    with pytest.raises(BudgetError, match="limited to 14 players"):
        tribute.explain(model, x, "shapley_interactions", target=0, progress=False)
    assert model.rows == 0  # main: 4


@pytest.mark.parametrize("target", [[0, 2], np.array([0, 1, 2, 0, 1]), lambda p: p[:, :1]])
def test_targets_whose_width_needs_the_outputs_still_run_the_pass_first(target: Any) -> None:
    # a list, a label array, a callable: resolved when the game is built, as before (a bad one
    # is refused before the budget)
    model = RowCounter(make_mlp())
    with pytest.raises(BudgetError, match="needs at least 8 evaluations"):
        tribute.explain(model, _x(5), "kernel_shap", target=target, budget=2, progress=False)
    assert model.rows == 5


def test_the_game_counts_v_n_when_built_and_runs_it_when_read() -> None:
    model = RowCounter(make_mlp())
    x = _x(5)
    game = build_game(model, x, target=1)
    assert game.reference_pending() and game.n_evals == 1 and game.n_targets == 1
    assert model.rows == 0 and game.engine.n_rows == 0
    full = game.full()
    assert model.rows == 5 == game.engine.n_rows and game.n_evals == 1
    assert not game.reference_pending()
    with torch.no_grad():
        expect = make_mlp()(x)[:, 1]
    torch.testing.assert_close(full[:, 0], expect, rtol=1e-12, atol=1e-12)
    assert game.target.n_targets == 1
    # a list target needs the outputs' width: the pass runs when the game is built, as before
    listed = build_game(RowCounter(make_mlp()), x, target=[0, 1])
    assert not listed.reference_pending() and listed.engine.n_rows == 5


# ------------------------------------------------------------- values: the same as before
@pytest.mark.parametrize("target", [None, 0, "predicted"])
@pytest.mark.parametrize("method,kw", [("feature_ablation", {}), ("occlusion", {"window": (2,)}),
                                       ("kernel_shap", {"budget": 30})])
def test_lazy_games_give_the_values_of_games_built_with_the_pass(
        monkeypatch: pytest.MonkeyPatch, target: Any, method: str, kw: dict[str, Any]) -> None:
    x = _x(9, seed=3)
    model = make_mlp(seed=4)
    base = torch.linspace(-0.5, 0.5, 6, dtype=torch.float64)
    lazy = tribute.explain(model, x, method, target=target, baseline=base, batch_size=4,
                           progress=False, **kw)
    monkeypatch.setattr(FeatureGame, "_defers", lambda self, *a: False)  # main's order
    eager = tribute.explain(model, x, method, target=target, baseline=base, batch_size=4,
                            progress=False, **kw)
    np.testing.assert_allclose(lazy.values, eager.values, rtol=1e-12, atol=0.0)
    assert lazy.full_values is not None and eager.full_values is not None
    np.testing.assert_allclose(lazy.full_values, eager.full_values, rtol=1e-12, atol=0.0)
    assert (lazy.n_evals, lazy.n_rows) == (eager.n_evals, eager.n_rows)
    np.testing.assert_array_equal(lazy.targets, eager.targets)


def test_leave_one_out_of_a_linear_model_and_its_full_values() -> None:
    # the closed form: leave-one-out of a linear model is w * (x - baseline)
    x = _x(9, seed=3)
    base = torch.linspace(-0.5, 0.5, 6, dtype=torch.float64)
    lin = torch.nn.Linear(6, 2, dtype=torch.float64)
    model = RowCounter(lin)
    attr = tribute.explain(model, x, "feature_ablation", target=1, baseline=base,
                           batch_size=4, progress=False)
    expect = (lin.weight[1] * (x - base)).detach().numpy()
    np.testing.assert_allclose(attr.values, expect, rtol=1e-12, atol=1e-12)
    assert attr.full_values is not None
    with torch.no_grad():
        np.testing.assert_allclose(attr.full_values, lin(x)[:, 1].numpy(), rtol=1e-12, atol=1e-12)
    assert model.rows == attr.n_rows == 9 * 7 and attr.n_evals == 7


def test_a_fresh_custom_model_keeps_its_row_check_on_the_reference_pass() -> None:
    class BatchMean(torch.nn.Module):  # a row's output depends on the other rows
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x - x.mean(0, keepdim=True)

    model = Passes(BatchMean())
    with pytest.raises(ModelOutputError, match="depend"):
        tribute.explain(model, _x(4), "feature_ablation", target=0, progress=False)
    assert model.passes == [4]  # the check ran on the reference rows' pass, as before


# -------------------------------------------------------- errors cost no more rows than before
def test_a_bad_target_found_by_the_fold_spends_only_the_reference_rows() -> None:
    model = RowCounter(make_mlp())
    _warm(model, _x(6))
    with pytest.raises(InputError, match="class index 7, out of range for a model with 3"):
        tribute.explain(model, _x(6), "feature_ablation", target=7, progress=False)
    assert model.rows == 6  # main: 6 (the coalitions' rows were not sent)


def test_a_raw_regressor_with_several_outputs_is_refused_after_the_reference_rows() -> None:
    model = RowCounter(make_mlp())
    _warm(model, _x(6))
    with pytest.raises(InputError, match="no predicted class"):
        tribute.explain(model, _x(6), "occlusion", target=None, model_output="raw", progress=False)
    assert model.rows == 6


class NaNColumn(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = make_mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        # a NaN in column 2 of sample 3's own output (the reference rows are x itself)
        bad = (x[:, :1] == 1.25)
        return torch.cat([out[:, :2], torch.where(bad, float("nan"), out[:, 2:])], 1)


def test_a_nan_in_the_reference_outputs_is_named_as_before() -> None:
    x = _x(6)
    x[3, 0] = 1.25
    model = NaNColumn()
    _warm(model, _x(6))
    with pytest.raises(ModelOutputError, match=r"NaN at sample 3 \(the unperturbed input\)"):
        tribute.explain(model, x, "feature_ablation", target=0, progress=False)


def test_a_model_failing_on_the_inputs_is_said_as_before() -> None:
    class Picky(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = make_mlp()
            self.fail = False

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.fail:
                raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")
            out: torch.Tensor = self.inner(x)
            return out

    model = Picky()
    _warm(model, _x(4))
    model.fail = True
    with pytest.raises(InputError, match=r"the model failed on the inputs \(shapes \(4, 6\)\)"):
        tribute.explain(model, _x(4), "feature_ablation", target=0, progress=False)
    assert model.training and not model.inner.training  # left as the user had them


def test_other_methods_and_derived_games_read_v_n_lazily() -> None:
    x = _x(5)
    model = RowCounter(make_mlp())
    cases: list[tuple[str, dict[str, Any]]] = [
        ("kernel_shap", {"budget": 40}), ("integrated_gradients", {}),
        ("permutation_shapley", {"budget": 30}), ("lime", {"budget": 30})]
    for method, kw in cases:
        model.rows = 0
        attr = tribute.explain(model, x, method, target="predicted", progress=False, **kw)
        assert model.rows == attr.n_rows  # every row the model saw is counted
        with torch.no_grad():
            out = make_mlp()(x)
        assert attr.full_values is not None
        np.testing.assert_allclose(attr.full_values, out.max(1).values.numpy(), rtol=1e-12, atol=1e-12)
    game = build_game(model, x, target=0)
    assert isinstance(game, FeatureGame)
    view = game.with_inputs([x.flip(0)])
    assert not game.reference_pending() and not view.reference_pending()
    with torch.no_grad():
        torch.testing.assert_close(view.full()[:, 0], make_mlp()(x.flip(0))[:, 0], rtol=1e-12, atol=1e-12)
