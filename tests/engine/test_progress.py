"""One progress bar per explain call, covering every phase, each line drawn once."""

from __future__ import annotations

import io

import torch

import tribute
from tribute.engine import Progress, progress_scope
from tribute_testing import make_cnn


def test_one_bar_per_explain_call_for_integrated_gradients(capsys):
    """IG used to draw one bar per block of steps; now one bar ends at 100% exactly once."""
    cnn = make_cnn()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    tribute.explain(cnn, x, method="integrated_gradients", steps=40, batch_size=8, progress=True)
    err = capsys.readouterr().err
    lines = [ln for ln in err.split("\n") if ln.strip()]
    assert len(lines) == 1, err  # tqdm redraws with \r: one finished line
    final = lines[0].split("\r")[-1]
    assert final.startswith("integrated_gradients") and "100%" in final, final
    assert err.count("100%") == 1


def test_scope_is_shared_by_nested_runs_and_completes_after_the_solve():
    s = io.StringIO()
    with progress_scope(100, "demo", True, solve=50, stream=s) as bar:
        bar.update(60)
        with progress_scope(999, "inner", True, stream=s) as inner:
            assert inner is bar  # nested explain calls (metrics, noise views) share the bar
            inner.replan(999)  # the outer plan stands
            assert bar.planned_rows == 100
            inner.update(40)
        assert bar.done == 100
        bar.phase("solving")
    out = s.getvalue()
    assert "150/150" in out and "inner" not in out


def test_runs_outside_a_scope_draw_their_own_bar_and_nothing_when_disabled():
    s = io.StringIO()
    p = Progress(5, "alone", enabled=False, stream=s)
    p.update(5)
    p.close()
    assert s.getvalue() == ""


def test_more_rows_than_planned_grow_the_total():
    s = io.StringIO()
    p = Progress(5, "grow", enabled=True, stream=s)
    p.update(8)
    p.close()
    assert "8/8" in s.getvalue()


def test_bar_is_tqdm_with_elapsed_and_eta():
    """tqdm's bar (``tqdm.auto`` in notebooks): rows done/total, elapsed<remaining (the ETA), rate."""
    import re

    s = io.StringIO()
    bar = Progress(120, "demo", enabled=True, stream=s)
    bar.update(30)
    bar.close()
    final = s.getvalue().split("\r")[-1]
    assert re.search(r"demo: +\d+%\|.*\| *\d+/120 \[\d\d:\d\d<\d\d:\d\d", final), final
