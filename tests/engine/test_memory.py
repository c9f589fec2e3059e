"""The memory cap: parsing, cost estimates, refusals before any work, settings that fit."""

from __future__ import annotations

import re
import time
import warnings

import numpy as np
import pytest
import torch

import tribute
from tribute.engine import format_bytes, parse_memory
from tribute.engine.memory import available_memory, default_max_memory
from tribute.errors import BudgetError, InputError
from tribute.games import FeatureGame
from tribute.methods.base import SlowRunWarning, get_method, registry
from tribute.models import as_model


def _tiny_image_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(),
                               torch.nn.Linear(48, 3)).eval()


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))


def test_parse_memory():
    assert parse_memory(1024) == 1024
    assert parse_memory("8GiB") == 8 * 1024**3
    assert parse_memory("500MB") == 500 * 10**6
    assert parse_memory("2e9") == 2 * 10**9
    for bad in ("lots", -1, 0, True, "8 parsecs"):
        with pytest.raises(InputError, match="max_memory"):
            parse_memory(bad)


def test_default_cap_is_half_the_available_memory():
    assert 0 < default_max_memory() <= available_memory()


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(1.5 * 1024**3) == "1.5 GiB"


def _budgeted_feature_methods() -> list[str]:
    return [name for name, cls in registry().items()
            if cls.tags.budgeted and "feature" in cls.tags.games]


@pytest.mark.parametrize("method", _budgeted_feature_methods())
def test_every_budgeted_method_refuses_up_front_on_a_224_image(method, image):
    """150,528 players without groups under a cap below the estimate: refused within a
    second, the message quotes the estimate, the cap and a setting that fits."""
    model = _tiny_image_model()
    adapter = as_model(model, "torch")
    with adapter.session():
        game = FeatureGame(adapter, image, target=0)
    m = get_method(method)()
    est = m.estimate_cost(game, m.default_budget(game))
    cap = max(est.bytes // 20, 1024)
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    t0 = time.perf_counter()
    with pytest.raises(BudgetError) as err:
        tribute.explain(model, image, method=method, target=0, max_memory=cap, progress=False)
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0, f"{method} took {elapsed:.2f}s to refuse"
    msg = str(err.value)
    assert format_bytes(cap) in msg, msg
    assert "needs about" in msg and "fits" in msg, msg
    assert len(calls) == 1, "only the reference pass may run before the refusal"
    assert model._forward_hooks  # our hook is still there: nothing removed user hooks
    model._forward_hooks.clear()


@pytest.mark.parametrize("method", ["kernel_shap", "lime", "permutation_shapley", "shapley"])
def test_default_cap_refuses_what_used_to_crash(method, image):
    """These died in allocation errors (27 GiB ... 39 TB) or hung; now a refusal naming a
    patch grouping whose estimate really fits."""
    model = _tiny_image_model()
    cap = 8 * 1024**3
    t0 = time.perf_counter()
    with pytest.raises(BudgetError, match=r"groups=tribute\.patches\((\d+)\)") as err:
        tribute.explain(model, image, method=method, target=0, max_memory=cap, progress=False)
    assert time.perf_counter() - t0 < 1.0
    size = int(re.search(r"patches\((\d+)\)", str(err.value)).group(1))
    adapter = as_model(model, "torch")
    with adapter.session():
        grouped = FeatureGame(adapter, image, target=0, groups=tribute.patches(size))
    m = get_method(method)()
    assert m.estimate_cost(grouped, m.default_budget(grouped)).bytes <= cap


def test_estimates_track_real_allocations_for_kernel_shap():
    """The estimate is within a small factor of the peak of what the solve allocates."""
    import tracemalloc

    f = lambda z: z.sum(1, keepdims=True) ** 2  # noqa: E731 - a cheap numpy model
    x = np.random.default_rng(0).random((2, 120))
    adapter = as_model(f, "numpy")
    game = FeatureGame(adapter, x)
    m = get_method("kernel_shap")()
    est = m.estimate_cost(game, 600).bytes
    tracemalloc.start()
    m.attribute(game, budget=600)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # torch allocations are invisible to tracemalloc; numpy ones are not: bound from below only
    assert est >= 600 * 120 * 8  # at least the design
    assert peak < est * 4


def test_within_cap_runs_unchanged(image):
    x = torch.rand(2, 6, dtype=torch.float64)
    lin = torch.nn.Linear(6, 1).double()
    a = tribute.explain(lin, x, method="kernel_shap", progress=False)
    b = tribute.explain(lin, x, method="kernel_shap", progress=False, max_memory="1GiB")
    np.testing.assert_allclose(a.values, b.values)


def test_slow_runs_announce_their_plan():
    class Slow(torch.nn.Module):
        def forward(self, x):
            time.sleep(0.01)
            return x.sum(1, keepdim=True)

    x = torch.rand(1, 13, dtype=torch.float64)
    adapter = as_model(Slow(), "torch")
    game = FeatureGame(adapter, x, batch_size=1)  # ~100 rows/s measured on the reference pass
    m = get_method("kernel_shap")()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        m.check(game, None)
    msgs = [str(w.message) for w in rec if issubclass(w.category, SlowRunWarning)]
    assert len(msgs) == 1, msgs
    assert "kernel_shap: 1 input(s) x budget=2,074 evaluations" in msgs[0]
    assert "est." in msgs[0] and "budget= or groups=" in msgs[0]
    with warnings.catch_warnings(record=True) as rec:  # a small budget is quick: no warning
        warnings.simplefilter("always")
        m.check(game, 20)
    assert not [w for w in rec if issubclass(w.category, SlowRunWarning)]


def test_methods_show_their_default_budget_rule():
    infos = tribute.methods()
    ks = infos["kernel_shap"]
    assert ks.budget_rule == "min(2^n, 2n + 2048)"
    assert ks.default_budget(13) == 2 * 13 + 2048
    assert ks.default_budget(5) == 2**5
    assert ks.default_budget(196) == 2 * 196 + 2048
    assert infos["lime"].default_budget(10) == max(256, 8 * 10 + 64)
    assert infos["gp_shapley"].default_budget(4) == 16
    for name, info in infos.items():
        if info.tags.budgeted:
            assert info.budget_rule, f"{name} has no budget rule"
            assert "budget_rule" in info.as_dict()


def test_cli_methods_prints_budget_rules(capsys):
    from tribute.cli import main

    main(["methods"])
    out = capsys.readouterr().out
    assert "default budget" in out and "min(2^n, 2n + 2048)" in out
