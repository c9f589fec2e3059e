"""Toy games with exact answers for standard-error calibration (tests and benchmarks).

A game is a polynomial ``f(a) = sum_T c_T prod_{j in T} a_j`` over ``n`` features (linear terms,
pairwise and three-way interactions) explained at inputs ``x`` with baseline 0, so that
``v(S) = sum_{T subset S} c_T x_T``. For such games every estimand has a closed form:

* Shapley: each term is shared equally by its players, ``phi_i = sum_{T ni i} c_T x_T / |T|``;
* Banzhaf: ``beta_i = sum_{T ni i} c_T x_T / 2^(|T| - 1)``;
* RISE with keep-probability ``p``: ``E[v(M) M_i] / p = sum_T c_T x_T p^|T minus i|``;
* total Sobol index under uniform fractional masks (moments of independent ``U(0, 1)``).

:func:`coverage` runs a method over many seeds and reports how often ``|estimate - exact|``
falls within two reported standard errors, pooled over inputs and players.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

import tribute


@dataclass
class ToyGame:
    n: int
    terms: list[tuple[float, tuple[int, ...]]]
    x: np.ndarray  # inputs x n

    def __call__(self, a: np.ndarray) -> np.ndarray:
        out = np.zeros(a.shape[0])
        for c, t in self.terms:
            out += c * np.prod(a[:, list(t)], axis=1)
        return out

    def _term_values(self) -> list[tuple[np.ndarray, tuple[int, ...]]]:
        return [(c * np.prod(self.x[:, list(t)], axis=1), t) for c, t in self.terms]

    def shapley(self) -> np.ndarray:
        out = np.zeros_like(self.x)
        for val, t in self._term_values():
            for j in t:
                out[:, j] += val / len(t)
        return out

    def banzhaf(self) -> np.ndarray:
        out = np.zeros_like(self.x)
        for val, t in self._term_values():
            for j in t:
                out[:, j] += val / 2 ** (len(t) - 1)
        return out

    def rise(self, p: float = 0.5) -> np.ndarray:
        out = np.zeros_like(self.x)
        for val, t in self._term_values():
            for i in range(self.n):
                out[:, i] += val * p ** len(set(t) - {i})
        return out

    def sobol_total(self) -> np.ndarray:
        """Total Sobol indices of ``m -> f(m * x)``, ``m ~ U(0, 1)^n`` independent."""
        tv = self._term_values()

        def moment(t1: tuple[int, ...], t2: tuple[int, ...]) -> float:
            e = 1.0
            for j in set(t1) | set(t2):
                e *= 1 / 3 if (j in t1 and j in t2) else 1 / 2
            return e

        mean = sum(v * 0.5 ** len(t) for v, t in tv)
        second = sum(v1 * v2 * moment(t1, t2) for v1, t1 in tv for v2, t2 in tv)
        var = second - mean**2
        out = np.zeros_like(self.x)
        for i in range(self.n):
            gi = [(v, tuple(j for j in t if j != i)) for v, t in tv if i in t]
            e_g2 = sum(v1 * v2 * moment(t1, t2) for v1, t1 in gi for v2, t2 in gi)
            out[:, i] = e_g2 / 12 / var
        return out


def toy_game(n: int, n_inputs: int = 8, seed: int = 0, pairs: int | None = None,
             triples: int | None = None, scale: float = 1.0) -> ToyGame:
    """Linear terms on every feature plus random pairwise and three-way interactions."""
    rng = np.random.default_rng(seed)
    terms: list[tuple[float, tuple[int, ...]]] = [(float(rng.normal()), (i,)) for i in range(n)]
    all_pairs = list(combinations(range(n), 2))
    for k in rng.choice(len(all_pairs), size=min(pairs if pairs is not None else n, len(all_pairs)),
                        replace=False):
        terms.append((scale * float(rng.normal()), all_pairs[int(k)]))
    for _ in range(triples if triples is not None else n // 3):
        terms.append((scale * float(rng.normal()), tuple(int(j) for j in rng.choice(n, 3, replace=False))))
    x = rng.normal(size=(n_inputs, n))
    return ToyGame(n, terms, x)


def and_game(n: int, n_inputs: int = 4, seed: int = 0) -> ToyGame:
    """Rare strong interactions: small linear terms, a three-way product of weight 3 (a random
    coalition switches it on with probability 1/8 at ``p = 0.5``) and strong pairs, on inputs
    that are all "on" (positive, so no sign cancels the product)."""
    rng = np.random.default_rng(1000 + seed)
    terms: list[tuple[float, tuple[int, ...]]] = [(0.2 * float(rng.normal()), (i,)) for i in range(n)]
    perm = rng.permutation(n)
    terms.append((3.0, tuple(int(j) for j in perm[:3])))
    for k in range(3, n - 1, 2):
        terms.append((2.0 * float(rng.normal()), (int(perm[k]), int(perm[k + 1]))))
    x = np.abs(rng.normal(size=(n_inputs, n))) + 0.5
    return ToyGame(n, terms, x)


TRUTH = {"kernel_shap": "shapley", "permutation_shapley": "shapley", "gp_shapley": "shapley",
         "exact_shapley": "shapley", "banzhaf": "banzhaf", "rise": "rise", "sobol": "sobol_total"}


@dataclass
class Coverage:
    method: str
    n: int
    budget: int
    coverage: float  # share of |err| <= 2 stderr (finite stderr only)
    rms_error: float
    rms_stderr: float
    worst_ratio: float  # largest |err| / stderr
    undefined: float  # share of NaN/inf stderr
    warned: bool


def coverage(method: str, game: ToyGame, budget: int, seeds: range | list[int],
             **params: Any) -> Coverage:
    """Run ``method`` with each seed; pool ``|est - exact| <= 2 se`` over seeds, inputs, players."""
    kind = TRUTH[method]
    truth = getattr(game, kind)(params.get("p", 0.5)) if kind == "rise" else getattr(game, kind)()
    errs, ses = [], []
    warned = False
    for seed in seeds:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            attr = tribute.explain(game, game.x, method=method, budget=budget, seed=seed, **params)
        warned = warned or any("stderr" in str(x.message) or "standard error" in str(x.message)
                               for x in w)
        errs.append(np.abs(np.asarray(attr.values) - truth).ravel())
        ses.append(np.asarray(attr.stderr).ravel())
    err, se = np.concatenate(errs), np.concatenate(ses)
    ok = np.isfinite(se)
    ratio = np.where(se[ok] > 0, err[ok] / np.where(se[ok] > 0, se[ok], 1.0),
                     np.where(err[ok] > 1e-9, np.inf, 0.0))
    return Coverage(method, game.n, budget,
                    float((err[ok] <= 2 * se[ok] + 1e-12).mean()) if ok.any() else float("nan"),
                    float(np.sqrt((err**2).mean())),
                    float(np.sqrt((se[ok] ** 2).mean())) if ok.any() else float("nan"),
                    float(ratio.max()) if ok.any() else float("nan"),
                    float(1 - ok.mean()), warned)


@dataclass
class LogProbGame:
    """A 3-class tanh MLP's log-probability of class 1, explained against a 5-row background set
    (interventional Shapley): the game of the stop-28 audit whose gp_shapley intervals covered
    0.855 at 9 players and budget 100. ``shapley()`` enumerates every coalition."""

    n: int
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    x: np.ndarray  # inputs x n
    background: np.ndarray  # 5 x n

    def __call__(self, a: np.ndarray) -> np.ndarray:
        z = np.tanh(np.asarray(a, float) @ self.w1 + self.b1) @ self.w2 + self.b2
        out: np.ndarray = z[:, 1] - np.log(np.exp(z).sum(1))
        return out

    def shapley(self) -> np.ndarray:
        from tribute_testing import shapley_from_table

        masks = np.array(list(itertools.product([0, 1], repeat=self.n)), dtype=bool)
        rows = np.where(masks[:, None, None, :], self.x[None, :, None, :], self.background[None, None])
        v = self(rows.reshape(-1, self.n)).reshape(len(masks), len(self.x), -1).mean(-1)
        return shapley_from_table({tuple(int(b) for b in m): v[k] for k, m in enumerate(masks)}, self.n)


def logprob_game(n: int, n_inputs: int = 3) -> LogProbGame:
    """The audit's game (at ``n = 9`` exactly its weights, inputs and background)."""
    rng = np.random.default_rng(4)
    w1, b1 = rng.normal(size=(n, 12)), rng.normal(size=12)
    w2, b2 = rng.normal(size=(12, 3)) / 2, rng.normal(size=3)
    x = rng.normal(size=(100, n))
    return LogProbGame(n, w1, b1, w2, b2, x[:n_inputs].copy(), x[20:25].copy())
