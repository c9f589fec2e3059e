"""rev42a: the id-keyed caches of models that cannot be weak dictionary keys.

1. ``core._OK_ROWS_BY_ID`` held the model itself (small42's fix for id reuse): a network
   wrapped in an (unhashable) dataclass stayed alive after the user dropped it, up to 8 of them.
   It now holds a weak reference (the model only when it has none).
2. ``tuning._TUNERS_BY_ID`` / ``_WARM_BY_ID`` were keyed by ``id(model)`` and never cleared: a
   new model at a freed model's id inherited its tuner (its measured sizes: a refused big pass
   was then "no bigger than one that worked" and raised) and its warm flag.
"""

from __future__ import annotations

import gc
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.engine import tuning
from tribute.engine.tuning import clear_tuners, mark_warm, tuner_for
from tribute_testing import object_at_freed_id


@dataclass
class _Wrapped:
    """A torch network behind an unhashable callable (dataclass with eq)."""

    net: torch.nn.Module

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out: np.ndarray = self.net(torch.as_tensor(x, dtype=torch.float32)).numpy()
        return out


def test_a_dropped_unhashable_model_is_freed() -> None:
    x = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    refs = []
    for _ in range(3):
        net = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.Linear(32, 1))
        model = _Wrapped(net)
        tribute.explain(model, x, method="kernel_shap", budget=100, baseline=0.0, progress=False)
        refs.append(weakref.ref(net))
        del model, net
    gc.collect()
    assert [r() is None for r in refs] == [True, True, True]


@dataclass
class _Key:
    """An unhashable model key (a dataclass with eq), weakly referenceable."""

    tag: int

    def __call__(self, x: Any) -> Any:
        return x




def test_a_new_model_at_a_freed_models_id_gets_a_fresh_tuner() -> None:
    clear_tuners()
    old = _Key(-1)
    t_old = tuner_for(old, "rows", False, 4096)
    t_old.rates[256] = 1e6  # as if 256 rows had been timed on the old model
    mark_warm(old, False)
    old_id = id(old)
    del old
    gc.collect()
    new = object_at_freed_id(old_id, lambda: _Key(0))
    t_new = tuner_for(new, "rows", False, 4096)
    assert t_new is not t_old and t_new.rates == {}  # before: the old tuner, rates {256: ...}
    assert not t_old.current
    assert not tuning._is_warm(new, False)
    # the new model's own entries are kept as usual
    assert tuner_for(new, "rows", False, 4096) is t_new
    mark_warm(new, False)
    assert tuning._is_warm(new, False)




# The end-to-end case (a freed model's id taken by a model that refuses big passes, retried
# smaller) is tests/engine/test_small42.py::test_a_new_model_at_a_freed_models_id_gets_no_inherited_pass_count.

class _NoNotes(KeyError):
    """An exception without ``add_note``, as every exception on Python 3.10 (requires-python
    is >=3.10; PEP 678 notes came in 3.11)."""

    def __getattribute__(self, name: str) -> Any:
        if name == "add_note":
            raise AttributeError(f"'{type(self).__name__}' object has no attribute 'add_note'")
        return super().__getattribute__(name)


class _Fails(torch.nn.Module):
    """A linear model: the reference pass works; later passes of more than 8 rows raise
    ``RuntimeError`` (a fixed buffer), smaller ones :class:`_NoNotes`."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64))
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(int(x.shape[0]))
        if len(self.seen) > 1 and x.shape[0] > 8:
            raise RuntimeError(f"fixed buffer of 8 rows exceeded ({x.shape[0]} rows)")
        if len(self.seen) > 1:
            raise _NoNotes(f"failed on {x.shape[0]} rows")
        return (x @ self.w)[:, None]


def test_the_retry_keeps_the_models_error_where_exceptions_have_no_notes() -> None:
    clear_tuners()
    model = _Fails()
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(_NoNotes) as info:  # before: AttributeError ... 'add_note'
        tribute.explain(model, x, method="kernel_shap", budget=200, target=0, baseline=0.0,
                        progress=False)
    first = max(model.seen)
    assert first > 8
    cause = info.value.__cause__
    assert isinstance(cause, RuntimeError)
    assert str(cause) == f"fixed buffer of 8 rows exceeded ({first} rows)"
