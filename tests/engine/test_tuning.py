"""The self-tuning batch size: the tuner's rule, the engine's use of it, the cache."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.engine import BatchTuner, Engine, clear_tuners, max_chunk_rows, tuning
from tribute.games import FeatureGame
from tribute.models import as_model
from tribute_testing import feed_tuner, make_cnn


def test_tuner_finds_the_peak_and_stops_at_the_first_confirmed_slower_size():
    t = BatchTuner(cap=4096, confirm_seconds=10.0, skip=False, duel=0)
    assert t.candidates == [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    rates = {16: 100.0, 32: 200.0, 64: 400.0, 128: 300.0, 256: 200.0, 512: 900.0}
    sizes = feed_tuner(t, lambda s: rates.get(s, 1.0))
    # warm-up at 16, one chunk at 16, 32, 64; 128 is clearly slower than 64 (300 < 0.85 x 400):
    # timed once more to confirm, then the search ends (256 and beyond are never sent)
    assert sizes[:6] == [16, 16, 32, 64, 128, 128]
    assert t.best == 64 and set(sizes[6:]) == {64}
    assert t.rate() == 400.0 and 256 not in t.rates


def test_tuner_grows_to_the_cap_while_throughput_grows():
    t = BatchTuner(cap=1000, skip=False, duel=0)
    assert t.candidates[-1] == 1000 and t.candidates[-2] == 512
    sizes = feed_tuner(t, lambda s: float(s))  # per-call cost only: bigger is always better
    assert t.best == 1000
    # one chunk per size: 16 (warm-up), 16, 32, ..., 512, 1000
    assert sizes[:9] == [16, 16, 32, 64, 128, 256, 512, 1000, 1000]


def test_tuner_stops_on_a_plateau():
    # throughput flat (within the 15% tolerance) from 64 on: two sizes no faster end the search
    t = BatchTuner(cap=8192, skip=False)
    rates = {16: 100.0, 32: 200.0, 64: 400.0, 128: 390.0, 256: 380.0}
    sizes = feed_tuner(t, lambda s: rates.get(s, 380.0))
    assert sizes[:6] == [16, 16, 32, 64, 128, 256]
    assert t.best == 64 and 512 not in t.rates


def test_tuner_ignores_warm_up_and_partial_chunks():
    t = BatchTuner(cap=64, skip=False)
    t.record(16, 16, 100.0)  # warm-up: a terrible time must not count
    assert t.rates == {}
    t.record(16, 5, 1e-6)  # partial chunk (tail of a call): ignored
    assert t.rates == {} and t.propose() == 16
    t.record(16, 16, 0.001)
    assert t.rates == {16: 16000.0} and t.propose() == 32
    t.record(32, 32, 0.004)  # clearly slower: timed again
    assert t.propose() == 32 and not t.done
    t.record(32, 32, 0.001)  # the faster of two measurements counts
    assert t.rates[32] == 32000.0 and t.propose() == 64


def test_a_slow_chunk_that_took_long_is_not_repeated():
    # past the peak each chunk costs a lot: one that alone took >= confirm_seconds ends it
    t = BatchTuner(cap=256, confirm_seconds=0.25, skip=False, duel=0)
    sizes = feed_tuner(t, lambda s: 10.0 * s if s <= 64 else 100.0, rounds=8)
    assert sizes[:5] == [16, 16, 32, 64, 128]  # 128 rows at 100 rows/s = 1.28 s: trusted
    assert t.best == 64 and 256 not in t.rates and sizes[5:] == [64, 64, 64]


def test_one_stalled_chunk_does_not_end_the_search():
    t = BatchTuner(cap=1024, skip=False)
    slow_once = {256}

    def rate(s: int) -> float:
        if s in slow_once:  # the first chunk at 256 stalled (40 ms for 256 rows)
            slow_once.discard(s)
            return 6400.0
        return 1e6 * s

    feed_tuner(t, rate, rounds=40)
    assert t.best == 1024


def test_a_cached_tuner_is_shared_across_caps_when_its_result_holds():
    clear_tuners()
    key = torch.nn.Linear(2, 2)
    t = tuning.tuner_for(key, ("sig",), False, 4096)
    feed_tuner(t, lambda s: {16: 1.0, 32: 2.0, 64: 4.0}.get(s, 1.0))
    assert t.best == 64
    # another game on the same rows with a smaller or larger cap: the interior peak holds
    assert tuning.tuner_for(key, ("sig",), False, 1024) is t
    assert tuning.tuner_for(key, ("sig",), False, 8192) is t
    # a cap below the best size, or a search that ended at its cap: a fresh tuner
    assert tuning.tuner_for(key, ("sig",), False, 32) is not t
    t2 = tuning.tuner_for(key, ("other",), False, 64)
    feed_tuner(t2, lambda s: float(s))
    assert t2.best == 64 and tuning.tuner_for(key, ("other",), False, 128) is not t2
    clear_tuners()


def test_max_chunk_rows_respects_the_memory_cap():
    assert max_chunk_rows(row_bytes=4096, grad=False, max_memory=16 * 4096 * 100) == 100
    assert max_chunk_rows(row_bytes=4096, grad=True, max_memory=64 * 4096 * 100) == 100
    assert max_chunk_rows(row_bytes=1, grad=False, max_memory=10**12) == 8192
    assert max_chunk_rows(row_bytes=1, grad=False, max_memory=10**12, n_params=10**7) == 1024
    assert max_chunk_rows(row_bytes=10**9, grad=False, max_memory=10**9) == 1


class _Curve(torch.nn.Module):
    """A model whose time per pass has a sweet spot at 64 rows (sleeps, no compute)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(5, 2).double()
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        self.sizes.append(n)
        time.sleep(0.004 + (1e-4 * n if n <= 64 else 6.4e-3 + 6e-4 * (n - 64)))
        return self.lin(x)


