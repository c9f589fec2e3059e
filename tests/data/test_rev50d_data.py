"""rev50d: review of aud50d (data games count distinct subsets; tracin counts checkpoints).

``output="logit"`` on a data game with one binary logit (``loss="binary_cross_entropy"``)
explained the model's ``z`` (class 1's logit) whatever the test point's label, while the data
game reads targets as class labels (``target=1`` accepted, the margin ``(2y - 1) z``) and
:mod:`tribute.targets`' table of binary classifiers gives class 0 the logit ``-z`` (a feature
game on the same module declared binary, ``model_output=BinaryKind("logit")``, explains ``-z``
for ``target=0``). A label-0 test point's credits came back sign-flipped, with no word:
leave-one-out credits of ``target=0, output="logit"`` were those of ``z`` (max 1.04 off the
class-0 logit's on 8 examples). Truth: hand gradients of a linear logit, and leave-one-out
retraining of a hand Newton logistic regression.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import tribute


class _BinLogitFit:
    """One-logit logistic regression by Newton's method (float64, summed loss, l2 on all)."""

    loss = "binary_cross_entropy"
    reduction = "sum"
    l2 = 1.0

    def __call__(self, X: Any, y: Any, *, seed: int = 0, weights: Any = None) -> torch.nn.Linear:
        X = torch.as_tensor(X, dtype=torch.float64)
        y = torch.as_tensor(y, dtype=torch.float64).reshape(-1)
        w = torch.ones(len(X), dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        A = torch.cat([X, torch.ones(len(X), 1, dtype=torch.float64)], 1)
        th = torch.zeros(A.shape[1], dtype=torch.float64)
        for _ in range(30):
            p = torch.sigmoid(A @ th)
            H = A.T @ ((w * p * (1 - p))[:, None] * A) + self.l2 * torch.eye(A.shape[1], dtype=torch.float64)
            th = th - torch.linalg.solve(H, A.T @ (w * (p - y)) + self.l2 * th)
        m = torch.nn.Linear(X.shape[1], 1).double()
        with torch.no_grad():
            m.weight.copy_(th[:-1][None])
            m.bias.copy_(th[-1:])
        return m


def _case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(8, 2))
    y = (X[:, 0] + 0.7 * rng.normal(size=8) > 0).astype(int)
    return X, y, rng.normal(size=(4, 2))


def test_bce_logit_of_a_label_0_point_is_class_0s_logit() -> None:
    X, y, Xt = _case()
    fit = _BinLogitFit()
    model = fit(X, y)
    A, At = np.c_[X, np.ones(8)], np.c_[Xt, np.ones(4)]
    theta = np.r_[model.weight.detach().numpy().reshape(-1), model.bias.detach().numpy()]
    p = 1 / (1 + np.exp(-(A @ theta)))
    yt = np.array([0, 1, 1, 0])
    sign = (2 * yt - 1)[:, None]
    data = tribute.TrainingData(X, y, fit=fit, loss="binary_cross_entropy")
    # grad_dot: -<grad v_t, grad BCE_i>, v_t = (2 y_t - 1) z_t the label's logit (class 0's is -z)
    truth = -((sign * At) @ ((p - y)[:, None] * A).T)
    got = tribute.explain(model, Xt, method="grad_dot", players=data, target=yt, output="logit")
    np.testing.assert_allclose(np.asarray(got.values).reshape(4, 8), truth, atol=1e-12)
    # leave-one-out retraining by hand, target=0 for every point: the credits of -z
    z = model(torch.as_tensor(Xt)).detach().numpy().reshape(-1)
    z_loo = np.stack([fit(np.delete(X, i, 0), np.delete(y, i))(torch.as_tensor(Xt)).detach().numpy()
                      .reshape(-1) for i in range(8)], 1)
    loo = tribute.explain(model, Xt, method="feature_ablation", players=data, target=0, output="logit")
    np.testing.assert_allclose(np.asarray(loo.values).reshape(4, 8), -(z[:, None] - z_loo), atol=1e-10)
    # target=None: each point's predicted class's logit, |z|, as its margin
    pred = tribute.explain(model, Xt, method="grad_dot", players=data, output="logit")
    marg = tribute.explain(model, Xt, method="grad_dot", players=data, output="margin")
    np.testing.assert_array_equal(np.asarray(pred.values), np.asarray(marg.values))


