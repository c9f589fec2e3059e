"""Contracts as data: one registry class, declared parameter constraints, typed entry points."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.methods import METHODS, Method, Tags, get_method, registry
from tribute.metrics.base import METRICS
from tribute.params import NONE, InstanceOf, Interval, Options, check_params, declare, describe
from tribute.registry import Registry
from tribute_testing import make_mlp

SRC = Path(__file__).resolve().parents[2] / "src" / "tribute"


# ------------------------------------------------------------------- registry
def test_registry_aliases_errors_and_lazy_loading():
    calls = []
    reg: Registry[int] = Registry("widget", hint="See widgets().", loader=lambda: calls.append(1))
    reg.add("alpha", 1)
    reg.alias("a", "alpha")
    assert reg.get("a") == 1 and reg.resolve("a") == "alpha" and "a" in reg and len(reg) == 1
    assert reg.aliases() == {"a": "alpha"} and reg.names(aliases=True) == ["a", "alpha"]
    assert calls == [1]  # the loader ran once
    reg.get("alpha")
    assert calls == [1]
    with pytest.raises(InputError, match=r"widget='alpah' is not a registered widget\. Did you mean 'alpha'.*widgets\(\)"):
        reg.get("alpah")
    with pytest.raises(TypeError, match="registered twice"):
        reg.add("alpha", 2)
    reg.add("alpha", 1)  # the same entry again is fine (module reloads)


def test_methods_metrics_and_datasets_share_the_registry_class():
    from tribute.datasets._base import DATASETS

    assert isinstance(METHODS, Registry) and isinstance(METRICS, Registry)
    assert isinstance(DATASETS, Registry)
    with pytest.raises(KeyError, match="unknown dataset"):
        tribute.datasets.make("no_such_dataset")


def test_public_listings_are_plain_functions_and_list_aliases():
    assert inspect.isfunction(tribute.methods) and inspect.isfunction(tribute.metrics)
    infos = tribute.methods()
    assert infos["shapley"].alias_of == "gp_shapley" and infos["gp_shapley"].alias_of is None
    assert infos["shapley"].defaults == infos["gp_shapley"].defaults
    assert set(registry()) == {n for n, i in infos.items() if i.alias_of is None}
    assert get_method("shapley") is get_method("gp_shapley")
    assert "deletion" in tribute.metrics()
    # the packages stay importable for internal code and plugins
    from tribute.methods import register  # noqa: F401
    from tribute.metrics import deletion  # noqa: F401


def test_entry_points_take_keywords_after_the_method():
    for fn, first in ((tribute.explain, "method"), (tribute.evaluate, "metric")):
        params = list(inspect.signature(fn).parameters.values())
        idx = [p.name for p in params].index(first)
        assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params[idx + 1 :]), fn
    with pytest.raises(TypeError):
        tribute.explain(make_mlp(), torch.zeros(1, 6, dtype=torch.float64), "saliency", 0)  # type: ignore[call-arg]


# ------------------------------------------------------------------ abstracts
def test_abstract_bases_refuse_incomplete_subclasses():
    from tribute.methods.cam import _CAMBase
    from tribute.models import ModelAdapter

    class NoAttribute(Method):
        name = "no_attribute"

    abstract: tuple[type[Any], ...] = (NoAttribute, ModelAdapter, _CAMBase)  # instantiated on purpose
    for cls in abstract:
        with pytest.raises(TypeError, match="abstract"):
            cls()


# ----------------------------------------------------------------- constraints
def test_constraint_kinds_accept_and_describe():
    assert Interval(int, 1).accepts(3) and not Interval(int, 1).accepts(0)
    assert not Interval(int, 1).accepts(True) and not Interval(int, 1).accepts(2.0)
    half = Interval(float, 0.0, 1.0, closed="right")
    assert half.accepts(1) and not half.accepts(0.0) and not half.accepts(float("nan"))
    assert half.describe() == "a number in (0, 1]"
    assert Interval(int, 2).describe() == "an int >= 2"
    assert Options(("a", "b")).accepts("a") and not Options(("a", "b")).accepts("c")
    both = (NONE, InstanceOf((str,), "a path"))
    assert describe(both) == "None or a path"
    check_params("thing", {"x": None, "unchecked": object()}, {"x": both})
    with pytest.raises(InputError, match=r"thing: x=3 is not allowed; x must be None or a path\."):
        check_params("thing", {"x": 3}, {"x": both})


@pytest.mark.parametrize(("method", "params", "needle"), [
    ("rise", {"p": 0.0}, r"method 'rise': p=0.0 .* must be a number in \(0, 1\]"),
    ("rise", {"s": 0}, r"method 'rise': s=0 .* must be an int >= 1"),
    ("sobol", {"sampler": "halton"}, r"method 'sobol': sampler='halton' .* one of 'sobol', 'random'"),
    ("grad_cam", {"interpolate_mode": "cubic"}, r"method 'grad_cam': interpolate_mode='cubic'"),
    ("deeplift", {"eps": -1.0}, r"method 'deeplift': eps=-1.0 .* >= 0"),
    ("smoothgrad", {"n_samples": 1}, r"method 'smoothgrad': n_samples=1 .* an int >= 2"),
    ("smoothgrad", {"noise": float("inf")}, r"noise=inf .* a number in \[0, inf\)"),
])
def test_declared_constraints_are_checked_before_attribute(method, params, needle):
    with pytest.raises(InputError, match=needle):
        tribute.explain(make_mlp(), torch.zeros(2, 6, dtype=torch.float64), method, target=0, **params)


def test_constraints_are_checked_even_when_attribute_is_called_directly(linear_model, tabular):
    game = tribute.build_game(linear_model, tabular)
    with pytest.raises(InputError, match="method 'rise': p=2"):
        get_method("rise")(p=2).attribute(game)


def test_constraints_name_real_parameters_and_show_in_the_listing():
    for name, cls in registry().items():
        unknown = set(cls.constraints) - set(cls.defaults())
        assert not unknown, f"{name}: constraints on unknown parameters {unknown}"
    assert tribute.methods()["rise"].constraints["p"] == "a number in (0, 1]"


#: Hyperparameters still checked by hand (or not at all) instead of declared in ``constraints``
#: (issue #14: "declared parameter constraints checked in one place"). A debt list that may only
#: shrink: a new method or parameter without a declaration fails below, and so does an entry
#: here once it is declared (delete it then). Found by the #9/#14 audit, e.g. kernel_shap
#: accepted target_precision=-1.0 silently and raised BudgetError for allocation='bogus'.
UNDECLARED: dict[str, set[str]] = {
    "atp_star": {"layers", "qk_fix", "signed"},
    "attnlrp": {"epsilon", "variant"},
    "datamodels": {"alpha", "penalty", "subset_fraction"},
    "grad_dot": {"lr"},
    "influence": {"damping", "indefinite", "loo_iters", "loo_step", "max_iter", "solver",
                  "subset_fraction", "tol"},
    "kernel_shap": {"allocation", "target_precision"},
    "lrp": {"composite", "epsilon", "gamma", "high", "low"},
    "occlusion": {"stride", "window"},
    "trak": {"proj_dim", "projector", "regularization"},
    "tree_shap": {"feature_perturbation", "interactions", "kernel"},
}


def test_every_hyperparameter_has_a_declared_constraint():
    """Each registered method declares what every hyperparameter accepts, except the debts in
    :data:`UNDECLARED` (which must not grow, and must be removed when paid)."""
    seen: dict[str, set[str]] = {}
    for name, cls in registry().items():
        missing = set(cls.defaults()) - set(cls.constraints)
        if missing:
            seen[name] = missing
    new = {m: sorted(v - UNDECLARED.get(m, set())) for m, v in seen.items()
           if v - UNDECLARED.get(m, set())}
    assert not new, f"declare constraints for these hyperparameters (tribute.params): {new}"
    paid = {m: sorted(v - seen.get(m, set())) for m, v in UNDECLARED.items()
            if v - seen.get(m, set())}
    assert not paid, f"declared now; remove them from UNDECLARED: {paid}"


def test_plugin_method_with_constraints():
    class Plugin(Method):
        name = "plugin_for_test"
        tags = Tags(family="other")
        constraints = declare({"width": Interval(int, 1)})

        def __init__(self, width: int = 3) -> None:
            self.width = width

        def attribute(self, game, *, budget=None, seed=0):
            return game.attribution(torch.zeros(game.n_samples, game.n_targets, game.n_players),
                                    self.name, self.get_params())

    with pytest.raises(InputError, match=r"plugin_for_test.*width=0"):
        Plugin(width=0).validate_params()
    Plugin().validate_params()


# ---------------------------------------------------------- counted way in only
def test_only_games_and_the_engine_touch_the_counters():
    """No ``n_evals +=`` / ``n_rows +=`` (or plain assignment) outside games/ and engine/."""
    bad = []
    for path in SRC.rglob("*.py"):
        layer = path.relative_to(SRC).parts[0]
        if layer in ("games", "engine"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.AugAssign):
                targets: list[ast.expr] = [node.target]
            elif isinstance(node, ast.Assign):
                targets = list(node.targets)
            else:
                continue
            for t in targets:
                if isinstance(t, ast.Attribute) and t.attr in ("n_evals", "n_rows", "n_passes"):
                    base = t.value
                    if isinstance(base, ast.Name) and base.id in ("self", "attr", "res", "result", "out"):
                        continue  # a result object's own field, not a game's or engine's counter
                    bad.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not bad, f"counters changed outside games/engine: {bad}"


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _game_private_names(root: Path) -> set[str]:
    """Private methods and ``self._x`` attributes defined in ``games/`` (the game's insides)."""
    names: set[str] = set()
    for path in (root / "games").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_private(node.name):
                names.add(node.name)
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id == "self" and _is_private(node.attr)):
                names.add(node.attr)
    return names


