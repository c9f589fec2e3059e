"""rev49n (review of eng49): SlowRunWarning's pace is read on the tuner's clock (run-queue waits
left out). A model that waits -- on a sleep, I/O, a server -- is not CPU-bound, and that clock
counts its waits: such a call is still priced at its true length and warned up front."""

from __future__ import annotations

import re
import time
import warnings

import torch

import tribute
from tribute.engine import SlowRunWarning, clear_tuners


class _Sleepy(torch.nn.Module):
    """Every pass sleeps ``per_pass`` seconds, whatever its rows (a model waiting on I/O)."""

    def __init__(self, per_pass: float) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(16, 2)
        self.per_pass = per_pass
        self.passes = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.per_pass)
        self.passes += 1
        return self.lin(x)


def test_a_model_that_sleeps_in_forward_is_priced_at_its_sleeps_and_warned() -> None:
    # feature ablation on 600 inputs x 16 features at batch_size=100: 600 x 17 = 10,200 rows in
    # 102 passes of 0.15 s each, so at least 102 x 0.15 = 15.3 s (by hand; the reference pass's
    # 6 passes are part of it). The warning is raised (as an error here) after the reference
    # pass, before any coalition row runs
    clear_tuners()
    model = _Sleepy(0.15).eval()
    x = torch.randn(600, 16, generator=torch.Generator().manual_seed(0))
    msg = _slow_run_warning(model, x, batch_size=100)
    assert msg is not None, "a 15 s call of a sleeping model was not announced"
    assert model.passes == 6, model.passes  # the reference pass only: warned up front
    m = re.search(r"est\. (\d+) s", msg)
    assert m is not None, msg
    # 102 passes x 0.15 s = 15.3 s; the reference pass's first chunk (warm-up) is left out of the
    # pace and a sleep only overruns, so the estimate is 15.3 s or a little more
    assert 15 <= int(m.group(1)) <= 30, msg


class _SlowRows(torch.nn.Module):
    """Sleeps ``per_row`` seconds per row; refuses to run more than ``stop`` rows in all (the
    test's guard: a call not announced before its rows ran fails at once instead of sleeping)."""

    def __init__(self, per_row: float, stop: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(16, 2)
        self.per_row, self.stop, self.rows = per_row, stop, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += int(x.shape[0])
        if self.rows > self.stop:
            raise RuntimeError(f"ran {self.rows} rows unannounced")
        time.sleep(self.per_row * x.shape[0])
        return self.lin(x)


def test_a_cold_model_whose_first_run_is_one_chunk_is_still_priced() -> None:
    # batch_size=8,192 on 300 inputs: the reference pass is one chunk, the model's first (its
    # warm-up). eng49 left such a run's pace unset, so the 300 x 17 = 5,100-row call (2.5 ms
    # a row: 12.75 s by hand) ran unannounced as one 4,800-row chunk and warned only after it
    # (est. 13 s at 14.4 s). The warm-up-inclusive pace is all there is: warned up front
    clear_tuners()
    model = _SlowRows(2.5e-3, stop=300).eval()
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    msg = _slow_run_warning(model, x, batch_size=8192)
    assert msg is not None and model.rows == 300, (msg, model.rows)
    m = re.search(r"est\. (\d+) s", msg)
    assert m is not None and 12 <= int(m.group(1)) <= 30, msg


def _slow_run_warning(model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> str | None:
    """The SlowRunWarning feature ablation raises (as an error: the call stops there), or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlowRunWarning)
        try:
            tribute.explain(model, x, method="feature_ablation", target=0, batch_size=batch_size,
                            progress=False)
        except SlowRunWarning as w:
            return str(w)
    return None
