"""Gauss-Legendre nodes above the dense limit (rev46x): O(n) work instead of an O(n^2)
tridiagonal eigenvalue call that held Python's lock (35 s at 30,000 nodes), checked against a
40-digit reference, against the Golub-Welsch nodes, and by exact polynomial integration."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import scipy.linalg

from tribute.methods import integrated
from tribute.methods.integrated import quadrature


def _reference(n: int) -> tuple[list[mpmath.mpf], list[mpmath.mpf]]:
    """The ``n // 2`` positive nodes (decreasing) and their weights to 40 digits: Newton on
    the recurrence for ``P_n`` in mpmath from the classic ``cos(pi (k - 1/4) / (n + 1/2))``."""
    with mpmath.workdps(40):
        xs, ws = [], []
        for k in range(1, n // 2 + 1):
            x = mpmath.cos(mpmath.pi * (k - mpmath.mpf(1) / 4) / (n + mpmath.mpf(1) / 2))
            for _ in range(60):
                p0, p1 = mpmath.mpf(1), x
                for j in range(2, n + 1):
                    p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
                dp = n * (x * p1 - p0) / (x * x - 1)
                step = p1 / dp
                x -= step
                if abs(step) < mpmath.mpf(10) ** -36:
                    break
            xs.append(x)
            ws.append(2 / ((1 - x * x) * dp * dp))
        return xs, ws


@pytest.mark.parametrize("n", [2, 3, 7, 129, 130, 131])
def test_nodes_and_weights_match_a_40_digit_reference(n: int) -> None:
    """Before: the weights at 129 nodes were 2.5e-13 off (``1 - x^2`` at the rounded node)."""
    x, w = integrated._gauss_legendre_large(n)
    xs, ws = _reference(n)
    h = n // 2
    pos_x, pos_w = x[::-1][:h], w[::-1][:h]
    with mpmath.workdps(40):
        dx = max(abs(mpmath.mpf(float(a)) - b) for a, b in zip(pos_x, xs))
        dw = max(abs(mpmath.mpf(float(a)) / b - 1) for a, b in zip(pos_w, ws))
    assert float(dx) <= 4e-16 and float(dw) <= 1e-14
    assert x.shape == (n,) and np.all(np.diff(x) > 0) and np.array_equal(x, -x[::-1])
    assert np.array_equal(w, w[::-1])
    if n % 2:  # middle node 0, weight 2 / P_n'(0)^2 with |P_n'(0)| = n (n-2)!! / (n-1)!!
        p = mpmath.fprod(mpmath.mpf(2 * i - 1) / (2 * i) for i in range(1, h + 1))
        assert x[h] == 0.0 and abs(w[h] / (2 / (n * p) ** 2) - 1) <= 1e-14


@pytest.mark.parametrize("n", [2, 5, 16, 17, 40, 41, 64, 100, 127, 128])
def test_below_the_dense_limit_it_agrees_with_numpys_leggauss(n: int) -> None:
    """The O(n) path also agrees with ``leggauss`` (the nodes used up to 128) where both run:
    nodes to 4e-16, weights to ``leggauss``'s own accuracy (it evaluates ``P_n'`` at unpolished
    roots: up to 2e-11 off between 2 and 128 nodes; the 40-digit test above is the truth)."""
    x, w = integrated._gauss_legendre_large(n)
    x0, w0 = np.polynomial.legendre.leggauss(n)
    assert np.abs(x - x0).max() <= 4e-16
    assert np.abs(w / w0 - 1).max() <= 5e-11


@pytest.mark.parametrize("n", [1500, 3001])
def test_nodes_agree_with_the_former_golub_welsch_nodes(n: int) -> None:
    """Against the former method: eigenvalues of the Jacobi matrix (off-diagonal
    ``k / sqrt(4k^2 - 1)``; up to 5e-15 off at 3,001 nodes), polished by two Newton steps on
    the recurrence for ``P_n`` in ``x`` (to ~1e-16)."""
    k = np.arange(1, n)
    x0 = scipy.linalg.eigvalsh_tridiagonal(np.zeros(n), k / np.sqrt(4.0 * k * k - 1.0))
    for _ in range(2):
        p0, p1 = np.ones_like(x0), x0.copy()
        for j in range(2, n + 1):
            p0, p1 = p1, ((2 * j - 1) * x0 * p1 - (j - 1) * p0) / j
        x0 = x0 - p1 / (n * (x0 * p1 - p0) / (x0 * x0 - 1.0))
    x, _ = integrated._gauss_legendre_large(n)
    assert np.abs(x - x0).max() <= 4e-16


@pytest.mark.parametrize("n", [4097, 5000])
def test_polynomials_up_to_degree_2n_minus_1_are_integrated_exactly(n: int) -> None:
    a, w = quadrature("gauss_legendre", n)
    a_np, w_np = a.numpy(), w.numpy()
    assert float(w_np.sum()) == pytest.approx(1.0, abs=2e-15)
    for deg in (1, 2, 7, 40, 1001):
        assert float((w_np * a_np**deg).sum()) == pytest.approx(1.0 / (deg + 1), rel=1e-13)
    x = 2 * a_np - 1  # P_m integrates to 0 on [-1, 1] for 1 <= m <= 2n - 1
    for m in (2, 10, 999, 2 * n - 2):
        c = np.zeros(m + 1)
        c[m] = 1.0
        assert abs(float((w_np * np.polynomial.legendre.legval(x, c)).sum())) <= 1e-13


def test_many_nodes_take_linear_work_without_an_eigensolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: ``scipy.linalg.eigvalsh_tridiagonal`` (O(n^2), holding Python's lock: 35 s at
    30,000 nodes). Now no eigensolver runs and the n-step recurrence sees only the ~13
    nodes per end that Stieltjes' series does not cover, a few times, whatever n."""

    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("eigensolver used")

    for name in ("eigvalsh_tridiagonal", "eigh_tridiagonal", "eigvalsh", "eigh", "eigvals_banded"):
        monkeypatch.setattr(scipy.linalg, name, refuse)
    for name in ("eigvalsh", "eigh", "eigvals", "eig"):
        monkeypatch.setattr(np.linalg, name, refuse)
    sweeps: list[int] = []
    orig = integrated._legendre_theta

    def counted(theta: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        sweeps.append(theta.size)
        return orig(theta, n)

    monkeypatch.setattr(integrated, "_legendre_theta", counted)
    x, w = integrated._gauss_legendre_large(20_000)
    assert x.shape == (20_000,) and float(w.sum()) == pytest.approx(2.0, abs=1e-14)
    assert 1 <= len(sweeps) <= 3 and all(0 < s <= 14 for s in sweeps)
