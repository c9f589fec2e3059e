"""A count that a budget sets (integrated_gradients' ``steps``, lime's ``n_samples``, ...) and
the budget, given together with values that disagree, are refused on every path that runs a
method; the callers that pass recorded or default counts (metrics re-explaining, the explorer's
form) keep working. Found by the stop-29 review of the first version of the rule, which broke
every metric that re-explains a lime attribution and the explorer's lime button."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def _x(n: int = 3) -> torch.Tensor:
    return torch.randn(n, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(2 * 16 * 16, 3)).double()


KW: dict[str, Any] = {"target": 0, "baseline": 0.0, "progress": False}


def test_lime_attributions_are_re_explained_by_the_metrics() -> None:
    # lime records n_samples=None ("use the budget") next to its budget: the metrics that
    # re-explain passed both back and the first version of the rule refused None != 256
    net, x = _net(), _x()
    a = tribute.explain(net, x, method="lime", budget=64, **KW)
    assert a.params["n_samples"] is None and a.params["budget"] == 64
    for metric in ("stability", "max_sensitivity"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = tribute.evaluate(net, x, a, metric=metric)
        assert np.isfinite(np.asarray(r.scores)).all()
    b = tribute.explain(net, x, method="lime", n_samples=None, budget=64, **KW)
    np.testing.assert_array_equal(a.flat(), b.flat())


@pytest.mark.parametrize("method,count", [("integrated_gradients", "steps"),
                                          ("expected_gradients", "n_samples"),
                                          ("smoothgrad", "n_samples"),
                                          ("lime", "n_samples")])
def test_a_stability_sweep_over_budgets_or_counts_runs(method: str, count: str) -> None:
    # the re-explained call merged the recorded count (set by the old budget) with a new budget
    net, x = _net(), _x()
    a = tribute.explain(net, x, method=method, budget=40, **KW)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_budget = tribute.evaluate(net, x, a, metric="stability",
                                     param_grid=[{"budget": 20}, {"budget": 60}])
        by_count = tribute.evaluate(net, x, a, metric="stability",
                                    param_grid=[{count: 30}, {count: 50}])
    assert np.isfinite(np.asarray(by_budget.scores)).all()
    assert np.isfinite(np.asarray(by_count.scores)).all()


@pytest.mark.parametrize("method,kw,runs", [
    ("xrai", {"steps": 10, "budget": 41}, 40),
    ("extremal_perturbation", {"steps": 10, "budget": 41, "areas": (0.1, 0.2)}, 20)])
def test_region_methods_refuse_a_disagreeing_count_and_state_the_steps_that_ran(
        method: str, kw: dict[str, Any], runs: int) -> None:
    # their budgets set steps too: steps=10 ran 40 / 20 steps, and params said 10
    cnn, img = _cnn(), torch.rand(1, 1, 16, 16, dtype=torch.float64,
                                  generator=torch.Generator().manual_seed(0))
    with pytest.raises(InputError, match=rf"steps=10 and budget={kw['budget']} disagree "
                                         rf"\(budget={kw['budget']} runs steps={runs}\)"):
        tribute.explain(cnn, img, method=method, target=0, progress=False, **kw)
    a = tribute.explain(cnn, img, method=method, target=0, progress=False,
                        **{k: v for k, v in kw.items() if k != "steps"})
    assert a.params["steps"] == a.extra["steps"] == runs


def test_smoothgrad_refuses_a_base_count_its_copies_budget_would_override() -> None:
    net, x = _net(), _x(2)
    kw = {**KW, "base": "integrated_gradients", "n_samples": 4, "budget": 101}
    with pytest.raises(InputError, match=r"base_params steps=10 and budget=101 disagree: each of "
                                         r"the n_samples=4 copies gets 25 evaluations, which run "
                                         r"integrated_gradients with steps=23"):
        tribute.explain(net, x, method="smoothgrad", base_params={"steps": 10}, **kw)
    a = tribute.explain(net, x, method="smoothgrad", base_params={"steps": 23}, **kw)
    b = tribute.explain(net, x, method="smoothgrad", **kw)
    assert a.extra["base_count"] == b.extra["base_count"] == {"steps": 23}
    # the same computation; bit-equal here, one last bit apart under ATEN_CPU_CAPABILITY=default
    # (1.6e-16: the first call on a model runs its kernels once more, see tribute.engine)
    np.testing.assert_allclose(a.flat(), b.flat(), rtol=1e-14, atol=0)


def test_lime_exhaustive_accepts_its_own_count() -> None:
    net, x = _net(), _x()
    a = tribute.explain(net, x, method="lime", sampling="exhaustive", n_samples=32, budget=40, **KW)
    assert a.n_evals == 32
    with pytest.raises(InputError, match=r"n_samples=40 and budget=40 disagree \(budget=40 runs "
                                         r"n_samples=32\)"):
        tribute.explain(net, x, method="lime", sampling="exhaustive", n_samples=40, budget=40, **KW)


def test_explain_generation_refuses_a_disagreeing_count() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generation"))
    from gen_models import make_lm, make_tokenizer

    tok = make_tokenizer()
    lm = make_lm("gpt2", len(tok))
    with pytest.raises(InputError, match=r"steps=10 and budget=40 disagree"):
        tribute.explain_generation(lm, tok, "the cat sat on the", max_new_tokens=1,
                                   method="integrated_gradients", steps=10, budget=40)
    r = tribute.explain_generation(lm, tok, "the cat sat on the", max_new_tokens=1,
                                   method="integrated_gradients", steps=38, budget=40)
    assert r.params["steps"] == 38


def test_the_explorer_form_leaves_untouched_counts_to_the_budget() -> None:
    # the page sends every field at its default: lime's n_samples=None with the explorer's own
    # budget cap, IG's steps=50 with a typed budget
    from tribute.explorer.compute import explain_one, method_form, parse_params
    from tribute.explorer.jobs import Job
    from tribute.explorer.subjects import Subject

    cnn = _cnn()
    subject = Subject(name="img", title="img", kind="image", model=cnn,
                      inputs=torch.rand(2, 1, 16, 16, dtype=torch.float64), baseline=0.0,
                      target="predicted", output="raw", class_names=["a", "b", "c"])
    for method, budget in (("lime", None), ("lime", 300), ("integrated_gradients", 30),
                           ("expected_gradients", 30), ("smoothgrad", 30)):
        raw = {f["name"]: f["default"] for f in method_form(method)}
        out = explain_one(Job(id="1", kind="explain", key="k"), subject, 0, method,
                          parse_params(method, raw), budget, 0)
        assert out["n_evals"] <= (budget or 512)
    typed = parse_params("integrated_gradients", {"steps": 10, "rule": "gauss_legendre"})
    with pytest.raises(InputError, match="steps=10 and budget=30 disagree"):
        explain_one(Job(id="2", kind="explain", key="k2"), subject, 0, "integrated_gradients",
                    typed, 30, 0)