def test_engine_tunes_to_the_models_best_size_and_caches_it():
    x = torch.randn(2, 5, dtype=torch.float64)
    # 800 distinct coalitions (fractional: 5 players have 32 whole ones, and a coalition asked
    # for twice runs once since eng46)
    masks = torch.rand(800, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # the model's cost is time.sleep: once in a fresh-clone CI run a 32-row pass was timed at
    # 2.3 ms for a 7.2 ms sleep (14,117 rows/s), the search skipped ahead to 2,048 and ran out
    # of rows before confirming (best None). A preemption between the clock's two readings
    # does that (now read as a consistent pair; not reproduced here, so the cause is not
    # proven). Such a call is run again (at most 3 times); a tuner that never settles, or
    # settles elsewhere, still fails below.
    for _ in range(3):
        clear_tuners()
        model = _Curve()
        game = FeatureGame(as_model(model, "torch"), x, target=0)
        v = game.value(masks)
        tuned = game.engine.tuner(game.row_bytes, False)
        if tuned.best is not None:
            break
    # nominal rates 16: 2,857, 32: 4,444, 64: 6,154, 128: 2,623 rows/s; each size is timed on
    # one pass, and one sleep stretched by ~5 ms (seen in a CI run: 64 rows at 4,125/s) can put
    # 32 ahead of 64 — the sizes past the sweet spot and below it must still lose
    assert tuned.best in (32, 64), tuned.rates
    assert all(r < tuned.rates[tuned.best] for k, r in tuned.rates.items() if k in (16, 128, 256, 512))
    # after the 2-row reference pass: warm-up, 16 and 32 (4 ms per pass, 0.1 ms per row: the
    # search skips ahead, to 256 by the sleeps' nominal times: the largest size with over a
    # tenth of its time per pass; 128 or 512 when the machine stretches a sleep), that size is
    # clearly slower, so the skipped sizes are timed after all from 64 on. On a loaded machine
    # the stretched sleeps make the fit noisy, and the tuner then doubles without skipping (to
    # 64 directly): both paths must end at the sweet spot. A sleep stretched on the 32-row pass
    # makes 32 look clearly slower than 16, and the tuner times it again before that ends the
    # search (a fresh-clone CI run beside other work: sizes[4] == 32); the best size and the
    # rates above are checked whatever the path.
    assert model.sizes[1:4] == [16, 16, 32]
    assert (model.sizes[4] in (128, 256, 512) and 64 in model.sizes[5:7]) or \
        model.sizes[4] in (32, 64)
    # every row was evaluated exactly once: tuning chunks are real work
    assert sum(model.sizes[1:]) == 2 * 800 and game.engine.n_rows == 2 + 2 * 800
    # a second game on the same model and row size reuses the tuned size at once
    model.sizes.clear()
    game2 = FeatureGame(as_model(model, "torch"), x, target=0)
    v2 = game2.value(masks)
    assert set(model.sizes[1:-1]) == {tuned.best}
    torch.testing.assert_close(v, v2, rtol=0, atol=0)


def test_explicit_batch_size_wins_over_tuning():
    clear_tuners()
    model = _Curve()
    x = torch.randn(2, 5, dtype=torch.float64)
    game = FeatureGame(as_model(model, "torch"), x, target=0, batch_size=7)
    game.value(torch.rand(10, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64))  # 10 distinct
    assert max(model.sizes) == 7


def test_gradient_runs_tune_separately():
    clear_tuners()
    cnn = make_cnn()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    engine_key = as_model(cnn, "torch")
    e = Engine(engine_key)
    assert e.tuner(512, False) is not e.tuner(512, True)
    assert e.tuner(512, False) is Engine(as_model(cnn, "torch")).tuner(512, False)
    del x


def test_feature_and_component_games_on_the_same_inputs_share_the_tuned_size():
    clear_tuners()
    cnn = make_cnn()
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    fg = FeatureGame(as_model(cnn, "torch"), x, target=0)
    players = tribute.components(cnn, "2", unit="channel")
    cg = players.make_game(as_model(cnn, "torch"), x, target=0)
    assert fg.engine.tune_key == cg.engine.tune_key
    assert fg.engine.tuner(fg.row_bytes, False) is cg.engine.tuner(cg.row_bytes, False)
    # the signature is per-row shape, dtype and device of every per-row model input
    assert fg.engine.tune_key == (((1, 8, 8), "torch.float64", "cpu"),)


@pytest.mark.parametrize("method", ["kernel_shap", "integrated_gradients", "feature_ablation"])
def test_results_do_not_depend_on_chunking(method):
    clear_tuners()
    cnn = make_cnn()
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    kw = dict(method=method, groups=tribute.patches(2), target=1, progress=False)
    if method == "kernel_shap":
        kw["budget"] = 300
    auto = tribute.explain(cnn, x, **kw)
    again = tribute.explain(cnn, x, **kw)  # now with the cached, tuned size
    ones = tribute.explain(cnn, x, batch_size=7, **kw)
    np.testing.assert_allclose(auto.values, ones.values, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(again.values, ones.values, rtol=1e-12, atol=1e-14)
    assert auto.n_rows == ones.n_rows == again.n_rows


def test_scheduler_free_clock_counts_sleep_and_work():
    from tribute.engine.tuning import SchedulerFreeClock

    clock = SchedulerFreeClock()
    try:
        t0 = clock.now()
        time.sleep(0.02)  # blocked time counts (models waiting for I/O or a device)
        slept = clock.now() - t0
        t0 = clock.now()
        x = 0
        for i in range(200_000):
            x += i
        worked = clock.now() - t0
    finally:
        clock.close()
        clock.close()  # idempotent
    assert slept >= 0.019
    assert 0 < worked < 5.0


def test_a_gradient_tuner_starts_from_the_forward_size():
    clear_tuners()
    key = torch.nn.Linear(2, 2)
    fwd = tuning.tuner_for(key, ("sig",), False, 8192)
    feed_tuner(fwd, lambda s: float(s) if s <= 1024 else 1.0)
    assert fwd.best == 1024
    grad = tuning.tuner_for(key, ("sig",), True, 8192)
    assert grad.candidates[0] == 128  # an eighth of the forward size
    assert tuning.tuner_for(key, ("other",), True, 8192).candidates[0] == 16
    clear_tuners()


def test_huge_finite_outputs_whose_sum_overflows_are_not_refused():
    # the engine checks a chunk's outputs with one sum; an overflowing sum of finite values
    # must fall back to the element-wise check instead of reporting Inf
    class Huge(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full((x.shape[0], 1), 3e38, dtype=torch.float32) + 0 * x[:, :1]

    a = tribute.explain(Huge(), torch.rand(2, 3), method="feature_ablation", progress=False)
    assert bool(torch.isfinite(torch.as_tensor(a.values)).all())

    class Bad(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.where(x[:, :1] > 2.0, torch.nan, x[:, :1])

    with pytest.raises(tribute.errors.ModelOutputError, match="NaN at sample 1"):
        tribute.explain(Bad(), torch.tensor([[0.1, 0.2], [5.0, 0.3]]), method="feature_ablation",
                        progress=False)


@pytest.mark.parametrize("target", [1, [0, 2], "per_sample"])
def test_shared_target_columns_select_what_the_target_selects(target):
    # feature games pick one column when every sample explains the same class(es); the values
    # are those of Target.select's per-row gather, and per-sample targets keep the gather
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3)).double()
    x = torch.randn(3, 4, dtype=torch.float64)
    tgt = torch.tensor([0, 2, 1]) if target == "per_sample" else target
    game = FeatureGame(as_model(model, "torch"), x, target=tgt, output="log_prob")
    assert (game._shared_columns() is None) == (target == "per_sample")
    masks = (torch.rand(5, 4, generator=torch.Generator().manual_seed(1)) < 0.5).double()
    v = game.value(masks)  # batch x K x targets
    rows = torch.cat([x[b : b + 1] * masks for b in range(3)])  # baseline 0
    sample = torch.arange(3).repeat_interleave(5)
    want = game.target.select(model(rows), sample).reshape(3, 5, -1)
    torch.testing.assert_close(v, want, rtol=0, atol=0)


def test_a_tail_of_at_least_half_a_chunk_is_timed():
    t = BatchTuner(cap=256, skip=False, duel=0)
    t.record(16, 16, 1.0)  # warm-up
    t.record(16, 16, 16 / 1000.0)
    t.record(32, 20, 20 / 1000.0)  # a 20-row tail sent at size 32: timed (flat: no faster)
    assert t.rates[32] == pytest.approx(1000.0)
    t.record(64, 40, 40 / 100.0)  # 40 rows at size 64 (0.4 s, clearly slower): trusted, done
    assert t.done and t.best in (16, 32)
    t2 = BatchTuner(cap=256, skip=False)
    t2.record(16, 16, 1.0)
    t2.record(16, 7, 1e-6)  # less than half a chunk: ignored
    assert t2.rates == {}


def test_fixed_batch_size_replaces_tuning_inside_its_block_only():
    from tribute.engine import fixed_batch_size
    from tribute.errors import InputError

    clear_tuners()
    sizes: list[int] = []

    def f(x: np.ndarray) -> np.ndarray:
        sizes.append(x.shape[0])
        return x.sum(1)

    x = np.random.default_rng(0).normal(size=(3, 6))
    kw: dict[str, Any] = dict(method="kernel_shap", budget=200, baseline=0.0, progress=False)
    with fixed_batch_size(50):
        a = tribute.explain(f, x, **kw)
        assert set(sizes[1:-1]) == {50}  # every full chunk; the reference pass has 3 rows
        sizes.clear()
        tribute.explain(f, x, batch_size=7, **kw)  # an explicit batch_size still wins
        assert max(sizes) == 7
    sizes.clear()
    b = tribute.explain(f, x, **kw)  # tuned again outside the block
    assert 16 in sizes and 50 not in sizes
    np.testing.assert_allclose(a.values, b.values, rtol=1e-12)
    with pytest.raises(InputError, match=r"rows=0 must be a positive int"):
        with fixed_batch_size(0):
            pass


def test_bench_runs_use_a_fixed_batch_size(monkeypatch):
    from tribute import bench
    from tribute.bench import runner
    from tribute.engine import core

    suite = bench.build_suite("tiny", seed=0)
    seen_run = []
    real_run = core.Engine.run

    def run_spy(self, *a, **k):
        seen_run.append(self.fixed_rows())
        return real_run(self, *a, **k)

    monkeypatch.setattr(core.Engine, "run", run_spy)
    runner.run_cases(suite.cases[:1], methods=["saliency", "feature_ablation"], metrics={},
                     references=False)
    assert seen_run and set(seen_run) == {runner.BENCH_BATCH_SIZE}
    assert core._FIXED_ROWS.get() is None


def test_the_duel_finds_a_peak_the_skip_jumped_over():
    # a 13-feature MLP: 60 us per pass, 0.14 us per row up to 1,024 rows, slower per row past
    # it (activations leave the cache). The skip lands on 2,048 (the fit's target is ~3,900
    # rows); 1,024 is never timed by the growth search. The duel (2,048 vs 4,096) moves down
    # to 2,048 vs 1,024 and then 1,024 vs 512: 1,024 wins.
    per_row = {2048: 0.2e-6, 4096: 0.23e-6, 8192: 0.4e-6}
    t = BatchTuner(cap=8192)
    sizes = []
    for _ in range(40):
        s = t.propose()
        sizes.append(s)
        t.record(s, s, 60e-6 + s * per_row.get(s, 0.14e-6))
    assert sizes[3] == 2048 and t.best == 1024, t.rates
    assert 512 in t.rates and sizes[-1] == 1024


def test_the_duel_prefers_the_smaller_size_within_three_percent():
    t = BatchTuner(cap=256, skip=False)
    rates = {16: 100.0, 32: 200.0, 64: 400.0, 128: 410.0, 256: 300.0}
    feed_tuner(t, lambda s: rates[s], rounds=40)
    assert t.best == 64  # 128 is 2.5% faster: within noise, the smaller size wins
    t2 = BatchTuner(cap=256, skip=False)
    rates2 = {**rates, 128: 440.0}
    feed_tuner(t2, lambda s: rates2[s], rounds=40)
    assert t2.best == 128


def test_a_duel_the_calls_cannot_finish_is_decided_on_what_it_measured():
    t = BatchTuner(cap=8192, skip=False)
    feed_tuner(t, lambda s: float(s), rounds=12)  # grows to the cap; duel 4,096 vs 8,192
    assert not t.done and t.propose() in (4096, 8192)
    t.settle(3000)  # these calls can time 4,096 (half of it) but never half of 8,192
    assert t.done and t.best == 8192
    t.resume(3000)
    assert t.done
    t.resume(5000)  # a bigger call finishes the duel
    assert not t.done


def test_a_size_past_the_run_timed_once_on_the_whole_run_settles_the_search():
    # runs of 2,314 rows (feature_ablation on 178 inputs) send themselves as one pass at
    # every size from 2,314 up: once 4,096 was timed on such a run (clearly slower, so it
    # wants three more timings, one per call), the search settles instead of tuning on
    def run(t, n, per_row):
        start = 0
        while start < n:
            s = t.propose()
            rows = min(s, n - start)
            t.record(s, rows, 60e-6 + rows * per_row(s))
            start += rows
        if not t.done:
            t.settle(n)

    t = BatchTuner(cap=8192, skip=False, warm=True)
    per_row = lambda s: 0.14e-6 if s <= 2048 else 0.3e-6  # noqa: E731
    calls = 0
    while not t.done and calls < 20:
        run(t, 2314, per_row)
        calls += 1
    assert t.done and t.best == 2048 and 4096 in t.rates
    assert calls <= 4 and len(t._samples[4096]) == 1, (calls, t._samples)
    t.resume(2314)  # the same calls keep the size
    assert t.done
    t.resume(4096)  # a run that can send a whole chunk of 4,096 times it again
    assert not t.done and t.propose() == 4096


def test_a_fresh_tuner_on_a_model_that_already_ran_times_its_first_chunk():
    # the warm-up chunk guards against lazy initialisation on a model's first pass in the
    # process; once the model has run, a fresh tuner (clear_tuners, a new key) times it
    clear_tuners()
    model = _Curve()
    x = torch.randn(2, 5, dtype=torch.float64)
    masks = (torch.rand(200, 5, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    game = FeatureGame(as_model(model, "torch"), x, target=0)
    game.value(masks)
    assert not tuning.tuner_for(torch.nn.Linear(1, 1), ("sig",), False, 64)._warm  # never ran
    clear_tuners()
    game2 = FeatureGame(as_model(model, "torch"), x, target=0)
    game2.full()  # the reference pass (since eng41 it runs when v(N) is first read)
    t = game2.engine.tuner(game2.row_bytes, False)
    assert t._warm and not t.done
    model.sizes.clear()
    game2.value(masks)
    # (game2's 2-row reference pass ran before, too short to time): the first
    # 16-row chunk counts, and the search goes on at 32 at once
    assert model.sizes[:2] == [16, 32] and 16 in t.rates
    # gradients are warmed separately (the first backward pass initialises autograd)
    assert not game2.engine.tuner(game2.row_bytes, True)._warm
    clear_tuners()


def test_rate_while_searching_extrapolates_the_cost_per_row_not_the_small_passes():
    """A model with a large cost per pass (a numpy gradient-boosting model: ~1.5 ms per call,
    0.8 us per row) measured only at 16 and 32 rows must not be expected to run at its 16-row
    pace (it announced "est. 11 s" for a 0.14 s call)."""
    t = BatchTuner(cap=8192, skip=False, duel=0, warm=True)

    def seconds(s: int) -> float:
        return 1.5e-3 + 0.8e-6 * s

    for s in (16, 32):
        t.record(s, s, seconds(s))
    assert t.best is None and set(t.rates) == {16, 32}
    expected = 8192 / seconds(8192)  # ~1.0 M rows/s, not the ~10,000 rows/s of 16-row passes
    rate = t.rate()
    assert rate is not None and rate == pytest.approx(expected, rel=1e-9)
    assert rate > 50 * t.rates[16]


def test_rate_is_unknown_when_small_passes_show_no_cost_per_row():
    t = BatchTuner(cap=8192, skip=False, duel=0, warm=True)
    t.record(16, 16, 1.8e-3)
    assert t.rate() is None  # one quick size: mostly fixed cost, says nothing
    t.record(32, 32, 1.4e-3)  # no slower with twice the rows
    assert t.rate() is None


def test_rate_of_one_long_pass_or_a_finished_search_is_the_measured_one():
    t = BatchTuner(cap=8192, skip=False, duel=0, warm=True)
    t.record(16, 16, 0.08)  # 200 rows/s: a pass this long is rows, not overhead
    assert t.rate() == pytest.approx(200.0)
    done = BatchTuner(cap=64, skip=False, duel=0, warm=True)
    for s in (16, 32, 64, 64):
        done.record(s, s, 1e-3 + 1e-5 * s)
    assert done.best == 64
    assert done.rate() == pytest.approx(max(done.rates.values()))


def test_the_duel_decides_on_the_median_pass_not_the_luckiest_one():
    # 2,048 rows run at 5 M rows/s pass after pass; 4,096 at 4.4 M (within the growth
    # search's tolerance, so it duels), but one of its passes was lucky (8 M: a neighbour left
    # the cache alone). The best pass would pick 4,096; the median of its passes says 2,048
    # (issue #9: mlp13 picked 4,096 in 5 of 8 cold calls).
    t = BatchTuner(cap=4096, skip=False)
    lucky = {"left": 1}

    def rate(s: int) -> float:
        if s == 4096 and t._duel is not None and lucky["left"]:
            lucky["left"] -= 1
            return 8e6
        return {2048: 5e6, 4096: 4.4e6}.get(s, s * 2e3)

    feed_tuner(t, rate, rounds=60)
    assert t.done and t.best == 2048, (t.rates, t._samples)
    assert t.rates[4096] == 8e6  # the lucky pass was timed (and still bounds the estimates)


def test_cheap_duels_run_twice_the_rounds():
    # passes under 5 ms are the noisiest and cost little: 4 rounds instead of 2
    t = BatchTuner(cap=256, skip=False)
    rates = {16: 100e3, 32: 200e3, 64: 400e3, 128: 410e3, 256: 300e3}
    sizes = feed_tuner(t, lambda s: rates[s], rounds=29)
    # warm-up, growth (256 timed 4 times: cheap and clearly slower), the duel of 128 with its
    # smaller neighbour (4 rounds; 256, confirmed slower, is timed once more in the first round,
    # eng48, then sits it out); 64 wins within 3% of 128, which is faster: no move down to 32
    assert sizes[:18] == [16, 16, 32, 64, 128] + [256] * 4 + [64, 128, 256] + [64, 128] * 3
    assert sizes.count(256) == 5
    assert t.done and t.best == 64 and len(t._samples[32]) == 1  # 32: its growth pass only


def test_a_tie_in_the_duel_does_not_move_down():
    # 1,024 and 2,048 within 2% (2,048 faster): the smaller wins the tie, but a tie is no
    # evidence of a faster size below; moving on would walk down by ties (noise) to 256
    t = BatchTuner(cap=4096, skip=False)
    rates = {16: 1e5, 32: 2e5, 64: 4e5, 128: 8e5, 256: 1.6e6, 512: 4.8e6, 1024: 4.9e6,
             2048: 5e6, 4096: 3e6}  # 512 within 3% of 1,024 too: ties all the way down
    feed_tuner(t, lambda s: rates[s], rounds=80)
    assert t.done and t.best == 1024
    # a strictly faster smallest size does move down (the peak lies below)
    t2 = BatchTuner(cap=4096, skip=False)
    rates2 = {**rates, 1024: 5.2e6, 512: 5.3e6, 256: 3e6}
    feed_tuner(t2, lambda s: rates2[s], rounds=80)
    assert t2.done and t2.best == 512


def test_scheduler_free_clock_reads_a_consistent_pair_across_a_preemption(monkeypatch):
    # A preemption between the wall-clock reading and the run-queue reading counted 5 ms of
    # waiting that the wall clock had not seen yet: a 7 ms pass was timed at 2 ms.
    from tribute.engine.tuning import SchedulerFreeClock

    clock = SchedulerFreeClock()
    if clock._fd is None:
        pytest.skip("no /proc/thread-self/schedstat here")
    walls = iter([0.0, 0.007, 0.012])  # start; end (then preempted for 5 ms); end, again
    delays = iter([0, 0, 0, 0, 5_000_000, 5_000_000, 5_000_000])
    monkeypatch.setattr(time, "perf_counter", lambda: next(walls))
    monkeypatch.setattr(clock, "_run_delay", lambda: next(delays))
    try:
        t0 = clock.now()
        spent = clock.now() - t0
    finally:
        clock.close()
    assert spent == pytest.approx(0.007, abs=1e-12)


def test_chunks_the_tuner_would_ignore_run_without_a_clock(monkeypatch):
    # A chunk of less than half its proposed size informs the tuner of nothing (record ignores
    # it), so the engine does not time it: no clock for a reference pass on a few inputs or a
    # run's short tail (a fixed cost of every still-tuning call on small inputs, issue #9).
    from tribute.engine import core

    opened: list[int] = []

    class Counting(tuning.SchedulerFreeClock):
        def __init__(self) -> None:
            opened.append(1)
            super().__init__()

    monkeypatch.setattr(core, "SchedulerFreeClock", Counting)
    clear_tuners()
    model = torch.nn.Linear(5, 2)
    x = torch.randn(7, 5)
    game = FeatureGame(as_model(model, "torch"), x, target=0)  # 7 rows; the tuner proposes 16
    t = game.engine.tuner(game.row_bytes, False)
    assert t.propose() == 16 and not t.done
    assert opened == []  # untimed
    before = (dict(t.rates), t._warm, t._i, t.best)
    game.value(torch.ones(1, 5))  # 7 rows again: untimed, tuner state unchanged
    assert opened == [] and (dict(t.rates), t._warm, t._i, t.best) == before
    game.value(torch.ones(2, 5))  # 14 rows, at least half of 16: timed
    assert opened == [1]
    clear_tuners()


def test_the_clock_file_is_opened_once_per_thread_and_closed_with_it():
    import os
    import threading

    from tribute.engine.tuning import SchedulerFreeClock

    a, b = SchedulerFreeClock(), SchedulerFreeClock()
    if a._fd is None:
        pytest.skip("no /proc/thread-self/schedstat here")
    assert a._fd == b._fd  # one descriptor per thread, shared by its clocks
    a.close()
    assert b.now() > 0  # closing one clock leaves the thread's file to the others
    fd = b._fd
    b.close()
    assert b._fd is None and SchedulerFreeClock()._fd == fd
    seen: list[int | None] = []
    target: list[str] = []

    def work() -> None:
        c = SchedulerFreeClock()
        seen.append(c._fd)
        target.append(os.readlink(f"/proc/self/fd/{c._fd}"))  # .../task/<this thread>/schedstat
        c.now()
        c.close()

    th = threading.Thread(target=work)
    th.start()
    th.join()
    mine = SchedulerFreeClock()._fd
    assert seen[0] is not None and seen[0] != mine  # the other thread read its own file
    # and its descriptor was closed when the thread ended (the number may since have been
    # reused by another file, never by that thread's schedstat)
    try:
        now = os.readlink(f"/proc/self/fd/{seen[0]}")
    except OSError:
        now = None
    assert now != target[0], now


@pytest.mark.parametrize("next_size", [None, 8])
def test_a_short_tail_rides_in_the_timed_chunks_block_when_it_would_run_untimed(next_size):
    # Still tuning, a blocks run sends one timed chunk per block; a tail of less than half a
    # chunk after it went to a block of its own (composed, selected and stored again: a fixed
    # cost of every still-tuning call on small inputs, issue #9). It now shares the timed
    # chunk's block when the loop would send it as one untimed chunk anyway; otherwise (here:
    # a next size of 8 would time the 4-row tail) the block stops after the chunk, as before.
    x = torch.randn(36, 3)
    model = torch.nn.Linear(3, 2)
    engine = Engine(as_model(model, "torch"))
    passes: list[int] = []
    orig = engine._forward

    def forward(inputs, extra, kwargs, n):
        passes.append(n)
        return orig(inputs, extra, kwargs, n)

    class Tuner(BatchTuner):
        recorded = 0

        def record(self, size: int, rows: int, seconds: float) -> None:
            self.recorded += 1
            super().record(size, rows, seconds)

        def propose(self, cap: int | None = None) -> int:
            if self.recorded < 3:  # warm-up, then two timed 16-row chunks
                return 16
            return super().propose(cap) if next_size is None else next_size

    t = Tuner(cap=64, skip=False, duel=0)
    t.record(16, 16, 1.0)  # warm-up: the next chunk is timed
    engine.tuner = lambda *a, **k: t  # type: ignore[method-assign]
    engine._forward = forward  # type: ignore[method-assign]
    built: list[tuple[int, int]] = []
    out = torch.full((36, 1), float("nan"))

    def build(a: int, b: int) -> tribute.engine.Rows:
        built.append((a, b))
        return tribute.engine.Rows(inputs=(x[a:b].clone(),), sample=torch.arange(a, b))

    def sink(a: int, b: int, vals: torch.Tensor, grads: Any) -> None:
        out[a:b] = vals

    engine.run(36, build, sink, row_bytes=12, blocks=True, select=lambda o, r: o[:, :1])
    assert t.recorded >= 3 and 16 in t.rates
    if next_size is None:  # next size 32 or more: the 4-row tail runs untimed in the block
        assert built == [(0, 16), (16, 36)] and passes == [16, 16, 4]
    else:  # the block ends after its chunk; the tail is composed again, in a block of its own
        assert built == [(0, 16), (16, 36), (32, 36)] and passes == [16, 16, 4]
    with torch.inference_mode():  # the chunks the model saw
        want = torch.cat([model(x[a:b].clone()) for a, b in ((0, 16), (16, 32), (32, 36))])
    torch.testing.assert_close(out, want[:, :1], rtol=0, atol=0)
    assert engine.n_rows == 36


def test_cuda_models_may_tune_to_larger_chunks():
    """A GPU keeps gaining past the CPU's 8,192 rows (an H200: 17% on a small CNN at 65,536);
    the memory cap still bounds the rows."""
    big = 10**12
    assert max_chunk_rows(row_bytes=1, grad=False, max_memory=big, device="cuda") == 65536
    assert max_chunk_rows(row_bytes=1, grad=False, max_memory=big, device="cuda:1",
                          n_params=10**7) == 8192
    assert max_chunk_rows(row_bytes=1, grad=False, max_memory=big, device="cpu") == 8192
    assert max_chunk_rows(row_bytes=4096, grad=False, max_memory=16 * 4096 * 100,
                          device="cuda") == 100


def test_out_of_memory_during_the_search_ends_it_at_the_largest_size_that_fits():
    t = BatchTuner(cap=65536, skip=False, duel=0)
    sizes = []
    for _ in range(40):
        s = t.propose()
        sizes.append(s)
        if s > 3000:  # the device holds at most 3,000 rows of this model
            t.out_of_memory(s)
            continue
        t.record(s, s, s / float(s))  # a fixed cost per pass: bigger is always faster
    assert sizes.count(4096) == 1  # one chunk ran out of memory, never again
    assert t.cap == 2048 and t.best == 2048 and t.memory_bound
    assert all(s <= 2048 for s in sizes[sizes.index(4096) + 1:])


def test_out_of_memory_after_the_search_falls_back_to_a_measured_size():
    t = BatchTuner(cap=1024, skip=False, duel=0)
    feed_tuner(t, lambda s: float(s))
    assert t.best == 1024
    t.out_of_memory(1024)  # a later call: less device memory free
    assert t.best == 512 and t.cap == 512 and t.propose() == 512
    # the bound holds for a later call whose byte count would allow more
    assert tuning._reusable(t, 65536)


class _DeviceFull(torch.nn.Module):
    """Runs out of "device memory" above ``limit`` rows per pass (raises torch's CUDA OOM
    error, as a GPU would); counts the rows it saw and the failed passes."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(6, 3).double()
        self.limit, self.rows, self.failed, self.failed_rows = limit, 0, 0, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            self.failed += 1
            self.failed_rows += x.shape[0]
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (planted)")
        self.rows += x.shape[0]
        return torch.tanh(self.lin(x))


class _PerPassClock:
    """A tuning clock under which every timed chunk takes 1 ms whatever its rows (a cost per
    pass, as on a GPU): bigger chunks are always faster, so the search grows them."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        self.t += 0.0005
        return self.t

    def close(self) -> None:
        pass


@pytest.mark.parametrize("method", ["kernel_shap", "feature_ablation", "integrated_gradients"])
def test_a_chunk_that_runs_out_of_device_memory_is_sent_again_smaller(method, monkeypatch):
    """Block and per-chunk paths, with and without gradients: the result equals a run that
    fits, the failed chunk is never tried again in later calls, and an explicit batch_size
    that does not fit raises torch's error (the user chose it)."""
    from tribute.engine import core

    monkeypatch.setattr(core, "_TUNE_MAX_ROWS", 65536)  # as on a GPU
    monkeypatch.setattr(core, "SchedulerFreeClock", _PerPassClock)
    clear_tuners()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 6, dtype=torch.float64, generator=g)
    kw: dict[str, Any] = {"method": method, "target": 1, "seed": 3, "progress": False}
    if method == "kernel_shap":
        kw["budget"] = 32
    if method == "integrated_gradients":
        kw["steps"] = 16
    model = _DeviceFull(limit=50)
    roomy = _DeviceFull(limit=10**9)
    roomy.load_state_dict(model.state_dict())
    ref = tribute.explain(roomy, x, batch_size=50, **kw)
    got = tribute.explain(model, x, **kw)
    assert model.failed >= 1
    # every row the model saw is counted, the failed pass's too (aud32m: they were left out,
    # although the engine's docstring said they were counted)
    assert got.n_rows == model.rows + model.failed_rows
    np.testing.assert_allclose(got.flat(), ref.flat(), rtol=1e-12, atol=1e-12)
    failed = model.failed
    again = tribute.explain(model, x, **kw)
    assert model.failed == failed  # the bound holds for the next call
    np.testing.assert_allclose(again.flat(), ref.flat(), rtol=1e-12, atol=1e-12)
    model.limit = 10
    with pytest.raises(torch.cuda.OutOfMemoryError, match="64 rows per forward pass"):
        tribute.explain(model, x, batch_size=64, **kw)
    clear_tuners()


def test_a_refit_with_two_candidates_ends_the_search():
    # aud28: a small memory cap leaves two sizes ([16, 21]); 21 rows no slower per pass than 16
    # sends 16 again for the fit, after which the search has nothing left to time. It used to
    # point past the candidates: propose() raised IndexError on this and every later call.
    t = BatchTuner(cap=21)
    assert t.candidates == [16, 21]
    t.record(16, 16, 1.0)  # warm-up
    t.record(16, 16, 0.002)
    t.record(21, 21, 0.002)  # no slower per pass than 16: degenerate fit, 16 timed again
    assert t.propose() == 16 and not t.done
    t.record(16, 16, 0.002)
    assert t.propose() in (16, 21)
    for _ in range(12):  # whatever the duel does next, it never leaves the candidates
        s = t.propose()
        assert s in (16, 21)
        t.record(s, s, 0.002)
    assert t.done
