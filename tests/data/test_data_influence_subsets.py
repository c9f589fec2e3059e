"""influence(subset_fraction=...): gradients at the expected Newton model of random subsets.

Checked against (1) exact enumeration of every half subset on mean-reduced ridge regression,
where one Newton step is exact retraining, (2) a dense reference implementation on an indefinite
MLP, and (3) refusals that name the argument and leave the model untouched.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from data_cases import mlp_case, ridge_case
from torch import nn

import tribute
from tribute.errors import InputError


@dataclass(frozen=True)
class MeanRidgeFit:
    """``sum_i w_i (f(x_i) - y_i)^2 / 2 / sum_i w_i + l2/2 ||(W, b)||^2`` in closed form."""

    l2: float = 0.05
    reduction: str = "mean"
    loss: str = "mse"

    def __call__(self, X: torch.Tensor, y: torch.Tensor, *, seed: int,
                 weights: torch.Tensor | None = None) -> nn.Module:
        theta = _ridge_theta(X, y, torch.ones(len(X), dtype=torch.float64) if weights is None
                             else weights, self.l2)
        model = nn.Linear(X.shape[1], 1).double()
        with torch.no_grad():
            model.weight.copy_(theta[:-1][None])
            model.bias.copy_(theta[-1:])
        return model


def _ridge_theta(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, l2: float) -> torch.Tensor:
    A = torch.cat([X, torch.ones(len(X), 1, dtype=torch.float64)], 1)
    w = w / w.sum()
    H = A.T @ (w[:, None] * A) + l2 * torch.eye(A.shape[1], dtype=torch.float64)
    return torch.linalg.solve(H, A.T @ (w * y))


def test_half_subsets_mean_model_matches_enumeration_on_ridge() -> None:
    """Mean-reduced ridge: a Newton step is exact retraining, so the expected subset model is
    ``E_S[theta_S]`` over all C(16, 8) halves; the credits at the estimated centre must be those
    at the enumerated mean up to the expansion's fourth-order remainder."""
    g = torch.Generator().manual_seed(3)
    n, d = 16, 2
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -0.5], dtype=torch.float64) + 0.2 * X[:, 1] ** 2 \
        + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
    Xt = torch.randn(4, d, generator=g, dtype=torch.float64)
    fit = MeanRidgeFit(l2=2.0)  # leverage small enough for the fourth-order remainder to be small
    model = fit(X, y, seed=0)
    data = tribute.TrainingData(X, y, fit=fit)
    kw: dict[str, Any] = {"players": data, "target": torch.zeros(4, dtype=torch.float64)}
    got = tribute.explain(model, Xt, method="influence", subset_fraction=0.5, **kw).values
    plain = tribute.explain(model, Xt, method="influence", **kw).values
    # the enumerated mean model of every half subset (weights 1 on S, 0 elsewhere)
    thetas = []
    for S in itertools.combinations(range(n), n // 2):
        w = torch.zeros(n, dtype=torch.float64)
        w[list(S)] = 1.0
        thetas.append(_ridge_theta(X, y, w, fit.l2))
    mean_theta = torch.stack(thetas).mean(0)
    theta = _ridge_theta(X, y, torch.ones(n, dtype=torch.float64), fit.l2)
    # the credits at a parameter vector: -1/n * x_test^T H^-1 g_k(theta) (H does not depend on theta)
    A = torch.cat([X, torch.ones(n, 1, dtype=torch.float64)], 1)
    At = torch.cat([Xt, torch.ones(4, 1, dtype=torch.float64)], 1)
    H = A.T @ A / n + fit.l2 * torch.eye(d + 1, dtype=torch.float64)
    U = torch.linalg.solve(H, At.T)

    def credits(t: torch.Tensor) -> torch.Tensor:
        grads = A * (A @ t - y)[:, None]
        grads = grads - grads.mean(0)  # a mean objective's credits are centred (aud40d)
        return -(U.T @ grads.T) / n

    np.testing.assert_allclose(plain.numpy(), credits(theta).numpy(), rtol=1e-8, atol=1e-12)
    want = credits(mean_theta)
    gap_plain = float((plain - want).abs().max())
    gap_got = float((got - want).abs().max())
    assert gap_plain > 1e-3 * float(want.abs().max())  # the subsets' mean model is elsewhere
    assert gap_got < 0.1 * gap_plain, (gap_got, gap_plain)  # 0.04 here (0.17 with l2=0.5)


def test_subset_fraction_equals_a_dense_reference_on_an_indefinite_mlp() -> None:
    case = mlp_case(n=30, steps=60)
    data = case.data()
    kw: dict[str, Any] = {"players": data, "target": "predicted"}
    alpha = 0.3
    got = tribute.explain(case.model, case.X_test, method="influence", indefinite="abs",
                          subset_fraction=alpha, **kw)
    # dense reference: parameters as one flat vector, everything by torch.func on the module
    model = case.model
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def unflat(f: torch.Tensor) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for k, sh in zip(names, shapes):
            m = int(np.prod(sh))
            out[k] = f[i : i + m].reshape(sh)
            i += m
        return out

    def outputs(f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(model, unflat(f), (x,))

    n = len(case.X)
    s = 1.0 / n

    def objective(f: torch.Tensor) -> torch.Tensor:
        ce = nn.functional.cross_entropy(outputs(f, case.X), case.y, reduction="none")
        return s * ce.sum() + 0.5 * data.l2 * (f * f).sum()

    def losses(f: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(outputs(f, case.X), case.y, reduction="none")

    H = torch.func.hessian(objective)(flat0)
    ev, V = torch.linalg.eigh(H)
    assert float(ev[0]) < 0
    dmp = 1e-3 * float(ev.abs().max())
    R = V @ torch.diag(1 / (ev.abs() + dmp)) @ V.T
    Gtr = torch.func.jacrev(losses)(flat0)  # n x P
    J = torch.func.jacrev(lambda f: outputs(f, case.X))(flat0)  # n x C x P
    p = torch.softmax(outputs(flat0, case.X), 1).detach()
    M = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    Y = R @ (Gtr - Gtr.mean(0)).T
    z = sum(J[k].T @ M[k] @ J[k] @ Y[:, k] for k in range(n))
    v = s * s * (1 - alpha) / alpha * n / (n - 1)
    bar = flat0 + v * (R @ z)
    out_t = outputs(flat0, case.X_test).detach()
    lab = out_t.argmax(1)

    def margins(f: torch.Tensor) -> torch.Tensor:
        o = outputs(f, case.X_test)
        zy = o.gather(1, lab[:, None])[:, 0]
        return zy - torch.logsumexp(o.scatter(1, lab[:, None], float("-inf")), 1)

    Gte = torch.func.jacrev(margins)(bar)
    Gbar = torch.func.jacrev(losses)(bar)
    want = -s * (Gte @ R) @ (Gbar - Gbar.mean(0)).T  # a mean objective's credits are centred
    np.testing.assert_allclose(got.values.numpy(), want.detach().numpy(), rtol=1e-6,
                               atol=1e-9 * float(want.abs().max()))
    assert got.extra["subset_shift_norm"] == pytest.approx(float((bar - flat0).norm()), rel=1e-8)
    plain = tribute.explain(case.model, case.X_test, method="influence", indefinite="abs", **kw)
    assert not np.allclose(plain.values.numpy(), got.values.numpy(), rtol=1e-3)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.2, True, "half"])
def test_subset_fraction_refuses_bad_values_and_leaves_the_model_alone(bad: object) -> None:
    case = mlp_case(n=20, steps=20)
    before = {k: v.detach().clone() for k, v in case.model.state_dict().items()}
    case.model.train()
    with pytest.raises(InputError, match=f"subset_fraction={bad!r}"):
        tribute.explain(case.model, case.X_test, method="influence", subset_fraction=bad,
                        players=case.data(), target="predicted")
    assert case.model.training
    for k, v in case.model.state_dict().items():
        assert torch.equal(v, before[k])
    assert not case.model._forward_hooks and not case.model._forward_pre_hooks


def test_subset_fraction_refusals_name_the_conflict() -> None:
    case = mlp_case(n=20, steps=20)
    kw: dict[str, Any] = {"players": case.data(), "target": "predicted", "subset_fraction": 0.5}
    with pytest.raises(InputError, match="needs solver='explicit' without loo_step"):
        tribute.explain(case.model, case.X_test, method="influence", solver="cg", **kw)
    with pytest.raises(InputError, match="needs solver='explicit' without loo_step"):
        tribute.explain(case.model, case.X_test, method="influence", loo_step=True, **kw)
    rc = ridge_case(n=20)  # RidgeFit: a summed objective
    before = {k: v.detach().clone() for k, v in rc.model.state_dict().items()}
    with pytest.raises(InputError, match="reduction='sum'"):
        tribute.explain(rc.model, rc.X_test, method="influence", players=rc.data(),
                        target=rc.y_test, subset_fraction=0.5)
    for k, v in rc.model.state_dict().items():
        assert torch.equal(v, before[k])
