"""Synthetic tabular data whose generating function is known, with analytic attributions.

The symbolic benchmark follows the spirit of ChaosMining (Shi et al., 2024, "ChaosMining: A
Benchmark to Evaluate Post-Hoc Local Attribution Methods in Low SNR Environments"): a few
relevant features drive the target through a known symbolic function and many independent
noise features do not. The generating function is exposed as a model
(:class:`SymbolicFunction`), so "ground truth" is not only a mask but the exact value of each
attribution method applied to that model.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from ._base import Dataset, register

NpFn = Callable[[np.ndarray], np.ndarray]
TorchFn = Callable[[torch.Tensor], torch.Tensor]

#: Univariate transforms: name -> (numpy g, numpy g', torch g). ``square`` is ``x**2 - 1``
#: so that it has mean zero under N(0, 1).
TRANSFORMS: dict[str, tuple[NpFn, NpFn, TorchFn]] = {
    "identity": (lambda x: x, np.ones_like, lambda x: x),
    "sin": (np.sin, np.cos, torch.sin),
    "square": (lambda x: x**2 - 1.0, lambda x: 2.0 * x, lambda x: x**2 - 1.0),
    "tanh": (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2, torch.tanh),
}


@dataclass(frozen=True)
class Term:
    """One product term ``weight * prod_k g_k(x[features[k]])`` of a :class:`SymbolicFunction`.

    Attributes:
        weight: Coefficient.
        features: Distinct feature indices the term reads.
        transforms: One name from :data:`TRANSFORMS` per feature.
    """

    weight: float
    features: tuple[int, ...]
    transforms: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.features) != len(self.transforms) or not self.features:
            raise ValueError(f"Term: need one transform per feature, got features="
                             f"{self.features} transforms={self.transforms}")
        if len(set(self.features)) != len(self.features):
            raise ValueError(f"Term: features must be distinct, got {self.features}")
        unknown = set(self.transforms) - set(TRANSFORMS)
        if unknown:
            raise ValueError(f"Term: unknown transforms {sorted(unknown)}; "
                             f"choose from {sorted(TRANSFORMS)}")

    def __str__(self) -> str:
        def fmt(t: str, j: int) -> str:
            return {"identity": f"x{j}", "square": f"(x{j}^2-1)"}.get(t, f"{t}(x{j})")

        return f"{self.weight:+.3g}*" + "*".join(
            fmt(t, j) for t, j in zip(self.transforms, self.features)
        )


def _as_2d(X: np.ndarray | torch.Tensor, d: int, where: str) -> np.ndarray:
    arr = np.asarray(X.detach().cpu() if isinstance(X, torch.Tensor) else X, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != d:
        raise ValueError(f"{where}: expected X of shape (batch, {d}), got {arr.shape}")
    return arr


def _baseline(baseline: np.ndarray | float | None, X: np.ndarray, where: str) -> np.ndarray:
    b = np.zeros(X.shape[1]) if baseline is None else np.asarray(baseline, dtype=np.float64)
    try:
        return np.broadcast_to(b, X.shape)
    except ValueError:
        raise ValueError(f"{where}: baseline of shape {b.shape} does not broadcast to X "
                         f"{X.shape}; pass a vector of length {X.shape[1]} or a full "
                         f"array") from None


class SymbolicFunction(nn.Module):
    """A known function ``f(x) = bias + sum_k w_k prod_{j in T_k} g_kj(x_j)`` as a model.

    ``forward`` is the differentiable torch version (``batch × d -> batch × 1``, dtype follows
    the input); :meth:`numpy` is the float64 numpy callable (``batch × d -> batch``). The other
    methods return the exact value of attribution methods applied to ``f`` (all float64,
    ``batch × d``, sign convention: positive = including the feature raises ``f``).

    Shapley values of the baseline game ``v(S) = f(x_S, b_{not S})`` are exact in closed form:
    Shapley is linear in the game and a term only involves its own features, so each term is
    solved on its own small player set ``T``. For a player ``i`` in ``T`` with
    ``u_j = g_j(x_j)`` and ``c_j = g_j(b_j)``::

        phi_i = w (u_i - c_i) sum_{S subset T minus i} p(|S|) prod_{j in S} u_j
                                                          prod_{j in T minus S minus i} c_j

    with ``p(s) = s! (t-1-s)! / t!`` (``t = |T|``). For a single-feature term this is
    ``w (g(x_i) - g(b_i))``; for a pair ``w g_a(x_a) g_b(x_b)`` it is
    ``w (g_a(x_a) - g_a(b_a)) (g_b(x_b) + g_b(b_b)) / 2``, i.e. each player keeps its main
    effect against the baseline and the pure interaction ``w (u_a - c_a)(u_b - c_b)`` is split
    equally. Banzhaf values use ``p(s) = 2^-(t-1)`` instead.

    Args:
        n_features: Input dimension ``d``.
        terms: The product terms.
        bias: Constant added to ``f``; default=0.0.
    """

    weights: torch.Tensor

    def __init__(self, n_features: int, terms: Sequence[Term], bias: float = 0.0) -> None:
        super().__init__()
        for term in terms:
            if max(term.features) >= n_features or min(term.features) < 0:
                raise ValueError(f"SymbolicFunction: term {term} reads a feature outside "
                                 f"0..{n_features - 1}")
        self.n_features = int(n_features)
        self.terms = tuple(terms)
        self.bias = float(bias)
        # Coefficients as a buffer so that the module has state, but nothing to train.
        self.register_buffer(
            "weights", torch.tensor([t.weight for t in self.terms], dtype=torch.float64)
        )

    @property
    def relevant(self) -> tuple[int, ...]:
        """Sorted indices of the features ``f`` depends on."""
        return tuple(sorted({j for t in self.terms for j in t.features}))

    def formula(self) -> str:
        """Human-readable formula, e.g. ``f(x) = +1.2*sin(x3) -0.7*x1*x5``."""
        body = " ".join(str(t) for t in self.terms) or "0"
        return f"f(x) = {body}" + (f" {self.bias:+.3g}" if self.bias else "")

    def extra_repr(self) -> str:
        return self.formula()

    # -- evaluation ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate ``f`` on ``x`` (``batch × d``); returns ``batch × 1``."""
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"SymbolicFunction.forward: expected input of shape (batch, "
                             f"{self.n_features}), got {tuple(x.shape)}")
        w = self.weights.to(dtype=x.dtype, device=x.device)
        out = torch.full((x.shape[0],), self.bias, dtype=x.dtype, device=x.device)
        for k, term in enumerate(self.terms):
            prod = w[k]
            for j, name in zip(term.features, term.transforms):
                prod = prod * TRANSFORMS[name][2](x[:, j])
            out = out + prod
        return out[:, None]

    def numpy(self, X: np.ndarray) -> np.ndarray:
        """Evaluate ``f`` in float64 numpy; ``batch × d -> batch``."""
        X = _as_2d(X, self.n_features, "SymbolicFunction.numpy")
        out = np.full(X.shape[0], self.bias)
        for term in self.terms:
            prod = np.full(X.shape[0], term.weight)
            for j, name in zip(term.features, term.transforms):
                prod = prod * TRANSFORMS[name][0](X[:, j])
            out += prod
        return out

    # -- analytic attributions ----------------------------------------------------------
    def gradient(self, X: np.ndarray) -> np.ndarray:
        """Exact gradient ``df/dx`` at each row of ``X``; ``batch × d``."""
        X = _as_2d(X, self.n_features, "SymbolicFunction.gradient")
        grad = np.zeros_like(X)
        for term in self.terms:
            vals = [TRANSFORMS[t][0](X[:, j]) for j, t in zip(term.features, term.transforms)]
            for a, (j, t) in enumerate(zip(term.features, term.transforms)):
                g = term.weight * TRANSFORMS[t][1](X[:, j])
                for b, v in enumerate(vals):
                    if b != a:
                        g = g * v
                grad[:, j] += g
        return grad

    def ablation(self, X: np.ndarray, baseline: np.ndarray | float | None = None) -> np.ndarray:
        """Leave-one-out effect ``f(x) - f(x with x_i := b_i)``; ``batch × d``.

        Args:
            X: Inputs, ``batch × d``.
            baseline: Vector of length ``d`` or ``batch × d`` array; default zeros (the mean).
        """
        X = _as_2d(X, self.n_features, "SymbolicFunction.ablation")
        B = _baseline(baseline, X, "SymbolicFunction.ablation")
        n, d = X.shape
        Xs = np.repeat(X[:, None, :], d, axis=1)  # batch × d (which one removed) × d
        eye = np.eye(d, dtype=bool)[None]
        Xs = np.where(eye, B[:, None, :], Xs)
        return np.asarray(self.numpy(X)[:, None] - self.numpy(Xs.reshape(n * d, d)).reshape(n, d))

    def _semivalue(self, X: np.ndarray, baseline: np.ndarray | float | None,
                   weight: Callable[[int, int], float], where: str) -> np.ndarray:
        X = _as_2d(X, self.n_features, where)
        B = _baseline(baseline, X, where)
        phi = np.zeros_like(X)
        for term in self.terms:
            t = len(term.features)
            u = [TRANSFORMS[g][0](X[:, j]) for j, g in zip(term.features, term.transforms)]
            c = [TRANSFORMS[g][0](B[:, j]) for j, g in zip(term.features, term.transforms)]
            for a, j in enumerate(term.features):
                others = [b for b in range(t) if b != a]
                acc = np.zeros(X.shape[0])
                for s in range(t):
                    for S in itertools.combinations(others, s):
                        prod = np.full(X.shape[0], weight(s, t))
                        for b in others:
                            prod = prod * (u[b] if b in S else c[b])
                        acc += prod
                phi[:, j] += term.weight * (u[a] - c[a]) * acc
        return phi

    def shapley(self, X: np.ndarray, baseline: np.ndarray | float | None = None) -> np.ndarray:
        """Exact Shapley values of ``v(S) = f(x_S, b_rest)`` (closed form above); ``batch × d``.

        They satisfy efficiency: ``phi.sum(1) == f(x) - f(b)``.

        Args:
            X: Inputs, ``batch × d``.
            baseline: Vector of length ``d`` or ``batch × d`` array; default zeros (the mean).
        """

        def p(s: int, t: int) -> float:
            return math.factorial(s) * math.factorial(t - 1 - s) / math.factorial(t)

        return self._semivalue(X, baseline, p, "SymbolicFunction.shapley")

    def banzhaf(self, X: np.ndarray, baseline: np.ndarray | float | None = None) -> np.ndarray:
        """Exact Banzhaf values of the same baseline game; ``batch × d``."""
        return self._semivalue(X, baseline, lambda s, t: 0.5 ** (t - 1),
                               "SymbolicFunction.banzhaf")

    def integrated_gradients(self, X: np.ndarray, baseline: np.ndarray | float | None = None,
                             n_nodes: int = 64) -> np.ndarray:
        """Integrated gradients along the straight path from ``b`` to ``x``; ``batch × d``.

        Computed with ``n_nodes``-point Gauss-Legendre quadrature of the analytic gradient,
        exact to float64 rounding for these smooth functions (Sundararajan et al., 2017,
        "Axiomatic Attribution for Deep Networks"). For an additive ``f`` this equals
        :meth:`shapley`.
        """
        X = _as_2d(X, self.n_features, "SymbolicFunction.integrated_gradients")
        B = _baseline(baseline, X, "SymbolicFunction.integrated_gradients")
        nodes, w = np.polynomial.legendre.leggauss(n_nodes)
        alphas, w = (nodes + 1.0) / 2.0, w / 2.0
        n, d = X.shape
        path = B[None] + alphas[:, None, None] * (X - B)[None]  # nodes × batch × d
        grads = self.gradient(path.reshape(-1, d)).reshape(n_nodes, n, d)
        return np.asarray((X - B) * np.tensordot(w, grads, axes=1))


