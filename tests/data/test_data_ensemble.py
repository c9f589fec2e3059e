"""Ensembles of independently trained models (``n_models=k``) for the gradient data estimators."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from data_cases import Case, logistic_case, mlp_case

import tribute
from tribute.errors import InputError
from tribute.games.data import ensemble_seed
from tribute.models import as_model

#: label -> (method, params): every estimator that takes ``n_models`` and every influence solver.
ESTIMATORS: dict[str, tuple[str, dict[str, Any]]] = {
    "grad_dot": ("grad_dot", {"lr": 0.5}),
    "grad_cos": ("grad_cos", {}),
    "representer": ("representer", {}),
    "trak": ("trak", {"proj_dim": 8}),
    "influence_explicit": ("influence", {}),
    "influence_abs": ("influence", {"indefinite": "abs"}),
    "influence_cg": ("influence", {"solver": "cg", "max_iter": 10}),
    "influence_lissa": ("influence", {"solver": "lissa", "damping": 0.2, "max_iter": 3}),
    "influence_ekfac": ("influence", {"solver": "ekfac"}),
    "influence_loo_step": ("influence", {"loo_step": True}),
}


def _explain(case: Case, model: torch.nn.Module, label: str, **kw: Any) -> tribute.Attribution:
    method, params = ESTIMATORS[label]
    return tribute.explain(model, case.X_test, method=method, players=kw.pop("data", case.data()),
                           target="predicted" if "target" not in kw else kw.pop("target"),
                           seed=kw.pop("seed", 3), **params, **kw)


def _state(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], bool]:
    return {k: v.clone() for k, v in model.state_dict().items()}, model.training


def test_ensemble_seeds_are_deterministic_and_distinct() -> None:
    assert ensemble_seed(0, 1) == int(np.random.SeedSequence([0, 1]).generate_state(1)[0])
    seeds = {ensemble_seed(s, m) for s in range(4) for m in range(1, 6)}
    assert len(seeds) == 20 and all(0 <= s < 2**32 for s in seeds)
    assert ensemble_seed(7, 2) == ensemble_seed(7, 2) != ensemble_seed(2, 7)


@pytest.mark.parametrize("label", sorted(ESTIMATORS))
def test_one_model_is_the_single_model_estimator(label: str) -> None:
    case = mlp_case(steps=40)
    plain = _explain(case, case.model, label)
    one = _explain(case, case.model, label, n_models=1)
    assert torch.equal(plain.values, one.values)
    assert one.n_evals == 1 and "fit_seconds" not in one.extra and "per_model" not in one.extra


#: the iterative solvers spend 100 power-iteration HVPs per model: their ensemble runs are slow
_SLOW = {"influence_cg", "influence_lissa"}


@pytest.mark.parametrize("label", [pytest.param(k, marks=pytest.mark.slow) if k in _SLOW else k
                                   for k in sorted(ESTIMATORS)])
def test_ensemble_is_the_mean_of_per_model_scores(label: str) -> None:
    """Members are ``fit(X, y, seed=ensemble_seed(seed, m))``; each is scored as the explained
    model on its own and the ensemble's credits are their mean."""
    case = mlp_case(steps=40)
    before = _state(case.model)
    ens = _explain(case, case.model, label, n_models=3, seed=5)
    assert _state(case.model)[1] == before[1]
    assert all(torch.equal(before[0][k], v) for k, v in _state(case.model)[0].items())
    seeds = [ensemble_seed(5, m) for m in (1, 2)]
    members = [case.model] + [case.fit(case.X, case.y, seed=s) for s in seeds]
    parts = [_explain(case, m, label, seed=5).values for m in members]
    assert not torch.allclose(parts[0], parts[1])  # the members differ (an MLP depends on its seed)
    np.testing.assert_allclose(ens.values.numpy(), torch.stack(parts).mean(0).numpy(),
                               rtol=1e-9, atol=1e-12)
    assert ens.extra["n_models"] == 3 and ens.extra["n_fits"] == 2 and ens.extra["fit_seeds"] == seeds
    assert 0 < ens.extra["fit_seconds"] <= ens.seconds
    assert ens.n_evals == 3 and len(ens.extra["per_model"]) == 3
    again = _explain(case, case.model, label, n_models=3, seed=5)
    assert torch.equal(again.values, ens.values)  # same seed, same members, same credits


