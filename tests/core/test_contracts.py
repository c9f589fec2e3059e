"""Contracts as data: one registry class, declared parameter constraints, typed entry points."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import torch

import tribute
from tribute.errors import BudgetError, InputError
from tribute.methods import METHODS, Method, Tags, get_method, registry
from tribute.metrics.base import METRICS
from tribute.params import (
    BOOL,
    NONE,
    InstanceOf,
    Interval,
    Options,
    SequenceOf,
    check_params,
    declare,
    describe,
)
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


def test_sequence_loose_options_and_bool_constraints():
    sizes = SequenceOf(Interval(int, 1))
    assert sizes.accepts((1, 3)) and sizes.accepts([2]) and not sizes.accepts(())
    assert not sizes.accepts((1, 0)) and not sizes.accepts("ab") and not sizes.accepts(3)
    assert sizes.describe() == "a non-empty list or tuple, each item an int >= 1"
    paths = SequenceOf(InstanceOf((str,), "a path"), min_len=2)
    assert paths.accepts(["a", "b"]) and not paths.accepts(["a"]) and not paths.accepts(["a", 1])
    assert paths.describe() == "a list or tuple of at least 2 items, each a path"
    nested = SequenceOf(SequenceOf(Interval(int, 1)), description="tuples of sizes")
    assert nested.accepts(((1, 2), (3,))) and not nested.accepts((1, (2,)))
    assert nested.describe() == "tuples of sizes"
    loose = Options(("epsilon_plus_flat", "cg"), loose=True)
    assert loose.accepts("EpsilonPlusFlat") and loose.accepts("EPSILON_PLUS_FLAT") and loose.accepts("CG")
    assert not loose.accepts("epsilon-plus-flat") and not loose.accepts(None)
    assert loose.describe() == "one of 'epsilon_plus_flat', 'cg' (case and underscores ignored)"
    assert not Options(("cg",)).accepts("CG")  # exact by default
    assert BOOL.accepts(True) and BOOL.accepts(False) and not BOOL.accepts(1)
    assert describe(BOOL) == "True or False"


def test_sequence_of_takes_any_sequence_or_1d_array_and_whole_numbers_for_ints():
    """Review finding 3: occlusion windows given as an array, a range or whole floats (as numpy
    and JSON hand them over) were refused once ``SequenceOf`` took only lists and tuples."""
    import numpy as np

    sizes = SequenceOf(Interval(int, 1))
    for ok in (np.array([1, 3, 3]), range(1, 4), torch.Size([1, 3]), (1.0, 3.0, 3.0),
               [np.int64(2), np.float32(3.0)], np.array([1.0, 2.0])):
        assert sizes.accepts(ok), ok
    for bad in ((1.5, 2), np.array([[1, 2]]), np.array([0, 1]), (float("nan"),), (float("inf"),),
                (True, 2), b"ab", "ab", np.array([]), 3.0):
        assert not sizes.accepts(bad), bad
    assert not SequenceOf(Interval(float)).accepts("ab")
    assert SequenceOf(SequenceOf(Interval(int, 1))).accepts([np.array([1, 2]), range(1, 2)])
    # whole floats count as ints inside a sequence only; a scalar int parameter stays strict
    assert not Interval(int, 1).accepts(3.0)


def test_loose_options_ignore_surrounding_spaces():
    """Review finding 5: composite=' epsilon_plus_flat ' was refused by the declared constraint
    (while get_composite strips)."""
    loose = Options(("epsilon_plus_flat",), loose=True)
    assert loose.accepts(" epsilon_plus_flat ") and loose.accepts("\tEpsilonPlusFlat\n")
    assert not loose.accepts("epsilon plus flat")


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


def test_every_hyperparameter_has_a_declared_constraint():
    """Each registered method declares what every hyperparameter accepts (issue #14: checked in
    one place, not by hand in ``attribute``); a new method or parameter without one fails here."""
    missing = {name: sorted(set(cls.defaults()) - set(cls.constraints))
               for name, cls in registry().items() if set(cls.defaults()) - set(cls.constraints)}
    assert not missing, f"declare constraints for these hyperparameters (tribute.params): {missing}"


def test_every_methods_defaults_satisfy_its_constraints():
    for name, cls in registry().items():
        check_params(f"method {name!r}", cls.defaults(), cls.constraints)


#: One refused value per hyperparameter declared for issue #14 (these were checked by hand in
#: ``attribute``, in ``__init__``, or not at all), some with a second kind of mistake.
BAD_VALUES: list[tuple[str, str, Any]] = [
    ("atp_star", "layers", ["encoder.layer.0"]),  # GradDrop needs >= 2 layers
    ("atp_star", "layers", "encoder.layer"),  # a string, not a list of paths
    ("atp_star", "qk_fix", 1),
    ("atp_star", "signed", "yes"),
    ("attnlrp", "epsilon", -1e-3),
    ("attnlrp", "variant", "lrp"),
    ("datamodels", "alpha", -0.1),
    ("datamodels", "penalty", "elasticnet"),
    ("datamodels", "subset_fraction", 1.0),
    ("grad_dot", "lr", 0.0),
    ("grad_dot", "lr", float("inf")),
    ("influence", "damping", -1.0),
    ("influence", "indefinite", "clip"),
    ("influence", "loo_iters", 0),
    ("influence", "loo_step", 1),
    ("influence", "max_iter", 0),
    ("influence", "max_iter", 2.5),
    ("influence", "solver", "newton"),
    ("influence", "subset_fraction", 0.0),
    ("influence", "tol", -1e-3),
    ("kernel_shap", "allocation", "bogus"),  # raised BudgetError
    ("kernel_shap", "target_precision", -1.0),  # was accepted silently
    ("kernel_shap", "target_precision", 0.0),
    ("lrp", "composite", "nope"),
    ("lrp", "composite", "epsilon-plus"),
    ("lrp", "epsilon", -1.0),
    ("lrp", "gamma", -0.5),
    ("lrp", "high", "max"),
    ("lrp", "low", True),
    ("occlusion", "stride", 0),
    ("occlusion", "stride", (2, 1.5)),
    ("occlusion", "window", (3, 0)),
    ("occlusion", "window", ((1, 2), 3)),  # a mix of a per-input tuple and an int
    ("occlusion", "window", ()),
    ("trak", "proj_dim", 0),
    ("trak", "proj_dim", True),
    ("trak", "projector", "sjlt"),
    ("trak", "regularization", -1.0),
    ("tree_shap", "feature_perturbation", "exact"),
    ("tree_shap", "interactions", 1),
    ("tree_shap", "kernel", "numba"),
]


#: The hyperparameters that had no declaration before issue #14 was paid (32 of 10 methods).
ISSUE_14: dict[str, set[str]] = {
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


def test_bad_values_cover_every_parameter_declared_for_issue_14():
    covered = {(m, p) for m, p, _ in BAD_VALUES}
    assert covered == {(m, p) for m, ps in ISSUE_14.items() for p in ps}
    assert all(p in get_method(m).constraints for m, p in covered)


@pytest.mark.parametrize(("method", "param", "bad"), BAD_VALUES,
                         ids=[f"{m}-{p}-{v!r}" for m, p, v in BAD_VALUES])
def test_declared_parameters_refuse_bad_values_by_name(method: str, param: str, bad: Any) -> None:
    cls = get_method(method)
    est = cls(**{param: bad})  # __init__ only stores (tree_shap used to refuse here)
    want = f"method {method!r}: {param}={bad!r} is not allowed; {param} must be "
    with pytest.raises(InputError, match=re.escape(want)) as info:
        est.validate_params()
    assert str(info.value).endswith(describe(cls.constraints[param]) + ".")
    cls(**{param: cls.defaults()[param]}).validate_params()


def _tiny_training_set() -> tuple[torch.nn.Module, torch.Tensor, tribute.TrainingData]:
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Linear(3, 2).double()
    X = torch.randn(12, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (12,), generator=g)
    return model, X[:2], tribute.TrainingData(X, y, loss="cross_entropy", l2=1e-2)


@pytest.mark.parametrize(("method", "params"), [
    ("grad_dot", {"lr": -1.0}),
    ("influence", {"solver": "newton"}),
    ("influence", {"tol": -1.0}),
    ("trak", {"projector": "sjlt"}),
    ("datamodels", {"penalty": "elasticnet"}),
])
def test_data_methods_refuse_bad_values_through_explain(method: str, params: dict[str, Any]) -> None:
    model, x, data = _tiny_training_set()
    (param, bad), = params.items()
    with pytest.raises(InputError, match=re.escape(f"method {method!r}: {param}={bad!r} is not allowed")):
        tribute.explain(model, x, method, players=data, target=0, progress=False, **params)


@pytest.mark.parametrize(("method", "params"), [
    ("kernel_shap", {"allocation": "bogus"}),
    ("kernel_shap", {"target_precision": -1.0}),
    ("occlusion", {"window": 0}),
    ("occlusion", {"stride": (1, 1.5)}),  # (1, 1.0) is (1, 1): whole floats count as ints
    ("lrp", {"epsilon": -1.0}),
    ("lrp", {"composite": "nope"}),
    ("attnlrp", {"variant": "lrp"}),
    ("tree_shap", {"kernel": "numba"}),
])
def test_feature_methods_refuse_bad_values_through_explain(method: str, params: dict[str, Any]) -> None:
    (param, bad), = params.items()
    x = torch.zeros(2, 6, dtype=torch.float64)
    try:
        tribute.explain(make_mlp(), x, method, target=0, progress=False, budget=64, **params)
    except BudgetError as e:  # kernel_shap allocation='bogus' raised BudgetError before
        pytest.fail(f"BudgetError instead of InputError: {e}")
    except InputError as e:
        assert f"method {method!r}: {param}={bad!r} is not allowed" in str(e), e
    else:
        pytest.fail(f"{method} accepted {param}={bad!r}")


def test_checks_that_need_the_input_still_name_the_method_and_the_fix() -> None:
    x = torch.zeros(2, 6, dtype=torch.float64)
    with pytest.raises(InputError, match=r"method 'occlusion': window=\(7,\) is larger than the input"):
        tribute.explain(make_mlp(), x, "occlusion", target=0, window=7, progress=False)
    with pytest.raises(InputError, match=r"method 'occlusion': stride=\(1, 1\) has 2 axes"):
        tribute.explain(make_mlp(), x, "occlusion", target=0, stride=(1, 1), progress=False)
    with pytest.raises(InputError, match=r"method 'lrp': low/high \(low=0.0, high=None\) apply to "
                                         r"composite='epsilon_gamma_box' only"):
        tribute.explain(make_mlp(), x, "lrp", target=0, composite="epsilon_plus", low=0.0, progress=False)
    model, xs, data = _tiny_training_set()
    # 8 of the 12 examples: the model's 8 parameters reach n_train too, so the kernel is singular
    # (aud51k: with 12 examples, proj_dim=12 is exact and runs)
    data = tribute.TrainingData(data.X[:8], data.y[:8], loss="cross_entropy", l2=1e-2)
    with pytest.raises(InputError, match=r"method 'trak': proj_dim=8 is >= the number of training "
                                         r"examples \(8\) with regularization=0.0"):
        tribute.explain(model, xs, "trak", players=data, target=0, proj_dim=8, progress=False)


def test_named_lrp_composites_accepted_by_the_declaration_all_resolve() -> None:
    from tribute.methods.lrp import EpsilonPlusFlat, get_composite
    from tribute.methods.lrp.composites import COMPOSITE_NAMES

    cons = {"composite": get_method("lrp").constraints["composite"]}
    spellings = [s for n in COMPOSITE_NAMES for s in (n, n.upper(), n.replace("_", ""))]
    spellings += ["EpsilonPlus", "EpsilonPlusFlat", "EpsilonGammaBox", "EpsilonAlpha2Beta1"]
    for s in spellings:
        check_params("lrp", {"composite": s}, cons)
        assert get_composite(s).name in COMPOSITE_NAMES, s
    check_params("lrp", {"composite": EpsilonPlusFlat()}, cons)


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
    # v(N)'s reference pass plus one gradient pass per input, not the default's n + 1 = 7 per input
    assert cost.rows == 8, cost
    attr = tribute.explain(model, x, method=method, target=0, progress=False)
    # what explain spent: the estimate, whole (one row per input for each pass)
    assert attr.n_rows == cost.rows and attr.n_evals == 2, attr


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
