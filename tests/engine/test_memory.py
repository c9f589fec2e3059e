"""The memory cap: parsing, cost estimates, refusals before any work, settings that fit."""

from __future__ import annotations

import re
import time
import warnings
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.engine import SlowRunWarning, clear_tuners, format_bytes, parse_memory
from tribute.engine.memory import available_memory, default_max_memory
from tribute.errors import BudgetError, InputError
from tribute.games import FeatureGame
from tribute.methods.base import get_method, registry
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


def test_default_cap_on_a_cuda_device_is_bounded_by_its_free_memory(monkeypatch):
    """A model on a GPU: composed rows live there, so the default cap is at most half the
    device's free memory (a host-sized cap let calls run out of device memory); the CPU and
    an explicit cap are unaffected. The driver's answer is faked here (CI has no GPU)."""
    from tribute.engine import memory

    asked: list[object] = []

    def fake_info(index: object) -> tuple[int, int]:
        asked.append(index)
        return 2**30, 16 * 2**30

    monkeypatch.setattr(torch.cuda, "mem_get_info", fake_info)
    monkeypatch.setattr(memory, "_device_last", {})
    monkeypatch.setattr(memory, "available_memory", lambda: 64 * 2**30)
    assert default_max_memory(torch.device("cuda:1")) == 2**29
    assert asked == [1]
    assert default_max_memory("cuda:1") == 2**29 and asked == [1]  # a fresh reading is reused
    assert default_max_memory(torch.device("cpu")) == default_max_memory() == 32 * 2**30
    assert memory.resolve_max_memory("1GiB", torch.device("cuda:1")) == 2**30
    # the engine of a model on that device gets the device's cap by default
    monkeypatch.setattr(memory, "_device_last", {})
    from tribute.engine import Engine

    class OnDevice:
        module = None
        device = torch.device("cuda:1")

    assert Engine(OnDevice()).max_memory == 2**29  # type: ignore[arg-type]


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
    t0 = time.process_time()  # CPU seconds: robust on a shared, loaded machine
    with pytest.raises(BudgetError) as err:
        tribute.explain(model, image, method=method, target=0, max_memory=cap, progress=False)
    elapsed = time.process_time() - t0
    assert elapsed < 1.0, f"{method} took {elapsed:.2f}s to refuse"
    msg = str(err.value)
    assert format_bytes(cap) in msg, msg
    assert "needs about" in msg and "fits" in msg, msg
    # eng41: target=0 has one column whatever the model returns, so the game runs its
    # reference pass only when it is read: the refusal spends no model row (was: 1 pass)
    assert len(calls) == 0, "no pass may run before the refusal"
    assert model._forward_hooks  # our hook is still there: nothing removed user hooks
    model._forward_hooks.clear()


@pytest.mark.parametrize("method", ["kernel_shap", "lime", "permutation_shapley", "shapley"])
def test_default_cap_refuses_what_used_to_crash(method, image):
    """These died in allocation errors (27 GiB ... 39 TB) or hung; now a refusal naming a
    patch grouping whose estimate really fits."""
    model = _tiny_image_model()
    cap = 8 * 1024**3
    t0 = time.process_time()
    with pytest.raises(BudgetError, match=r"groups=tribute\.patches\((\d+)\)") as err:
        tribute.explain(model, image, method=method, target=0, max_memory=cap, progress=False)
    assert time.process_time() - t0 < 1.0
    found = re.search(r"patches\((\d+)\)", str(err.value))
    assert found is not None
    size = int(found.group(1))
    adapter = as_model(model, "torch")
    with adapter.session():
        grouped = FeatureGame(adapter, image, target=0, groups=tribute.patches(size))
    m = get_method(method)()
    assert m.estimate_cost(grouped, m.default_budget(grouped)).bytes <= cap