@pytest.mark.parametrize("label", ["grad_dot", "trak", "influence_explicit", "representer"])
def test_seed_independent_fit_gives_the_single_model(label: str) -> None:
    """Logistic regression is convex: every seed trains the same model, so the ensemble of three
    equals the explained model alone."""
    case = logistic_case()
    single = _explain(case, case.model, label)
    ens = _explain(case, case.model, label, n_models=3)
    np.testing.assert_allclose(ens.values.numpy(), single.values.numpy(), rtol=1e-10, atol=1e-12)
    assert ens.extra["n_fits"] == 2


def test_influence_reports_each_members_damping() -> None:
    case = mlp_case(steps=40)
    ens = _explain(case, case.model, "influence_abs", n_models=2)
    single = _explain(case, case.model, "influence_abs")
    assert ens.extra["damping"] == single.extra["damping"] == ens.params["damping_used"]
    dampings = [m["damping"] for m in ens.extra["per_model"]]
    assert dampings[0] == single.extra["damping"] and dampings[1] != dampings[0]  # each its own


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3", None])
def test_bad_n_models_is_refused_by_name(bad: Any) -> None:
    case = mlp_case(steps=40)
    with pytest.raises(InputError, match=r"n_models"):
        _explain(case, case.model, "grad_dot", n_models=bad)


def test_ensemble_needs_fit_and_one_ensemble_at_a_time() -> None:
    case = mlp_case(steps=40)
    no_fit = tribute.TrainingData(case.X, case.y, loss="cross_entropy", l2=1e-3)
    with pytest.raises(InputError, match=r"n_models=2 .*no fit="):
        _explain(case, case.model, "influence_explicit", n_models=2, data=no_fit)
    # n_models=1 needs no fit
    _explain(case, case.model, "grad_dot", n_models=1, data=no_fit)
    other = case.fit(case.X, case.y, seed=9)
    with pytest.raises(InputError, match=r"n_models=2 .*checkpoint"):
        _explain(case, case.model, "trak", n_models=2, data=case.data(checkpoints=[other]))
    with pytest.raises(InputError, match=r"seed=-1"):
        _explain(case, case.model, "grad_dot", n_models=2, seed=-1)


def test_a_fit_of_another_architecture_is_named() -> None:
    case = mlp_case(steps=40)

    def wrong(X: Any, y: Any, *, seed: int, weights: Any = None) -> torch.nn.Module:
        return torch.nn.Linear(4, 2).double()

    data = tribute.TrainingData(case.X, case.y, fit=wrong, loss="cross_entropy", l2=1e-3,
                                reduction="mean")
    before = _state(case.model)
    with pytest.raises(InputError, match=r"ensemble member 1 \(seed \d+\).*architecture"):
        _explain(case, case.model, "grad_dot", n_models=2, data=data)
    assert all(torch.equal(before[0][k], v) for k, v in _state(case.model)[0].items())


def test_trak_checkpoints_still_ensemble_with_one_model() -> None:
    case = mlp_case(steps=40)
    other = case.fit(case.X, case.y, seed=9)
    both = _explain(case, case.model, "trak", data=case.data(checkpoints=[case.model, other]))
    parts = [_explain(case, m, "trak").values for m in (case.model, other)]
    np.testing.assert_allclose(both.values.numpy(), ((parts[0] + parts[1]) / 2).numpy(),
                               rtol=1e-10, atol=1e-12)
    assert both.extra["n_models"] == 2


