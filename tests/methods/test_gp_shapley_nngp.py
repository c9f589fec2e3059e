"""NNGP kernels on the composed inputs (gp_shapley's ``nngp``): the kernels against a wide
random network, the surrogate's Shapley values against enumeration, the method's contracts
(efficiency, budget, batch = points one at a time, where the kernels are used) and where the
default (auto) adds them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.methods import _nngp as N
from tribute.methods.exact import all_coalitions, shapley_from_table
from tribute.methods.gp_shapley import GPShapley
from tribute_testing import gap_of, make_mlp


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("act", ["erf", "relu"])
def test_kernel_is_the_covariance_of_a_wide_random_network(act):
    z = _rand(5, 4, seed=1)
    sw2, sb2, width = 2.0, 0.3, 400_000
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(width, 4, dtype=torch.float64, generator=gen) * math.sqrt(sw2 / 4)
    b = torch.randn(width, dtype=torch.float64, generator=gen) * math.sqrt(sb2)
    u = z @ w.T + b
    h = torch.erf(u) if act == "erf" else torch.relu(u)
    mc = h @ h.T / width
    np.testing.assert_allclose(N.nngp(z, z, sw2, sb2, act, 1), mc, rtol=0.01, atol=5e-3)


def test_odd_kernel_is_symmetric_odd_and_positive_semidefinite():
    x, base = _rand(6, seed=3), _rand(6, seed=4)
    s = torch.sign(_rand(9, 6, seed=5))
    for spec in [(2.0, 0.05, "erf", 1), (8.0, 1.0, "relu", 2)]:
        k = N.odd_kernel(s, s, x, base, spec)
        np.testing.assert_allclose(k, k.T, atol=1e-14)
        np.testing.assert_allclose(N.odd_kernel(-s, s, x, base, spec), -k, atol=1e-14)
        assert float(torch.linalg.eigvalsh(k).min()) > -1e-12


def test_surrogate_shapley_terms_match_enumeration():
    n = 7
    x, base = _rand(n, seed=6), _rand(n, seed=7)
    st = torch.sign(_rand(5, n, seed=8))
    spec = (8.0, 0.05, "erf", 2)
    table = N.odd_kernel(2 * all_coalitions(n) - 1, st, x, base, spec) / 2
    want = shapley_from_table(table.T, n)
    np.testing.assert_allclose(N.shapley_terms(st, x, base, spec), want, atol=1e-14)
    # the linear map of the regression form: exact when every coalition is listed
    s, _, lmap = N._coalition_sample(n, 1 << n, torch.Generator().manual_seed(0))
    full = torch.cat([N.odd_kernel(s, st, x, base, spec),
                      N.odd_kernel(torch.ones(1, n, dtype=torch.float64), st, x, base, spec)]) / 2
    np.testing.assert_allclose((lmap @ full).T, want, atol=1e-12)


def test_sampled_surrogate_shapley_is_close_at_14_players():
    n = 14
    x, base = _rand(n, seed=9), torch.zeros(n, dtype=torch.float64)
    st = torch.sign(_rand(6, n, seed=10))
    spec = (8.0, 0.05, "relu", 1)
    want = N.shapley_terms(st, x, base, spec)
    s, _, lmap = N._coalition_sample(n, 4096, torch.Generator().manual_seed(1))
    assert len(s) < 1 << n
    full = torch.cat([N.odd_kernel(s, st, x, base, spec),
                      N.odd_kernel(torch.ones(1, n, dtype=torch.float64), st, x, base, spec)]) / 2
    got = (lmap @ full).T
    assert float(torch.linalg.norm(got - want) / torch.linalg.norm(want)) < 0.02


def _erf_net(n: int, width: int, seed: int) -> torch.nn.Module:
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            g = torch.Generator().manual_seed(seed)
            self.w = torch.randn(width, n, dtype=torch.float64, generator=g) * (4.0 / n) ** 0.5
            self.b = torch.randn(width, dtype=torch.float64, generator=g) * 0.3
            self.v = torch.randn(1, width, dtype=torch.float64, generator=g) / width**0.5

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return torch.erf(z @ self.w.T + self.b) @ self.v.T

    return Net().eval()


def test_nngp_kernels_help_on_a_wide_erf_network_and_keep_efficiency():
    n = 10
    net = _erf_net(n, 256, seed=11)
    x = _rand(2, n, seed=12)
    exact = tribute.explain(net, x, method="exact_shapley", target=0, baseline=0.0).values
    err = {}
    for flag in (False, True):
        a = tribute.explain(net, x, method="gp_shapley", target=0, baseline=0.0, budget=64,
                            seed=0, nngp=flag, lean=False)
        assert a.n_evals <= 64 * len(x)
        assert a.params["nngp_used"] is flag
        assert np.abs(gap_of(a)).max() < 1e-9
        assert bool(torch.isfinite(a.stderr).all()) and bool((a.stderr > 0).any())
        err[flag] = float(np.mean(np.linalg.norm(a.values - exact, axis=-1)
                                  / np.linalg.norm(exact, axis=-1)))
    assert err[True] < 0.9 * err[False]


def test_nngp_batch_equals_points_one_at_a_time():
    m = make_mlp(7, 2, seed=4)
    x = _rand(2, 7, seed=13)
    kw: dict[str, Any] = {"method": "gp_shapley", "target": 1, "budget": 24, "seed": 2,
                          "nngp": True, "baseline": 0.1, "lean": False}
    batch = tribute.explain(m, x, **kw)
    for i in range(2):
        one = tribute.explain(m, x[i : i + 1], **kw)
        np.testing.assert_allclose(batch.values[i], one.values[0], atol=1e-10)
        np.testing.assert_allclose(batch.stderr[i], one.stderr[0], atol=1e-10)


def test_nngp_left_out_where_players_are_not_the_input_elements():
    m = make_mlp(8, 2, seed=5)
    x = _rand(2, 8, seed=14)
    groups = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    a = tribute.explain(m, x, method="gp_shapley", target=0, budget=12, groups=groups, nngp=True,
                        lean=False)
    assert a.params["nngp_used"] is False
    b = tribute.explain(m, x, method="gp_shapley", target=0, budget=12, groups=groups, lean=False)
    np.testing.assert_allclose(a.values, b.values, atol=0)


def test_nngp_flag_is_checked():
    with pytest.raises(Exception, match="nngp"):
        tribute.explain(make_mlp(4, 2), _rand(1, 4), method="gp_shapley", target=0, nngp="yes")


def test_auto_adds_the_kernels_from_the_first_pair_capped_below_two_and_a_half():
    from tribute.methods.gp_shapley import GPShapley

    g = GPShapley()
    assert g.nngp is None and g.nngp_from == 0.0
    assert g._nngp_wanted(20, 1) and g._nngp_wanted(20, 19) and g._nngp_wanted(20, 256)
    assert not g._nngp_wanted(20, 0) and not g._nngp_wanted(20, 257)
    assert g._nngp_share(20, 1) == g._nngp_share(20, 49) == 0.5 and g._nngp_share(20, 50) is None
    # nngp_from=1: the rule before round 9 of issue #14 (from one pair per player)
    old = GPShapley(nngp_from=1.0)
    assert not old._nngp_wanted(20, 19) and old._nngp_wanted(20, 20) and old._nngp_wanted(20, 256)
    assert GPShapley(nngp=True)._nngp_wanted(20, 10) and not GPShapley(nngp=False)._nngp_wanted(20, 100)
    assert GPShapley(nngp=True)._nngp_share(20, 30) is None  # pinned: marginal likelihood
    m = make_mlp(6, 2, seed=6)
    x = _rand(1, 6, seed=15)
    # the isotropic member's cap (nngp_cap); on the first layer's Gram the member is uncapped by
    # default (nngp_first_layer_cap, see test_shap47_gp_first_layer_cap.py)
    kw: dict[str, Any] = {"method": "gp_shapley", "target": 0, "baseline": 0.0, "seed": 1,
                          "nngp_first_layer": False}
    # 6 players: 5 pairs (budget 12) < 6 <= 14 pairs (budget 30) < 15 <= 15 pairs (budget 32)
    few = tribute.explain(m, x, budget=12, **kw)
    half = tribute.explain(m, x, budget=30, **kw)
    on = tribute.explain(m, x, budget=32, **kw)
    assert few.params["nngp_used"] is True and few.params["nngp_from"] == 0.0
    assert half.params["nngp_used"] is True and on.params["nngp_used"] is True
    assert few.params["path"] == half.params["path"] == on.params["path"] == "gp"
    # below one pair per player the weight is capped as well: neither the values without the
    # kernels nor those weighed by likelihood alone
    assert float((few.values - tribute.explain(m, x, budget=12, nngp=False, **kw).values).abs().max()) > 1e-6
    assert float((few.values - tribute.explain(m, x, budget=12, nngp=True, **kw).values).abs().max()) > 1e-6
    assert np.abs(gap_of(few)).max() < 1e-9
    # nngp_from=1: off below one pair per player, bit for bit the values without the kernels
    before = tribute.explain(m, x, budget=12, nngp_from=1.0, **kw)
    assert before.params["nngp_used"] is False
    np.testing.assert_allclose(before.values, tribute.explain(m, x, budget=12, nngp=False, **kw).values,
                               atol=0)
    np.testing.assert_allclose(on.values, tribute.explain(m, x, budget=32, nngp=True, **kw).values,
                               atol=0)
    # below 2.5 pairs per player the member's weight is capped at one half (see
    # test_nngp_share_caps_the_members_weight): not the values without it, and efficient
    without = tribute.explain(m, x, budget=30, nngp=False, **kw).values
    assert float((half.values - without).abs().max()) > 1e-6
    assert np.abs(gap_of(half)).max() < 1e-9
    # nngp_cap=0: the rule before the cap (off below 2.5 pairs per player), bit for bit, whatever
    # nngp_from says; nngp_cap=1: weighed by likelihood alone from nngp_from pairs per player
    assert not GPShapley(nngp_cap=0.0)._nngp_wanted(20, 49) and GPShapley(nngp_cap=0.0)._nngp_wanted(20, 50)
    zero = tribute.explain(m, x, budget=30, nngp_cap=0.0, **kw)
    assert zero.params["nngp_used"] is False
    np.testing.assert_allclose(zero.values, without, atol=0)
    one = tribute.explain(m, x, budget=30, nngp_cap=1.0, **kw)
    np.testing.assert_allclose(one.values, tribute.explain(m, x, budget=30, nngp=True, **kw).values,
                               atol=0)
    with pytest.raises(Exception, match="nngp_cap"):
        tribute.explain(m, x, budget=30, nngp_cap=1.5, **kw)
    with pytest.raises(Exception, match="nngp_from"):
        tribute.explain(m, x, budget=30, nngp_from=3.0, **kw)


def test_auto_kernels_below_one_pair_per_player_help_a_wide_erf_network():
    """Issue #14, round 9: at fewer pairs than players auto now adds the NNGP kernels (capped at
    half the average); on a wide erf network, the family they model, that is more accurate than
    the product kernels alone, which is what auto ran there before (nngp_from=1)."""
    n = 14
    net = _erf_net(n, 256, seed=21)
    x = _rand(3, n, seed=22)
    exact = tribute.explain(net, x, method="exact_shapley", target=0, baseline=0.0).values
    err = {}
    for label, nngp in (("auto", None), ("off", False)):
        a = tribute.explain(net, x, method="gp_shapley", target=0, baseline=0.0, budget=24,
                            seed=0, lean=False, nngp=nngp)
        assert a.n_evals <= 24 * len(x) and a.extra["n_pairs"] < n
        err[label] = float(np.mean(np.linalg.norm(a.values - exact, axis=-1)
                                   / np.linalg.norm(exact, axis=-1)))
    assert err["auto"] < 0.9 * err["off"], err


def test_nngp_share_caps_the_members_weight(monkeypatch):
    """``share=a``: the NNGP member weighs ``min(its marginal-likelihood weight, a)`` against the
    other kernels' family: capped where the likelihood prefers it, left as it is below."""
    from tribute.methods import _nngp
    from tribute.methods.gp_shapley import _nngp_member

    n = 3
    unused = torch.zeros(1, n)  # kernel parameters the pass would read; the fake ignores them
    pool = [(torch.tensor([0.0]), torch.tensor([[1.0, 0.0, 0.0]]), torch.full((1, n), 0.1), unused,
             unused, unused, torch.ones(1)),
            (torch.tensor([0.0]), torch.tensor([[0.0, 1.0, 0.0]]), torch.full((1, n), 0.1), unused,
             unused, unused, torch.ones(1))]
    best = {"lam": unused, "tau": unused, "alpha": unused, "phi": unused,
            "var": torch.full((1, n), 0.1)}
    member_phi = torch.tensor([[0.0, 0.0, 1.0]])
    for gap, share, weight in ((5.0, 0.5, 0.5), (5.0, 0.25, 0.25), (-5.0, 0.5, None),
                               (5.0, None, None), (5.0, 1.0, None), (5.0, 0.0, 0.0)):
        ll = torch.logsumexp(torch.tensor([0.0, 0.0]), 0) + gap  # vs the pool's evidence

        def fake(*args: Any, ll: torch.Tensor = ll, **kwargs: Any) -> tuple[torch.Tensor, ...]:
            return ll.reshape(1), member_phi, torch.full((1, n), 0.1)

        monkeypatch.setattr(_nngp, "nngp_pass", fake)
        phi = _nngp_member(list(pool), torch.empty(0), torch.empty(0), 0, 0.0,
                           (torch.empty(0), torch.empty(0)), 0, best, share)[0]
        want = weight if weight is not None else 1.0 / (1.0 + math.exp(-gap))
        np.testing.assert_allclose(phi[0], [(1 - want) / 2, (1 - want) / 2, want], atol=1e-12)


