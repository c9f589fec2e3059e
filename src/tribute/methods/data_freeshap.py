"""FreeShap: fine-tuning-free data Shapley through the empirical neural tangent kernel.

Data Shapley (Ghorbani & Zou 2019) needs ``v(S)`` — the explained output of the model trained
on each sampled subset ``S`` — for thousands of subsets. FreeShap (Wang, Yang, Ng & Low 2024)
replaces retraining by **kernel regression under the model's empirical NTK**: around parameters
``theta0`` the model is linear in its parameters, ``f(x; theta) ~ f(x; theta0) + J(x)(theta -
theta0)`` with ``J(x) = df(x)/dtheta``, and ridge regression of that linear model on ``S``
(penalty ``lambda ||theta - theta0||^2``) predicts, by the kernel trick,

    s_S(x) = K(x, X_S) (K(X_S, X_S) + lambda I)^-1 Y_S,    K(x, x') = <J(x), J(x')> / C

(the *empirical NTK*, averaged over the ``C`` outputs: the "trace" or pseudo-NTK of Mohamadi,
Bae & Sutherland 2023; ``Y`` = one-hot labels for classifiers, ``+-1`` for one binary logit,
the targets for regression; no ``f(x; theta0)`` offset, as in Malladi et al. 2023's kernel view
of fine-tuning). The value of a coalition is the explained readout of ``s_S`` on the test
point: for classifiers the score margin ``s_y - mean_{c != y} s_c`` (the kernel analogue of the
margin the data game explains; ``output="logit"``: ``s_y``; one binary logit: ``(2y - 1) s``
for both, class 0's logit being ``-s``), for regression ``s``.

**Exactness.** For a model linear in its parameters (``nn.Linear``, ridge regression) the eNTK
is the linear kernel ``x.x' + 1`` whatever ``theta0``, and the kernel regression with
``lambda`` = the ridge penalty *is* ridge retraining: FreeShap then equals exact data Shapley of
the retraining game (tested by enumeration in ``tests/data/test_freeshap.py``) — for a summed
objective (``reduction="sum"``). With ``reduction="mean"`` retraining on ``S`` penalises by
``|S| l2`` in the summed scale, while the surrogate keeps the full set's ``n_train l2`` for every
coalition (one ``lambda`` is what lets all prefixes of a permutation share one Cholesky factor),
so coalitions smaller than the training set are over-regularised: 15% off exact data Shapley on
a 7-example mean ridge regression (``tests/data/test_freeshap_exactness.py``). Pass
``regularization=`` to choose another ``lambda``.

**Cheap coalitions.** One eNTK (``n_train x n_train`` plus ``batch x n_train``) is computed
from per-example Jacobians streamed in bounded blocks; after that no coalition touches the
model. For permutation sampling (the default estimator) all ``n`` prefixes of a permutation
``pi`` cost three LAPACK calls: with ``L`` the Cholesky factor of ``K_pi,pi + lambda I``, the
prefix factors are the leading blocks of ``L``, so with ``z = L^-1 Y_pi`` and
``w_t = L^-1 K_pi,t`` the prediction after the first ``k`` examples is ``sum_{j<=k} w_tj
z_j`` and the marginal contribution of the ``k``-th is ``w_tk (z_k . r_t)`` (``r_t`` the
readout). Each permutation is paired with its reverse (antithetic, Mitchell et al. 2022), so a
permutation costs ``O(n^3 / 3)`` flops instead of ``n`` retrainings. Any other registered
estimator that takes a data game (``exact_shapley``, ``kernel_shap``, ``banzhaf``,
``permutation_shapley``) runs unchanged on the surrogate :class:`KernelRegressionGame` with
``estimator=...``.

**Where the kernel is taken** (``at=``): ``"trained"`` (default) the explained model's
parameters — the kernel of its learned features; ``"init"`` the parameters ``fit`` starts from
(``fit`` on an empty training set, as FreeShap takes the pre-trained model a fine-tuning run
starts from).

**Ridge** (``regularization=None``): the data's ``l2`` in the summed objective's scale
(``l2`` for ``reduction="sum"``, ``n_train * l2`` for ``"mean"``), or ``1e-3 x mean(diag K)``
when that is 0 (a kernel of rank below ``|S|`` is singular without it).

References: Wang, Yang, Ng & Low (2024), "Helpful or Harmful Data? Fine-tuning-free Shapley
Attribution for Explaining Language Model Predictions" (ICML); Jacot, Gabriel & Hongler
(2018), "Neural Tangent Kernel"; Ghorbani & Zou (2019), "Data Shapley".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..attribution import Attribution
from ..errors import InputError
from ..games.base import Game
from ..games.data import GRAD_BUDGET_BYTES, DataGame
from ..params import NONE, InstanceOf, Interval, Options, declare
from ._stderr import inflate, warn_undefined
from .base import Cost, Method, Tags, coalition_cost, get_method, register
from .data_common import as_data_game, require_finite_losses

__all__ = ["FreeShap", "KernelRegressionGame", "NTKRegression", "entk", "ntk_regression",
           "permutation_marginals"]


class NTKRegression:
    """The kernel-regression surrogate of a data game (what FreeShap's coalitions evaluate).

    Attributes:
        K: ``n_train x n_train`` eNTK of the training examples (float64).
        K_test: ``batch x n_train`` eNTK between test points and training examples.
        Y: ``n_train x C`` regression targets.
        R: ``batch x C`` readout of each test point (its value is ``R_t . s(x_t)``).
        lam: the ridge ``lambda``.
        groups: ``n_train`` player id of each example.
    """

    def __init__(self, K: torch.Tensor, K_test: torch.Tensor, Y: torch.Tensor, R: torch.Tensor,
                 lam: float, groups: np.ndarray) -> None:
        self.K, self.K_test, self.Y, self.R, self.lam = K, K_test, Y, R, float(lam)
        self.groups = np.asarray(groups, dtype=np.int64)

    @property
    def n_train(self) -> int:
        return int(self.K.shape[0])

    def predict(self, idx: torch.Tensor) -> torch.Tensor:
        """Values ``batch`` of the model regressed on the training examples ``idx``."""
        if idx.numel() == 0:
            return torch.zeros(self.K_test.shape[0], dtype=torch.float64)
        A = self.K[idx][:, idx] + self.lam * torch.eye(idx.numel(), dtype=torch.float64)
        L = torch.linalg.cholesky(A)
        alpha = torch.cholesky_solve(self.Y[idx], L)  # |S| x C
        s = self.K_test[:, idx] @ alpha  # batch x C
        return (s * self.R).sum(1)


def _flat_jac(J: torch.Tensor) -> torch.Tensor:
    return J.reshape(J.shape[0], -1)


def entk(game: DataGame, params: dict[str, torch.Tensor] | None = None,
         budget_bytes: int = GRAD_BUDGET_BYTES) -> tuple[torch.Tensor, torch.Tensor]:
    """Empirical NTK of a data game's training examples and test points.

    ``K[i, j] = <J(x_i), J(x_j)> / C`` with ``J(x) = d f(x) / d theta`` the Jacobian of the
    ``C`` raw outputs with respect to all parameters (flattened), from per-example Jacobians in
    blocks (all of them held at once only when ``n_train x C x n_params`` float64 fits
    ``budget_bytes``; otherwise block pairs are recomputed).

    Args:
        game: the data game.
        params: parameters the Jacobians are taken at. default=None (the explained model's).
        budget_bytes: bytes of Jacobians held at once. default=GRAD_BUDGET_BYTES.

    Returns:
        ``(K n_train x n_train, K_test batch x n_train)`` float64.
    """
    J_test = game.test_jacobians(params)
    C = int(J_test.shape[1])
    T = _flat_jac(J_test)
    n = game.data.n_train
    K = torch.empty(n, n, dtype=torch.float64)
    K_test = torch.empty(T.shape[0], n, dtype=torch.float64)
    if n * C * game.n_params * 8 <= budget_bytes:
        G = torch.cat([_flat_jac(J) for _, J in game.train_jacobians(params)])
        K = G @ G.T / C
        K_test = T @ G.T / C
    else:
        for s, Ga in game.train_jacobians(params):
            Ga = _flat_jac(Ga)
            e = s + Ga.shape[0]
            K_test[:, s:e] = T @ Ga.T / C
            for s2, Gb in game.train_jacobians(params):
                K[s:e, s2 : s2 + Gb.shape[0]] = Ga @ _flat_jac(Gb).T / C
    return (K + K.T) / 2, K_test


def _targets_and_readout(game: DataGame, C: int) -> tuple[torch.Tensor, torch.Tensor]:
    loss, out = game.data.loss, game.output
    y_tr, y_te = game.y_train, game.y_test
    B = int(y_te.shape[0])
    if loss == "mse":
        return y_tr.reshape(-1, 1).to(torch.float64), torch.ones(B, 1, dtype=torch.float64)
    if loss == "binary_cross_entropy":
        # margin and logit alike: the label's log-odds, class 0's being -s (the data game's
        # convention; rev50d: output="logit" read class 1's s for a label-0 test point)
        Y = (2 * y_tr.reshape(-1, 1).to(torch.float64) - 1)
        return Y, (2 * y_te.reshape(-1, 1).to(torch.float64) - 1)
    Y = torch.nn.functional.one_hot(y_tr.reshape(-1).long(), C).to(torch.float64)
    e = torch.nn.functional.one_hot(y_te.reshape(-1).long(), C).to(torch.float64)
    if out == "logit":
        return Y, e
    return Y, e - (1 - e) / max(C - 1, 1)


def ntk_regression(game: DataGame, *, at: str = "trained", regularization: float | None = None
                   ) -> NTKRegression:
    """The eNTK kernel-regression surrogate of ``game`` (see the module docstring).

    Args:
        game: the data game (its test points, targets and explained output).
        at: ``"trained"`` (the explained model) or ``"init"`` (``fit`` on no data). default="trained".
        regularization: the ridge ``lambda``; None: from the data's ``l2`` (module docstring).
    """
    if game.output == "loss":
        raise InputError(
            "freeshap explains the kernel-regression prediction (output='raw', 'margin' or "
            "'logit'); output='loss' has no kernel-regression counterpart. Use output='raw'.")
    params: dict[str, torch.Tensor] | None = None
    if at == "init":
        fit = game.data.fit
        if fit is None:
            raise InputError("freeshap(at='init') needs TrainingData(fit=...): the kernel is taken "
                             "at the model fit returns on an empty training set. Use at='trained'.")
        X0, y0 = game.data.X[:0], game.data.y[:0]
        try:
            init = fit(X0, y0, seed=game.data.seed)
        except Exception as exc:
            raise InputError(f"freeshap(at='init'): fit on an empty training set failed ({exc}); "
                             "fit must return its starting model for no data, or use at='trained'.") from exc
        params = game.model_params(init)
    elif at != "trained":
        raise InputError(f"freeshap: at={at!r} must be 'trained' or 'init'.")
    K, K_test = entk(game, params)
    C = int(game.train_outputs(params).reshape(game.data.n_train, -1).shape[1])
    Y, R = _targets_and_readout(game, C)
    if regularization is None:
        lam = game.data.l2 * (1.0 if game.data.reduction == "sum" else game.data.n_train)
        if lam <= 0:
            lam = 1e-3 * float(torch.diagonal(K).mean().clamp_min(1e-12))
    else:
        lam = float(regularization)
    return NTKRegression(K, K_test, Y, R, lam, game.data.groups)


def permutation_marginals(reg: NTKRegression, order: np.ndarray) -> torch.Tensor:
    """Marginal contribution ``batch x n_train`` of each example when added in ``order``.

    Example ``order[k]`` gets ``v(first k+1) - v(first k)`` of the surrogate, for all ``k`` at
    once from one Cholesky factorisation (module docstring). Indexed by example.
    """
    # a copy: a reversed one-element permutation is "contiguous" with a negative stride, which
    # torch refuses
    o = torch.tensor(np.array(order, dtype=np.int64))
    n = o.numel()
    A = reg.K[o][:, o] + reg.lam * torch.eye(n, dtype=torch.float64)
    L = torch.linalg.cholesky(A)
    Z = torch.linalg.solve_triangular(L, reg.Y[o], upper=False)  # n x C
    W = torch.linalg.solve_triangular(L, reg.K_test[:, o].T, upper=False)  # n x batch
    contrib = (W * (Z @ reg.R.T)).T  # batch x n, position k
    out = torch.empty_like(contrib)
    out[:, o] = contrib
    return out


class KernelRegressionGame(Game):
    """The data game's surrogate: ``v(S)`` = the eNTK kernel-regression value (no retraining).

    Same players, test points, target and layout as the data game it comes from; any estimator
    that works on a data game works on it. Masks must be binary (a coalition of examples).
    """

    kind = "data"
    player_kind = "example"
    differentiable = False
    #: v(S) is a function of S (one kernel regression per coalition): a coalition drawn twice is
    #: solved and counted once, as on the data game (rev50d: extra["surrogate_evals"] was 150
    #: for 109 distinct coalitions of banzhaf, 142 for 90 of permutation_shapley, 8 examples),
    #: searched among any number of coalitions like the data game's (aud51d)
    distinct_coalitions = True
    search_copies_always = True

    def __init__(self, game: DataGame, reg: NTKRegression) -> None:
        super().__init__(game.engine, game.target, game.layout, list(game.player_names),
                         game.n_samples)
        self.reg = reg

    def _evaluate(self, masks: torch.Tensor, shared: bool) -> torch.Tensor:
        if not bool(torch.all((masks == 0) | (masks == 1))):
            raise InputError("the FreeShap kernel-regression game takes binary masks (coalitions of "
                             "training examples); use a Shapley/Banzhaf estimator with 0/1 masks.")
        m = masks if shared else masks.reshape(-1, masks.shape[-1])
        ex = torch.as_tensor(self.reg.groups)
        vals = torch.empty(m.shape[0], self.n_samples, dtype=torch.float64)
        for k in range(m.shape[0]):
            keep = m[k].to(torch.bool)[ex]
            vals[k] = self.reg.predict(keep.nonzero().flatten())
        if shared:
            return vals.T[:, :, None].contiguous()
        B = self.n_samples
        v = vals.reshape(B, -1, B)
        idx = torch.arange(B)
        return v[idx, :, idx][:, :, None].contiguous()


@register
class FreeShap(Method):
    """FreeShap: data Shapley without retraining, by eNTK kernel regression on each coalition.

    Args:
        estimator: ``"permutation"`` (antithetic permutation sampling, every prefix of a
            permutation from one Cholesky factorisation) or the name of a registered estimator
            run on the surrogate :class:`KernelRegressionGame` (``"exact_shapley"``,
            ``"kernel_shap"``, ``"banzhaf"``, ``"permutation_shapley"``...). default="permutation".
        n_permutations: permutations for ``estimator="permutation"`` (rounded up to an even
            number: each comes with its reverse). default=200.
        n_coalitions: budget of coalitions of the surrogate game for another estimator (None:
            that estimator's default). They cost no model evaluations. default=None.
        at: where the eNTK is taken: ``"trained"`` or ``"init"``. default="trained".
        regularization: ridge ``lambda`` (None: from ``TrainingData.l2``; module docstring).
            default=None.

    The model itself is only differentiated once per training example and test point (the
    Jacobians of the eNTK); ``n_evals`` counts that pass as one evaluation.

    Reference: Wang, Yang, Ng & Low (2024), "Helpful or Harmful Data? Fine-tuning-free Shapley
    Attribution for Explaining Language Model Predictions" (ICML).
    """

    name = "freeshap"
    tags = Tags(family="data_kernel", needs_baseline=False, stochastic=True, has_gap=True,
                games=("data",))
    paper = ("Wang et al. (2024), Helpful or Harmful Data? Fine-tuning-free Shapley Attribution "
             "for Explaining Language Model Predictions")
    constraints = declare({"estimator": InstanceOf((str,), "a method name or 'permutation'"),
                           "n_permutations": Interval(int, 1), "at": Options(("trained", "init")),
                           "n_coalitions": (NONE, Interval(int, 1)),
                           # inf: torch.linalg.cholesky failed (rev42d)
                           "regularization": (NONE, Interval(float, 0.0, math.inf, closed="neither"))})

    def __init__(self, estimator: str = "permutation", n_permutations: int = 200,
                 n_coalitions: int | None = None, at: str = "trained",
                 regularization: float | None = None) -> None:
        self.estimator = estimator
        self.n_permutations = n_permutations
        self.n_coalitions = n_coalitions
        self.at = at
        self.regularization = regularization

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """The eNTK (``n_train^2``, its permuted copy and Cholesky factor), the test kernel,
        the Jacobians held at once, per-permutation credits."""
        n = int(getattr(getattr(game, "data", None), "n_train", game.n_players))
        b = int(game.n_samples)
        p = int(getattr(game, "n_params", 0))
        jac = min(n * p * 8 * 10, GRAD_BUDGET_BYTES)
        kern = 3 * n * n * 8 + 2 * b * n * 8
        perms = 2 * ((self.n_permutations + 1) // 2)
        return coalition_cost(game, 1, design=jac, solve=kern + 2 * b * n * 8,
                              flops=float(perms) * (n**3 / 3 + n * n * (b + 10)),
                              note=f"the {n:,} x {n:,} eNTK and its Cholesky factor")

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        g = as_data_game(game, self.name)
        require_finite_losses(g, self.name)
        reg = ntk_regression(g, at=self.at, regularization=self.regularization)
        g.count_pass()
        params = self.get_params()
        extra: dict[str, Any] = {"regularization": reg.lam, "at": self.at,
                                 "n_grad_evals": g.n_grad_evals}
        if self.estimator == "permutation":
            phi, se_p, n_perm = self._permutations(g, reg, seed)
            extra["n_permutations"] = n_perm
            full = reg.predict(torch.arange(reg.n_train))
            gap = phi.sum(-1) - full[:, None]
            extra["v_full_surrogate"] = full.numpy()
            return g.attribution(phi, self.name, params, stderr=se_p, gap=gap, extra=extra)
        try:
            cls = get_method(self.estimator)
        except Exception as exc:
            raise InputError(f"freeshap: estimator={self.estimator!r} is neither 'permutation' nor "
                             f"a registered method ({exc}).") from exc
        if "data" not in cls.tags.games:
            raise InputError(f"freeshap: estimator={self.estimator!r} does not work on data games; "
                             "use 'exact_shapley', 'kernel_shap', 'banzhaf' or 'permutation_shapley'.")
        sur = KernelRegressionGame(g, reg)
        inner = cls()
        use = inner.check(sur, self.n_coalitions if cls.tags.budgeted else None)
        a = inner.attribute(sur, budget=use, seed=seed)
        phi = torch.as_tensor(np.asarray(a.flat()), dtype=torch.float64).reshape(
            g.n_samples, 1, g.n_players)
        se: torch.Tensor | None = None
        if a.stderr is not None:
            se = torch.as_tensor(np.asarray(a.stderr), dtype=torch.float64).reshape(phi.shape)
        gap_s = None if a.gap is None else torch.as_tensor(np.asarray(a.gap), dtype=torch.float64
                                                           ).reshape(g.n_samples, 1)
        extra["surrogate_evals"] = sur.n_evals
        return g.attribution(phi, self.name, params, stderr=se, gap=gap_s, extra=extra)

    def _permutations(self, g: DataGame, reg: NTKRegression, seed: int
                      ) -> tuple[torch.Tensor, torch.Tensor, int]:
        rng = np.random.default_rng(seed)
        n_players, n = g.n_players, reg.n_train
        pairs = max(1, (self.n_permutations + 1) // 2)
        B = g.n_samples
        grp = torch.as_tensor(reg.groups)
        members = [np.flatnonzero(reg.groups == j) for j in range(n_players)]
        per_pair = torch.empty(pairs, B, n_players, dtype=torch.float64)
        for p in range(pairs):
            perm = rng.permutation(n_players)
            acc = torch.zeros(B, n_players, dtype=torch.float64)
            for pp in (perm, perm[::-1]):
                order = np.concatenate([members[j] for j in pp]) if n != n_players else pp
                m = permutation_marginals(reg, np.ascontiguousarray(order))
                acc.index_add_(1, grp, m) if n != n_players else acc.add_(m)
            per_pair[p] = acc / 2
        phi = per_pair.mean(0)
        if pairs > 1:
            # Student-t inflation and zero-variance moderation over pairs - 1 dof (_stderr)
            se = inflate(per_pair.std(0, unbiased=True) / pairs**0.5, float(pairs - 1))
        else:
            se = torch.full_like(phi, float("nan"))
            warn_undefined(self.name, "one antithetic pair of permutations",
                           "Use n_permutations >= 4.")
        return phi[:, None, :], se[:, None, :], 2 * pairs
