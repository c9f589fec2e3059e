"""TRAK against the paper's formula where ``Phi^T Phi`` is singular below ``n_train`` columns.

A softmax model's margin is unchanged by a shift shared by every class, so on a ``C``-class
linear model the margin gradients span ``(C - 1)(d + 1)`` of the ``C (d + 1)`` parameters: the
kernel is singular for ``projector="none"`` (and for ``proj_dim`` above that rank) whatever
``n_train``. Truth: ``tau = T (Phi^T Phi)^+ Phi^T diag(1 - p)`` in numpy (Park et al. 2023).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.games.data_fits import LogisticFit


def _margin_grad(th: np.ndarray, a: np.ndarray, c: int) -> np.ndarray:
    z = a @ th.T
    oth = [k for k in range(th.shape[0]) if k != c]
    q = np.exp(z[oth] - z[oth].max())
    q /= q.sum()
    gz = np.zeros(th.shape[0])
    gz[c], gz[oth] = 1.0, -q
    return np.kron(gz, a)


def _case(theta: str) -> tuple[torch.nn.Linear, tribute.TrainingData, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    n, d, C = 40, 3, 3
    X, y = rng.normal(size=(n, d)), rng.integers(0, C, n)
    Xt, yt = rng.normal(size=(3, d)), np.array([0, 1, 2])
    fit = LogisticFit(C, l2=0.5)
    model = fit(torch.tensor(X), torch.tensor(y), seed=0)
    assert isinstance(model, torch.nn.Linear)
    if theta == "zeros":  # the first checkpoint of a run from zeros
        with torch.no_grad():
            model.weight.zero_()
            model.bias.zero_()
    th = np.hstack([model.weight.detach().numpy(), model.bias.detach().numpy()[:, None]])
    A, At = np.hstack([X, np.ones((n, 1))]), np.hstack([Xt, np.ones((3, 1))])
    z = A @ th.T
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    Phi = np.stack([_margin_grad(th, A[i], int(y[i])) for i in range(n)])
    T = np.stack([_margin_grad(th, At[b], int(yt[b])) for b in range(3)])
    tau = T @ np.linalg.pinv(Phi.T @ Phi) @ Phi.T * (1 - p[np.arange(n), y])[None, :]
    return model, tribute.TrainingData(torch.tensor(X), torch.tensor(y), fit=fit), Xt, yt, tau


@pytest.mark.parametrize("theta", ["zeros", "trained"])
@pytest.mark.parametrize("kw", [{"projector": "none"}, {"proj_dim": 12}, {"proj_dim": 10}])
def test_trak_rank_deficient_kernel_matches_paper(theta: str, kw: dict[str, Any]) -> None:
    model, data, Xt, yt, tau = _case(theta)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = tribute.explain(model, torch.tensor(Xt), method="trak", target=torch.tensor(yt),
                        players=data, **kw)
    np.testing.assert_allclose(a.values.numpy().reshape(tau.shape), tau, rtol=0, atol=1e-9 * np.abs(tau).max())
    assert a.extra["kernel_rank"] == 8  # (C - 1)(d + 1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_trak_over_checkpoints_from_zeros() -> None:
    """TRAK ensembled over checkpoints of a run that starts at zeros (as LogisticFit's does)."""
    model, data, Xt, yt, tau_trained = _case("trained")
    zero, _, _, _, tau_zero = _case("zeros")
    data = tribute.TrainingData(data.X, data.y, fit=data.fit, checkpoints=[zero, model])
    a = tribute.explain(model, torch.tensor(Xt), method="trak", target=torch.tensor(yt),
                        players=data, projector="none")
    want = (tau_zero + tau_trained) / 2
    np.testing.assert_allclose(a.values.numpy().reshape(want.shape), want, rtol=0, atol=1e-9 * np.abs(want).max())


def test_trak_average_q_is_algorithm_1_over_checkpoints() -> None:
    """``average_q=True``: Park et al. (2023) Algorithm 1, ``tau = mean_m(T_m K_m^+ Phi_m^T) x
    mean_m(Q_m)``, over checkpoints of a gradient-descent run written here in numpy; the default
    stays the mean of the per-model scores."""
    rng = np.random.default_rng(4)
    n, d, C = 30, 2, 3
    X, y = rng.normal(size=(n, d)), rng.integers(0, C, n)
    Xt, yt = rng.normal(size=(2, d)), np.array([2, 0])
    A, At = np.hstack([X, np.ones((n, 1))]), np.hstack([Xt, np.ones((2, 1))])
    Y = np.eye(C)[y]
    th = rng.normal(size=(C, d + 1))
    models, kern, qs, scores = [], [], [], []
    for steps in (1, 10, 60):  # checkpoints far apart: their Q differ
        for _ in range(steps):
            z = A @ th.T
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            th = th - 1.0 * (((p - Y).T @ A) / n + 0.1 * th)
        z = A @ th.T
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        Phi = np.stack([_margin_grad(th, A[i], int(y[i])) for i in range(n)])
        T = np.stack([_margin_grad(th, At[b], int(yt[b])) for b in range(2)])
        k = T @ np.linalg.pinv(Phi.T @ Phi) @ Phi.T
        q = 1 - p[np.arange(n), y]
        kern.append(k)
        qs.append(q)
        scores.append(k * q[None, :])
        m = torch.nn.Linear(d, C).double()
        with torch.no_grad():
            m.weight.copy_(torch.tensor(th[:, :d]))
            m.bias.copy_(torch.tensor(th[:, d]))
        models.append(m)
    data = tribute.TrainingData(torch.tensor(X), torch.tensor(y), checkpoints=models)
    paper = np.mean(kern, 0) * np.mean(qs, 0)[None, :]
    for average_q, want in ((True, paper), (False, np.mean(scores, 0))):
        a = tribute.explain(models[-1], torch.tensor(Xt), method="trak", target=torch.tensor(yt),
                            players=data, projector="none", average_q=average_q)
        np.testing.assert_allclose(a.values.numpy().reshape(2, n), want, rtol=0, atol=1e-9 * np.abs(want).max())
    assert np.abs(paper - np.mean(scores, 0)).max() > 0.02 * np.abs(paper).max()  # they differ here