def test_cg_on_an_indefinite_hessian_restarts_with_more_damping_instead_of_nan() -> None:
    """50 power iterations underestimate |lambda_min| of this MLP's Hessian (-0.070 vs -0.085
    exactly), so the automatic shift left H + d I indefinite and CG returned NaN everywhere."""
    case = mlp_case(steps=40)
    exact = _explain(case, case.model, "influence_explicit")
    cg = _explain(case, case.model, "influence_cg")
    assert bool(torch.isfinite(cg.values).all()) and cg.extra["damping_restarts"] >= 1
    assert cg.extra["damping"] > -exact.extra["lambda_min"]
    with pytest.raises(InputError, match=r"not positive definite .*raise damping"):
        _explain(case, case.model, "influence_cg", damping=0.05)


def test_conv_fit_is_deterministic_and_weights_are_subsets() -> None:
    """ConvFit: same seed same model, another seed another model, zero weights = leaving out,
    and every parameter is in a Conv2d/Linear layer (EK-FAC covers it)."""
    from tribute.games.data_fits import ConvFit

    g = torch.Generator().manual_seed(0)
    X = torch.rand(30, 36, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (30,), generator=g)
    fit = ConvFit(3, height=6, width=6, channels=2, steps=15)
    a, b, c = fit(X, y, seed=1), fit(X, y, seed=1), fit(X, y, seed=2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.allclose(next(a.parameters()), next(c.parameters()))
    w = torch.ones(30, dtype=torch.float64)
    w[:10] = 0
    sub, weighted = fit(X[10:], y[10:], seed=1), fit(X, y, seed=1, weights=w)
    for p, q in zip(sub.parameters(), weighted.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
    data = tribute.TrainingData(X, y, fit=fit)
    ek = tribute.explain(a, X[:2], method="influence", solver="ekfac", target=y[:2], players=data)
    assert set(ek.extra["damping_per_layer"]) == {"1", "5"} and ek.values.shape == (2, 30)
    with pytest.raises(InputError, match="height= and width="):
        fit(X[:, :30], y, seed=0)


def test_suite_ensemble_labels_run_only_when_named() -> None:
    from tribute.bench.data_suite import OPTIONAL_CASES, build_data_case, run_data_case

    case = build_data_case("digits_mlp", seed=0, scale="tiny")
    assert "trak_ens5" in case.optional and "trak_ens5" not in case.methods
    res = run_data_case(case, methods=["trak", "trak_ens5"])
    row = res["methods"]["trak_ens5"]
    assert row["n_models"] == 5 and 0 < row["fit_seconds"] <= row["seconds"]
    assert "n_models" not in res["methods"]["trak"]
    assert "digits_cnn" in OPTIONAL_CASES
    cnn = build_data_case("digits_cnn", seed=0, scale="tiny")
    assert "influence_ekfac" in cnn.methods and next(cnn.model.parameters()).shape == (8, 1, 3, 3)


def _lissa_run(case: Case, damping: float | None, max_iter: int) -> tribute.Attribution:
    return tribute.explain(case.model, case.X_test, method="influence", players=case.data(),
                           target="predicted", seed=3, solver="lissa", damping=damping, max_iter=max_iter)


def test_lissa_refuses_a_diverging_series_with_a_given_damping() -> None:
    """The same Hessian (lambda_min -0.085): with damping 0.05, H + d I keeps a negative
    eigenvalue, along which the Neumann series grows geometrically (before: a huge answer was
    returned silently). Its growing step is detected within 100 iterations and refused."""
    case = mlp_case(steps=40)
    with pytest.raises(InputError, match=r"LiSSA series diverged.*raise damping"):
        _lissa_run(case, 0.05, max_iter=10)


@pytest.mark.slow  # 3,000 LiSSA iterations (~12 s)
def test_lissa_on_an_indefinite_hessian_restarts_with_more_damping() -> None:
    """With damping=None the power iteration's shift leaves H + d I indefinite; the diverging
    series is detected, the shift raised, and the answer = the explicit solve at that damping."""
    case = mlp_case(steps=40)
    exact = _explain(case, case.model, "influence_explicit")
    lissa = _lissa_run(case, None, max_iter=300)
    assert bool(torch.isfinite(lissa.values).all()) and lissa.extra["damping_restarts"] >= 1
    assert lissa.extra["damping"] > -exact.extra["lambda_min"]
    same = _explain(case, case.model, "influence_explicit", damping=lissa.extra["damping"])
    scale = float(same.values.abs().max())
    assert float((lissa.values - same.values).abs().max()) < 0.05 * scale


class _BNNet(torch.nn.Module):
    """Linear -> BatchNorm1d -> tanh -> Linear; eval mode, so outputs read the running stats."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(4, 6)
        self.bn = torch.nn.BatchNorm1d(6)
        self.b = torch.nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.bn(self.a(x))))


def _bn_fit(X: torch.Tensor, y: torch.Tensor, *, seed: int, weights: Any = None) -> torch.nn.Module:
    """A deterministic 'fit' whose members differ in parameters AND BatchNorm statistics."""
    g = torch.Generator().manual_seed(int(seed))
    net = _BNNet().double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
        state = net.bn.state_dict()
        state["running_mean"].copy_(torch.randn(6, generator=g, dtype=torch.float64))
        state["running_var"].copy_(torch.rand(6, generator=g, dtype=torch.float64) + 0.5)
        state["num_batches_tracked"].fill_(int(seed) % 97)
    return net.eval()


def test_ensemble_members_and_checkpoints_carry_their_own_buffers() -> None:
    """Each member's outputs (and gradients) equal its own model's, BatchNorm statistics
    included; before, members ran with the explained model's running statistics."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(30, 4, generator=g, dtype=torch.float64)
    y = (X[:, 0] > 0).long()
    Xt = torch.randn(5, 4, generator=g, dtype=torch.float64)
    model = _bn_fit(X, y, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = tribute.TrainingData(X, y, fit=_bn_fit, l2=0.1)
    game = data.make_game(as_model(model, "torch"), Xt, target="predicted")
    members, info = game.ensemble(3, 7, method="grad_dot")
    assert info["fit_seeds"] == [ensemble_seed(7, 1), ensemble_seed(7, 2)]
    for params, s in zip(members, [0, *info["fit_seeds"]]):
        own = _bn_fit(X, y, seed=s)
        with torch.no_grad():
            want = own(Xt)
        torch.testing.assert_close(game.forward(params, Xt), want, rtol=0, atol=1e-12)
        # gradients at the member use its statistics too
        x0 = Xt[:1]
        out = own(x0)[0, 0]
        grads = torch.autograd.grad(out, list(own.parameters()))
        flat_want = torch.cat([gr.reshape(-1) for gr in grads])
        def first(p: dict[str, torch.Tensor], params: dict[str, torch.Tensor] = params,
                  x0: torch.Tensor = x0) -> torch.Tensor:
            return game.forward({**params, **p}, x0)[0, 0]

        got = torch.func.grad(first)({k: params[k] for k in game.param_names})
        torch.testing.assert_close(torch.cat([got[k].reshape(-1) for k in game.param_names]),
                                   flat_want, rtol=0, atol=1e-12)
    # the members differ from the explained model in their statistics (the test can fail)
    assert not torch.equal(members[1]["bn.running_mean"], game.buffers_of({})["bn.running_mean"])
    # checkpoints: the same
    cks = [_bn_fit(X, y, seed=11), _bn_fit(X, y, seed=12)]
    cgame = tribute.TrainingData(X, y, fit=_bn_fit, l2=0.1, checkpoints=cks).make_game(
        as_model(model, "torch"), Xt, target="predicted")
    for (params, _), ck in zip(cgame.checkpoints(), cks):
        with torch.no_grad():
            torch.testing.assert_close(cgame.forward(params, Xt), ck(Xt), rtol=0, atol=1e-12)
    # and whole estimators run on them, the explained model left as it was
    attr = tribute.explain(model, Xt, method="grad_dot", players=data, target="predicted",
                           n_models=2, seed=7)
    assert np.isfinite(attr.values).all()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not model.training
