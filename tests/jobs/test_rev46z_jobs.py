"""rev46z: aud46j's refusal of a factory handed over as the model object refused a model function
that takes forward arguments (``def f(x, s)`` with ``forward_args=(s,)``, which aud46j's probe now
covers) as "takes no inputs, so it cannot be the model"; it scored before. Truth: the exact
Shapley values of ``s * x @ w`` from a zero baseline are ``s * w_j * x_j``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

import tribute

_W = np.array([1.0, 2.0, 3.0])


def _scaled(x: Any, s: Any) -> Any:
    return np.asarray(x, dtype=np.float64) @ _W[:, None] * float(s)


def _scaled_kw(x: Any, s: Any, *, shift: Any = 0.0) -> Any:
    return np.asarray(x, dtype=np.float64) @ _W[:, None] * float(s) + float(shift)


def test_a_model_function_with_forward_args_runs(tmp_path: Path) -> None:
    X = np.random.default_rng(5).normal(size=(5, 3))
    s = torch.tensor(2.5, dtype=torch.float64)
    for k, model in enumerate([_scaled, _scaled_kw]):
        attr = tribute.explain_dataset(model, X, out=tmp_path / f"run{k}", method="exact_shapley",
                                       baseline=0.0, forward_args=(s,), progress=False)
        np.testing.assert_allclose(np.asarray(attr.values).reshape(5, 3), 2.5 * X * _W, rtol=1e-12, atol=1e-12)
