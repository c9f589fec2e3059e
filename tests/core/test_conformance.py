"""Conformance suite run over the whole method registry (scikit-learn's check_estimator idea).

For every registered method and every setting it applies to (a torch MLP on tabular data, a
small CNN on images, a numpy callable), check: output shape, dtype, device and framework;
the model is left exactly as it was; same seed gives the same result; the batch result equals
the per-sample results concatenated; ``n_evals`` never exceeds the budget; stochastic methods
report standard errors of the right shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import UnsupportedModelError
from tribute.methods import registry
from tribute_testing import make_cnn, make_mlp

METHODS = sorted(registry())

#: Per-method settings for the conformance run (small budgets keep the suite fast).
OVERRIDES: dict[str, dict[str, Any]] = {
    "exact_shapley": {},
    "occlusion": {"cnn": {"groups": None, "window": (1, 4, 4), "stride": 4}},
    # region methods: default budgets are sized for real images; keep the dense runs small
    "xrai": {"cnn_dense": {"steps": 8}},
    "extremal_perturbation": {"cnn_dense": {"steps": 6, "areas": (0.1, 0.3)}},
    "submodular_regions": {"cnn_dense": {"budget": 80, "min_size": 0.1}},
    # one Hessian row per player and node: keep the image runs to a few nodes
    "integrated_hessians": {"cnn": {"budget": 10}, "cnn_dense": {"steps": 1}},
}


@dataclass
class Setting:
    name: str
    model: Callable[[], Any]
    inputs: Callable[[], Any]
    kwargs: dict[str, Any]
    framework: str
    dense: bool


def _tab() -> torch.Tensor:
    return torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))


def _img() -> torch.Tensor:
    return torch.rand(3, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))


_W = np.random.default_rng(5).normal(size=(6, 3))


def _np_model(a: np.ndarray) -> np.ndarray:
    z = np.tanh(a @ _W)
    return np.exp(z) / np.exp(z).sum(1, keepdims=True)


SETTINGS = [
    Setting("mlp", lambda: make_mlp(6, 3), _tab, {"target": 1, "budget": 64}, "torch", True),
    Setting("cnn", lambda: make_cnn(), _img, {"target": [0, 2], "groups": tribute.patches(4),
                                              "budget": 64}, "torch", False),
    Setting("cnn_dense", lambda: make_cnn(), _img, {"target": 1}, "torch", True),
    Setting("numpy", lambda: _np_model, lambda: _tab().numpy(), {"target": 2, "budget": 64},
            "numpy", True),
]


def _kwargs(method: str, setting: Setting) -> dict[str, Any]:
    cls = registry()[method]
    kw = dict(setting.kwargs)
    if not cls.tags.budgeted:
        kw.pop("budget", None)
    over = OVERRIDES.get(method, {})
    kw.update(over.get(setting.name, {}))
    if kw.get("groups", 1) is None:
        kw.pop("groups")
    return kw


def _applies(method: str, setting: Setting) -> bool:
    tags = registry()[method].tags
    if "feature" not in tags.games:
        return False
    if tags.needs_gradients and setting.framework != "torch":
        return False
    if tags.images_only:  # region methods: image inputs only (refusals tested in test_regions)
        return setting.name in ("cnn", "cnn_dense")
    if setting.name == "cnn_dense":
        # dense pixel players: only methods that scale to 64+ players without enumeration
        return tags.max_players is None and (tags.needs_gradients or tags.dense_output or tags.model_specific)
    return True


CASES = [(m, s) for m in METHODS for s in SETTINGS if _applies(m, s)]


def _snapshot(model: Any) -> Any:
    if not isinstance(model, torch.nn.Module):
        return None
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()],
    )


def _run(method: str, setting: Setting, model: Any, inputs: Any, **extra: Any) -> tribute.Attribution:
    kw = {**_kwargs(method, setting), **extra}
    try:
        return tribute.explain(model, inputs, method=method, seed=7, **kw)
    except UnsupportedModelError as exc:
        if registry()[method].tags.model_specific:
            pytest.skip(f"{method} refuses this model by design: {exc}")
        raise


def _values(attr: tribute.Attribution) -> np.ndarray:
    return attr.flat()


@pytest.mark.parametrize(("method", "setting"), CASES, ids=[f"{m}-{s.name}" for m, s in CASES])
def test_conformance(method: str, setting: Setting) -> None:
    model = setting.model()
    if isinstance(model, torch.nn.Module):
        model.train()  # the method must restore this flag
    inputs = setting.inputs()
    before = _snapshot(model)
    attr = _run(method, setting, model, inputs)
    tags = registry()[method].tags

    # framework, dtype, device, shape
    if setting.framework == "torch":
        assert isinstance(attr.values, torch.Tensor)
        assert attr.values.dtype == inputs.dtype and attr.values.device == inputs.device
    else:
        assert isinstance(attr.values, np.ndarray)
        assert attr.values.dtype == inputs.dtype
    kw = _kwargs(method, setting)
    multi = isinstance(kw.get("target"), list)
    n_t = len(kw["target"]) if multi else 1
    lead = (inputs.shape[0], n_t) if multi else (inputs.shape[0],)
    if "groups" in kw:
        assert tuple(attr.values.shape) == (*lead, 4)
    else:
        assert tuple(attr.values.shape) == (*lead, *inputs.shape[1:])
    assert np.isfinite(_values(attr)).all()
    if tags.stochastic:
        assert attr.stderr is not None and tuple(attr.stderr.shape) == tuple(attr.values.shape)
    if "budget" in kw:
        assert 0 < attr.n_evals <= kw["budget"]
    assert attr.n_rows > 0 and attr.seconds > 0

    # the model is left exactly as it was
    after = _snapshot(model)
    if before is not None:
        for k in before[0]:
            assert torch.equal(before[0][k], after[0][k])
        assert before[1:] == after[1:]

    # same seed, same result (up to floating-point reassociation in multithreaded BLAS)
    again = _run(method, setting, model, inputs)
    np.testing.assert_allclose(_values(attr), _values(again), rtol=1e-10, atol=1e-12)

    # batch result == per-sample results concatenated
    rows = []
    for i in range(inputs.shape[0]):
        one = inputs[i : i + 1]
        rows.append(_values(_run(method, setting, model, one)))
    np.testing.assert_allclose(_values(attr), np.concatenate(rows, axis=0), rtol=1e-6, atol=1e-8)


def test_registry_metadata_complete() -> None:
    infos = tribute.methods()
    assert {"exact_shapley", "feature_ablation", "saliency", "input_x_gradient"} <= set(infos)
    for name, info in infos.items():
        assert info.paper, f"{name} cites no paper"
        assert info.summary, f"{name} has no docstring summary"
        assert info.tags.family


# --------------------------------------------------------------------------- budgets
#: ``n_evals`` counts value-function evaluations (coalitions or gradient points) per input,
#: v(N) included: the reference pass every game makes on the unperturbed inputs IS v(N), so
#: it is always spent and always counted. ``n_rows`` counts model rows: one per sample for
#: the reference pass and ``background`` rows per sample for every other evaluation.
BUDGETED = [m for m in METHODS if registry()[m].tags.budgeted]
_N_FEAT = 6  # 2^6 = 64 coalitions: budgets at and above it reach the exact fallbacks


class _CountRows:
    """Counts the rows a model sees (a forward pre-hook, removed by :meth:`close`)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.rows = 0

        def pre(_mod: Any, args: tuple[Any, ...]) -> None:
            self.rows += int(args[0].shape[0])

        self._h = model.register_forward_pre_hook(pre)

    def close(self) -> None:
        self._h.remove()