# ---------------------------------------------------------------------------------------
# datasets


def _features(d: int) -> list[str]:
    return [f"x{j}" for j in range(d)]


def tabular_symbolic(n: int = 1000, n_relevant: int = 4, n_noise: int = 16,
                     kind: Literal["additive", "interaction"] = "additive",
                     noise_std: float = 0.0, seed: int = 0) -> Dataset:
    """Independent N(0, 1) features; the target is a known function of a few of them.

    Relevant feature ``k`` (at a random column) enters as ``w_k g_k(x)`` with ``g_k``
    cycling through ``x, sin(x), x^2 - 1, tanh(x)`` and ``|w_k|`` in ``[1, 2]`` with a random
    sign. ``kind="interaction"`` adds products ``w x_a x_b`` of consecutive relevant pairs
    ``(0, 1), (2, 3), ...``. After ChaosMining (Shi et al., 2024).

    Args:
        n: Number of samples; default=1000.
        n_relevant: Features the target depends on; default=4.
        n_noise: Independent features it ignores; default=16.
        kind: ``"additive"`` or ``"interaction"``; default="additive".
        noise_std: Std of Gaussian noise added to ``y`` (not to ``meta["model"]``);
            default=0.0.
        seed: Seed; default=0.

    Returns:
        A regression :class:`Dataset`: ``X`` float32 ``n × d``, ``y = f(X) + noise``,
        ``ground_truth`` the relevant-column mask (bool, ``n × d``). ``meta["model"]`` is the
        :class:`SymbolicFunction` ``f`` (use it as the model to explain and for exact truth:
        ``.gradient``, ``.ablation``, ``.shapley``, ``.banzhaf``, ``.integrated_gradients``);
        ``meta["relevant"]`` the relevant columns; ``meta["formula"]`` the formula.
    """
    if kind not in ("additive", "interaction"):
        raise ValueError(f"tabular_symbolic: kind must be 'additive' or 'interaction', "
                         f"got {kind!r}")
    if n_relevant < 1 or n_noise < 0 or n < 1:
        raise ValueError(f"tabular_symbolic: need n >= 1, n_relevant >= 1, n_noise >= 0; "
                         f"got n={n}, n_relevant={n_relevant}, n_noise={n_noise}")
    rng = np.random.default_rng(seed)
    d = n_relevant + n_noise
    relevant = np.sort(rng.permutation(d)[:n_relevant])
    names = ("identity", "sin", "square", "tanh")

    def weight() -> float:
        return float(rng.uniform(1.0, 2.0) * rng.choice([-1.0, 1.0]))

    terms = [Term(weight(), (int(j),), (names[k % 4],)) for k, j in enumerate(relevant)]
    if kind == "interaction":
        for k in range(0, n_relevant - 1, 2):
            pair = (int(relevant[k]), int(relevant[k + 1]))
            terms.append(Term(weight(), pair, ("identity", "identity")))
    f = SymbolicFunction(d, terms)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = f.numpy(X) + noise_std * rng.standard_normal(n)
    mask = np.zeros(d, dtype=bool)
    mask[relevant] = True
    name = "tabular_symbolic" if kind == "additive" else "tabular_symbolic_interaction"
    return Dataset(
        name=name,
        X=X,
        y=y.astype(np.float32),
        task="regression",
        feature_names=_features(d),
        ground_truth=np.broadcast_to(mask, X.shape).copy(),
        meta={
            "params": {"n": n, "n_relevant": n_relevant, "n_noise": n_noise, "kind": kind,
                       "noise_std": noise_std, "seed": seed},
            "model": f,
            "relevant": tuple(int(j) for j in relevant),
            "formula": f.formula(),
            "baseline": np.zeros(d, dtype=np.float32),
        },
    )