def reaches_into_games(root: Path) -> list[str]:
    """Places outside games/ and engine/ that use a game's private parts or copy a game.

    Flags ``obj._name`` for every private name a game defines (``_rows_extra``, ``_compose``,
    ``_evaluate``, ...) unless ``obj`` is ``self``/``cls``, and ``copy.copy``/``deepcopy`` of
    anything named like a game (methods derive games with ``with_inputs``, never by copying).
    """
    private = _game_private_names(root)
    bad: list[str] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in ("games", "engine"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in private:
                if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                    bad.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
            elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("copy.copy", "copy.deepcopy",
                                                                         "copy", "deepcopy"):
                if any("game" in ast.unparse(a).lower() for a in node.args):
                    bad.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    return bad


def value_block_loops(root: Path) -> list[str]:
    """``for ... in range(lo, hi, step)`` loops outside games/ and engine/ that call ``.value(``.

    Evaluating coalitions in memory-bounded blocks is the game's job (``Game.value_stream`` or
    ``Game.value(..., max_elements=)``); a method or metric that slices its own blocks copies it.
    """
    bad: list[str] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in ("games", "engine"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.For) and isinstance(node.iter, ast.Call)
                    and ast.unparse(node.iter.func) == "range" and len(node.iter.args) == 3):
                if any(isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute) and c.func.attr == "value"
                       for c in ast.walk(node)):
                    bad.append(f"{rel}:{node.lineno}")
    return bad