def _budget_cases() -> list[tuple[str, str, int | str]]:
    out: list[tuple[str, str, int | str]] = []
    for m in BUDGETED:
        tags = registry()[m].tags
        if "feature" not in tags.games or tags.images_only:  # images: see below
            continue
        for bg in ("point", "background"):
            if bg == "background" and tags.needs_gradients:
                continue
            for b in ("min", "min+3", 40, 64, 100):
                out.append((m, bg, b))
    return out


BUDGET_CASES = _budget_cases()


@pytest.mark.parametrize(("method", "baseline", "budget"), BUDGET_CASES,
                         ids=[f"{m}-{bg}-{b}" for m, bg, b in BUDGET_CASES])
def test_budget_counts_every_model_row(method: str, baseline: str, budget: int | str) -> None:
    from tribute.api import build_game
    from tribute.models import as_model

    model = make_mlp(_N_FEAT, 3)
    x = torch.randn(3, _N_FEAT, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    n_bg = 4 if baseline == "background" else 1
    base: Any = (torch.randn(n_bg, _N_FEAT, dtype=torch.float64,
                             generator=torch.Generator().manual_seed(12))
                 if baseline == "background" else 0.0)
    cls = registry()[method]
    adapter = as_model(model, "torch")
    with adapter.session():
        need = cls().min_budget(build_game(adapter, x, target=1, baseline=base))
    b = need if budget == "min" else need + 3 if budget == "min+3" else int(budget)
    if b < need:
        pytest.skip(f"budget {b} below {method}'s minimum {need}")
    counter = _CountRows(model)
    try:
        attr = tribute.explain(model, x, method=method, target=1, baseline=base, budget=b, seed=3)
    finally:
        counter.close()
    samples = x.shape[0]
    assert counter.rows == attr.n_rows, "n_rows must equal the rows the model saw"
    assert attr.n_evals <= b, f"n_evals={attr.n_evals} exceeds budget={b}"
    # one reference row per sample (v(N)), background rows per sample for every other evaluation
    assert counter.rows == samples * (1 + (attr.n_evals - 1) * n_bg), (
        f"{counter.rows} rows seen, n_evals={attr.n_evals}")
    assert counter.rows <= b * samples * n_bg


#: Methods whose evaluations are fixed by the method (no ``budget`` knob) still take a
#: ``budget`` as a cap: a cap below what they spend is refused, never overrun.
FIXED_COST = [m for m in METHODS
              if not registry()[m].tags.budgeted and "feature" in registry()[m].tags.games
              and m != "tree_shap"]  # tree_shap reads the trees: no model rows to cap


@pytest.mark.parametrize("method", FIXED_COST)
def test_fixed_cost_methods_refuse_a_budget_below_their_cost(method: str) -> None:
    from tribute.errors import BudgetError

    tags = registry()[method].tags
    cnn = tags.images_only or method in ("grad_cam", "grad_cam_pp")
    model = make_cnn() if cnn else make_mlp(_N_FEAT, 3)
    x = (_img() if cnn else
         torch.randn(2, _N_FEAT, dtype=torch.float64, generator=torch.Generator().manual_seed(5)))
    kw: dict[str, Any] = {"groups": tribute.patches(4)} if tags.images_only else {}
    spent = tribute.explain(model, x, method=method, target=1, **kw).n_evals
    counter = _CountRows(model)
    try:
        attr = tribute.explain(model, x, method=method, target=1, budget=spent, **kw)
    finally:
        counter.close()
    assert attr.n_evals <= spent and counter.rows <= spent * x.shape[0]
    if spent > 1:
        counter = _CountRows(model)
        try:
            with pytest.raises(BudgetError, match=f"budget={spent - 1} is too small"):
                tribute.explain(model, x, method=method, target=1, budget=spent - 1, **kw)
        finally:
            counter.close()
        assert counter.rows == 0 or counter.rows <= (spent - 1) * x.shape[0]


IMAGE_BUDGET_CASES = [(m, b) for m in BUDGETED if registry()[m].tags.images_only
                      for b in ("min", "min+3", 40, 100)]


@pytest.mark.parametrize(("method", "budget"), IMAGE_BUDGET_CASES,
                         ids=[f"{m}-{b}" for m, b in IMAGE_BUDGET_CASES])
def test_image_methods_count_every_model_row(method: str, budget: int | str) -> None:
    """The budget check above for methods that only take images (a CNN on 8x8 images)."""
    from tribute.api import build_game
    from tribute.models import as_model

    model = make_cnn()
    x = _img()
    cls = registry()[method]
    adapter = as_model(model, "torch")
    with adapter.session():
        need = cls().min_budget(build_game(adapter, x, target=1, groups=tribute.patches(4)))
    b = need if budget == "min" else need + 3 if budget == "min+3" else int(budget)
    if b < need:
        pytest.skip(f"budget {b} below {method}'s minimum {need}")
    counter = _CountRows(model)
    try:
        attr = tribute.explain(model, x, method=method, target=1, groups=tribute.patches(4),
                               budget=b, seed=3)
    finally:
        counter.close()
    assert counter.rows == attr.n_rows and attr.n_evals <= b
    assert counter.rows == x.shape[0] * attr.n_evals


# --------------------------------------------------------------------------- component games
class _Net(torch.nn.Module):
    """Small MLP whose hidden tanh units are the players; can fail after ``fail_after`` calls."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.fc1 = torch.nn.Linear(6, 5).double()
            self.act = torch.nn.Tanh()
            self.fc2 = torch.nn.Linear(5, 3).double()
        self.calls = 0
        self.fail_after: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("planted failure")
        return self.fc2(self.act(self.fc1(x)))


COMPONENT_METHODS = [m for m in METHODS if "component" in registry()[m].tags.games]


class _ResNet(torch.nn.Module):
    """Two residual blocks in a ``ModuleList`` (what ``atp_star``'s GradDrop needs, which
    :class:`_Net` lacks); the players are the tanh units of both blocks."""

    players = ("blocks.0.1", "blocks.1.1")

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(1)
            self.inp = torch.nn.Linear(6, 4).double()
            self.blocks = torch.nn.ModuleList(
                [torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh()).double() for _ in range(2)])
            self.out = torch.nn.Linear(4, 3).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


def _explain_components(method: str, model: torch.nn.Module, x: torch.Tensor,
                        **extra: Any) -> tribute.Attribution:
    kw: dict[str, Any] = {"target": 1, **extra}
    if not registry()[method].tags.budgeted:
        kw.pop("budget", None)
    modules = list(getattr(model, "players", ["act"]))
    return tribute.explain(model, x, method=method, players=tribute.components(model, modules),
                           seed=7, **kw)


@pytest.mark.parametrize("method", COMPONENT_METHODS)
def test_conformance_component_game(method: str) -> None:
    model = _Net()
    model.train()
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    before = _snapshot(model)
    try:
        attr = _explain_components(method, model, x, budget=24)
    except UnsupportedModelError as exc:
        pytest.skip(f"{method} refuses this component game by design: {exc}")
    tags = registry()[method].tags
    assert tuple(attr.values.shape) == (3, 5) and attr.player_kind != "feature"
    assert np.isfinite(_values(attr)).all()
    if tags.stochastic:
        assert attr.stderr is not None and tuple(attr.stderr.shape) == (3, 5)
    if tags.budgeted:
        assert 0 < attr.n_evals <= 24
    after = _snapshot(model)
    for k in before[0]:
        assert torch.equal(before[0][k], after[0][k])
    assert before[1:] == after[1:]
    again = _explain_components(method, model, x, budget=24)
    np.testing.assert_allclose(_values(attr), _values(again), rtol=1e-10, atol=1e-12)
    rows = [_values(_explain_components(method, model, x[i : i + 1], budget=24)) for i in range(3)]
    np.testing.assert_allclose(_values(attr), np.concatenate(rows, axis=0), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("method", COMPONENT_METHODS)
def test_conformance_component_game_residual(method: str) -> None:
    """The checks above on a residual model with players in two blocks: every component method
    runs on one of the two models (``atp_star`` refuses :class:`_Net`, which has no residual
    layers), so none leaves the suite by a skip."""
    model = _ResNet()
    model.train()
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    before = _snapshot(model)
    counter = _CountRows(model)
    try:
        attr = _explain_components(method, model, x, budget=40)
    finally:
        counter.close()
    tags = registry()[method].tags
    assert tuple(attr.values.shape) == (3, 8) and attr.player_kind != "feature"
    assert np.isfinite(_values(attr)).all()
    assert counter.rows == attr.n_rows
    if tags.stochastic:
        assert attr.stderr is not None and tuple(attr.stderr.shape) == (3, 8)
    if tags.budgeted:
        assert 0 < attr.n_evals <= 40 and counter.rows <= 40 * x.shape[0]
    after = _snapshot(model)
    for k in before[0]:
        assert torch.equal(before[0][k], after[0][k])
    assert before[1:] == after[1:]
    again = _explain_components(method, model, x, budget=40)
    np.testing.assert_allclose(_values(attr), _values(again), rtol=1e-10, atol=1e-12)
    rows = [_values(_explain_components(method, model, x[i : i + 1], budget=40)) for i in range(3)]
    np.testing.assert_allclose(_values(attr), np.concatenate(rows, axis=0), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("method", COMPONENT_METHODS)
def test_component_game_budget_counts_every_model_row(method: str) -> None:
    if not registry()[method].tags.budgeted:
        pytest.skip("not budgeted")
    model = _Net()
    x = torch.randn(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    for budget in (16, 40, 2**5, 100):
        counter = _CountRows(model)
        try:
            attr = _explain_components(method, model, x, budget=budget)
        except UnsupportedModelError as exc:
            pytest.skip(f"{method} refuses this component game by design: {exc}")
        except tribute.errors.BudgetError:
            continue  # below this method's minimum for 5 players
        finally:
            counter.close()
        assert attr.n_evals <= budget and counter.rows == attr.n_rows
        assert counter.rows <= budget * x.shape[0]


@pytest.mark.parametrize("kind", ["feature", "component"])
@pytest.mark.parametrize("method", METHODS)
def test_model_restored_after_an_exception(method: str, kind: str) -> None:
    tags = registry()[method].tags
    if kind not in tags.games:
        pytest.skip(f"{method} does not take {kind} games")
    model = _Net()
    model.train()
    x = torch.randn(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    before = _snapshot(model)
    model.fail_after = 2  # the reference pass and one more forward succeed, then it fails
    extra: dict[str, Any] = {"target": 1}
    if tags.budgeted:
        extra["budget"] = 40
    if kind == "component":
        extra["players"] = tribute.components(model, "act")
    try:
        tribute.explain(model, x, method=method, seed=7, **extra)
    except (RuntimeError, tribute.errors.TributeError):
        pass
    after = _snapshot(model)
    for k in before[0]:
        assert torch.equal(before[0][k], after[0][k])
    assert before[1:] == after[1:], "training flags, requires_grad or hooks changed"
