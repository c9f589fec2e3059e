"""The metagradient's second-order self term and expected (mask-averaged) option.

References: closed-form ridge regression (a differentiable replay of ``RidgeFit``), where
leave-one-out is ``tangent / (1 - h_ii)`` with ``h_ii`` the hat-matrix diagonal (Cook 1977);
finite differences of real weighted retraining through the bank; explicit autograd Jacobians.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from data_cases import Case, mlp_case, ridge_case

import tribute
from tribute.errors import InputError
from tribute.games.data import DataGame
from tribute.games.data_fits import RidgeFit
from tribute.methods.data_metagradient import self_output_derivatives


@dataclass(frozen=True)
class UnrolledRidge(RidgeFit):
    """``RidgeFit`` with its closed form as a differentiable function of the weights."""

    def unrolled(self, X: torch.Tensor, y: torch.Tensor, *, seed: int,
                 weights: torch.Tensor) -> dict[str, torch.Tensor]:
        A = torch.cat([X, torch.ones(len(X), 1, dtype=torch.float64)], 1)
        H = A.T @ (weights[:, None] * A) + self.l2 * torch.eye(A.shape[1], dtype=torch.float64)
        theta = torch.linalg.solve(H, A.T @ (weights * y.to(torch.float64)))
        return {"weight": theta[:-1][None], "bias": theta[-1:]}


def _ridge(n: int = 25) -> Case:
    c = ridge_case(n=n, d=3, n_test=4)
    fit = UnrolledRidge(l2=1.0)
    return Case(c.X, c.y, c.X_test, c.y_test, fit, fit(c.X, c.y, seed=0))


def _hat_diagonal(c: Case) -> np.ndarray:
    A = torch.cat([c.X, torch.ones(len(c.X), 1, dtype=torch.float64)], 1)
    H = A.T @ A + torch.eye(A.shape[1], dtype=torch.float64)
    return torch.einsum("nd,nd->n", A, torch.linalg.solve(H, A.T).T).numpy()


def _explain(c: Case, **kw: Any) -> tribute.Attribution:
    return tribute.explain(c.model, c.X_test, method="metagradient", players=c.data(),
                           target=c.y_test, **kw)


def test_second_order_term_is_the_leverage_on_ridge() -> None:
    """Exact probes: h_i is the hat-matrix diagonal, the credit is tangent * (1 + h_i), and the
    true leave-one-out change is tangent / (1 - h_i) (Sherman-Morrison), which the second-order
    credit approximates better than the tangent."""
    c = _ridge()
    tangent = _explain(c)
    so = _explain(c, curvature_probes=10_000)
    h = _hat_diagonal(c)
    np.testing.assert_allclose(so.extra["leverage"], h, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(so.values.numpy(), tangent.values.numpy() * (1 + h), rtol=1e-6,
                               atol=1e-12)
    assert so.extra["replays"] == 1 + 2 * len(c.X)
    game = tribute.build_game(c.model, c.X_test, players=c.data(), target=c.y_test)
    n = len(c.X)
    loo = game.full()[:, 0].numpy()[:, None] - game.value(np.ones((n, n)) - np.eye(n))[:, :, 0].numpy()
    np.testing.assert_allclose(loo, tangent.values.numpy() / (1 - h), rtol=1e-6, atol=1e-10)
    assert np.abs(so.values.numpy() - loo).max() < 0.5 * np.abs(tangent.values.numpy() - loo).max()


def test_expected_metagradient_is_the_mean_of_retraining_derivatives_at_its_masks() -> None:
    """Each averaged point is d v / d w_i at w = 1 - m, checked by central differences of real
    (weighted, closed-form) retraining through the bank at the recorded masks."""
    c = _ridge(20)
    attr = _explain(c, points=3, drop_fraction=0.2, seed=4)
    masks = attr.extra["masks"]
    assert masks.shape == (3, 20) and masks.any() and attr.extra["replays"] == 4
    game = tribute.build_game(c.model, c.X_test, players=c.data(), target=c.y_test)
    eps = 1e-5
    for i in (0, 7, 13):
        rows = []  # one-sided second-order differences (a dropped example has weight 0)
        for w0 in [np.ones(20)] + [1.0 - m for m in masks.astype(np.float64)]:
            one, two = w0.copy(), w0.copy()
            one[i] += eps
            two[i] += 2 * eps
            rows += [w0, one, two]
        v = game.value(np.stack(rows))[:, :, 0].numpy()
        fd = ((-3 * v[:, 0::3] + 4 * v[:, 1::3] - v[:, 2::3]) / (2 * eps)).mean(1)
        np.testing.assert_allclose(attr.values[:, i].numpy(), fd, rtol=1e-6, atol=1e-9)
    again = _explain(c, points=3, drop_fraction=0.2, seed=4)
    assert torch.equal(again.values, attr.values)
    other = _explain(c, points=3, drop_fraction=0.2, seed=5)
    assert not np.array_equal(other.extra["masks"], masks)


def test_defaults_and_q_zero_are_the_plain_tangent_bit_for_bit() -> None:
    c = mlp_case(n=20, steps=15)
    plain = _explain(c)
    # the method's own entries (the game adds per_sample_target for a target per test point)
    assert set(plain.extra) - {"per_sample_target"} == {"replay_gap", "metagradient_seconds", "replays"}
    assert plain.extra["replays"] == 1 and plain.n_evals >= 1
    for kw in ({"points": 3, "drop_fraction": 0.0}, {"points": 0, "drop_fraction": 0.3}):
        assert torch.equal(_explain(c, **kw).values, plain.values), kw


def test_probe_estimate_equals_the_hutchinson_sum_of_the_exact_jacobian() -> None:
    """Random probes: mean_z z_i (J z)_i with J the autograd Jacobian of the training outputs
    w.r.t. the weights (n x C x n); exact probes (>= n): its diagonal blocks."""
    c = mlp_case(n=12, steps=8)
    game = tribute.build_game(c.model, c.X_test, players=c.data(), target=c.y_test)
    assert isinstance(game, DataGame)
    fit, n = c.fit, 12

    def outputs(w: torch.Tensor) -> torch.Tensor:
        p = fit.unrolled(game.X_train, c.y, seed=0, weights=w)
        return game.forward(p, game.X_train)

    Jac = torch.autograd.functional.jacobian(outputs, torch.ones(n, dtype=torch.float64))
    diag = Jac[torch.arange(n), :, torch.arange(n)]  # n x C
    exact = self_output_derivatives(game, fit.unrolled, n, torch.Generator().manual_seed(0))
    np.testing.assert_allclose(exact.numpy(), diag.numpy(), rtol=1e-5, atol=1e-9)
    K = 5
    est = self_output_derivatives(game, fit.unrolled, K, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    Z = [torch.randint(0, 2, (n,), generator=gen).to(torch.float64) * 2 - 1 for _ in range(K)]
    ref = torch.stack([z[:, None] * torch.einsum("icj,j->ic", Jac, z) for z in Z]).mean(0)
    np.testing.assert_allclose(est.numpy(), ref.numpy(), rtol=1e-5, atol=1e-9)


def test_second_order_on_an_mlp_scales_each_example_by_one_plus_its_leverage() -> None:
    """On an MLP the probe estimate of h (random probes) enters as tangent * (1 + h), h in
    [-1, 1]; whether it beats the tangent there is measured on digits in
    benchmarks/bench_data_metagradient_drop.py (on a 24-example MLP it does not)."""
    c = mlp_case(n=24, steps=20)
    tangent = _explain(c)
    so = _explain(c, curvature_probes=4, seed=2)
    h = so.extra["leverage"]
    assert h.shape == (24,) and np.all(np.abs(h) <= 1) and h.std() > 0
    np.testing.assert_allclose(so.values.numpy(), tangent.values.numpy() * (1 + h), rtol=1e-12)
    assert so.extra["replays"] == 1 + 2 * 4
    assert torch.equal(_explain(c, curvature_probes=4, seed=2).values, so.values)


@pytest.mark.parametrize(("kw", "name"), [({"points": -1}, "points"),
                                          ({"curvature_probes": 1.5}, "curvature_probes"),
                                          ({"drop_fraction": 1.0}, "drop_fraction"),
                                          ({"drop_fraction": -0.1}, "drop_fraction")])
def test_bad_options_are_refused_by_name(kw: dict[str, Any], name: str) -> None:
    c = mlp_case(n=10, steps=3)
    with pytest.raises(InputError, match=name):
        _explain(c, **kw)


def _state(m: torch.nn.Module) -> tuple[dict[str, torch.Tensor], list[bool], list[bool]]:
    return ({k: v.clone() for k, v in m.state_dict().items()}, [x.training for x in m.modules()],
            [p.requires_grad for p in m.parameters()])


def test_model_left_as_it_was_also_after_an_error() -> None:
    c = mlp_case(n=12, steps=5)
    c.model.train()
    before = _state(c.model)
    attr = _explain(c, curvature_probes=3, points=1, drop_fraction=0.3)
    assert attr.n_evals >= 2
    after = _state(c.model)
    assert before[1:] == after[1:]
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    other = mlp_case(n=12, steps=5, seed=1)  # a model the replay does not reproduce
    moved = tribute.TrainingData(c.X, c.y, fit=c.fit)
    with pytest.raises(InputError, match="reproduce"):
        tribute.explain(other.model, c.X_test, method="metagradient", players=moved,
                        target=c.y_test, curvature_probes=2)
    assert all(torch.equal(before[0][k], c.model.state_dict()[k]) for k in before[0])


@pytest.mark.slow  # fills a tiny retrain bank (~10-50 s on 2 loaded cores)
def test_data_suite_scores_the_second_order_label() -> None:
    from tribute.bench.data_suite import build_data_case, run_data_case

    case = build_data_case("digits_mlp", 0, "tiny")
    assert case.methods["metagradient_2nd"] == {"method": "metagradient", "curvature_probes": 16}
    rows = run_data_case(case, methods=["metagradient", "metagradient_2nd"])["methods"]
    for label in ("metagradient", "metagradient_2nd"):
        assert "error" not in rows[label], rows[label]
        assert np.isfinite(rows[label]["lds_drop5pct"])
    assert rows["metagradient_2nd"]["lds"] != rows["metagradient"]["lds"]


def test_retrain_top_gives_the_highest_leverage_examples_their_exact_loo() -> None:
    """Ridge, exact probes: the m largest hat-diagonal examples get the closed-form LOO change
    tangent / (1 - h_i) (Sherman-Morrison); all others keep tangent * (1 + h_i)."""
    c = _ridge()
    tangent = _explain(c).values.numpy()
    m = 4
    attr = _explain(c, curvature_probes=10_000, retrain_top=m)
    h = _hat_diagonal(c)
    top = np.argsort(-h)[:m]
    np.testing.assert_array_equal(np.sort(attr.extra["retrained"]), np.sort(top))
    rest = np.setdiff1d(np.arange(len(h)), top)
    vals = attr.values.numpy()
    np.testing.assert_allclose(vals[:, top], tangent[:, top] / (1 - h[top]), rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(vals[:, rest], tangent[:, rest] * (1 + h[rest]), rtol=1e-6,
                               atol=1e-12)
    assert attr.n_evals >= m + 1


def test_retrain_top_refusals_and_model_left_as_it_was() -> None:
    c = mlp_case(n=12, steps=5)
    before = _state(c.model)
    with pytest.raises(InputError, match=r"retrain_top=3.*curvature_probes"):
        _explain(c, retrain_top=3)
    with pytest.raises(InputError, match="retrain_top"):
        _explain(c, retrain_top=-1)
    grouped = tribute.TrainingData(c.X, c.y, fit=c.fit, groups=np.arange(12) // 2)
    with pytest.raises(InputError, match=r"retrain_top=2.*groups"):
        tribute.explain(c.model, c.X_test, method="metagradient", players=grouped,
                        target=c.y_test, curvature_probes=2, retrain_top=2)
    attr = _explain(c, curvature_probes=3, retrain_top=2)
    assert len(attr.extra["retrained"]) == 2
    after = _state(c.model)
    assert before[1:] == after[1:]
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