def test_auto_leaves_the_kernels_out_rather_than_hand_over():
    from tribute.methods.gp_shapley import GPShapley

    plain = GPShapley(nngp=False).solve_flops(8, 64, 2)
    with_nngp = GPShapley(nngp=True).solve_flops(8, 64, 2)
    limit = (plain + with_nngp) / 2
    m = make_mlp(8, 2, seed=7)
    x = _rand(2, 8, seed=16)
    kw: dict[str, Any] = {"method": "gp_shapley", "target": 0, "baseline": 0.0, "seed": 1,
                          "budget": 64, "max_solve_flops": limit, "lean": False}
    forced = tribute.explain(m, x, nngp=True, **kw)
    assert forced.params["path"] == "kernel_shap"
    auto = tribute.explain(m, x, **kw)
    assert auto.params["path"] == "gp" and auto.params["nngp_used"] is False
    np.testing.assert_allclose(auto.values, tribute.explain(m, x, nngp=False, **kw).values, atol=0)


def test_auto_leaves_the_kernels_out_where_only_they_break_the_cost_rule():
    from tribute.methods.gp_shapley import GPShapley

    # 256 players, 256 pairs: the kernels' predicted seconds exceed the 2 s floor of a cheap model
    forced = GPShapley(nngp=True)._rule(256, 514, 1, 0.0, design=True, nngp=True)
    assert forced["path"] == "gp-lean"
    rule, used = GPShapley()._path(256, 514, 1, 0.0, design=True, nngp=True)
    assert rule["path"] == "gp" and used is False
    # (auto asks for them only where one output's full search with them fits the floor, so
    # this drop is a safety net: see the next test)
    rule, used = GPShapley()._path(256, 514, 1, 100.0, design=True, nngp=True)
    assert rule["path"] == "gp" and used is True


