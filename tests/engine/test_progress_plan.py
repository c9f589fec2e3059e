"""The progress plan matches the rows the model sees, and listeners never read 100% early.

Every feature method's ``estimate_cost(game, budget).rows`` counts the whole call, ``v(N)``'s
reference pass included (one row per input; every other evaluation one row per input and
background row), so the bar and :func:`tribute.engine.observe_progress` end at the rows the
model really saw (they ended at 28 of 32 rows, 86%, and began at 4 of 1, 400%).
"""

from __future__ import annotations

import pytest
import torch

import tribute
from tribute.engine import Progress
from tribute.methods.base import get_method
from tribute_testing import record_plan


def _drops(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The planned rows after each :meth:`Progress.drop` (eng46: coalitions a sampler asked for
    twice run once, and the plan loses their rows once the game finds them)."""
    after: list[int] = []
    drop = Progress.drop

    def spy(self: Progress, rows: int) -> None:
        drop(self, rows)
        after.append(self.planned_rows)

    monkeypatch.setattr(Progress, "drop", spy)
    return after

METHODS = ["attnlrp", "banzhaf", "coar", "deconvolution", "deeplift", "exact_shapley", "expected_gradients",
           "feature_ablation", "gp_shapley", "guided_backprop", "input_x_gradient", "integrated_gradients",
           "integrated_hessians", "joint_shapley", "kernel_shap", "lime", "lrp", "occlusion",
           "permutation_shapley", "reagent", "rise", "saliency", "shapley", "shapley_interactions",
           "smoothgrad", "smoothgrad_sq", "sobol", "vargrad"]


class Counted(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        return self.net(x)


def test_the_list_covers_the_feature_methods_with_a_budget() -> None:
    feature = {m for m in tribute.methods() if "feature" in get_method(m).tags.games
               and not get_method(m).tags.images_only and not get_method(m).tags.model_specific}
    assert feature - set(METHODS) <= {"tree_shap", "certified"}, sorted(feature - set(METHODS))


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_plan_equals_the_rows_the_model_saw(method: str, background: bool,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = Counted(), torch.randn(4, 6, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    bg = torch.randn(3, 6, dtype=torch.float64, generator=g)
    baseline = tribute.Background(bg) if background or method == "expected_gradients" else 0.0
    after = _drops(monkeypatch)
    planned, seen, attr = record_plan(monkeypatch, lambda: tribute.explain(
        model, x, method=method, target=1, budget=64, baseline=baseline))
    assert model.rows == attr.n_rows
    assert seen and all(d < t for d, t in seen if t)  # 100% only once the call returns
    unplanned = [d for d, t in seen if t == 0]  # the reference pass, before the plan: total unknown
    assert unplanned == [d for d, _ in seen[:len(unplanned)]] == [4]
    assert seen[-1][0] == attr.n_rows
    # the plan: every row the model saw, no more (less the repeats a sampler drew, once found)
    assert len(planned) == 1 and (after or planned)[-1] == attr.n_rows


@pytest.mark.parametrize("budget", [9, 13, 31, 65, 100])
@pytest.mark.parametrize("method", ["kernel_shap", "banzhaf"])
def test_plan_of_odd_budgets_and_budgets_past_every_coalition(method: str, budget: int,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # kernel_shap's design leaves an odd remainder unspent (planned 36 for 32 rows); both
    # enumerate the 2^6 coalitions once for any budget past them (planned 400 for 256)
    model, x = Counted(), torch.randn(4, 6, dtype=torch.float64)
    after = _drops(monkeypatch)
    planned, seen, attr = record_plan(monkeypatch, lambda: tribute.explain(
        model, x, method=method, target=1, budget=budget))
    assert len(planned) == 1 and [(after or planned)[-1]] == [model.rows] == [attr.n_rows]
    assert seen[-1] == (model.rows, model.rows + 1)


@pytest.mark.parametrize("method", ["kernel_shap", "banzhaf"])
def test_component_plan_past_every_coalition(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tribute.games.components import components

    model = Counted()
    players = components(model, "net.1", unit="neuron")  # 8 neurons: 256 coalitions
    planned, _, _ = record_plan(monkeypatch, lambda: tribute.explain(
        model, torch.randn(4, 6, dtype=torch.float64), method=method, players=players, target=1,
        budget=1000, progress=False))
    assert planned == [model.rows] == [1024]  # planned 4,000


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("base", ["integrated_gradients", "input_x_gradient", "guided_backprop", "deeplift",
                                  "lrp", "expected_gradients"])
def test_noise_plan_over_another_base(base: str, background: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # every copy runs the base method's own cost (planned 140 rows for 1,044 with IG, for 24
    # with input_x_gradient); a noisy copy's v(N) is one row per sample with a background set
    # too (lrp over 50 background rows ran 1,024 rows for 44)
    model = Counted()
    g = torch.Generator().manual_seed(2)
    bg = tribute.Background(torch.randn(50, 6, dtype=torch.float64, generator=g))
    planned, _, _ = record_plan(monkeypatch, lambda: tribute.explain(
        model, torch.randn(4, 6, dtype=torch.float64, generator=g), method="smoothgrad", base=base, n_samples=5,
        target=1, progress=False, baseline=bg if background or base == "expected_gradients" else 0.0))
    assert planned == [model.rows]


@pytest.mark.parametrize("budget", [100, 1000])
def test_plan_of_kernel_shap_rounds_past_every_coalition(budget: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # target_precision's rounds evaluate distinct proper coalitions only (planned 4,000 for 256)
    model = Counted()
    planned, _, _ = record_plan(monkeypatch, lambda: tribute.explain(
        model, torch.randn(4, 6, dtype=torch.float64), method="kernel_shap", target=1, budget=budget,
        target_precision=1e-9, progress=False))
    assert planned == [model.rows] == [256]


def test_kernel_shap_on_one_player_warns_nothing() -> None:
    import warnings

    torch.manual_seed(0)
    net = torch.nn.Linear(1, 2).double()
    x = torch.randn(3, 1, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy's 0/0 in the size weights, 3 times
        attr = tribute.explain(net, x, method="kernel_shap", budget=10, target=1, progress=False)
    want = ((x - 0.0) * net.weight[1]).detach().numpy()
    assert abs(attr.flat()[:, 0, :] - want).max() < 1e-12
