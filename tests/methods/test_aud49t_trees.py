"""aud49t (stop 49): interventional Shapley interaction values of tree_shap on paths with many
distinct players (the per-background-row "direct" path, no pattern tables) vs enumeration of
every coalition through the model's own ``predict``, and the work that path does: it evaluated
the interaction quadrature on every (input, leaf) pair for every background row, dead leaves
(never reached, whatever the coalition) included -- 0.1 s per input and background row on 10
trees of depth 10 (100 inputs x 10 background rows: 102 s, 18x slower than after)."""

from __future__ import annotations

import itertools
from math import factorial
from typing import Any

import numpy as np
import pytest

import tribute
from tribute.methods import tree_shap as ts
from tribute.methods._tree_math import product_game_interactions
from tribute.models.trees import parse_trees


def _enumerate(f: Any, x: np.ndarray, bg: np.ndarray, w: np.ndarray | None,
               per_sample: bool) -> tuple[np.ndarray, np.ndarray]:
    """Shapley values ``n x d`` and shap-convention interaction values ``n x d x d`` of
    ``v(S) = sum_b w_b f(x_S, b_rest)`` (``per_sample``: row i's own background row i)."""
    n, d = x.shape
    v: dict[tuple[int, ...], np.ndarray] = {}
    for s in itertools.product((0, 1), repeat=d):
        keep = np.array(s, bool)
        if per_sample:
            rows = bg.copy()
            rows[:, keep] = x[:, keep]
            v[s] = np.asarray(f(rows), np.float64)
        else:
            tiled = np.repeat(bg[None], n, 0)
            tiled[:, :, keep] = x[:, None, keep]
            out = np.asarray(f(tiled.reshape(-1, d)), np.float64).reshape(n, bg.shape[0])
            v[s] = out.mean(1) if w is None else out @ (w / w.sum())
    phi = np.zeros((n, d))
    inter = np.zeros((n, d, d))
    for s, val in v.items():
        k = sum(s)
        for i in range(d):
            if s[i]:
                continue
            phi[:, i] += factorial(k) * factorial(d - k - 1) / factorial(d) * (
                v[(*s[:i], 1, *s[i + 1:])] - val)
            for j in range(d):
                if j == i or s[j]:
                    continue
                corners = {}
                for a, b in itertools.product((0, 1), repeat=2):
                    t = list(s)
                    t[i], t[j] = a, b
                    corners[a, b] = v[tuple(t)]
                inter[:, i, j] += (factorial(k) * factorial(d - k - 2) / factorial(d - 1) * (
                    corners[1, 1] - corners[1, 0] - corners[0, 1] + corners[0, 0]) / 2)
    for i in range(d):
        inter[:, i, i] = phi[:, i] - inter[:, i].sum(1)
    return phi, inter


def _model() -> tuple[Any, np.ndarray]:
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 7))
    y = X[:, 0] * X[:, 1] + np.sin(X[:, 2]) + X[:, 3:].sum(1)
    return RandomForestRegressor(n_estimators=2, max_depth=8, random_state=0).fit(X, y), X


@pytest.mark.parametrize("kind", ["background", "weighted", "per_sample"])
def test_interventional_interactions_on_long_paths_match_enumeration(
        kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    m, X = _model()
    x = X[:6]
    bg = X[300:306] if kind == "per_sample" else X[300:304]
    w = np.array([1.0, 2.0, 3.0, 10.0]) if kind == "weighted" else None
    base: Any = (tribute.PerSample(bg) if kind == "per_sample"
                 else tribute.Background(bg, weights=w))
    seen: list[int] = []
    real = product_game_interactions

    def counted(z: np.ndarray, o: np.ndarray) -> np.ndarray:
        seen.append(int(np.prod(np.broadcast_shapes(np.shape(z), np.shape(o))[:-1])))
        return real(z, o)

    monkeypatch.setattr(ts, "product_game_interactions", counted)
    a = tribute.explain(m, x, method="tree_shap", baseline=base, interactions=True)
    phi, inter = _enumerate(m.predict, x, bg, w, kind == "per_sample")
    it = np.asarray(a.extra["interactions"])
    np.testing.assert_allclose(np.asarray(a.values), phi, atol=1e-12)
    np.testing.assert_allclose(it, inter, atol=1e-12)
    np.testing.assert_allclose(it, np.swapaxes(it, 1, 2), atol=1e-14)  # symmetric
    np.testing.assert_allclose(it.sum(-1), np.asarray(a.values), atol=1e-12)  # rows sum to values
    # the direct path ran (paths of >= 5 distinct players for 6 inputs) and evaluated the
    # quadrature only on live (input, leaf) pairs: fewer than a third of all of them
    comp = ts._Compiled(parse_trees(m), np.arange(7), 7)
    direct = [g for d, g in comp.groups.items() if 2**d > 2 * 8]
    assert direct
    all_pairs = sum(g.slot.shape[0] for g in direct) * x.shape[0] * (
        1 if kind == "per_sample" else bg.shape[0])
    assert 0 < sum(seen) < all_pairs / 3, (sum(seen), all_pairs)
