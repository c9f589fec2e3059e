"""Warnings point at the user's line (``errors.user_stacklevel``), however deep inside tribute
they are raised: the method's standard-error warning, the metric's, and reading ``ci95``."""

from __future__ import annotations

import warnings

import torch

import tribute


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def test_stderr_warnings_point_at_the_callers_line() -> None:
    model, x = _model(), torch.randn(30, 6)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        tribute.explain(model, x[:2], method="kernel_shap", budget=8)  # too few coalitions
        attr = tribute.explain(model, x, method="saliency")
        tribute.evaluate(model, x, attr, metric="linear_score", n_subsets=5)  # too few draws
        small = tribute.explain(model, x[:5], method="saliency")
        tribute.evaluate(model, x[:5], small, metric="deletion").ci95  # noqa: B018 (too few samples)
    got = [(str(w.message).split(":")[0], w.filename) for w in seen
           if issubclass(w.category, tribute.StderrWarning)]
    assert [m for m, _ in got] == ["kernel_shap", "metric 'linear_score'", "metric 'deletion'"], got
    assert {f for _, f in got} == {__file__}, got


def test_tuple_output_warning_points_at_the_callers_line() -> None:
    class Two(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.lin(x), x.sum(1)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        tribute.explain(Two(), torch.randn(2, 4), method="saliency", target=0)
    got = [w.filename for w in seen if "explains the first" in str(w.message)]
    assert got and set(got) == {__file__}, got
