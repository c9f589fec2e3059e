"""gp_shapley's ``nngp_first_layer`` (stop 45, issue #14): the NNGP kernels with the model's own
first-layer weight covariance. The fast kernel against the reference recursion on transformed
inputs, the identity covariance against the isotropic kernels, accuracy on a logistic model
against Shapley values enumerated by hand, and where it is (not) used."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.methods import _nngp as N
from tribute_testing import logistic_net


def _root(gram: torch.Tensor) -> torch.Tensor:
    """``L`` with ``L L' = gram`` (eigen-root: the Gram may be singular)."""
    ev, q = torch.linalg.eigh(gram)
    return q * ev.clamp_min(0.0).sqrt()[None, :]


@pytest.mark.parametrize("spec", [(2.0, 1.0, "erf", 1), (8.0, 0.05, "relu", 2), (0.5, 1.0, "erf", 2)])
def test_first_layer_kernel_matches_reference_on_transformed_inputs(spec):
    g = torch.Generator().manual_seed(3)
    n = 7
    x = torch.randn(n, generator=g, dtype=torch.float64)
    base = torch.randn(n, generator=g, dtype=torch.float64)
    w = torch.randn(5, n, generator=g, dtype=torch.float64)  # rank 5 < n: singular Gram
    gram = N.first_layer_gram(w)
    assert gram is not None and abs(float(torch.diagonal(gram).mean()) - 1.0) < 1e-12
    sa = torch.where(torch.rand(9, n, generator=g) < 0.5, -1.0, 1.0).to(torch.float64)
    sb = torch.where(torch.rand(6, n, generator=g) < 0.5, -1.0, 1.0).to(torch.float64)
    dots = N._Dots(x, base, gram)
    fast = N._odd_fast(dots, dots.cross(sa, sb), spec)
    # reference: z -> z L has z L L' z' = z' gram z, the isotropic kernel of the same width
    el = _root(gram)
    def comp(s: torch.Tensor) -> torch.Tensor:
        return N.compose(s, x, base) @ el
    ref = 0.25 * (N.nngp(comp(sa), comp(sb), *spec) - N.nngp(comp(sa), comp(-sb), *spec)
                  - N.nngp(comp(-sa), comp(sb), *spec) + N.nngp(comp(-sa), comp(-sb), *spec))
    assert torch.allclose(fast, ref, rtol=1e-9, atol=1e-12)
    # the enumerated rows' shortcut (rows closed under negation) agrees as well
    s_all = N._coalition_sample(n, N.ROWS, torch.Generator().manual_seed(0))[0]
    assert N._is_symmetric(s_all)
    sym = N._odd_fast(dots, dots.cross(s_all, sb), spec, True)
    assert torch.allclose(sym, N._odd_fast(dots, dots.cross(s_all, sb), spec), rtol=1e-9, atol=1e-12)
    # the identity covariance is the isotropic kernel
    eye = N._Dots(x, base, torch.eye(n, dtype=torch.float64))
    iso = N._Dots(x, base)
    assert torch.allclose(N._odd_fast(eye, eye.cross(sa, sb), spec),
                          N._odd_fast(iso, iso.cross(sa, sb), spec), rtol=1e-10, atol=1e-13)


def test_first_layer_gram_refuses_nothing_it_cannot_use():
    assert N.first_layer_gram(torch.zeros(3, 4)) is None
    assert N.first_layer_gram(torch.tensor([[1.0, float("nan")]])) is None
    scaled = N.first_layer_gram(torch.eye(3) * 2.0)
    assert scaled is not None and torch.allclose(scaled, torch.eye(3, dtype=torch.float64))


def _enumerated_shapley(model: torch.nn.Module, x: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Shapley values by the permutation-free formula over all 2^n coalitions (numpy)."""
    n = x.shape[0]
    masks = np.array(list(itertools.product((0.0, 1.0), repeat=n)))
    with torch.no_grad():
        v = model(torch.from_numpy(base + masks * (x - base))).numpy()[:, 0]
    index = {tuple(m): i for i, m in enumerate(masks)}
    phi = np.zeros(n)
    for m, val in zip(masks, v):
        k = int(m.sum())
        for i in range(n):
            if m[i] == 0.0:
                w = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                with_i = tuple(np.where(np.arange(n) == i, 1.0, m))
                phi[i] += w * (v[index[with_i]] - val)
    return phi


def test_first_layer_prior_is_more_accurate_on_a_logistic_model():
    n = 10
    model = logistic_net(n, 1)
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(4, n, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    truth = np.stack([_enumerated_shapley(model, x[i].numpy(), np.zeros(n)) for i in range(4)])
    errs = {}
    for flag in (False, True):
        at = tribute.explain(model, x, method="shapley", budget=40, baseline=0.0, target=0,
                             nngp_first_layer=flag)
        assert at.n_evals <= 40
        assert at.params["nngp_used"] and at.params["nngp_first_layer_used"] is flag
        phi = at.values.numpy()
        errs[flag] = float(np.mean(np.linalg.norm(phi - truth, axis=1) / np.linalg.norm(truth, axis=1)))
        # efficiency holds either way
        with torch.no_grad():
            gap = model(x)[:, 0].numpy() - model(torch.zeros(1, n, dtype=torch.float64))[0, 0].item()
        assert np.allclose(phi.sum(1), gap, atol=1e-8)
    assert errs[True] < 0.7 * errs[False], errs
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not model.training


@pytest.mark.slow  # ~30-75 s wall on 2 busy cores: `make test-all`
def test_first_layer_batch_equals_points_one_at_a_time():
    n = 9
    model = torch.nn.Sequential(torch.nn.Linear(n, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).double()
    x = torch.randn(3, n, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    kw: dict[str, Any] = {"method": "shapley", "budget": 30, "target": 1, "nngp_first_layer": True, "seed": 4}
    batch = tribute.explain(model, x, **kw)
    assert batch.params["nngp_first_layer_used"]
    for i in range(3):
        one = tribute.explain(model, x[i : i + 1], **kw)
        assert torch.allclose(one.values[0], batch.values[i], rtol=1e-10, atol=1e-12)
        assert torch.allclose(one.stderr[0], batch.stderr[i], rtol=1e-10, atol=1e-12)


class _Wrapped(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


@pytest.mark.slow  # ~30-75 s wall on 2 busy cores: `make test-all`
def test_first_layer_left_out_where_the_first_module_is_not_the_input_layer():
    n = 8
    seq = logistic_net(n, 7)
    x = torch.randn(2, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    kw: dict[str, Any] = {"method": "shapley", "budget": 32, "target": 0, "baseline": 0.0}
    plain = tribute.explain(seq, x, nngp_first_layer=False, **kw)
    for model in (_Wrapped(seq), torch.nn.Sequential(torch.nn.Identity(), *seq)):
        at = tribute.explain(model, x, nngp_first_layer=True, **kw)
        assert at.params["nngp_used"] and not at.params["nngp_first_layer_used"]
        assert torch.equal(at.values, plain.values)
    off = tribute.explain(seq, x, nngp_first_layer=True, nngp=False, **kw)
    assert not off.params["nngp_first_layer_used"]
    assert torch.equal(tribute.explain(seq, x, nngp=False, **kw).values, off.values)


def test_first_layer_flag_is_checked():
    with pytest.raises(tribute.errors.InputError, match="nngp_first_layer"):
        tribute.explain(logistic_net(4, 0), torch.zeros(1, 4, dtype=torch.float64), method="shapley",
                        budget=8, target=0, nngp_first_layer="yes")