def test_the_cap_is_a_sharp_boundary():
    """Just above the estimate runs; just below is refused, before any coalition."""
    x = np.random.default_rng(0).random((2, 40))
    f = lambda z: z.sum(1, keepdims=True) ** 2  # noqa: E731 - a cheap numpy model
    game = FeatureGame(as_model(f, "numpy"), x)
    m = get_method("kernel_shap")()
    est = m.estimate_cost(game, 500).bytes
    assert est >= 500 * 40 * 8  # at least the design
    a = tribute.explain(f, x, method="kernel_shap", budget=500, max_memory=est + 1, progress=False)
    assert a.n_evals == 500
    with pytest.raises(BudgetError, match="budget=") as err:
        tribute.explain(f, x, method="kernel_shap", budget=500, max_memory=est - 1, progress=False)
    found = re.search(r"budget=([\d,]+) fits", str(err.value))
    assert found is not None
    fit = int(found.group(1).replace(",", ""))
    assert m.min_budget(game) <= fit < 500
    assert m.estimate_cost(game, fit).bytes <= est - 1 < m.estimate_cost(game, fit + 1).bytes


def test_within_cap_runs_unchanged(image):
    x = torch.rand(2, 6, dtype=torch.float64)
    lin = torch.nn.Linear(6, 1).double()
    a = tribute.explain(lin, x, method="kernel_shap", progress=False)
    b = tribute.explain(lin, x, method="kernel_shap", progress=False, max_memory="1GiB")
    np.testing.assert_allclose(a.values, b.values)