@register("tabular_correlated")
def tabular_correlated(n: int = 1000, n_relevant: int = 3, n_correlated: int = 3,
                       n_noise: int = 2, rho: float = 0.9, noise_std: float = 0.0,
                       seed: int = 0) -> Dataset:
    """Linear target of a few features, with irrelevant features correlated to them.

    Relevant features are i.i.d. N(0, 1); correlated feature ``k`` copies relevant feature
    ``k mod n_relevant``: ``x_j = rho x_i + sqrt(1 - rho^2) eps``; noise features are
    independent. ``y = sum_i w_i x_i`` over relevant features only. Columns are shuffled.

    The dataset separates two notions of truth (Chen et al., 2020, "True to the Model or True
    to the Data?"; Janzing et al., 2020, "Feature relevance quantification in explainable AI:
    A causal problem"):

    * *true to the model* (interventional / baseline Shapley with the mean as baseline,
      ``meta["model"].shapley(X)``): ``phi_i = w_i x_i``; a correlated-but-unused feature gets
      exactly zero. This is ``ground_truth``.
    * *true to the data* (observational / conditional Shapley, value ``E[f(X) | X_S = x_S]``,
      :func:`conditional_shapley_linear_gaussian`): a correlated feature carries information
      about ``y`` and gets non-zero credit. ``meta["ground_truth_observational"]`` marks
      relevant and correlated columns.

    Args:
        n: Samples; default=1000.
        n_relevant: Relevant features; default=3.
        n_correlated: Irrelevant features correlated with a relevant one; default=3.
        n_noise: Irrelevant independent features; default=2.
        rho: Correlation in ``[0, 1)``; default=0.9.
        noise_std: Std of Gaussian noise added to ``y``; default=0.0.
        seed: Seed; default=0.

    Returns:
        A regression :class:`Dataset` with ``meta`` keys ``"model"``
        (:class:`SymbolicFunction`), ``"weights"`` (length ``d``, zeros off the relevant
        columns), ``"covariance"`` (population covariance, ``d × d``), ``"roles"`` (per
        column: ``"relevant"``, ``"correlated:xj"`` or ``"noise"``),
        ``"ground_truth_observational"`` and ``"note"``.
    """
    if not 0.0 <= rho < 1.0:
        raise ValueError(f"tabular_correlated: rho must be in [0, 1), got {rho}")
    if n_relevant < 1 or n_correlated < 0 or n_noise < 0:
        raise ValueError("tabular_correlated: need n_relevant >= 1, n_correlated >= 0, "
                         "n_noise >= 0")
    rng = np.random.default_rng(seed)
    d = n_relevant + n_correlated + n_noise
    # x = A z with z ~ N(0, I_d) in a canonical order: relevant, correlated, noise.
    A = np.zeros((d, d))
    A[:n_relevant, :n_relevant] = np.eye(n_relevant)
    for k in range(n_correlated):
        row = n_relevant + k
        A[row, k % n_relevant] = rho
        A[row, row] = math.sqrt(1.0 - rho**2)
    for k in range(n_noise):
        row = n_relevant + n_correlated + k
        A[row, row] = 1.0
    perm = rng.permutation(d)  # canonical index -> column
    P = np.zeros((d, d))
    P[perm, np.arange(d)] = 1.0
    A = P @ A
    cov = A @ A.T
    w_rel = rng.uniform(1.0, 2.0, n_relevant) * rng.choice([-1.0, 1.0], n_relevant)
    weights = np.zeros(d)
    weights[perm[:n_relevant]] = w_rel
    roles = [""] * d
    for k in range(d):
        if k < n_relevant:
            roles[perm[k]] = "relevant"
        elif k < n_relevant + n_correlated:
            roles[perm[k]] = f"correlated:x{perm[(k - n_relevant) % n_relevant]}"
        else:
            roles[perm[k]] = "noise"
    f = SymbolicFunction(
        d, [Term(float(weights[j]), (j,), ("identity",)) for j in sorted(perm[:n_relevant])]
    )
    X = (rng.standard_normal((n, d)) @ A.T).astype(np.float32)
    y = f.numpy(X) + noise_std * rng.standard_normal(n)
    mask = weights != 0
    obs = np.array([r != "noise" for r in roles])
    return Dataset(
        name="tabular_correlated",
        X=X,
        y=y.astype(np.float32),
        task="regression",
        feature_names=_features(d),
        ground_truth=np.broadcast_to(mask, X.shape).copy(),
        meta={
            "params": {"n": n, "n_relevant": n_relevant, "n_correlated": n_correlated,
                       "n_noise": n_noise, "rho": rho, "noise_std": noise_std, "seed": seed},
            "model": f,
            "weights": weights,
            "covariance": cov,
            "roles": roles,
            "relevant": tuple(int(j) for j in np.flatnonzero(mask)),
            "formula": f.formula(),
            "baseline": np.zeros(d, dtype=np.float32),
            "ground_truth_observational": np.broadcast_to(obs, X.shape).copy(),
            "note": ("ground_truth is true to the model: interventional Shapley gives "
                     "correlated-but-unused columns zero credit. Observational (conditional) "
                     "Shapley is true to the data and credits them too; exact values from "
                     "conditional_shapley_linear_gaussian(X, meta['weights'], "
                     "meta['covariance'])."),
        },
    )