def test_auto_is_decided_per_output_not_by_the_batch_or_the_models_timing(monkeypatch):
    from tribute.methods import gp_shapley as gp

    m = make_mlp(6, 2, seed=6)
    x = _rand(3, 6, seed=15)
    kw: dict[str, Any] = {"method": "gp_shapley", "target": 0, "baseline": 0.0, "seed": 1,
                          "budget": 32}

    def timing(seconds: float) -> None:
        monkeypatch.setattr(gp, "_seconds_per_eval", lambda game, t_empty: seconds)

    timing(0.0)  # a free model: the floor alone
    alone, batch = tribute.explain(m, x[:1], **kw), tribute.explain(m, x, **kw)
    assert alone.params["nngp_used"] is True and batch.params["nngp_used"] is True
    np.testing.assert_allclose(alone.values[0], batch.values[0], rtol=1e-6, atol=1e-9)
    # where one output's search with the kernels would exceed the floor, auto leaves them out
    # whatever the model costs and whatever lean says (it once followed the batch's allowance)
    monkeypatch.setattr(gp, "_FLOOR_SECONDS", 1e-9)
    timing(1e3)
    slow = tribute.explain(m, x, lean=False, **kw)
    assert slow.params["nngp_used"] is False and slow.params["path"] == "gp"
    assert tribute.explain(m, x, lean=False, nngp=True, **kw).params["nngp_used"] is True
    assert gp.GPShapley().solve_seconds(256, 514, 1, nngp=True) > 2.0  # 256 players at 514: off