def test_nothing_reaches_into_a_games_private_parts() -> None:
    bad = reaches_into_games(SRC)
    assert not bad, f"private game parts used outside games/ (use probe / with_inputs / value): {bad}"


def test_block_loops_live_only_in_the_games_streaming_path() -> None:
    bad = value_block_loops(SRC)
    assert not bad, f"value block loops outside games/ (use Game.value_stream): {bad}"


def test_game_boundary_checkers_can_fail(tmp_path: Path) -> None:
    """A fake tree with each violation: the two checkers above name it."""
    (tmp_path / "games").mkdir()
    (tmp_path / "methods").mkdir()
    (tmp_path / "games" / "base.py").write_text(
        "class Game:\n    def _rows_extra(self):\n        self._cache = 1\n")
    (tmp_path / "methods" / "bad.py").write_text(
        "import copy\n"
        "def f(game, n):\n"
        "    game._rows_extra()\n"
        "    view = copy.copy(game)\n"
        "    for lo in range(0, n, 8):\n"
        "        game.value(lo)\n")
    found = reaches_into_games(tmp_path)
    assert any("game._rows_extra" in b for b in found) and any("copy.copy(game)" in b for b in found), found
    assert value_block_loops(tmp_path) == ["methods/bad.py:5"]


def test_methods_estimate_their_own_cost() -> None:
    """Up-front refusals and the slow-run warning read ``estimate_cost``: a one-pass gradient
    method on the default (``n + 1`` coalitions) announced hours for a single backward pass.
    Every registered method prices its own work (the data estimators since session 21)."""
    default = {name for name, cls in METHODS.entries().items()
               if next(c for c in cls.__mro__ if "estimate_cost" in c.__dict__) is Method}
    assert not default, f"no estimate_cost of their own: {sorted(default)}"


@pytest.mark.parametrize("method", ["lrp", "guided_backprop", "deconvolution", "saliency"])
def test_one_pass_methods_estimate_one_pass(method: str) -> None:
    model = make_mlp()
    x = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    game = tribute.build_game(model, x, target=0)
    cost = get_method(method)().estimate_cost(game, None)
    assert cost.rows == 4, cost  # one pass per input, not the default's n + 1 = 7 per input
    attr = tribute.explain(model, x, method=method, target=0, progress=False)
    # what explain spent: that pass plus v(N) for the reported values (one row per input)
    assert attr.n_rows == 2 * cost.rows and attr.n_evals == 2, attr


def test_package_data_names_only_files_that_exist() -> None:
    """Every ``[tool.setuptools.package-data]`` pattern matches a file (and every template the
    code loads ships): a pattern for files that do not exist once hid a missing stylesheet."""
    import tomllib

    root = SRC.parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["tribute"]
    assert patterns
    for pattern in patterns:
        assert list(SRC.glob(pattern)), f"package-data pattern {pattern!r} matches no file in src/tribute"
    shipped = {p for pattern in patterns for p in SRC.glob(pattern)}
    for template in SRC.rglob("*.j2"):
        assert template in shipped, f"{template.relative_to(SRC)} is not listed in package-data"