def conditional_shapley_linear_gaussian(X: np.ndarray, weights: np.ndarray,
                                        covariance: np.ndarray,
                                        mean: np.ndarray | None = None) -> np.ndarray:
    """Exact observational Shapley values of a linear model under a Gaussian distribution.

    The game is ``v(S) = E[w^T X | X_S = x_S] = w^T (mu + Sigma_{:,S} Sigma_{S,S}^-1
    (x_S - mu_S))``; Shapley values are computed by enumerating all ``2^d`` coalitions
    (``d <= 16``).

    Args:
        X: Points to explain, ``batch × d``.
        weights: ``w``, length ``d``.
        covariance: ``Sigma``, ``d × d``, positive definite.
        mean: ``mu``, length ``d``; default zeros.

    Returns:
        ``batch × d`` float64; rows sum to ``w^T (x - mu)``.
    """
    X = np.asarray(X, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    cov = np.asarray(covariance, dtype=np.float64)
    n, d = X.shape
    if d > 16 or w.shape != (d,) or cov.shape != (d, d):
        raise ValueError(f"conditional_shapley_linear_gaussian: need d <= 16, weights ({d},) "
                         f"and covariance ({d}, {d}); got X {X.shape}, weights {w.shape}, "
                         f"covariance {cov.shape}")
    mu = np.zeros(d) if mean is None else np.asarray(mean, dtype=np.float64)
    Xc = X - mu
    values = np.zeros((1 << d, n))  # v(S) - w^T mu, indexed by bitmask
    for m in range(1, 1 << d):
        S = [j for j in range(d) if m >> j & 1]
        coef = np.linalg.solve(cov[np.ix_(S, S)], cov[S] @ w)  # Sigma_SS^-1 Sigma_S: w
        values[m] = Xc[:, S] @ coef
    phi = np.zeros((n, d))
    fact = [math.factorial(k) for k in range(d + 1)]
    for m in range(1 << d):
        s = bin(m).count("1")
        for i in range(d):
            if not m >> i & 1:
                phi[:, i] += fact[s] * fact[d - s - 1] / fact[d] * (values[m | 1 << i]
                                                                    - values[m])
    return phi


register("tabular_symbolic")(functools.partial(tabular_symbolic, kind="additive"))
register("tabular_symbolic_interaction")(functools.partial(tabular_symbolic, kind="interaction"))