class _Slow(torch.nn.Module):
    """About 200 rows per second, whatever the batch size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.005 * x.shape[0])
        return x.sum(1, keepdim=True)


def test_slow_runs_announce_their_plan_from_the_tuned_throughput():
    clear_tuners()
    x = torch.rand(1, 13, dtype=torch.float64)
    game = FeatureGame(as_model(_Slow(), "torch"), x)
    # 60 distinct coalitions (one asked for twice runs once): tuning chunks measure ~200 rows/s
    game.value(torch.rand(60, 13, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    assert game.engine.throughput(game.row_bytes) is not None
    m = get_method("kernel_shap")()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        m.check(game, None)
    msgs = [str(w.message) for w in rec if issubclass(w.category, SlowRunWarning)]
    assert len(msgs) == 1, msgs
    assert "kernel_shap: 1 input(s) x budget=2,074 evaluations ≈ 2,074 model rows" in msgs[0]
    assert "est." in msgs[0] and "budget= or groups=" in msgs[0]
    with warnings.catch_warnings(record=True) as rec:  # a small budget is quick: no warning
        warnings.simplefilter("always")
        m.check(game, 40)
    assert not [w for w in rec if issubclass(w.category, SlowRunWarning)]


def test_unmeasured_runs_are_projected_after_their_first_second(monkeypatch):
    """Without a measured throughput the plan is announced once the call's own first second
    of work projects it over ten seconds (and never for quick calls)."""
    from tribute.engine import progress

    bar = progress.Progress(1000, "demo", enabled=False)
    bar.plan = lambda s: f"plan {s:.0f}s"
    bar.planned_rows = 1000
    bar.update(50)
    bar.project()  # too early to tell
    assert bar.plan is not None
    monkeypatch.setattr(bar, "t0", bar.t0 - 1.5)  # 50 rows took 1.5 s: 30 s in all
    with pytest.warns(SlowRunWarning, match=r"plan 3\d+s"):
        bar.project()
    assert bar.plan is None  # once
    quick = progress.Progress(100, "demo", enabled=False)
    quick.plan = lambda s: "never"
    quick.update(90)
    monkeypatch.setattr(quick, "t0", quick.t0 - 1.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quick.project()


def test_work_before_the_first_rows_is_not_read_as_slow_rows(monkeypatch):
    """gp_shapley's design runs before any model row: 5 s of it, then 50 rows in 1.2 s of a
    1,000-row call, projects 5 + 1.2 + 950 x 1.2 / 50 = 29 s (not 950 x 6.2 / 50 = 124 s); and
    quick rows after a long design never warn."""
    from tribute.engine import progress

    bar = progress.Progress(1000, "demo", enabled=False)
    bar.plan = lambda s: f"plan {s:.0f}s"
    bar.planned_rows = 1000
    monkeypatch.setattr(bar, "t0", bar.t0 - 5.0)
    bar.rows_begin()
    bar.update(50)
    bar.project()  # the rows have not run a second yet: too early, whatever came before
    assert bar.plan is not None
    assert bar.rows_t0 is not None
    monkeypatch.setattr(bar, "rows_t0", bar.rows_t0 - 1.2)
    bar.rows_begin()  # a pass is already running: no restart
    with pytest.warns(SlowRunWarning, match=r"plan (2[89]|30)s"):
        bar.project()
    fast = progress.Progress(1000, "demo", enabled=False)
    fast.plan = lambda s: "never"
    fast.planned_rows = 1000
    monkeypatch.setattr(fast, "t0", fast.t0 - 8.0)  # a long design, then quick rows
    fast.rows_begin()
    assert fast.rows_t0 is not None
    monkeypatch.setattr(fast, "rows_t0", fast.rows_t0 - 1.0)
    fast.update(990)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast.project()  # 8 + 1 + 10 x 1 / 990 s < 10 s
    # passes separated by other work: only the time inside passes paces the rows
    gaps = progress.Progress(1000, "demo", enabled=False)
    gaps.plan = lambda s: "never"
    gaps.planned_rows = 1000
    gaps.rows_begin()
    gaps.update(2)  # a 2-row reference pass, then a 6 s design, then rows
    gaps.rows_end()
    monkeypatch.setattr(gaps, "t0", gaps.t0 - 6.5)
    gaps.rows_begin()
    assert gaps.rows_t0 is not None
    monkeypatch.setattr(gaps, "rows_t0", gaps.rows_t0 - 1.0)
    gaps.update(800)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gaps.project()  # ~6.5 + 198 x 1 / 802 s < 10 s


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
            for n in (1, 6, 64):  # every rule evaluates (sobol's read the game's n_evals: aud30x)
                got = info.default_budget(n)
                assert got is None or got >= 1, (name, n, got)
    # the rule counts the reference pass as a real game does: sobol's default on 6 players
    net = torch.nn.Linear(6, 1).double()
    spent = tribute.explain(net, torch.randn(2, 6, dtype=torch.float64), method="sobol").n_evals
    assert infos["sobol"].default_budget(6) == spent == 32 * (6 + 2) + 1


def test_cli_methods_prints_budget_rules(capsys):
    from tribute.cli import main

    main(["methods"])
    out = capsys.readouterr().out
    assert "default budget" in out and "min(2^n, 2n + 2048)" in out


def test_cli_max_memory_refuses_with_the_estimate(tmp_path, monkeypatch, capsys):
    from tribute.cli import main

    (tmp_path / "wide_mod.py").write_text(
        "import torch\n\n"
        "def make():\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 2))\n"
    )
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((1, 3, 32, 32)).astype(np.float32))
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["explain", "--model", "wide_mod:make", "--data", str(tmp_path / "x.npy"),
            "--method", "kernel_shap", "--out", str(tmp_path / "out"), "--no-progress"]
    assert main([*args, "--max-memory", "100MB"]) != 0
    err = capsys.readouterr().err
    assert "needs about 1.36 GiB" in err and "more than max_memory=95.4 MiB" in err
    assert "groups=tribute.patches(2)" in err
    assert not (tmp_path / "out").exists()


def test_a_data_game_caps_by_the_host_memory_and_runs_its_own_buffers(monkeypatch):
    """The data game computes on the CPU: its default cap is the host's, whatever device the
    model is on, and the retrain path runs the game's CPU float64 copies of buffers the bank
    does not store (a non-persistent float32 buffer made exact_shapley fail on dtypes, and
    would sit on the model's device)."""
    from tribute.engine import memory
    from tribute.games.data_fits import RidgeFit

    monkeypatch.setattr(memory, "available_memory", lambda: 64 * 2**30)

    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(3, 1).double()
            self.register_buffer("scale", torch.ones(3, dtype=torch.float32), persistent=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            scale: torch.Tensor = self.scale  # type: ignore[assignment]
            return self.lin(x @ torch.diag(scale))  # a matmul: dtypes must match

    g = torch.Generator().manual_seed(0)
    X = torch.randn(6, 3, dtype=torch.float64, generator=g)
    y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)

    def fit(X: torch.Tensor, y: torch.Tensor, *, seed: int, weights: Any = None) -> torch.nn.Module:
        ridge = RidgeFit(l2=1.0)(X, y, seed=seed, weights=weights)
        m = Scaled()
        with torch.no_grad():
            m.lin.weight.copy_(ridge.weight)  # type: ignore[arg-type]
            m.lin.bias.copy_(ridge.bias)  # type: ignore[arg-type]
        return m

    data = tribute.TrainingData(X, y, fit=fit, loss="mse", l2=1.0, reduction="sum")
    model = fit(X, y, seed=0)
    attr = tribute.explain(model, X[:2], method="exact_shapley", players=data, target=y[:2],
                           progress=False)
    assert np.isfinite(attr.flat()).all()
    game = tribute.build_game(model, X[:2], players=data, target=y[:2])
    assert game.engine.max_memory == 32 * 2**30


def test_kernel_shap_prices_its_blocked_solve_not_all_samples_at_once() -> None:
    # stop 35 (aud35e): the estimate counted the standard errors' per-pair moments for every
    # sample at once (2.46 GiB for 200 inputs x 200 players at budget 4096, where the blocked
    # solve grows memory by tens of MiB), so max_memory="60MiB" refused a call that fits
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(200, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    game = tribute.build_game(net, torch.randn(200, 200), target=0)
    cost = get_method("kernel_shap")().estimate_cost(game, 4096)
    assert 20 * 2**20 < cost.bytes < 100 * 2**20
    # 40 inputs at budget 1024: the old estimate said ~130 MB
    attr = tribute.explain(net, torch.randn(40, 200), method="kernel_shap", target=0, budget=1024,
                           max_memory="40MiB", progress=False)
    assert attr.n_evals == 1024


def test_rows_before_the_plan_do_not_pace_the_projection(monkeypatch):
    """explain's reference pass runs before the plan: a model's first rows pay its first-call
    costs (a tiny GPT-2's first 3 rows took 2.4 s and projected "est. 47 min" for a 23 s call).
    The pace counts the planned rows only: 3 rows in 2.4 s, then 997 rows in 1.1 s of a
    10,000-row call projects 2.4 + 1.1 + 9,000 x 1.1 / 997 = 13 s (not 9,000 x 3.5 / 1,000 = 32 s)."""
    from tribute.engine import progress

    bar = progress.Progress(0, "demo", enabled=False)
    bar.planned = False
    bar.rows_begin()
    bar.update(3)  # the reference pass
    bar.rows_end()
    monkeypatch.setattr(bar, "rows_seconds", 2.4)
    monkeypatch.setattr(bar, "t0", bar.t0 - 2.4)
    bar.replan(9_997, plan=lambda s: f"plan {s:.0f}s")
    bar.rows_begin()
    assert bar.rows_t0 is not None
    monkeypatch.setattr(bar, "rows_t0", bar.rows_t0 - 0.5)
    bar.update(500)
    bar.project()  # half a second of planned rows: too early, whatever came before
    assert bar.plan is not None
    monkeypatch.setattr(bar, "rows_t0", bar.rows_t0 - 0.6)
    monkeypatch.setattr(bar, "t0", bar.t0 - 1.1)
    bar.update(497)
    with pytest.warns(SlowRunWarning, match=r"plan 1[34]s"):
        bar.project()