def test_solve_flops_counts_auto_nngp_only_where_the_call_runs_it():
    """Auto leaves the kernels out of a batch whose fits with them exceed max_solve_flops: the
    public price says the same (it counted them anyway before)."""
    auto, off = GPShapley(), GPShapley(nngp=False)
    assert auto.solve_flops(20, 514, 1) > 3 * off.solve_flops(20, 514, 1)  # kernels run
    big = 1
    while auto._cost(20, 514, big, nngp=True)[0] <= auto.max_solve_flops:
        big += 1
    assert auto.solve_flops(20, 514, big) == off.solve_flops(20, 514, big)  # left out
    assert GPShapley(nngp=True).solve_flops(20, 514, big) > auto.max_solve_flops


def test_nngp_price_grows_with_players_only_through_the_dot_products():
    """The NNGP member's network-kernel tables do not grow with the players (only the composed
    inputs' dot products do): the price once charged ``4 ROWS K n`` flops to each of the 32
    kernels, 4x too much at 32 players and 512 evaluations, where auto then left them out
    (predicted 2.07 s per output against the 2 s floor; measured 0.28-0.49 s)."""
    on, off = GPShapley(nngp=True), GPShapley(nngp=False)

    def member(n: int) -> float:
        return on.solve_flops(n, 512, 1) - off.solve_flops(n, 512, 1)

    assert member(64) < 1.3 * member(16)
    assert GPShapley()._price(32, 512, 1, can_run=True)[0] is True
    assert GPShapley().solve_seconds(32, 512, 1, nngp=True) <= 2.0