def test_bce_logit_matches_the_binary_feature_game_convention() -> None:
    # the same module, declared a binary classifier, on a feature game: target=0 is -z
    X, y, Xt = _case()
    model = _BinLogitFit()(X, y)
    from tribute.models import BinaryKind
    feat = tribute.explain(model, Xt, method="feature_ablation", target=0, output="logit", baseline=0.0,
                           model_output=BinaryKind("logit"))
    with torch.no_grad():
        z = model(torch.as_tensor(Xt)).reshape(-1) - model(torch.zeros(1, 2, dtype=torch.float64)).reshape(-1)
    np.testing.assert_allclose(np.asarray(feat.values).sum(-1).reshape(-1), -z.numpy(), atol=1e-12)
    data = tribute.TrainingData(X, y, fit=_BinLogitFit(), loss="binary_cross_entropy")
    zero = tribute.explain(model, Xt, method="grad_dot", players=data, target=0, output="logit")
    one = tribute.explain(model, Xt, method="grad_dot", players=data, target=1, output="logit")
    np.testing.assert_array_equal(np.asarray(zero.values), -np.asarray(one.values))


def test_freeshap_bce_logit_reads_the_label_logit() -> None:
    X, y, Xt = _case()
    model = _BinLogitFit()(X, y)
    data = tribute.TrainingData(X, y, fit=_BinLogitFit(), loss="binary_cross_entropy")
    kw: dict[str, Any] = {"method": "freeshap", "players": data, "n_permutations": 4, "seed": 0}
    zero = tribute.explain(model, Xt, target=0, output="logit", **kw)
    one = tribute.explain(model, Xt, target=1, output="logit", **kw)
    marg = tribute.explain(model, Xt, target=0, output="margin", **kw)
    np.testing.assert_array_equal(np.asarray(zero.values), -np.asarray(one.values))
    np.testing.assert_array_equal(np.asarray(zero.values), np.asarray(marg.values))


def test_freeshap_surrogate_counts_a_coalition_drawn_twice_once(monkeypatch: Any) -> None:
    # the kernel-regression surrogate's v(S) is a function of S, as the data game's: banzhaf's
    # 150 draws on 8 examples hold 109 distinct coalitions (surrogate_evals said 150 before)
    from tribute.games.data_fits import RidgeFit
    from tribute.methods import data_freeshap

    seen: list[torch.Tensor] = []
    orig = data_freeshap.KernelRegressionGame._evaluate

    def record(self: Any, masks: torch.Tensor, shared: bool) -> torch.Tensor:
        seen.append(masks.reshape(-1, masks.shape[-1]).clone())
        return orig(self, masks, shared)

    monkeypatch.setattr(data_freeshap.KernelRegressionGame, "_evaluate", record)
    rng = np.random.default_rng(0)
    X, Xt = rng.normal(size=(8, 2)), rng.normal(size=(2, 2))
    y = X @ np.array([1.0, -1.0])
    fit = RidgeFit(l2=0.5)
    a = tribute.explain(fit(torch.as_tensor(X), torch.as_tensor(y), seed=0), Xt, method="freeshap",
                        estimator="banzhaf", n_coalitions=150, seed=1,
                        players=tribute.TrainingData(X, y, fit=fit))
    rows = torch.cat(seen)
    distinct = int(torch.unique(rows, dim=0).shape[0])
    assert distinct < 150 and a.extra["surrogate_evals"] == rows.shape[0] == distinct
