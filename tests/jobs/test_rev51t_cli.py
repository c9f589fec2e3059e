"""rev51t: ``tribute explain`` on one ``.npy`` array gives one call's credits.

aud51t made a dataset job hand a float32 module the data's float64 rows (as
:func:`tribute.explain` is handed them), but the same command without a job option still cast
the rows (and ``--baseline mean``) to float32 first: credits 1.46e-8 off one call and off the
same command run as a job (``--shard-size``), which gives one call's credits to the bit
(one shard here: float32 sums over other batch shapes may differ in the last bits).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import tribute
from tribute.cli import main


def make_mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str, job: bool) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(6, 4))
    data = tmp_path / "x.npy"
    np.save(data, x)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    out = tmp_path / ("job" if job else "plain")
    argv = ["explain", "--model", "test_rev51t_cli:make_mlp", "--data", str(data), "--method", method,
            "--baseline", "mean", "--target", "0", "--no-progress", "--out", str(out)]
    assert main(argv + (["--shard-size", "6"] if job else [])) == 0
    got = np.asarray(tribute.Attribution.load(out / ("result.npz" if job else "attribution.npz")).values)
    model = make_mlp()
    one = np.asarray(tribute.explain(model, x, method=method, baseline=x.mean(0), target=0).values)
    assert next(model.parameters()).dtype == torch.float32
    return got.reshape(one.shape), one


def test_the_command_line_explains_float64_rows_as_one_call(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    got, one = _run(tmp_path, monkeypatch, "exact_shapley", job=False)
    assert got.dtype == one.dtype == np.float64
    np.testing.assert_array_equal(got, one)  # (before: 1.46e-8 apart)


@pytest.mark.slow
@pytest.mark.parametrize("job", [False, True])
def test_the_command_line_and_its_job_give_one_calls_gradient_credits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, job: bool) -> None:
    got, one = _run(tmp_path, monkeypatch, "integrated_gradients", job=job)
    np.testing.assert_array_equal(got, one)
